"""The policy page and the playground over HTTP: who sees what, the confirmation step, a failed
reload's problems while the old revision serves, and a comparison's marked differences."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Served, ServeFactory

HTML = {"accept": "text/html"}
FAINTED = "I fainted after my second dose of the new tablets."


def _login(client: httpx.Client, role: str) -> None:
    client.get("/login")
    r = client.post("/login", data={"csrf": client.cookies["sb_csrf"], "role": role})
    assert r.status_code in (200, 303), r.text


def _csrf(client: httpx.Client) -> str:
    return str(client.cookies["sb_csrf"])


def _revision(served: Served) -> str:
    body = served.client.get("/admin/policies", headers=served.admin()).json()
    return str(body["active"][0]["revision"])


@pytest.fixture
def author(served: Served) -> httpx.Client:
    _login(served.client, "author")
    return served.client


def test_an_author_reads_the_policy_without_the_buttons(author: httpx.Client) -> None:
    page = author.get("/policies")
    assert page.status_code == 200
    assert "contact-center" in page.text
    assert "safety-severe-event" in page.text
    assert re.search(r"rules\.yaml:\d+", page.text)
    assert "start-up" in page.text  # who activated the running revision
    assert "Reload policies" not in page.text
    assert author.get("/policies/reload", headers=HTML).status_code == 403
    r = author.post("/policies/reload", data={"csrf": _csrf(author)}, headers=HTML)
    assert r.status_code == 403


def test_a_reviewer_may_not_open_the_policy_pages(served: Served) -> None:
    _login(served.client, "reviewer")
    for path in ("/policies", "/playground"):
        assert served.client.get(path, headers=HTML).status_code == 403


def test_an_admin_confirms_a_reload_sees_its_problems_and_rolls_back(
    served: Served, policy_copy: Path
) -> None:
    client = served.client
    _login(client, "admin")
    before = _revision(served)
    assert "Reload policies" in client.get("/policies").text
    confirm = client.get("/policies/reload")
    assert "Yes, reload" in confirm.text
    policy = policy_copy / "policy.yaml"
    good = policy.read_text("utf-8")
    policy.write_text(good.replace("service_action: 0.55", "service_action: 0.7"), "utf-8")
    r = client.post("/policies/reload", data={"csrf": _csrf(client)}, follow_redirects=False)
    assert r.headers["location"] == "/policies?done=reloaded"
    reloaded = _revision(served)
    assert reloaded != before

    policy.write_text(good.replace("informational: 0.55", "informational: 1.55"), "utf-8")
    r = client.post("/policies/reload", data={"csrf": _csrf(client)}, follow_redirects=False)
    assert r.headers["location"] == "/policies#reload-failure"
    page = client.get("/policies").text
    assert "The last reload failed" in page
    assert re.search(r"policy\.yaml:\d+ \(thresholds\.informational\)", page)
    assert _revision(served) == reloaded  # the old revision keeps serving
    decided = client.post("/classify", json={"message": "hello"}).json()
    assert decided["policy"]["revision"] == reloaded

    assert "Yes, roll back" in client.get("/policies/rollback").text
    r = client.post("/policies/rollback", data={"csrf": _csrf(client)}, follow_redirects=False)
    assert r.headers["location"] == "/policies?done=rolled-back"
    assert _revision(served) == before
    assert "Rolled back" in client.get(r.headers["location"]).text


def test_a_reload_without_the_form_token_changes_nothing(served: Served) -> None:
    _login(served.client, "admin")
    r = served.client.post("/policies/reload", data={"csrf": "forged"}, headers=HTML)
    assert r.status_code == 403
    assert served.client.get("/admin/policies", headers=served.admin()).json()["reloads"] == 1


def test_the_playground_marks_what_a_candidate_changes(
    make_served: ServeFactory, policy_copy: Path
) -> None:
    served = make_served()
    _login(served.client, "author")
    candidate = policy_copy.parent.parent / "candidate"
    shutil.copytree(policy_copy.parent, candidate)
    rules = candidate / "contact-center" / "rules.yaml"
    rules.write_text(rules.read_text("utf-8").replace("      - fainted\n", "", 1), "utf-8")
    calls = len(served.backend.calls)

    r = served.client.post(
        "/playground",
        data={
            "csrf": _csrf(served.client),
            "message": FAINTED,
            "channel": "chat",
            "candidate": str(candidate),
        },
    )

    assert r.status_code == 200, r.text
    assert len(served.backend.calls) == calls + 1  # one verdict for both sides
    assert "Leaves safety" in r.text
    assert re.search(r'<tr class="differs">\s*<th scope="row">category <span', r.text)
    assert "≠ differs" in r.text
    assert "removed keywords" in r.text


def test_a_broken_candidate_shows_its_problems(served: Served, policy_copy: Path) -> None:
    _login(served.client, "author")
    candidate = policy_copy.parent.parent / "broken"
    shutil.copytree(policy_copy.parent, candidate)
    policy = candidate / "contact-center" / "policy.yaml"
    policy.write_text(policy.read_text("utf-8").replace("schema_version: 1", "schema: 1"), "utf-8")
    r = served.client.post(
        "/playground",
        data={"csrf": _csrf(served.client), "message": FAINTED, "candidate": str(candidate)},
    )
    assert r.status_code == 422
    assert "The candidate does not build" in r.text
    assert "policy.yaml" in r.text
