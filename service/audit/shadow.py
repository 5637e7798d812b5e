"""Shadow decisions: what a candidate policy revision would have decided, stored apart.

``shadow_decisions`` lives beside ``decisions`` in the tenant's regional store but shares nothing
with it: a shadow row is never a decision, never in the review queue, never in the outbox, so it
cannot act. One row per live decision a shadow run decided (``run_id``, ``decision_id`` unique),
append-only like the record. Statements use ``{p}``/``{json}`` (``database.py``); ``ShadowQueries``
runs them for the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from service.audit.database import SqlStoreCore, stored_record


class SafetyMove(str, Enum):
    """Whether the candidate would move a decision out of, or into, safety."""

    SAME = "same"
    LEAVE = "leave"  # live safety_compliance, candidate not: a report the candidate would miss
    ENTER = "enter"  # candidate safety_compliance, live not: an escalation the candidate adds


class VerdictSource(str, Enum):
    SHARED = "shared"  # the candidate's prompt rendered identically: the live verdict, no call
    MODEL = "model"  # a sampled model call of the candidate's own


@dataclass(frozen=True)
class ShadowRow:
    run_id: str
    decision_id: str
    created_at: str
    tenant: str
    region: str
    policy_id: str
    live_revision: str
    candidate_revision: str
    live_category: str
    shadow_category: str
    live_review: bool
    shadow_review: bool
    agree: bool
    safety: SafetyMove
    verdict: VerdictSource
    record: str  # the candidate's DecisionRecord as JSON (its text is the redacted message)

    def params(self) -> tuple[object, ...]:
        return (
            self.run_id,
            self.decision_id,
            self.created_at,
            self.tenant,
            self.region,
            self.policy_id,
            self.live_revision,
            self.candidate_revision,
            self.live_category,
            self.shadow_category,
            self.live_review,
            self.shadow_review,
            self.agree,
            self.safety.value,
            self.verdict.value,
            self.record,
        )


@dataclass(frozen=True)
class ShadowCount:
    """How many shadow decisions of one run fell in one cell (tenant, safety move, ...)."""

    tenant: str
    safety: SafetyMove
    agree: bool
    verdict: VerdictSource
    count: int


@dataclass(frozen=True)
class ShadowExample:
    decision_id: str
    created_at: str
    live_category: str
    shadow_category: str
    live_review: bool
    shadow_review: bool
    input_redacted: str


class ExampleKind(str, Enum):
    LEAVE = "leave"
    ENTER = "enter"
    OTHER = "other"  # a disagreement that does not cross the safety line


_COLUMNS = """
    run_id TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    tenant TEXT NOT NULL,
    region TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    live_revision TEXT NOT NULL,
    candidate_revision TEXT NOT NULL,
    live_category TEXT NOT NULL,
    shadow_category TEXT NOT NULL,
    live_review {bool} NOT NULL,
    shadow_review {bool} NOT NULL,
    agree {bool} NOT NULL,
    safety TEXT NOT NULL CHECK (safety IN ('same', 'leave', 'enter')),
    verdict TEXT NOT NULL CHECK (verdict IN ('shared', 'model')),
    record {record} NOT NULL,
    UNIQUE (run_id, decision_id)
"""

SQLITE_DDL = f"""
CREATE TABLE IF NOT EXISTS shadow_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,{_COLUMNS.format(bool="INTEGER", record="TEXT")});
CREATE INDEX IF NOT EXISTS shadow_run ON shadow_decisions (run_id, tenant, safety);
CREATE TRIGGER IF NOT EXISTS shadow_no_update BEFORE UPDATE ON shadow_decisions
BEGIN SELECT RAISE(ABORT, 'shadow_decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS shadow_no_delete BEFORE DELETE ON shadow_decisions
BEGIN SELECT RAISE(ABORT, 'shadow_decisions are append-only'); END;
"""

POSTGRES_DDL = [
    "CREATE TABLE IF NOT EXISTS shadow_decisions ("
    "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    + _COLUMNS.format(bool="BOOLEAN", record="JSONB")
    + ")",
    "CREATE INDEX IF NOT EXISTS shadow_run ON shadow_decisions (run_id, tenant, safety)",
]
POSTGRES_TRIGGERS = [
    ("shadow_append_only", "shadow_decisions", "BEFORE UPDATE OR DELETE", "ROW"),
    ("shadow_no_truncate", "shadow_decisions", "BEFORE TRUNCATE", "STATEMENT"),
]

INSERT = (
    "INSERT INTO shadow_decisions (run_id, decision_id, created_at, tenant, region, policy_id, "
    "live_revision, candidate_revision, live_category, shadow_category, live_review, "
    "shadow_review, agree, safety, verdict, record) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, "
    "{p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}{json}) "
    "ON CONFLICT (run_id, decision_id) DO NOTHING"
)
# ``{t}``: empty (every tenant: the operator's counts) or `` AND tenant = {p}``.
COUNTS = (
    "SELECT tenant, safety, agree, verdict, COUNT(*) FROM shadow_decisions "
    "WHERE run_id = {p}{t} GROUP BY tenant, safety, agree, verdict ORDER BY tenant"
)
TENANT = " AND tenant = {p}"
_EXAMPLE_COLUMNS = (
    "SELECT decision_id, created_at, live_category, shadow_category, live_review, "
    "shadow_review, record FROM shadow_decisions WHERE run_id = {p} AND tenant = {p} "
)
EXAMPLES = {
    ExampleKind.LEAVE: _EXAMPLE_COLUMNS + "AND safety = 'leave' ORDER BY id DESC LIMIT {p}",
    ExampleKind.ENTER: _EXAMPLE_COLUMNS + "AND safety = 'enter' ORDER BY id DESC LIMIT {p}",
    ExampleKind.OTHER: _EXAMPLE_COLUMNS
    + "AND safety = 'same' AND agree = FALSE ORDER BY id DESC LIMIT {p}",
}


class ShadowQueries(SqlStoreCore):
    """Shadow decisions in a SQL audit store: a table of their own, never read as decisions."""

    async def append_shadow(self, rows: Sequence[ShadowRow]) -> None:
        if rows:
            statement = self._sql(INSERT)
            await self._writable().submit(*[(statement, row.params()) for row in rows])

    async def shadow_counts(self, run_id: str, *, tenant: str | None = None) -> list[ShadowCount]:
        p = self._placeholder
        where, args = ("", (run_id,)) if tenant is None else (TENANT.format(p=p), (run_id, tenant))
        rows = await asyncio.to_thread(self._read, COUNTS.format(p=p, t=where), args)
        return [
            ShadowCount(t, SafetyMove(move), bool(agree), VerdictSource(source), int(n))
            for t, move, agree, source, n in rows
        ]

    async def shadow_examples(
        self, run_id: str, kind: ExampleKind, limit: int, *, tenant: str
    ) -> list[ShadowExample]:
        statement = EXAMPLES[kind].format(p=self._placeholder)
        rows = await asyncio.to_thread(self._read, statement, (run_id, tenant, limit))
        return [
            ShadowExample(
                decision_id,
                created_at,
                live,
                candidate,
                bool(live_review),
                bool(shadow_review),
                str(stored_record(record).get("input_redacted", "")),
            )
            for decision_id, created_at, live, candidate, live_review, shadow_review, record in rows
        ]
