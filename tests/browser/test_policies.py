"""Policy pages and the playground in a real browser: an author compares a candidate policy, an
admin reloads a broken policy (the old revision keeps serving) and rolls back.

These journeys change the policy directory the service reads, so this module serves its own
workbench (``workbench`` is overridden below) from a copy of ``policies/`` and ``prompts/``, with
candidates allowed under its temporary directory. The real embedded model decides.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.access.keys import KeyStore
from service.access.principal import Role
from tests.browser.conftest import TENANT, PageAs, Workbench, _write_tenant, serving
from tests.conftest import REPO

FAINTED = "I fainted twice after my second dose of the new tablets."
Shot = Callable[[Any, str], Path]
Axe = Callable[[Any], None]


@pytest.fixture(scope="module")
def workbench(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Workbench]:
    """A workbench of this module's own, serving a copy of the repository's policies."""
    root = tmp_path_factory.mktemp("policy-workbench")
    shutil.copytree(REPO / "policies", root / "repo" / "policies")
    shutil.copytree(REPO / "prompts", root / "repo" / "prompts")
    _write_tenant(root / "tenants")
    keys_db = root / "keys.db"
    store = KeyStore(str(keys_db))
    try:
        keys = {role: store.create(TENANT, role, name=f"{role.value}-pat")[0] for role in Role}
    finally:
        store.close()
    env = {
        "SWITCHBOARD_POLICIES": str(root / "repo" / "policies"),
        "SWITCHBOARD_PROMPTS": str(root / "repo" / "prompts"),
        "SWITCHBOARD_TENANTS": str(root / "tenants"),
        "SWITCHBOARD_KEYS_DB": str(keys_db),
        "SWITCHBOARD_BACKEND": "embedded",
        "SWITCHBOARD_AUTH": "on",
        "SWITCHBOARD_MODEL_QUEUE": "32",
        "SWITCHBOARD_CANDIDATE_ROOTS": json.dumps([str(root)]),
        "SWITCHBOARD_PLAYGROUND_DATA": str(REPO / "eval" / "data"),
    }
    with serving(root, env) as url:
        yield Workbench(url, keys, root, root / "serve.log", keys_db)


def _policies(workbench: Workbench) -> Path:
    return workbench.root / "repo" / "policies"


def _serving(workbench: Workbench) -> str:
    with workbench.api() as api:
        status = api.get("/admin/policies", headers=workbench.auth(Role.ADMIN)).json()
    return str(status["active"][0]["revision"])


def _classified_revision(workbench: Workbench) -> str:
    with workbench.api() as api:
        r = api.post(
            "/classify",
            json={"message": "Where is my order?"},
            headers=workbench.auth(Role.CLIENT),
        )
    assert r.status_code == 200, r.text
    return str(r.json()["policy"]["revision"])


def _bump(policy_yaml: str, by: int) -> str:
    """The same policy under a later patch version (a new revision), whatever it is today."""

    def later(m: re.Match[str]) -> str:
        return f"version: {m[1]}.{m[2]}.{int(m[3]) + by}"

    bumped, n = re.subn(r"^version: (\d+)\.(\d+)\.(\d+)$", later, policy_yaml, flags=re.M)
    assert n == 1
    return bumped


def _keep(shot: Shot, page: Any, name: str) -> None:
    """The screenshot as a test artifact (docs/workbench/ holds committed copies: a test run
    never writes into the repository)."""
    shot(page, name)


def test_an_author_compares_a_candidate_in_the_playground(
    workbench: Workbench, page_as: PageAs, shot: Shot, axe: Axe
) -> None:
    candidate = workbench.root / "candidate" / "policies"
    shutil.copytree(_policies(workbench), candidate)
    rules = candidate / "contact-center" / "rules.yaml"
    text = rules.read_text(encoding="utf-8")
    assert "      - fainted\n" in text
    rules.write_text(text.replace("      - fainted\n", "", 1), encoding="utf-8")

    page = page_as(Role.AUTHOR)
    page.get_by_role("navigation", name="Workbench").get_by_role("link", name="Policies").click()
    page.get_by_role("heading", name="Serving now").wait_for()
    assert page.get_by_text("Reload policies").count() == 0  # an author changes nothing
    axe(page)
    _keep(shot, page, "policies-author")

    page.get_by_role("navigation", name="Workbench").get_by_role("link", name="Playground").click()
    page.get_by_label("Candidate policy directory").fill(str(candidate))
    page.get_by_label("Message", exact=True).fill(FAINTED)
    page.get_by_role("button", name="Compare").click()
    summary = page.locator("#summary")
    summary.wait_for()
    # The rule the removed keyword fed fires under the active policy only: that row is marked
    # in words ("≠ differs"), not by colour alone. (Whether the category changes too depends on
    # what the real model says about the message.)
    fired = page.locator(
        "tr.differs", has=page.get_by_role("rowheader", name=re.compile("^rules fired"))
    )
    assert fired.get_by_text("≠ differs").is_visible()
    assert "safety-severe-event" in fired.locator("del").inner_text()
    assert "safety-severe-event" not in fired.locator("ins").inner_text()
    assert "1 model call" in summary.inner_text()  # the same prompt: one verdict for both
    assert page.get_by_text("removed keywords").is_visible()
    axe(page)
    _keep(shot, page, "playground-compare")

    # A labelled message: a third party's fainting, picked from the hand-written cases.
    page.get_by_label("File", exact=True).select_option("own.csv")
    page.get_by_label("Containing").fill("fainted")
    page.get_by_role("button", name="Show messages").click()
    page.get_by_role("button", name="Try own-third-party-01").click()
    page.locator("#summary").wait_for()
    assert page.get_by_label("Candidate policy directory").input_value() == str(candidate)
    assert page.get_by_text("labelled safety_compliance in own.csv").is_visible()
    assert page.locator("tr.differs").count() >= 1
    axe(page)
    _keep(shot, page, "playground-labelled")


def test_an_admin_reloads_a_broken_policy_and_rolls_back(
    workbench: Workbench, page_as: PageAs, shot: Shot, axe: Axe
) -> None:
    policy = _policies(workbench) / "contact-center" / "policy.yaml"
    original = policy.read_text(encoding="utf-8")
    first = _serving(workbench)
    page = page_as(Role.ADMIN)
    page.goto("/policies")

    # A good change first, so there is a revision to roll back to.
    policy.write_text(_bump(original, 1), encoding="utf-8")
    page.get_by_role("link", name="Reload policies").click()
    page.get_by_role("heading", name="Reload the policies?").wait_for()
    axe(page)
    _keep(shot, page, "policies-confirm-reload")
    page.get_by_role("button", name="Yes, reload").click()
    page.get_by_role("status").get_by_text("Reloaded").wait_for()
    second = _serving(workbench)
    assert second != first
    serving = page.get_by_role("table").first
    assert "admin-pat" in serving.inner_text()  # who reloaded it
    assert first in serving.inner_text()  # the revision before it

    # A broken one: nothing changes, the problems are listed with file and line.
    broken = _bump(original, 2)
    policy.write_text(re.sub(r"informational: 0\.\d+", "informational: 1.45", broken, count=1))
    page.get_by_role("link", name="Reload policies").click()
    page.get_by_role("button", name="Yes, reload").click()
    failure = page.locator("#reload-failure")
    failure.wait_for()
    assert re.search(r"policy\.yaml:\d+ \(thresholds\.informational\)", failure.inner_text())
    assert _serving(workbench) == second
    assert _classified_revision(workbench) == second  # the old revision keeps serving
    axe(page)
    _keep(shot, page, "policies-reload-failed")

    page.get_by_role("link", name="Roll back").click()
    page.get_by_role("heading", name="Roll back to the previous revision?").wait_for()
    page.get_by_role("button", name="Yes, roll back").focus()  # the keyboard alone suffices
    page.keyboard.press("Enter")
    page.get_by_role("status").get_by_text("Rolled back").wait_for()
    assert _serving(workbench) == first
    assert _classified_revision(workbench) == first
    assert page.locator("#reload-failure").count() == 0  # the failure stays in the history
    assert "reload failed" in page.get_by_role("table").last.inner_text()
    axe(page)
    _keep(shot, page, "policies-rolled-back")
    policy.write_text(original, encoding="utf-8")
