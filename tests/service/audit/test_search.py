"""Decision search against SQLite and a real PostgreSQL: every filter against a Python oracle,
keyset pages, tenant and queue scope, and the filter's own validation."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.categories import Category
from engine.decide.record import DecisionRecord, FiredRule, WorkflowTrace
from service.audit import (
    Cursor,
    CursorError,
    DecisionFilter,
    ReviewState,
    SearchPage,
    SQLiteAuditStore,
)
from service.audit.search import search_statement
from tests.service.audit.test_stores import Backend, make_record, review_of


@dataclass(frozen=True)
class Stored:
    """A record as the test wrote it, with what the oracle needs."""

    record: DecisionRecord
    tenant: str
    reviewed: bool

    @property
    def state(self) -> ReviewState:
        if self.reviewed:
            return ReviewState.REVIEWED
        if self.record.requires_human_review:
            return ReviewState.PENDING
        return ReviewState.NOT_NEEDED


def _variant(i: int) -> DecisionRecord:
    """Record ``i`` of the corpus: categories, queues, rules, revisions and degradation vary
    independently, so each filter cuts the corpus differently."""
    category = list(Category)[i % 3]
    review = i % 4 in (1, 2)
    queue = "pharmacovigilance" if category is Category.SAFETY_COMPLIANCE else "service_desk"
    base = make_record(i, review=review, revision="rev-b" if i % 5 == 0 else "rev-a")
    rules = []
    if i % 3 == 2:
        rules.append(FiredRule(id="adverse_event_keywords", reason="keyword group matched"))
    if i % 7 == 3:
        rules.append(FiredRule(id="vip_customer", reason="metadata.tier == vip"))
    return base.model_copy(
        update={
            "category": category,
            "degraded": i % 6 == 1,
            "rules_fired": rules,
            "workflow": WorkflowTrace(
                name=category,
                completed=["capture"],
                next_step="review" if review else "dispatch",
                status="awaiting_review" if review else "dispatched",
                queue=queue if review else None,
            ),
        }
    )


async def _corpus(backend: Backend, n: int = 24) -> list[Stored]:
    stored = []
    for i in range(n):
        record = _variant(i)
        tenant = "other" if i % 8 == 5 else "acme"
        await backend.store.append(record, tenant=tenant, region="eu")
        reviewed = i % 4 == 2 or i == 7  # a review where none was needed (i == 7) counts too
        if reviewed:
            await backend.store.add_review(review_of(record, "informational"))
        stored.append(Stored(record, tenant, reviewed))
    return stored


def _newest_first(stored: list[Stored], keep: Callable[[Stored], bool]) -> list[str]:
    hits = [s.record for s in stored if s.tenant == "acme" and keep(s)]
    return [r.decision_id for r in sorted(hits, key=lambda r: r.created_at, reverse=True)]


async def _all(backend: Backend, flt: DecisionFilter, **scope: object) -> list[str]:
    page = await backend.store.search(flt, 1000, tenant="acme", **scope)  # type: ignore[arg-type]
    assert page.next is None
    return [item.decision_id for item in page.items]


FILTERS: list[tuple[str, dict[str, object], Callable[[Stored], bool]]] = [
    ("nothing", {}, lambda _: True),
    (
        "category",
        {"category": "safety_compliance"},
        lambda s: s.record.category is Category.SAFETY_COMPLIANCE,
    ),
    ("pending", {"review": "pending"}, lambda s: s.state is ReviewState.PENDING),
    ("reviewed", {"review": "reviewed"}, lambda s: s.state is ReviewState.REVIEWED),
    ("not needed", {"review": "not_needed"}, lambda s: s.state is ReviewState.NOT_NEEDED),
    ("revision", {"policy_revision": "rev-b"}, lambda s: s.record.policy.revision == "rev-b"),
    (
        "rule",
        {"rule": "vip_customer"},
        lambda s: "vip_customer" in [r.id for r in s.record.rules_fired],
    ),
    ("no such rule", {"rule": "vip"}, lambda _: False),  # ids match whole, not as a substring
    ("degraded", {"degraded": "true"}, lambda s: s.record.degraded),
    ("not degraded", {"degraded": "false"}, lambda s: not s.record.degraded),
    (
        "time range",
        {"since": "2026-01-01T00:00:05+00:00", "until": "2026-01-01T00:00:12.000012Z"},
        lambda s: "2026-01-01T00:00:05" <= s.record.created_at < "2026-01-01T00:00:12.000012",
    ),
    (
        "all at once",
        {"category": "service_action", "review": "pending", "degraded": "true", "rule": ""},
        lambda s: (
            s.record.category is Category.SERVICE_ACTION
            and s.state is ReviewState.PENDING
            and s.record.degraded
        ),
    ),
    (
        "rule and review",
        {"rule": "adverse_event_keywords", "review": "reviewed"},
        lambda s: "adverse_event_keywords" in [r.id for r in s.record.rules_fired] and s.reviewed,
    ),
]


@pytest.mark.parametrize(
    ("params", "keep"), [pytest.param(p, k, id=name) for name, p, k in FILTERS]
)
async def test_each_filter_finds_exactly_what_the_oracle_does(
    backend: Backend, params: dict[str, object], keep: Callable[[Stored], bool]
) -> None:
    stored = await _corpus(backend)
    expected = _newest_first(stored, keep)
    assert await _all(backend, DecisionFilter.model_validate(params)) == expected


async def test_the_corpus_exercises_every_filter(backend: Backend) -> None:
    """Each filter keeps some rows and drops some (else the oracle test proves little)."""
    stored = await _corpus(backend)
    for name, _, keep in FILTERS:
        kept = len(_newest_first(stored, keep))
        if name not in {"nothing", "no such rule"}:
            assert 0 < kept < 21, name


async def test_keyset_pages_cover_everything_once_in_order(backend: Backend) -> None:
    stored = await _corpus(backend)
    expected = _newest_first(stored, lambda _: True)
    seen: list[str] = []
    after: Cursor | None = None
    while True:
        page: SearchPage = await backend.store.search(
            DecisionFilter(), 4, after=after, tenant="acme"
        )
        assert len(page.items) <= 4
        seen.extend(i.decision_id for i in page.items)
        if page.next is None:
            break
        after = Cursor.parse(page.next.token())  # through its opaque form, as a link carries it
    assert seen == expected


async def test_a_decision_recorded_meanwhile_shifts_no_page(backend: Backend) -> None:
    stored = await _corpus(backend, 10)
    first = await backend.store.search(DecisionFilter(), 3, tenant="acme")
    await backend.store.append(make_record(59), tenant="acme")  # newer than all of them
    second = await backend.store.search(DecisionFilter(), 3, after=first.next, tenant="acme")
    expected = _newest_first(stored, lambda _: True)
    assert [i.decision_id for i in first.items + second.items] == expected[:6]


async def test_equal_times_are_ordered_by_id_and_split_across_pages(backend: Backend) -> None:
    same = [
        make_record(1).model_copy(update={"decision_id": f"same-{c}"}) for c in "bdac"
    ]  # one instant, four ids
    for record in same:
        await backend.store.append(record, tenant="acme")
    first = await backend.store.search(DecisionFilter(), 2, tenant="acme")
    assert first.next is not None
    second = await backend.store.search(DecisionFilter(), 2, after=first.next, tenant="acme")
    ids = [i.decision_id for i in first.items + second.items]
    assert ids == ["same-d", "same-c", "same-b", "same-a"]
    assert second.next is None


async def test_another_tenants_decisions_are_never_found(backend: Backend) -> None:
    stored = await _corpus(backend)
    theirs = {s.record.decision_id for s in stored if s.tenant == "other"}
    assert theirs
    found = await _all(backend, DecisionFilter())
    assert not theirs & set(found)
    page = await backend.store.search(DecisionFilter(), 100, tenant="other")
    assert {i.decision_id for i in page.items} == theirs


async def test_a_reviewer_finds_only_decisions_routed_to_their_queues(backend: Backend) -> None:
    stored = await _corpus(backend)
    pv = await _all(backend, DecisionFilter(), queues=frozenset({"pharmacovigilance"}))
    assert pv == _newest_first(
        stored,
        lambda s: s.record.workflow.queue == "pharmacovigilance",
    )
    assert pv
    assert await _all(backend, DecisionFilter(), queues=frozenset()) == []


async def test_a_summary_carries_what_the_table_shows(backend: Backend) -> None:
    record = _variant(2)  # safety, reviewed later, adverse-event rule, needs review
    await backend.store.append(record, tenant="acme")
    await backend.store.add_review(review_of(record, "informational"))
    [item] = (await backend.store.search(DecisionFilter(), 10, tenant="acme")).items
    assert item.decision_id == record.decision_id
    assert item.created_at == record.created_at
    assert item.category == "safety_compliance"
    assert item.review_state is ReviewState.REVIEWED
    assert item.reviewed_category == "informational"
    assert item.review_queue == "pharmacovigilance"
    assert item.rules_fired == ("adverse_event_keywords",)
    assert item.channel == "chat"
    assert item.confidence == pytest.approx(0.9)
    assert item.policy_revision == "rev-a"
    assert item.input_redacted == "where is my order?"


# -- the filter and the cursor, without a database -------------------------------------------


def test_blank_form_fields_mean_any() -> None:
    blank = dict.fromkeys(DecisionFilter.model_fields, "")
    assert DecisionFilter.model_validate(blank) == DecisionFilter()


def test_times_are_utc_and_a_naive_one_is_taken_as_utc() -> None:
    flt = DecisionFilter.model_validate(
        {"since": "2026-11-23T10:00:00+02:00", "until": "2026-11-23T09:00:00"}
    )
    assert flt.since == datetime(2026, 11, 23, 8, tzinfo=timezone.utc)
    assert flt.until == datetime(2026, 11, 23, 9, tzinfo=timezone.utc)
    assert flt.query_params() == {
        "since": "2026-11-23T08:00:00+00:00",
        "until": "2026-11-23T09:00:00+00:00",
    }


def test_query_params_round_trip() -> None:
    flt = DecisionFilter.model_validate(
        {
            "since": "2026-11-23T00:00:00Z",
            "category": "safety_compliance",
            "review": "not_needed",
            "policy_revision": "ae81",
            "rule": "vip_customer",
            "degraded": "false",
        }
    )
    assert flt.query_params()["degraded"] == "false"
    assert DecisionFilter.model_validate(flt.query_params()) == flt


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "2026-11-24", "until": "2026-11-23"}, "'until' must be later than 'since'"),
        ({"category": "spam"}, "Input should be 'informational'"),
        ({"review": "done"}, "'pending', 'reviewed' or 'not_needed'"),
        ({"degraded": "maybe"}, "valid boolean"),
        ({"since": "yesterday"}, "valid datetime"),
        ({"until": "0.5"}, "ISO 8601"),  # not Unix seconds, which pydantic would take
        ({"until": 1700000000}, "ISO 8601"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_filter_says_what_is_wrong(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DecisionFilter.model_validate(params)


def test_a_cursor_survives_its_token_and_a_forged_one_is_refused() -> None:
    cursor = Cursor("2026-01-01T00:00:01+00:00", "d-1")
    assert Cursor.parse(cursor.token()) == cursor
    for forged in ("", "not base64!", "W10", "WzEsMl0"):  # '', junk, [], [1,2]
        with pytest.raises(CursorError):
            Cursor.parse(forged)


async def test_count_matching_counts_what_search_finds_up_to_the_cap(backend: Backend) -> None:
    stored = await _corpus(backend)
    flt = DecisionFilter(review=ReviewState.PENDING)
    expected = len(_newest_first(stored, lambda s: s.state is ReviewState.PENDING))
    assert expected > 2
    assert await backend.store.count_matching(flt, 1000, tenant="acme") == expected
    assert await backend.store.count_matching(flt, 2, tenant="acme") == 2
    only = frozenset({"pharmacovigilance"})
    assert await backend.store.count_matching(flt, 1000, tenant="acme", queues=only) == len(
        await _all(backend, flt, queues=only)
    )


@pytest.mark.parametrize(
    ("flt", "index"),
    [
        (DecisionFilter(), "decisions_tenant_time"),
        (DecisionFilter(category=Category.INFORMATIONAL), "decisions_tenant_category"),
        (DecisionFilter(policy_revision="rev-a"), "decisions_tenant_revision"),
    ],
)
async def test_a_page_is_read_in_index_order_without_a_sort(
    tmp_path: Path, flt: DecisionFilter, index: str
) -> None:
    """SQLite's plan for a deep page: the keyset seeks in an index; nothing is sorted."""
    store = SQLiteAuditStore(tmp_path / "audit.db")
    try:
        statement, args = search_statement(
            flt,
            dialect="sqlite",
            tenant="acme",
            queues=None,
            after=Cursor("2026-01-01T00:00:00+00:00", "d-1"),
            limit=51,
        )
        with sqlite3.connect(tmp_path / "audit.db") as db:
            plan = " | ".join(
                row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {statement.format(p='?')}", args)
            )
    finally:
        await store.close()
    assert f"USING INDEX {index} (tenant=?" in plan
    assert "(created_at,decision_id)<(?,?)" in plan
    assert "TEMP B-TREE" not in plan


async def test_the_superseded_tenant_index_is_dropped_from_an_older_database(
    tmp_path: Path,
) -> None:
    """decisions_tenant (tenant, created_at) is the prefix of decisions_tenant_time: one index
    less to write per decision; a database made before keeps none of it after a restart."""
    path = tmp_path / "audit.db"
    await SQLiteAuditStore(path).close()
    with sqlite3.connect(path) as db:  # as an older release left it
        db.execute("CREATE INDEX decisions_tenant ON decisions (tenant, created_at)")
    await SQLiteAuditStore(path).close()
    with sqlite3.connect(path) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "decisions_tenant" not in names
    assert "decisions_tenant_time" in names
