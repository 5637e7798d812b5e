"""Searching recorded decisions: the filter, the keyset cursor, and the one statement both
databases run (the decision explorer, ``GET /decisions`` and its CSV export).

Results are newest first, ordered by ``(created_at, decision_id)``; a page ends with a cursor on
its last row and the next page starts strictly after it (a keyset: no OFFSET, so a deep page
costs what the first does and a row recorded meanwhile neither shifts nor repeats a page).
Timestamps compare as text: the engine writes every ``created_at`` as UTC ISO 8601
(``…+00:00``), and the filter's bounds are written the same way. ``SearchQueries`` runs the
statement for the store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.categories import Category
from service.audit.database import SqlStoreCore, stored_record


class ReviewState(str, Enum):
    PENDING = "pending"
    """Needs a human review that nobody has recorded yet."""
    REVIEWED = "reviewed"
    """At least one reviewer's outcome is recorded."""
    NOT_NEEDED = "not_needed"
    """Decided without human review, and nobody reviewed it."""


class DecisionFilter(BaseModel):
    """Which recorded decisions to find; every field is optional and they all must hold.

    An empty string counts as absent, so an HTML form's blank fields mean "any"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    since: datetime | None = Field(
        default=None,
        description="Recorded at or after this time (ISO 8601; without an offset it is UTC).",
        examples=["2026-11-23T00:00:00Z"],
    )
    until: datetime | None = Field(
        default=None,
        description="Recorded before this time (exclusive; ISO 8601, UTC without an offset).",
        examples=["2026-11-24T00:00:00Z"],
    )
    category: Category | None = Field(
        default=None, description="The decided category.", examples=["safety_compliance"]
    )
    review: ReviewState | None = Field(
        default=None,
        description="'pending' (awaits a human), 'reviewed' (an outcome is recorded) or "
        "'not_needed' (decided without review, none recorded).",
        examples=["pending"],
    )
    policy_revision: Annotated[str, Field(max_length=64)] | None = Field(
        default=None,
        description="The policy revision that decided (GET /admin/policy shows the active one).",
        examples=["ae813cfa9d05837d"],
    )
    rule: Annotated[str, Field(max_length=200)] | None = Field(
        default=None,
        description="A rule that fired (its id in the policy's rules).",
        examples=["adverse_event_keywords"],
    )
    degraded: bool | None = Field(
        default=None,
        description="true: decided without a usable model answer (a fallback ran).",
        examples=[True],
    )

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("since", "until", mode="before")
    @classmethod
    def _not_a_number(cls, value: Any) -> Any:
        # pydantic would read "1700000000" as Unix seconds; the API documents ISO 8601 only.
        if isinstance(value, int | float) or (
            isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+(?:\.\d*)?\s*", value)
        ):
            raise ValueError("write a date and time in ISO 8601, e.g. 2026-11-23T08:00:00Z")
        return value

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _ordered(self) -> DecisionFilter:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("'until' must be later than 'since'")
        return self

    def query_params(self) -> dict[str, str]:
        """The filter as query parameters (the explorer's links: next page, CSV export)."""
        out: dict[str, str] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, datetime):
                out[name] = value.isoformat()
            elif isinstance(value, bool):
                out[name] = "true" if value else "false"
            elif isinstance(value, Enum):
                out[name] = str(value.value)
            else:
                out[name] = str(value)
        return out


class CursorError(ValueError):
    """A page cursor that this service did not write (or that was cut short)."""


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last row's time and id. Opaque to callers."""

    created_at: str
    decision_id: str

    def token(self) -> str:
        raw = json.dumps([self.created_at, self.decision_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            created_at, decision_id = json.loads(raw)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise CursorError("the page cursor is not one this service wrote") from exc
        if not isinstance(created_at, str) or not isinstance(decision_id, str):
            raise CursorError("the page cursor is not one this service wrote")
        return cls(created_at, decision_id)


@dataclass(frozen=True)
class DecisionSummary:
    """One row of a search: enough to list, filter again and export; the record has the rest."""

    decision_id: str
    created_at: str
    channel: str
    category: str
    confidence: float | None
    review_state: ReviewState
    reviewed_category: str | None  # the latest reviewer's category
    review_queue: str | None
    policy_id: str
    policy_revision: str
    rules_fired: tuple[str, ...]
    degraded: bool
    input_redacted: str


@dataclass(frozen=True)
class SearchPage:
    items: list[DecisionSummary]
    next: Cursor | None  # None: this was the last page


# -- the statement ---------------------------------------------------------------------------

# Statements are built from the constants here only; every value is a bound parameter.
_SELECT = (
    "SELECT d.decision_id, d.created_at, d.record, d.requires_human_review, d.review_queue, "
    "(SELECT r.category FROM reviews r WHERE r.decision_id = d.decision_id "
    "ORDER BY r.id DESC LIMIT 1) FROM decisions d WHERE TRUE"
)
_REVIEWED = "EXISTS (SELECT 1 FROM reviews r WHERE r.decision_id = d.decision_id)"
_REVIEW_STATE = {
    ReviewState.PENDING: f" AND d.requires_human_review = TRUE AND NOT {_REVIEWED}",
    ReviewState.REVIEWED: f" AND {_REVIEWED}",
    ReviewState.NOT_NEEDED: f" AND d.requires_human_review = FALSE AND NOT {_REVIEWED}",
}
# The one part the databases say differently: whether a rule id is among the record's fired
# rules (a JSON array of {"id", "reason"} objects).
RULE_FIRED = {
    "sqlite": " AND EXISTS (SELECT 1 FROM json_each(d.record, '$.rules_fired') AS f "
    "WHERE json_extract(f.value, '$.id') = {p})",
    "postgres": " AND d.record -> 'rules_fired' @> "
    "jsonb_build_array(jsonb_build_object('id', {p}::text))",
}
# Indexes the search uses (both databases): the tenant first, as every tenant's query carries
# it, and the order's two columns last, so a page is read in index order and needs no sort.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS decisions_tenant_time "
    "ON decisions (tenant, created_at, decision_id)",
    "CREATE INDEX IF NOT EXISTS decisions_tenant_category "
    "ON decisions (tenant, category, created_at, decision_id)",
    "CREATE INDEX IF NOT EXISTS decisions_tenant_revision "
    "ON decisions (tenant, policy_revision, created_at, decision_id)",
    # Superseded by decisions_tenant_time, whose first columns it was: one index less to write
    # per decision (docs/performance.md, "The /classify fast path").
    "DROP INDEX IF EXISTS decisions_tenant",
)


def search_statement(
    flt: DecisionFilter,
    *,
    dialect: str,
    tenant: str | None,
    queues: frozenset[str] | None,
    after: Cursor | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The SELECT for one page, with ``{p}`` left for the driver's placeholder, and its
    parameters. ``tenant`` None reads every tenant (operators' tools only); ``queues`` limits a
    reviewer to decisions routed to their review queues (None: no limit)."""
    sql, args = _SELECT, list[Any]()
    if tenant is not None:
        sql += " AND d.tenant = {p}"
        args.append(tenant)
    if queues is not None:
        sql += (
            f" AND d.review_queue IN ({', '.join(['{p}'] * len(queues))})"
            if queues
            else " AND FALSE"
        )
        args.extend(sorted(queues))
    if flt.since is not None:
        sql += " AND d.created_at >= {p}"
        args.append(flt.since.isoformat())
    if flt.until is not None:
        sql += " AND d.created_at < {p}"
        args.append(flt.until.isoformat())
    if flt.category is not None:
        sql += " AND d.category = {p}"
        args.append(flt.category.value)
    if flt.policy_revision is not None:
        sql += " AND d.policy_revision = {p}"
        args.append(flt.policy_revision)
    if flt.degraded is not None:
        sql += " AND d.degraded = {p}"
        args.append(flt.degraded)
    if flt.review is not None:
        sql += _REVIEW_STATE[flt.review]
    if flt.rule is not None:
        sql += RULE_FIRED[dialect]
        args.append(flt.rule)
    if after is not None:
        sql += " AND (d.created_at, d.decision_id) < ({p}, {p})"
        args.extend([after.created_at, after.decision_id])
    sql += " ORDER BY d.created_at DESC, d.decision_id DESC LIMIT {p}"
    args.append(limit)
    return sql, args


def summary(row: tuple[Any, ...], record: dict[str, Any]) -> DecisionSummary:
    """A result row (the statement's columns, the record already decoded) as a summary."""
    decision_id, created_at, _, requires_review, queue, reviewed = row
    if reviewed is not None:
        state = ReviewState.REVIEWED
    elif requires_review:
        state = ReviewState.PENDING
    else:
        state = ReviewState.NOT_NEEDED
    policy = record.get("policy") or {}
    confidence = record.get("confidence")
    return DecisionSummary(
        decision_id=str(decision_id),
        created_at=str(created_at),
        channel=str(record.get("channel", "")),
        category=str(record.get("category", "")),
        confidence=None if confidence is None else float(confidence),
        review_state=state,
        reviewed_category=None if reviewed is None else str(reviewed),
        review_queue=None if queue is None else str(queue),
        policy_id=str(policy.get("id", "")),
        policy_revision=str(policy.get("revision", "")),
        rules_fired=tuple(str(r.get("id", "")) for r in record.get("rules_fired") or []),
        degraded=bool(record.get("degraded", False)),
        input_redacted=str(record.get("input_redacted", "")),
    )


class SearchQueries(SqlStoreCore):
    """The decision search in a SQL audit store: a page of summaries, or how many match."""

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
        items = [summary(row, stored_record(row[2])) for row in rows[:limit]]
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
