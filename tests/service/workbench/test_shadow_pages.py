"""The shadow and live pages over HTTP (fake model, auth off, development logins): who may open
them, the confirmation step, problems shown on the page, and what the report shows to whom."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.service.conftest import Served, ServeFactory

HTML = {"accept": "text/html"}
PASSED_OUT = "I passed out after the new tablets, please cancel my repeat order."


def _login(client: httpx.Client, role: str) -> None:
    client.cookies.clear()
    client.get("/login")
    client.post("/login", data={"csrf": client.cookies["sb_csrf"], "role": role})


def _form(client: httpx.Client, path: str, **data: str) -> httpx.Response:
    return client.post(
        path, data={"csrf": client.cookies["sb_csrf"], **data}, headers=HTML, follow_redirects=True
    )


def _candidate(policy_copy: Path, change: Any) -> Path:
    target = policy_copy.parent.parent / "candidate" / policy_copy.name
    shutil.copytree(policy_copy, target)
    rules = target / "rules.yaml"
    data = yaml.safe_load(rules.read_text(encoding="utf-8"))
    change(data)
    rules.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


def _without_passed_out(rules: dict[str, Any]) -> None:
    rules["keyword_groups"]["severe_event"]["keywords"].remove("passed out")


def _settled(client: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = client.get("/admin/shadow").json()["run"]
        if sum(run["decided"].values()) + sum(run["skipped"].values()) == run["offered"]:
            return
        time.sleep(0.02)


def test_who_may_open_which_page(served: Served) -> None:
    client = served.client
    for role, shadow, tenant, live in [
        ("admin", 200, 403, 403),
        ("auditor", 403, 200, 200),
        ("reviewer", 403, 200, 200),
        ("client", 403, 200, 403),
    ]:
        _login(client, role)
        got = [client.get(p, headers=HTML).status_code for p in ("/shadow", "/shadow/tenant")]
        assert got == [shadow, tenant], role
        assert client.get("/live", headers=HTML).status_code == live, role


def test_starting_takes_a_confirmation_and_shows_problems_on_the_page(
    make_served: ServeFactory, policy_copy: Path
) -> None:
    served = make_served()
    client = served.client
    _login(client, "admin")
    asked = _form(client, "/shadow/start", directory="/no/such/dir", sample_rate="0.1")
    assert asked.status_code == 200
    assert "Please confirm" in asked.text
    assert client.get("/admin/shadow").status_code == 404  # nothing started yet
    refused = _form(
        client, "/shadow/start", directory="/no/such/dir", sample_rate="0.1", confirmed="yes"
    )
    assert refused.status_code == 404
    assert "holds no policy" in refused.text

    def broken(rules: dict[str, Any]) -> None:
        rules["rules"][0]["when"] = {"keywords_any": ["no_such_group"]}

    directory = _candidate(policy_copy, broken)
    failed = _form(
        client, "/shadow/start", directory=str(directory), sample_rate="0", confirmed="yes"
    )
    assert failed.status_code == 422
    assert "no_such_group" in failed.text
    assert "rules.yaml" in failed.text  # file and line, like a failed reload


def test_the_report_shows_counts_to_the_admin_and_messages_to_the_tenants_reader(
    make_served: ServeFactory, policy_copy: Path
) -> None:
    served = make_served()
    client = served.client
    directory = _candidate(policy_copy, _without_passed_out)
    _login(client, "admin")
    started = _form(
        client,
        "/shadow/start",
        directory=str(directory),
        sample_rate="0",
        confirmed="yes",
    )
    assert started.status_code == 200  # followed the redirect to the page
    assert "The candidate runs in shadow" in started.text
    assert client.post("/classify", json={"message": PASSED_OUT}).status_code == 200
    _settled(client)
    page = client.get("/shadow", headers=HTML).text
    assert "Would leave safety" in page
    assert PASSED_OUT not in page  # an admin login reads no message text
    partial = client.get("/shadow/partial", headers=HTML).text
    assert "Agreement per tenant" in partial
    assert "<html" not in partial

    _login(client, "auditor")
    tenant_page = client.get("/shadow/tenant", headers=HTML).text
    assert PASSED_OUT in tenant_page

    _login(client, "admin")
    asked = _form(client, "/shadow/stop")
    assert "Please confirm" in asked.text
    assert client.get("/admin/shadow").json()["active"] is True
    stopped = _form(client, "/shadow/stop", confirmed="yes")
    assert "is stopped" in stopped.text
    assert client.get("/admin/shadow").json()["active"] is False


def test_the_live_page_counts_the_tenants_decisions(served: Served) -> None:
    client = served.client
    for message in ("Where is my parcel?", PASSED_OUT):
        assert client.post("/classify", json={"message": message}).status_code == 200
    _login(client, "reviewer")
    page = client.get("/live", headers=HTML)
    assert page.status_code == 200
    assert "2 decisions in the last hour" in page.text
    numbers = client.get("/live/numbers?window=24h", headers=HTML)
    assert "in the last 24 hours" in numbers.text
    assert "<html" not in numbers.text
    assert client.get("/live?window=7d", headers=HTML).status_code == 422
