"""Review claims in both stores: one holder at a time, expiry, release, a review ends the claim."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

from service.audit import AuditStore, SQLiteAuditStore
from tests.service.audit.test_stores import Backend, make_record, review_of

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=timezone.utc)


async def test_two_claims_at_once_exactly_one_wins(backend: Backend) -> None:
    records = [make_record(i, review=True) for i in range(20)]
    for record in records:
        await backend.store.append(record)
    for record in records:  # 20 races, each on a fresh case, both claims in flight together
        ann, bob = await asyncio.gather(
            backend.store.claim(record.decision_id, "ann", ttl_s=600),
            backend.store.claim(record.decision_id, "bob", ttl_s=600),
        )
        assert ann is not None
        assert bob is not None
        assert ann.holder == bob.holder  # both see the same single winner
        assert ann.holder in {"ann", "bob"}
    rows = backend.raw("SELECT decision_id, COUNT(*) FROM claims GROUP BY decision_id")
    assert len(rows) == 20
    assert {count for _, count in rows} == {1}


async def test_a_held_claim_refuses_others_until_it_expires(backend: Backend) -> None:
    record = make_record(1, review=True)
    await backend.store.append(record)
    first = await backend.store.claim(record.decision_id, "ann", ttl_s=60, now=T0)
    assert first is not None
    assert first.holder == "ann"
    later = T0 + timedelta(seconds=59)
    held = await backend.store.claim(record.decision_id, "bob", ttl_s=60, now=later)
    assert held is not None
    assert held.holder == "ann"
    renewed = await backend.store.claim(record.decision_id, "ann", ttl_s=60, now=later)
    assert renewed is not None
    assert renewed.expires_at > first.expires_at  # the holder renews
    expired = later + timedelta(seconds=61)
    assert await backend.store.claim_of(record.decision_id, now=expired) is None
    taken = await backend.store.claim(record.decision_id, "bob", ttl_s=60, now=expired)
    assert taken is not None
    assert taken.holder == "bob"


async def test_release_only_by_the_holder_and_a_review_ends_the_claim(backend: Backend) -> None:
    record = make_record(1, review=True)
    await backend.store.append(record)
    await backend.store.claim(record.decision_id, "ann", ttl_s=600)
    await backend.store.release(record.decision_id, "bob")
    held = await backend.store.claim_of(record.decision_id)
    assert held is not None
    assert held.holder == "ann"
    await backend.store.release(record.decision_id, "ann")
    assert await backend.store.claim_of(record.decision_id) is None
    await backend.store.claim(record.decision_id, "bob", ttl_s=600)
    assert set(await backend.store.live_claims()) == {record.decision_id}
    await backend.store.add_review(review_of(record, "service_action"))
    assert await backend.store.live_claims() == {}


async def test_live_claims_of_one_tenant(backend: Backend) -> None:
    ours, theirs = make_record(1, review=True), make_record(2, review=True)
    await backend.store.append(ours, tenant="acme")
    await backend.store.append(theirs, tenant="globex")
    for record in (ours, theirs):
        await backend.store.claim(record.decision_id, "ann", ttl_s=600)
    assert set(await backend.store.live_claims(tenant="acme")) == {ours.decision_id}
    assert len(await backend.store.live_claims()) == 2


async def test_two_replicas_claiming_at_once_agree_on_one_winner(backend: Backend) -> None:
    """Two store instances on one database (two replicas, each with its own writer)."""
    if backend.kind == "sqlite":
        other: AuditStore = SQLiteAuditStore(Path(backend.location))
    else:
        from service.audit.postgres import PostgresAuditStore

        other = PostgresAuditStore(backend.location, schema=backend.schema)
    try:
        records = [make_record(i, review=True) for i in range(20)]
        for record in records:
            await backend.store.append(record)
        for record in records:
            ann, bob = await asyncio.gather(
                backend.store.claim(record.decision_id, "ann", ttl_s=600),
                other.claim(record.decision_id, "bob", ttl_s=600),
            )
            assert ann is not None
            assert bob is not None
            winners = [who for who, seen in (("ann", ann), ("bob", bob)) if seen.holder == who]
            assert len(winners) == 1, (ann, bob)
    finally:
        await other.close()
