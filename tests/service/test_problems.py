"""Errors become problem+json in one place: every SwitchboardError, never a bare 500."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from engine import AuditStoreError, DecisionRecord, HandOff, PromptRenderError
from service.app import create_app
from service.audit import (
    AccessRecord,
    Backlog,
    Claim,
    Cursor,
    DecisionFilter,
    LabelledReview,
    PendingReview,
    RecordedDecision,
    ReviewOutcome,
    SearchPage,
    Tally,
)
from service.audit.outbox import DeadLetter, HandOffState, OutboxEntry, Settlement
from service.audit.shadow import ExampleKind, ShadowCount, ShadowExample, ShadowRow
from service.settings import Settings
from tests.conftest import REPO
from tests.service.conftest import serve


class _BrokenStore:
    """An audit store whose reads fail the way a lost database connection does."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def append(
        self,
        record: DecisionRecord,
        encoded: bytes | None = None,
        *,
        tenant: str = "",
        region: str = "",
    ) -> None:
        return None

    async def record_access(self, access: AccessRecord) -> None:
        raise self.error

    async def accesses(self, limit: int) -> list[AccessRecord]:
        raise self.error

    async def get(self, decision_id: str, *, tenant: str | None = None) -> dict[str, Any] | None:
        raise self.error

    async def ping(self) -> None:
        return None

    async def add_review(self, outcome: ReviewOutcome, handoffs: Sequence[HandOff] = ()) -> None:
        raise self.error

    async def claim(
        self, decision_id: str, holder: str, *, ttl_s: float, now: datetime | None = None
    ) -> Claim | None:
        raise self.error

    async def release(self, decision_id: str, holder: str) -> None:
        raise self.error

    async def claim_of(self, decision_id: str, *, now: datetime | None = None) -> Claim | None:
        raise self.error

    async def live_claims(
        self, *, tenant: str | None = None, now: datetime | None = None
    ) -> dict[str, Claim]:
        raise self.error

    async def pending_handoffs(self, after_id: int, limit: int) -> list[OutboxEntry]:
        raise self.error

    async def outbox_depth(self, after_id: int = 0) -> tuple[int, int | None]:
        raise self.error

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        raise self.error

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        raise self.error

    async def dead_letter_count(self) -> int:
        raise self.error

    async def handoffs_for(self, decision_id: str) -> list[HandOffState]:
        raise self.error

    async def reviews_for(self, decision_id: str) -> list[ReviewOutcome]:
        raise self.error

    async def pending_reviews(
        self, limit: int, *, tenant: str | None = None, queues: frozenset[str] | None = None
    ) -> list[PendingReview]:
        raise self.error

    async def labelled(self, limit: int, *, tenant: str | None = None) -> list[LabelledReview]:
        raise self.error

    async def recent(
        self, policy_id: str, limit: int, *, tenant: str | None = None
    ) -> list[RecordedDecision]:
        raise self.error

    async def count(self, *, tenant: str | None = None) -> int:
        raise self.error

    async def tally(self, since: str, *, tenant: str | None = None) -> list[Tally]:
        raise self.error

    async def backlog(
        self, *, tenant: str | None = None, queues: frozenset[str] | None = None
    ) -> list[Backlog]:
        raise self.error

    async def append_shadow(self, rows: Sequence[ShadowRow]) -> None:
        raise self.error

    async def shadow_counts(self, run_id: str, *, tenant: str | None = None) -> list[ShadowCount]:
        raise self.error

    async def shadow_examples(
        self, run_id: str, kind: ExampleKind, limit: int, *, tenant: str
    ) -> list[ShadowExample]:
        raise self.error

    async def search(
        self,
        flt: DecisionFilter,
        limit: int,
        *,
        after: Cursor | None = None,
        tenant: str | None = None,
        queues: frozenset[str] | None = None,
    ) -> SearchPage:
        raise self.error

    async def count_matching(
        self,
        flt: DecisionFilter,
        cap: int,
        *,
        tenant: str | None = None,
        queues: frozenset[str] | None = None,
    ) -> int:
        raise self.error

    async def close(self) -> None:
        return None


def _get(policy_copy: Path, error: Exception, path: str) -> tuple[int, str, dict[str, Any]]:
    settings = Settings(
        policies=policy_copy.parent,
        tenants=REPO / "tenants",
        keys_db=str(policy_copy.parent.parent / "keys.db"),
        auth="off",
        backend="fake",
        warm_up=False,
    )
    app = create_app(settings, store=_BrokenStore(error), redactor_factory=None)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        r = client.get(path)
        return r.status_code, r.headers["content-type"], r.json()


def test_an_unreadable_audit_store_is_503_with_retry_after(policy_copy: Path) -> None:
    status, media, body = _get(policy_copy, AuditStoreError("connection lost"), "/decisions/x")
    assert (status, media) == (503, "application/problem+json")
    assert body["title"] == "Audit store unavailable"
    assert "connection lost" not in str(body)  # internals stay in the log


def test_any_other_engine_error_is_a_problem_document(policy_copy: Path) -> None:
    status, media, body = _get(policy_copy, PromptRenderError("secret input"), "/reviews")
    assert (status, media) == (500, "application/problem+json")
    assert body["detail"].startswith("PromptRenderError")
    assert "secret input" not in str(body)
