"""Shadow runs through the served app: no extra model call for an identical prompt, sampled calls
otherwise that never hold up the live answer, nothing acted on, and a report that shows the
decisions a candidate would move out of safety."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from engine.backends.base import LabelChoice, LabelVerdict, RenderedPrompt
from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from tests.service.conftest import Served, ServeFactory

FAINTED = "I passed out after the new tablets, please cancel my repeat order."
ORDERS = ["Where is my parcel?", "Please cancel order 4471.", FAINTED, "Do you deliver on Sunday?"]


def candidate(policy_copy: Path, change: Any, file: str = "rules.yaml") -> Path:
    """A copy of the served policy beside it (its prompts are the served ones), changed."""
    target = policy_copy.parent.parent / "candidate" / policy_copy.name
    shutil.copytree(policy_copy, target)
    path = target / file
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target


def without_passed_out(rules: dict[str, Any]) -> None:
    rules["keyword_groups"]["severe_event"]["keywords"].remove("passed out")


def settled(served: Served) -> dict[str, Any]:
    """The admin report once every offered decision is decided or skipped, and every decided
    one is stored (the run counts a decision before the audit writer commits its row)."""
    deadline = time.monotonic() + 30
    while True:
        report = served.client.get("/admin/shadow").json()
        run = report["run"]
        done = sum(run["decided"].values()) + sum(run["skipped"].values())
        stored = sum(t["total"] for t in report.get("tenants") or [])
        decided = sum(run["decided"].values())
        if (done == run["offered"] and stored >= decided) or time.monotonic() > deadline:
            return dict(report)
        time.sleep(0.02)


def classify_all(served: Served, messages: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        r = served.client.post("/classify", json={"message": message})
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def rows(served: Served, statement: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(served.settings.audit_db) as conn:
        return list(conn.execute(statement).fetchall())


def test_an_identical_prompt_costs_no_model_call_and_leaving_safety_is_reported(
    make_served: ServeFactory, policy_copy: Path
) -> None:
    served = make_served()
    directory = candidate(policy_copy, without_passed_out)
    r = served.client.post("/admin/shadow", json={"directory": str(directory)})
    assert r.status_code == 201, r.text
    calls_before = len(served.backend.calls)
    live = classify_all(served, ORDERS)
    report = settled(served)
    # One model call per live decision; the candidate shared every verdict.
    assert len(served.backend.calls) - calls_before == len(ORDERS)
    assert report["run"]["decided"] == {"shared": len(ORDERS)}
    (acme,) = report["tenants"]
    assert acme["total"] == len(ORDERS)
    assert acme["leave_safety"] == 1
    assert acme["enter_safety"] == 0
    assert acme["agreed"] == len(ORDERS) - 1
    assert acme["examples"] is None  # an admin reads no message text
    fainted = live[ORDERS.index(FAINTED)]
    assert fainted["category"] == "safety_compliance"

    # The tenant's reader sees the example: which decision, its redacted text, both categories.
    mine = served.client.get("/shadow/report").json()
    (example,) = mine["tenants"][0]["examples"]["leave"]
    assert example["decision_id"] == fainted["decision_id"]
    assert example["input_redacted"] == fainted["input_redacted"]
    assert (example["live_category"], example["shadow_category"]) == (
        "safety_compliance",
        "service_action",
    )
    metrics = served.client.get("/metrics").text
    leaving = 'agreement="disagree",safety="leave",tenant="dev",verdict="shared"} 1.0'
    assert f"switchboard_shadow_decisions_total{{{leaving}" in metrics
    assert f"switchboard_model_requests {float(len(served.backend.calls))}" in metrics
    accesses = rows(served, "SELECT action, decision_ids FROM accesses")
    assert ("shadow_report", f'["{fainted["decision_id"]}"]') in accesses

    stopped = served.client.delete("/admin/shadow")
    assert stopped.status_code == 200
    assert served.client.get("/admin/shadow").json()["active"] is False
    classify_all(served, ORDERS[:1])  # no shadow: nothing offered
    assert served.client.get("/admin/shadow").json()["run"]["offered"] == len(ORDERS)


def test_shadow_decisions_never_act(make_served: ServeFactory, policy_copy: Path) -> None:
    """A candidate that sends everything to safety review would hand off every message: none of
    it reaches the outbox, the decisions table or the review queue."""
    served = make_served()

    def everything_is_severe(rules: dict[str, Any]) -> None:
        rules["keyword_groups"]["severe_event"]["keywords"].extend(["order", "parcel", "sunday"])

    directory = candidate(policy_copy, everything_is_severe)
    assert (
        served.client.post("/admin/shadow", json={"directory": str(directory)}).status_code == 201
    )
    live = classify_all(served, ORDERS)
    report = settled(served)
    assert report["tenants"][0]["enter_safety"] == 3
    shadow_records = rows(served, "SELECT record FROM shadow_decisions")
    assert len(shadow_records) == len(ORDERS)
    assert any('"handoffs":[{' in record for (record,) in shadow_records)  # they would act
    live_handoffs = sum(len(d["handoffs"]) for d in live)
    assert rows(served, "SELECT COUNT(*) FROM outbox") == [(live_handoffs,)]
    assert rows(served, "SELECT COUNT(*) FROM decisions") == [(len(ORDERS),)]
    pending = served.client.get("/reviews").json()["pending"]
    assert len(pending) == sum(d["requires_human_review"] for d in live)


def test_a_different_prompt_is_sampled(make_served: ServeFactory, policy_copy: Path) -> None:
    served = make_served()

    def one_more_example(policy: dict[str, Any]) -> None:
        policy["prompt"]["examples"].append(
            {"message": "Is the pharmacy open on Sunday?", "label": "informational"}
        )

    directory = candidate(policy_copy, one_more_example, "policy.yaml")
    none = {"directory": str(directory), "sample_rate": 0}
    assert served.client.post("/admin/shadow", json=none).status_code == 201
    calls = len(served.backend.calls)
    classify_all(served, ORDERS)
    report = settled(served)
    assert len(served.backend.calls) - calls == len(ORDERS)  # no shadow call at rate 0
    assert report["run"]["skipped"] == {"not_sampled": len(ORDERS)}
    served.client.delete("/admin/shadow")

    every = {"directory": str(directory), "sample_rate": 1}
    assert served.client.post("/admin/shadow", json=every).status_code == 201
    calls = len(served.backend.calls)
    classify_all(served, ORDERS)
    report = settled(served)
    assert len(served.backend.calls) - calls == 2 * len(ORDERS)
    assert report["run"]["decided"] == {"model": len(ORDERS)}


class GatedBackend(FakeBackend):
    """Holds every call whose prompt is not the live revision's until the test opens the gate."""

    def __init__(self, live_prefix_len: int) -> None:
        super().__init__(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
        self.live_prefix_len = live_prefix_len
        self.gate = threading.Event()
        self.held = threading.Event()

    async def score(
        self, prompt: RenderedPrompt, choices: Sequence[LabelChoice], *, deadline_s: float
    ) -> LabelVerdict:
        if len(prompt.messages) != self.live_prefix_len:
            self.held.set()
            await asyncio.to_thread(self.gate.wait, 30)
        return await super().score(prompt, choices, deadline_s=deadline_s)


def test_a_sampled_shadow_call_never_holds_up_the_live_answer(
    make_served: ServeFactory, policy_copy: Path
) -> None:
    probe = make_served()
    classify_all(probe, ORDERS[:1])
    live_turns = len(probe.backend.calls[-1].messages)
    backend = GatedBackend(live_turns)
    served = make_served(backend)

    def one_more_example(policy: dict[str, Any]) -> None:
        policy["prompt"]["examples"].append(
            {"message": "Open on Sunday?", "label": "informational"}
        )

    directory = candidate(policy_copy, one_more_example, "policy.yaml")
    body = {"directory": str(directory), "sample_rate": 1}
    assert served.client.post("/admin/shadow", json=body).status_code == 201
    first = served.client.post("/classify", json={"message": ORDERS[0]})
    assert first.status_code == 200  # answered: the shadow's call is not on its path
    assert backend.held.wait(30)  # ... while that call is still held
    report = served.client.get("/admin/shadow").json()
    assert report["run"]["decided"] == {}
    backend.gate.set()
    assert settled(served)["run"]["decided"] == {"model": 1}


def test_a_candidate_that_does_not_build_is_refused(served: Served, policy_copy: Path) -> None:
    def broken(rules: dict[str, Any]) -> None:
        rules["rules"][0]["when"] = {"keywords_any": ["no_such_group"]}

    directory = candidate(policy_copy, broken)
    r = served.client.post("/admin/shadow", json={"directory": str(directory)})
    assert r.status_code == 422
    assert any("no_such_group" in p for p in r.json()["problems"])
    missing = served.client.post("/admin/shadow", json={"directory": "/no/such/policies"})
    assert missing.status_code == 404
    assert served.client.get("/admin/shadow").status_code == 404


def test_promoting_the_candidate_is_a_reload_of_its_directory(
    make_served: ServeFactory, policy_copy: Path
) -> None:
    served = make_served()
    directory = candidate(policy_copy, without_passed_out)
    started = served.client.post("/admin/shadow", json={"directory": str(directory)}).json()
    before = served.client.get("/admin/policies").json()["active"]
    promoted = served.client.post("/admin/shadow/promote")
    assert promoted.status_code == 200, promoted.text
    status = served.client.get("/admin/policies").json()
    assert status["active"][0]["revision"] == started["candidate"][0]["revision"]
    # rollback returns to the revision before
    assert [p["revision"] for p in status["previous"]] == [b["revision"] for b in before]
    assert status["active"][0]["action"] == "reload"  # a promotion is a reload, by whom
    assert status["active"][0]["activated_by"] == "dev"
    assert served.client.get("/admin/shadow").json()["active"] is False
    decided = served.client.post("/classify", json={"message": FAINTED}).json()
    assert decided["category"] == "service_action"  # the candidate now decides
    assert served.client.post("/admin/shadow/promote").status_code == 409
