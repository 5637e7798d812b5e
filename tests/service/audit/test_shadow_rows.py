"""Shadow rows and the live page's counts, against SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from service.audit.shadow import ExampleKind, SafetyMove, ShadowRow, VerdictSource
from tests.service.audit.test_stores import Backend, make_record


def row(
    i: int,
    *,
    tenant: str = "acme",
    safety: SafetyMove = SafetyMove.SAME,
    agree: bool = True,
    run: str = "run-1",
) -> ShadowRow:
    live = "safety_compliance" if safety is SafetyMove.LEAVE else "service_action"
    shadow = "safety_compliance" if safety is SafetyMove.ENTER else "service_action"
    return ShadowRow(
        run_id=run,
        decision_id=f"d-{i}",
        created_at=f"2026-01-01T00:00:{i:02d}+00:00",
        tenant=tenant,
        region="eu",
        policy_id="contact-center",
        live_revision="rev-a",
        candidate_revision="rev-b",
        live_category=live,
        shadow_category=shadow if agree or safety is not SafetyMove.SAME else "informational",
        live_review=False,
        shadow_review=False,
        agree=agree,
        safety=safety,
        verdict=VerdictSource.SHARED,
        record=f'{{"decision_id": "d-{i}", "input_redacted": "message {i}"}}',
    )


async def test_counts_and_examples_per_tenant_and_run(backend: Backend) -> None:
    store = backend.store
    await store.append_shadow(
        [
            row(1),
            row(2, safety=SafetyMove.LEAVE, agree=False),
            row(3, safety=SafetyMove.LEAVE, agree=False),
            row(4, safety=SafetyMove.ENTER, agree=False),
            row(5, agree=False),
            row(6, tenant="globex", safety=SafetyMove.LEAVE, agree=False),
            row(7, run="run-0", safety=SafetyMove.LEAVE, agree=False),
        ]
    )
    acme = await store.shadow_counts("run-1", tenant="acme")
    assert sum(c.count for c in acme) == 5
    assert sum(c.count for c in acme if c.safety is SafetyMove.LEAVE) == 2
    every = await store.shadow_counts("run-1")
    assert {c.tenant for c in every} == {"acme", "globex"}
    leave = await store.shadow_examples("run-1", ExampleKind.LEAVE, 5, tenant="acme")
    assert [e.decision_id for e in leave] == ["d-3", "d-2"]  # newest first
    assert leave[0].input_redacted == "message 3"
    other = await store.shadow_examples("run-1", ExampleKind.OTHER, 5, tenant="acme")
    assert [e.decision_id for e in other] == ["d-5"]
    assert await store.shadow_examples("run-1", ExampleKind.LEAVE, 5, tenant="nobody") == []


async def test_a_shadow_row_is_stored_once_and_never_changed(backend: Backend) -> None:
    await backend.store.append_shadow([row(1)])
    await backend.store.append_shadow([row(1)])  # the same decision offered twice: kept once
    assert backend.raw("SELECT COUNT(*) FROM shadow_decisions") == [(1,)]
    with pytest.raises(Exception, match="append-only"):
        backend.raw("DELETE FROM shadow_decisions")
    assert backend.raw("SELECT COUNT(*) FROM decisions") == [(0,)]


async def test_tally_and_backlog(backend: Backend) -> None:
    store = backend.store
    records = [make_record(i, review=i % 2 == 0) for i in range(6)]
    for record in records:
        await store.append(record, tenant="acme")
    await store.append(make_record(7, review=True), tenant="globex")
    tally = await store.tally("2026-01-01T00:00:02+00:00", tenant="acme")
    assert sum(t.count for t in tally) == 4  # records 2..5
    assert {t.category for t in tally} == {"service_action"}
    (waiting,) = await store.backlog(tenant="acme")
    assert (waiting.queue, waiting.count) == ("service_desk", 3)
    assert waiting.oldest == records[0].created_at
    assert await store.backlog(tenant="acme", queues=frozenset({"pharmacovigilance"})) == []
    assert sum(b.count for b in await store.backlog()) == 4
