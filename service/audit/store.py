"""The audit store's contract: append-only decisions and review outcomes, and how they are read.

``append`` returns only once the record is durable: the service answers 200 only for a stored
decision. The hand-offs a decision (``record.handoffs``) or a review implies are committed in the
same transaction (the outbox, ``service.audit.outbox``) and delivered afterwards by
``service.delivery``. Both databases implement every read here through ``service.audit.rows``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from engine import DecisionRecord, HandOff
from service.audit.claims import Claim
from service.audit.outbox import DeadLetter, HandOffState, OutboxEntry, Settlement
from service.audit.search import Cursor, DecisionFilter, SearchPage
from service.audit.shadow import ExampleKind, ShadowCount, ShadowExample, ShadowRow


@dataclass(frozen=True)
class ReviewOutcome:
    decision_id: str
    category: str
    note: str
    reviewer: str
    created_at: str


@dataclass(frozen=True)
class LabelledReview:
    """A reviewer's latest outcome as a label, with where it came from (the reviewer loop).

    ``decided`` is the engine's category at decision time: the review never changed it."""

    decision_id: str
    text: str
    label: str
    channel: str
    reviewer: str
    reviewed_at: str
    decided: str
    policy_revision: str


@dataclass(frozen=True)
class PendingReview:
    decision_id: str
    created_at: str
    category: str
    policy_revision: str
    queue: str | None


@dataclass(frozen=True)
class Tally:
    """How many decisions of one category (degraded or not) were made since some time."""

    category: str
    degraded: bool
    count: int


@dataclass(frozen=True)
class Backlog:
    """Decisions waiting for review in one queue, and when the oldest was received."""

    queue: str | None
    count: int
    oldest: str


@dataclass(frozen=True)
class AccessRecord:
    """One read of stored decisions: who (subject, tenant, role), when, what, which ids."""

    at: str
    subject: str
    tenant: str
    role: str
    action: str
    decision_ids: tuple[str, ...]


@dataclass(frozen=True)
class RecordedDecision:
    """A stored record (as JSON data) and the latest reviewer's category, if any."""

    record: dict[str, Any]
    reviewed: str | None


class AuditStore(Protocol):
    """Reads take the caller's ``tenant``; ``None`` (every tenant) is for operators' tools only."""

    async def append(
        self,
        record: DecisionRecord,
        encoded: bytes | None = None,
        *,
        tenant: str = "",
        region: str = "",
    ) -> None:
        """Return only once the record is durable; ``encoded`` is its JSON, when already made."""
        ...

    async def get(
        self, decision_id: str, *, tenant: str | None = None
    ) -> dict[str, Any] | None: ...

    async def add_review(self, outcome: ReviewOutcome, handoffs: Sequence[HandOff] = ()) -> None:
        """Commit the outcome and the follow-on hand-offs it implies, in one transaction (which
        also ends the decision's claim)."""
        ...

    async def claim(
        self, decision_id: str, holder: str, *, ttl_s: float, now: datetime | None = None
    ) -> Claim | None:
        """Claim (or renew) unless someone else holds a live claim; the live claim afterwards:
        ``holder``'s when it won. Of two claims at once exactly one wins."""
        ...

    async def release(self, decision_id: str, holder: str) -> None:
        """End ``holder``'s claim (nothing when another holds it or nobody does)."""
        ...

    async def claim_of(self, decision_id: str, *, now: datetime | None = None) -> Claim | None:
        """The decision's live (unexpired) claim."""
        ...

    async def live_claims(
        self, *, tenant: str | None = None, now: datetime | None = None
    ) -> dict[str, Claim]:
        """Every live claim (of ``tenant``'s decisions), by decision id."""
        ...

    async def pending_handoffs(self, after_id: int, limit: int) -> list[OutboxEntry]:
        """Committed hand-offs not yet settled, oldest first, with row ids above ``after_id``."""
        ...

    async def outbox_depth(self, after_id: int = 0) -> tuple[int, int | None]: ...

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Record delivered, dead or replay states (the delivery-state table, not the outbox)."""
        ...

    async def dead_letters(self, limit: int) -> list[DeadLetter]: ...

    async def dead_letter_count(self) -> int: ...

    async def handoffs_for(self, decision_id: str) -> list[HandOffState]: ...

    async def reviews_for(self, decision_id: str) -> list[ReviewOutcome]: ...

    async def pending_reviews(
        self,
        limit: int,
        *,
        tenant: str | None = None,
        queues: frozenset[str] | None = None,
    ) -> list[PendingReview]: ...

    async def labelled(self, limit: int, *, tenant: str | None = None) -> list[LabelledReview]:
        """Each reviewed decision's redacted text and latest reviewer category, oldest first."""
        ...

    async def recent(
        self, policy_id: str, limit: int, *, tenant: str | None = None
    ) -> list[RecordedDecision]:
        """A policy's newest ``limit`` decisions, oldest first, with review outcomes (replay)."""
        ...

    async def search(
        self,
        flt: DecisionFilter,
        limit: int,
        *,
        after: Cursor | None = None,
        tenant: str | None = None,
        queues: frozenset[str] | None = None,
    ) -> SearchPage:
        """Up to ``limit`` decisions matching ``flt``, newest first, starting after ``after``;
        ``queues`` limits the result to decisions routed to those review queues."""
        ...

    async def count_matching(
        self,
        flt: DecisionFilter,
        cap: int,
        *,
        tenant: str | None = None,
        queues: frozenset[str] | None = None,
    ) -> int:
        """How many decisions ``search`` would find, counting no further than ``cap``."""
        ...

    async def record_access(self, access: AccessRecord) -> None:
        """Durably note a read of decisions (access audit)."""
        ...

    async def accesses(self, limit: int) -> list[AccessRecord]: ...

    async def count(self, *, tenant: str | None = None) -> int: ...

    async def tally(self, since: str, *, tenant: str | None = None) -> list[Tally]:
        """Decisions received at or after ``since`` (ISO UTC), by category and degraded."""
        ...

    async def backlog(
        self, *, tenant: str | None = None, queues: frozenset[str] | None = None
    ) -> list[Backlog]:
        """Decisions awaiting review, per queue (only ``queues``, when given)."""
        ...

    async def append_shadow(self, rows: Sequence[ShadowRow]) -> None:
        """Store shadow decisions (``service.audit.shadow``): never decisions, never acted on."""
        ...

    async def shadow_counts(
        self, run_id: str, *, tenant: str | None = None
    ) -> list[ShadowCount]: ...

    async def shadow_examples(
        self, run_id: str, kind: ExampleKind, limit: int, *, tenant: str
    ) -> list[ShadowExample]:
        """A run's newest shadow decisions of one ``kind`` for one tenant (redacted text)."""
        ...

    async def ping(self) -> None:
        """Return once a write transaction committed through the writer; raise
        ``AuditStoreError`` when none can (readiness: this replica can record a decision)."""
        ...

    async def close(self) -> None: ...


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()
