"""What both databases share: decisions, reviews and accesses as rows, and the store around them.

Statements are written once with ``{p}`` for the driver's placeholder (``database.py``). A
database module supplies ``_placeholder``, ``_read`` and a group-commit writer (``_group``) and
inherits every method of the ``AuditStore`` contract but ``close``: those of decisions, reviews,
the review queue and the live numbers from here, claims, the outbox, shadow decisions and the
search from the query class beside each (``claims.py``, ``outbox.py``, ``shadow.py``,
``search.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from engine import AuditStoreError, DecisionRecord
from engine.decide.record import HandOff, encode_record
from service.audit import claims
from service.audit.claims import ClaimQueries
from service.audit.database import TENANT, stored_record
from service.audit.outbox import OutboxQueries
from service.audit.search import SearchQueries
from service.audit.shadow import ShadowQueries
from service.audit.store import (
    AccessRecord,
    Backlog,
    LabelledReview,
    PendingReview,
    RecordedDecision,
    ReviewOutcome,
    Tally,
)

_INSERT_DECISION = (
    "INSERT INTO decisions (decision_id, created_at, policy_id, policy_revision, category, "
    "requires_human_review, review_queue, degraded, record, tenant, region) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}{json}, {p}, {p})"
)
_INSERT_ACCESS = (
    "INSERT INTO accesses (at, subject, tenant, role, action, decision_ids) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
)
_INSERT_REVIEW = (
    "INSERT INTO reviews (decision_id, category, note, reviewer, created_at) "
    "VALUES ({p}, {p}, {p}, {p}, {p})"
)
_GET = "SELECT record FROM decisions d WHERE decision_id = {p}{t}"
_REVIEWS_FOR = (
    "SELECT decision_id, category, note, reviewer, created_at FROM reviews "
    "WHERE decision_id = {p} ORDER BY id"
)
_PENDING = (
    "SELECT d.decision_id, d.created_at, d.category, d.policy_revision, d.review_queue "
    "FROM decisions d WHERE d.requires_human_review = TRUE AND NOT EXISTS "
    "(SELECT 1 FROM reviews r WHERE r.decision_id = d.decision_id){t}{q} "
    "ORDER BY d.created_at LIMIT {p}"
)
_LABELLED = (
    "SELECT d.record, r.category, r.reviewer, r.created_at "
    "FROM reviews r JOIN decisions d USING (decision_id) "
    "WHERE r.id IN (SELECT MAX(id) FROM reviews GROUP BY decision_id){t} "
    "ORDER BY r.id LIMIT {p}"
)
_RECENT = (
    "SELECT d.record, (SELECT r.category FROM reviews r WHERE r.decision_id = d.decision_id "
    "ORDER BY r.id DESC LIMIT 1) FROM decisions d WHERE d.policy_id = {p}{t} "
    "ORDER BY d.created_at DESC LIMIT {p}"
)
_COUNT = "SELECT COUNT(*) FROM decisions d WHERE TRUE{t}"
_TALLY = (
    "SELECT d.category, d.degraded, COUNT(*) FROM decisions d WHERE d.created_at >= {p}{t} "
    "GROUP BY d.category, d.degraded"
)
_BACKLOG = (
    "SELECT d.review_queue, COUNT(*), MIN(d.created_at) FROM decisions d "
    "WHERE d.requires_human_review = TRUE AND NOT EXISTS "
    "(SELECT 1 FROM reviews r WHERE r.decision_id = d.decision_id){t}{q} "
    "GROUP BY d.review_queue ORDER BY d.review_queue"
)


def decision_row(
    record: DecisionRecord, encoded: bytes | None = None, *, tenant: str = "", region: str = ""
) -> tuple[Any, ...]:
    """The columns of a decision, in the order both stores insert them; the record as JSON."""
    queue_name = record.workflow.queue if record.workflow.status == "awaiting_review" else None
    return (
        record.decision_id,
        record.created_at,
        record.policy.id,
        record.policy.revision,
        record.category.value,
        record.requires_human_review,
        queue_name,
        record.degraded,
        (encoded if encoded is not None else encode_record(record)).decode(),
        tenant,
        region,
    )


def review_row(outcome: ReviewOutcome) -> tuple[str, str, str, str, str]:
    """A review outcome's columns, in the order both stores insert them."""
    return (
        outcome.decision_id,
        outcome.category,
        outcome.note,
        outcome.reviewer,
        outcome.created_at,
    )


class SqlAuditStore(ClaimQueries, OutboxQueries, ShadowQueries, SearchQueries):
    """The ``AuditStore`` contract over a database module's ``_read`` and group writer."""

    async def append(
        self,
        record: DecisionRecord,
        encoded: bytes | None = None,
        *,
        tenant: str = "",
        region: str = "",
    ) -> None:
        # The record (with its tenant and region) and the hand-offs it implies: one transaction
        # (the transactional outbox), in the store of the tenant's region.
        await self._writable().submit(
            (
                self._sql(_INSERT_DECISION),
                decision_row(record, encoded, tenant=tenant, region=region),
            ),
            *self._outbox(record.handoffs, record.created_at),
        )

    async def add_review(self, outcome: ReviewOutcome, handoffs: Sequence[HandOff] = ()) -> None:
        await self._writable().submit(
            (self._sql(_INSERT_REVIEW), review_row(outcome)),
            *self._outbox(handoffs, outcome.created_at),
            (self._sql(claims.DROP), (outcome.decision_id,)),  # the case is worked: no claim
        )

    async def record_access(self, access: AccessRecord) -> None:
        row = (
            access.at,
            access.subject,
            access.tenant,
            access.role,
            access.action,
            json.dumps(list(access.decision_ids)),
        )
        await self._writable().submit((self._sql(_INSERT_ACCESS), row))

    async def accesses(self, limit: int) -> list[AccessRecord]:
        rows = await self._query(
            "SELECT at, subject, tenant, role, action, decision_ids FROM accesses "
            "ORDER BY id LIMIT {p}",
            limit,
        )
        return [
            AccessRecord(at, subject, tenant, role, action, tuple(json.loads(ids)))
            for at, subject, tenant, role, action, ids in rows
        ]

    async def get(self, decision_id: str, *, tenant: str | None = None) -> dict[str, Any] | None:
        where = "" if tenant is None else TENANT.format(p=self._placeholder)
        args = (decision_id,) if tenant is None else (decision_id, tenant)
        rows = await asyncio.to_thread(self._read, _GET.format(p=self._placeholder, t=where), args)
        return stored_record(rows[0][0]) if rows else None

    async def reviews_for(self, decision_id: str) -> list[ReviewOutcome]:
        return [ReviewOutcome(*row) for row in await self._query(_REVIEWS_FOR, decision_id)]

    async def pending_reviews(
        self,
        limit: int,
        *,
        tenant: str | None = None,
        queues: frozenset[str] | None = None,
    ) -> list[PendingReview]:
        p = self._placeholder
        where, args = "", []
        if tenant is not None:
            where, args = TENANT.format(p=p), [tenant]
        only = ""
        if queues is not None:
            only = (
                f" AND d.review_queue IN ({', '.join([p] * len(queues))})"
                if queues
                else (" AND FALSE")
            )
            args.extend(sorted(queues))
        statement = _PENDING.format(p=p, t=where, q=only)
        rows = await asyncio.to_thread(self._read, statement, (*args, limit))
        return [PendingReview(*row) for row in rows]

    async def labelled(self, limit: int, *, tenant: str | None = None) -> list[LabelledReview]:
        out = []
        for value, category, reviewer, at in await self._query(_LABELLED, limit, tenant=tenant):
            record = stored_record(value)
            out.append(
                LabelledReview(
                    decision_id=str(record["decision_id"]),
                    text=str(record["input_redacted"]),
                    label=str(category),
                    channel=str(record.get("channel") or "chat"),
                    reviewer=str(reviewer),
                    reviewed_at=str(at),
                    decided=str(record["category"]),
                    policy_revision=str((record.get("policy") or {}).get("revision", "")),
                )
            )
        return out

    async def recent(
        self, policy_id: str, limit: int, *, tenant: str | None = None
    ) -> list[RecordedDecision]:
        where = "" if tenant is None else TENANT.format(p=self._placeholder)
        args = (policy_id, limit) if tenant is None else (policy_id, tenant, limit)
        rows = await asyncio.to_thread(
            self._read, _RECENT.format(p=self._placeholder, t=where), args
        )
        return [
            RecordedDecision(stored_record(value), reviewed) for value, reviewed in reversed(rows)
        ]

    # -- the live numbers page: counts, not records ----------------------------------------------

    async def tally(self, since: str, *, tenant: str | None = None) -> list[Tally]:
        p = self._placeholder
        where, args = ("", (since,)) if tenant is None else (TENANT.format(p=p), (since, tenant))
        rows = await asyncio.to_thread(self._read, _TALLY.format(p=p, t=where), args)
        return [Tally(category, bool(degraded), int(n)) for category, degraded, n in rows]

    async def backlog(
        self, *, tenant: str | None = None, queues: frozenset[str] | None = None
    ) -> list[Backlog]:
        p = self._placeholder
        where, args = ("", []) if tenant is None else (TENANT.format(p=p), [tenant])
        only = ""
        if queues is not None:
            only = (
                f" AND d.review_queue IN ({', '.join([p] * len(queues))})"
                if queues
                else (" AND FALSE")
            )
            args.extend(sorted(queues))
        statement = _BACKLOG.format(p=p, t=where, q=only)
        rows = await asyncio.to_thread(self._read, statement, tuple(args))
        return [Backlog(queue, int(n), oldest) for queue, n, oldest in rows]

    async def ping(self) -> None:
        # Through the group writer, like a decision: the writer thread is alive, the database
        # takes a write transaction (SQLite: BEGIN IMMEDIATE). A SELECT writes nothing.
        try:
            await self._writable().submit(("SELECT 1", ()))
        except AuditStoreError:
            raise
        except Exception as exc:
            raise AuditStoreError(f"{self._name} cannot commit: {type(exc).__name__}") from exc

    async def count(self, *, tenant: str | None = None) -> int:
        where = "" if tenant is None else TENANT.format(p=self._placeholder)
        args = () if tenant is None else (tenant,)
        rows = await asyncio.to_thread(
            self._read, _COUNT.format(t=where, p=self._placeholder), args
        )
        return int(rows[0][0])
