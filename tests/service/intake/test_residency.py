"""Intake beyond HTTP keeps residency: each message is decided for its tenant and stored in that
tenant's region only; a tenant of a region this process does not serve is refused (dead-lettered
by ``consume``, an error line in ``batch``) with nothing decided or stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from service.intake.message import IntakeMessage, PoisonMessageError
from service.intake.runtime import intake_runtime
from service.settings import Settings
from tests.service.access.conftest import policy_tree, write_tenant


def _tree(root: Path) -> None:
    policy_tree(root)
    write_tenant(root / "tenants", "beurre", region="eu")
    write_tenant(
        root / "tenants",
        "maple",
        region="us",
        policies=["globex-center"],
        default_policy="globex-center",
    )


def _settings(root: Path, regions: list[str]) -> Settings:
    return Settings(
        policies=root / "policies",
        tenants=root / "tenants",
        audit_dbs={region: str(root / f"{region}.db") for region in regions},
        region=regions[0],
        backend="fake",
        warm_up=False,
    )


def _rows(root: Path, region: str) -> list[tuple[str, str]]:
    path = root / f"{region}.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT tenant, decision_id FROM decisions").fetchall())


def _message(message_id: str, tenant: str | None, policy: str | None = None) -> IntakeMessage:
    return IntakeMessage(message_id, "where is my order?", tenant=tenant, policy=policy)


def _backend() -> FakeBackend:
    return FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.95))


async def test_each_message_is_stored_in_its_tenants_region(tmp_path: Path) -> None:
    _tree(tmp_path)
    async with intake_runtime(_settings(tmp_path, ["eu", "us"]), backend=_backend()) as runtime:
        eu = await runtime.intake.decide(_message("m-1", "beurre"))
        us = await runtime.intake.decide(_message("m-1", "maple"))  # the same caller id
        again = await runtime.intake.decide(_message("m-1", "maple"))
    assert (eu.region, us.region) == ("eu", "us")
    assert eu.decision_id != us.decision_id, "two tenants' messages never share a decision"
    assert again.already
    assert again.decision_id == us.decision_id
    assert _rows(tmp_path, "eu") == [("beurre", eu.decision_id)]
    assert _rows(tmp_path, "us") == [("maple", us.decision_id)]


async def test_a_tenant_of_another_region_is_refused_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    _tree(tmp_path)
    backend = _backend()
    async with intake_runtime(_settings(tmp_path, ["eu"]), backend=backend) as runtime:
        warm_up_calls = len(backend.calls)
        with pytest.raises(PoisonMessageError) as refused:
            await runtime.intake.decide(_message("m-2", "maple"))
    assert refused.value.reason == "wrong_region"
    assert "region us" in refused.value.detail
    assert len(backend.calls) == warm_up_calls, "nothing was decided"
    assert _rows(tmp_path, "eu") == []
    assert _rows(tmp_path, "us") == []


@pytest.mark.parametrize(
    ("tenant", "policy", "reason"),
    [
        (None, None, "no_tenant"),  # two tenants declared: a message must name its own
        ("nobody", None, "unknown_tenant"),
        ("beurre", "globex-center", "unknown_policy"),  # maple's policy, not beurre's
    ],
)
async def test_a_message_that_cannot_be_placed_says_why(
    tmp_path: Path, tenant: str | None, policy: str | None, reason: str
) -> None:
    _tree(tmp_path)
    async with intake_runtime(_settings(tmp_path, ["eu", "us"]), backend=_backend()) as runtime:
        with pytest.raises(PoisonMessageError) as refused:
            await runtime.intake.decide(_message("m-3", tenant, policy))
    assert refused.value.reason == reason
    assert _rows(tmp_path, "eu") == []
    assert _rows(tmp_path, "us") == []


async def test_the_default_tenant_names_messages_that_name_none(tmp_path: Path) -> None:
    _tree(tmp_path)
    settings = _settings(tmp_path, ["eu", "us"])
    async with intake_runtime(settings, backend=_backend(), tenant="maple") as runtime:
        decided = await runtime.intake.decide(_message("m-4", None))
    assert (decided.tenant, decided.region) == ("maple", "us")
    assert [t for t, _ in _rows(tmp_path, "us")] == ["maple"]
