"""What both databases share: the row encoding, the statements, and the store around them.

Statements are written once with ``{p}`` for the driver's placeholder (``?`` for SQLite, ``%s``
for psycopg). A database module supplies ``_placeholder``, ``_read`` and a group-commit writer
(``_group``) and inherits every method of the ``AuditStore`` contract but ``close``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from engine import AuditStoreError, DecisionRecord
from engine.decide.record import encode_record
from service.audit.group_commit import GroupCommitWriter
from service.audit.store import AccessRecord, PendingReview, RecordedDecision, ReviewOutcome

_INSERT_DECISION = (
    "INSERT INTO decisions (decision_id, created_at, policy_id, policy_revision, category, "
    "requires_human_review, review_queue, degraded, record, tenant, region) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}{json}, {p}, {p})"
)
_INSERT_ACCESS = (
    "INSERT INTO accesses (at, subject, tenant, role, action, decision_ids) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
)
# Reads take the caller's tenant: ``{t}`` is empty (every tenant: the operator's own tools) or
# ``AND d.tenant = {p}``, so a tenant's query can never see another's rows.
_TENANT = " AND d.tenant = {p}"
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
    "SELECT d.record, r.category FROM reviews r JOIN decisions d USING (decision_id) "
    "WHERE r.id IN (SELECT MAX(id) FROM reviews GROUP BY decision_id){t} "
    "ORDER BY r.id LIMIT {p}"
)
_RECENT = (
    "SELECT d.record, (SELECT r.category FROM reviews r WHERE r.decision_id = d.decision_id "
    "ORDER BY r.id DESC LIMIT 1) FROM decisions d WHERE d.policy_id = {p}{t} "
    "ORDER BY d.created_at DESC LIMIT {p}"
)
_COUNT = "SELECT COUNT(*) FROM decisions d WHERE TRUE{t}"


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


def _record(value: Any) -> dict[str, Any]:
    """A stored record as data: SQLite gives JSON text, PostgreSQL's JSONB gives a dict."""
    data: dict[str, Any] = json.loads(value) if isinstance(value, str | bytes) else value
    return data


class SqlAuditStore:
    """The ``AuditStore`` contract over a database module's ``_read`` and group writer."""

    _placeholder: str
    _json_cast = ""  # PostgreSQL: "::jsonb"
    _group: GroupCommitWriter | None
    _name: str

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _writable(self) -> GroupCommitWriter:
        if self._group is None:
            raise AuditStoreError(f"{self._name} was opened read-only")
        return self._group

    async def append(
        self,
        record: DecisionRecord,
        encoded: bytes | None = None,
        *,
        tenant: str = "",
        region: str = "",
    ) -> None:
        statement = _INSERT_DECISION.format(p=self._placeholder, json=self._json_cast)
        await self._writable().submit(
            statement, decision_row(record, encoded, tenant=tenant, region=region)
        )

    async def add_review(self, outcome: ReviewOutcome) -> None:
        statement = _INSERT_REVIEW.format(p=self._placeholder)
        await self._writable().submit(statement, review_row(outcome))

    async def record_access(self, access: AccessRecord) -> None:
        statement = _INSERT_ACCESS.format(p=self._placeholder)
        row = (
            access.at,
            access.subject,
            access.tenant,
            access.role,
            access.action,
            json.dumps(list(access.decision_ids)),
        )
        await self._writable().submit(statement, row)

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

    async def _query(self, statement: str, *params: Any, tenant: str | None = None) -> list[Any]:
        where = "" if tenant is None else _TENANT.format(p=self._placeholder)
        text = statement.format(p=self._placeholder, t=where, q="")
        args = params if tenant is None else (*params[:-1], tenant, params[-1])
        return await asyncio.to_thread(self._read, text, args)

    async def get(self, decision_id: str, *, tenant: str | None = None) -> dict[str, Any] | None:
        where = "" if tenant is None else _TENANT.format(p=self._placeholder)
        args = (decision_id,) if tenant is None else (decision_id, tenant)
        rows = await asyncio.to_thread(self._read, _GET.format(p=self._placeholder, t=where), args)
        return _record(rows[0][0]) if rows else None

    async def reviews_for(self, decision_id: str) -> list[ReviewOutcome]:
        statement = _REVIEWS_FOR.format(p=self._placeholder)
        return [
            ReviewOutcome(*row)
            for row in await asyncio.to_thread(self._read, statement, (decision_id,))
        ]

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
            where, args = _TENANT.format(p=p), [tenant]
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

    async def labelled(
        self, limit: int, *, tenant: str | None = None
    ) -> list[tuple[str, str, str]]:
        out = []
        for value, category in await self._query(_LABELLED, limit, tenant=tenant):
            record = _record(value)
            out.append((str(record["decision_id"]), str(record["input_redacted"]), category))
        return out

    async def recent(
        self, policy_id: str, limit: int, *, tenant: str | None = None
    ) -> list[RecordedDecision]:
        where = "" if tenant is None else _TENANT.format(p=self._placeholder)
        args = (policy_id, limit) if tenant is None else (policy_id, tenant, limit)
        rows = await asyncio.to_thread(
            self._read, _RECENT.format(p=self._placeholder, t=where), args
        )
        return [RecordedDecision(_record(value), reviewed) for value, reviewed in reversed(rows)]

    async def count(self, *, tenant: str | None = None) -> int:
        where = "" if tenant is None else _TENANT.format(p=self._placeholder)
        args = () if tenant is None else (tenant,)
        rows = await asyncio.to_thread(
            self._read, _COUNT.format(t=where, p=self._placeholder), args
        )
        return int(rows[0][0])
