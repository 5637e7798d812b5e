"""What both databases share: the row encoding, the statements, and the store around them.

Statements are written once with ``{p}`` for the driver's placeholder (``?`` for SQLite, ``%s``
for psycopg). A database module supplies ``_placeholder``, ``_read`` and a group-commit writer
(``_group``) and inherits every method of the ``AuditStore`` contract but ``close``.
"""

from __future__ import annotations

import abc
import asyncio
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from engine import AuditStoreError, DecisionRecord
from engine.decide.record import HandOff, encode_record
from service.audit import claims, outbox, shadow
from service.audit.claims import Claim
from service.audit.group_commit import GroupCommitWriter, Statement
from service.audit.outbox import DeadLetter, HandOffState, OutboxEntry, Settlement
from service.audit.search import Cursor, DecisionFilter, SearchPage, search_statement, summary
from service.audit.shadow import (
    ExampleKind,
    SafetyMove,
    ShadowCount,
    ShadowExample,
    ShadowRow,
    VerdictSource,
)
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


def _record(value: Any) -> dict[str, Any]:
    """A stored record as data: SQLite gives JSON text, PostgreSQL's JSONB gives a dict."""
    data: dict[str, Any] = json.loads(value) if isinstance(value, str | bytes) else value
    return data


class SqlAuditStore(abc.ABC):
    """The ``AuditStore`` contract over a database module's ``_read`` and group writer."""

    _placeholder: str
    _dialect: str  # "sqlite" or "postgres": picks the search statement's dialect-specific part
    _json_cast = ""  # PostgreSQL: "::jsonb"
    _group: GroupCommitWriter | None
    _name: str

    @abc.abstractmethod
    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read statement on a connection of the database module's own."""

    def _writable(self) -> GroupCommitWriter:
        if self._group is None:
            raise AuditStoreError(f"{self._name} was opened read-only")
        return self._group

    def _sql(self, statement: str) -> str:
        return statement.format(p=self._placeholder, json=self._json_cast)

    def _outbox(self, handoffs: Iterable[HandOff], at: str) -> list[Statement]:
        insert = self._sql(outbox.INSERT)
        return [(insert, outbox.outbox_row(h, at)) for h in handoffs]

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

    # -- claims: who works a case (service.audit.claims) ---------------------------------------

    async def claim(
        self, decision_id: str, holder: str, *, ttl_s: float, now: datetime | None = None
    ) -> Claim | None:
        at = now or datetime.now(timezone.utc)
        row = (decision_id, holder, claims.stamp(at), claims.stamp(at + timedelta(seconds=ttl_s)))
        await self._writable().submit((self._sql(claims.CLAIM), row))
        return await self.claim_of(decision_id, now=at)

    async def release(self, decision_id: str, holder: str) -> None:
        await self._writable().submit((self._sql(claims.RELEASE), (decision_id, holder)))

    async def claim_of(self, decision_id: str, *, now: datetime | None = None) -> Claim | None:
        at = claims.stamp(now or datetime.now(timezone.utc))
        rows = await asyncio.to_thread(
            self._read, self._sql(claims.LIVE + claims.ONE), (at, decision_id)
        )
        return Claim(*rows[0]) if rows else None

    async def live_claims(
        self, *, tenant: str | None = None, now: datetime | None = None
    ) -> dict[str, Claim]:
        at = claims.stamp(now or datetime.now(timezone.utc))
        statement, args = claims.LIVE, [at]
        if tenant is not None:
            statement, args = statement + claims.OF_TENANT, [at, tenant]
        rows = await asyncio.to_thread(self._read, self._sql(statement), tuple(args))
        return {row[0]: Claim(*row) for row in rows}

    # -- the outbox: read by the dispatcher, settled through the same writer ------------------

    async def pending_handoffs(self, after_id: int, limit: int) -> list[OutboxEntry]:
        rows = await self._query(outbox.PENDING, after_id, limit)
        return [OutboxEntry(int(i), _record(message)) for i, message in rows]

    async def outbox_depth(self, after_id: int = 0) -> tuple[int, int | None]:
        """Pending hand-offs (beyond ``after_id``) and the oldest one's row id."""
        [(count, oldest)] = await self._query(outbox.DEPTH, after_id)
        return int(count), None if oldest is None else int(oldest)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        if settlements:
            statement = self._sql(outbox.SETTLE)
            await self._writable().submit(
                *[
                    (statement, (s.outbox_id, s.state, s.attempts, s.reason, s.at))
                    for s in settlements
                ]
            )

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        return [DeadLetter(*row) for row in await self._query(outbox.DEAD, limit)]

    async def dead_letter_count(self) -> int:
        rows = await self._query(outbox.DEAD_COUNT)
        return int(rows[0][0])

    async def handoffs_for(self, decision_id: str) -> list[HandOffState]:
        return [
            HandOffState(key, routing, at, state or "pending", attempts or 0, reason)
            for key, routing, at, state, attempts, reason in await self._query(
                outbox.FOR_DECISION, decision_id
            )
        ]

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

    async def _query(self, statement: str, *params: Any, tenant: str | None = None) -> list[Any]:
        where = "" if tenant is None else _TENANT.format(p=self._placeholder)
        text = statement.format(p=self._placeholder, json=self._json_cast, t=where, q="")
        args = params if tenant is None else (*params[:-1], tenant, params[-1])
        return await asyncio.to_thread(self._read, text, args)

    async def get(self, decision_id: str, *, tenant: str | None = None) -> dict[str, Any] | None:
        where = "" if tenant is None else _TENANT.format(p=self._placeholder)
        args = (decision_id,) if tenant is None else (decision_id, tenant)
        rows = await asyncio.to_thread(self._read, _GET.format(p=self._placeholder, t=where), args)
        return _record(rows[0][0]) if rows else None

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

    async def labelled(self, limit: int, *, tenant: str | None = None) -> list[LabelledReview]:
        out = []
        for value, category, reviewer, at in await self._query(_LABELLED, limit, tenant=tenant):
            record = _record(value)
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
        where = "" if tenant is None else _TENANT.format(p=self._placeholder)
        args = (policy_id, limit) if tenant is None else (policy_id, tenant, limit)
        rows = await asyncio.to_thread(
            self._read, _RECENT.format(p=self._placeholder, t=where), args
        )
        return [RecordedDecision(_record(value), reviewed) for value, reviewed in reversed(rows)]

    # -- the live numbers page: counts, not records ----------------------------------------------

    async def tally(self, since: str, *, tenant: str | None = None) -> list[Tally]:
        p = self._placeholder
        where, args = ("", (since,)) if tenant is None else (_TENANT.format(p=p), (since, tenant))
        rows = await asyncio.to_thread(self._read, _TALLY.format(p=p, t=where), args)
        return [Tally(category, bool(degraded), int(n)) for category, degraded, n in rows]

    async def backlog(
        self, *, tenant: str | None = None, queues: frozenset[str] | None = None
    ) -> list[Backlog]:
        p = self._placeholder
        where, args = ("", []) if tenant is None else (_TENANT.format(p=p), [tenant])
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

    # -- shadow decisions: a table of their own, never read as decisions -----------------------

    async def append_shadow(self, rows: Sequence[ShadowRow]) -> None:
        if rows:
            statement = self._sql(shadow.INSERT)
            await self._writable().submit(*[(statement, row.params()) for row in rows])

    async def shadow_counts(self, run_id: str, *, tenant: str | None = None) -> list[ShadowCount]:
        p = self._placeholder
        where, args = (
            ("", (run_id,)) if tenant is None else (shadow.TENANT.format(p=p), (run_id, tenant))
        )
        rows = await asyncio.to_thread(self._read, shadow.COUNTS.format(p=p, t=where), args)
        return [
            ShadowCount(t, SafetyMove(move), bool(agree), VerdictSource(source), int(n))
            for t, move, agree, source, n in rows
        ]

    async def shadow_examples(
        self, run_id: str, kind: ExampleKind, limit: int, *, tenant: str
    ) -> list[ShadowExample]:
        statement = shadow.EXAMPLES[kind].format(p=self._placeholder)
        rows = await asyncio.to_thread(self._read, statement, (run_id, tenant, limit))
        return [
            ShadowExample(
                decision_id,
                created_at,
                live,
                candidate,
                bool(live_review),
                bool(shadow_review),
                str(_record(record).get("input_redacted", "")),
            )
            for decision_id, created_at, live, candidate, live_review, shadow_review, record in rows
        ]

    async def search(
        self,
        flt: DecisionFilter,
        limit: int,
        *,
        after: Cursor | None = None,
        tenant: str | None = None,
        queues: frozenset[str] | None = None,
    ) -> SearchPage:
        statement, args = search_statement(
            flt, dialect=self._dialect, tenant=tenant, queues=queues, after=after, limit=limit + 1
        )
        rows = await asyncio.to_thread(self._read, self._sql(statement), args)
        items = [summary(row, _record(row[2])) for row in rows[:limit]]
        more = len(rows) > limit and items
        return SearchPage(
            items, Cursor(items[-1].created_at, items[-1].decision_id) if more else None
        )

    async def count_matching(
        self,
        flt: DecisionFilter,
        cap: int,
        *,
        tenant: str | None = None,
        queues: frozenset[str] | None = None,
    ) -> int:
        statement, args = search_statement(
            flt, dialect=self._dialect, tenant=tenant, queues=queues, after=None, limit=cap
        )
        counted = self._sql(f"SELECT COUNT(*) FROM ({statement}) AS m")  # noqa: S608 (constants)
        rows = await asyncio.to_thread(self._read, counted, args)
        return int(rows[0][0])

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
        where = "" if tenant is None else _TENANT.format(p=self._placeholder)
        args = () if tenant is None else (tenant,)
        rows = await asyncio.to_thread(
            self._read, _COUNT.format(t=where, p=self._placeholder), args
        )
        return int(rows[0][0])
