"""The durable-rules wrapper: predicates, ordering, limits, failures, threads, memory, cache.

Every compiled ruleset stays in memory until the process ends (durable-rules never frees one),
so these tests compile a bounded number of rulesets and evaluate many facts against each.
"""

from __future__ import annotations

import json
import math
import random
import re
import resource
import threading
from collections.abc import Iterator
from typing import Any

import durable_rules_engine
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.categories import CATEGORIES, Category, Channel, VerdictStatus
from engine.decide.facts import DecisionFacts
from engine.decide.keywords import KeywordMatcher
from engine.decide.rules import CompiledRules, RulesCache
from engine.errors import RulesEngineError
from engine.policy.rules import Condition, KeywordGroup, Rule, RuleAction
from engine.policy.ruleset import MAX_SIMULTANEOUS
from tests.engine.decide import rules_oracle

GROUPS = ("fraud", "threat", "refund", "outage", "legal", "pii")
THRESHOLDS = (0.0, 1e-05, 0.25, 1 / 3, 0.5, 0.7, 0.9, 1.0)


def rule(rule_id: str, priority: int = 100, **when: Any) -> Rule:
    return Rule(
        id=rule_id,
        reason="a rule written for the tests",
        when=Condition(**when),
        then=RuleAction(),
        priority=priority,
    )


def unvalidated_rule(rule_id: str, **when: Any) -> Rule:
    """A rule whose condition skipped pydantic validation: the wrapper must still refuse it."""
    return Rule(
        id=rule_id,
        reason="a rule written for the tests",
        when=Condition.model_construct(**when),
        then=RuleAction(),
    )


def facts(
    *,
    channel: Channel = Channel.CHAT,
    status: VerdictStatus = VerdictStatus.OK,
    category: Category | None = Category.INFORMATIONAL,
    confidence: float = 0.9,
    p: dict[Category, float] | None = None,
    groups: tuple[str, ...] = GROUPS,
    hits: tuple[str, ...] = (),
) -> DecisionFacts:
    return DecisionFacts(
        channel=channel,
        llm_status=status,
        llm_category=category,
        confidence=confidence,
        probabilities=p or {},
        keywords={g: g in hits for g in groups},
    )


def compile_rules(
    *rules: Rule, groups: tuple[str, ...] = GROUPS, max_situations: int = 4096
) -> CompiledRules:
    return CompiledRules.compile(rules, groups, revision="test", max_situations=max_situations)


# -- one predicate at a time ------------------------------------------------------------------

SAFETY, SERVICE, INFO = Category.SAFETY_COMPLIANCE, Category.SERVICE_ACTION, Category.INFORMATIONAL
PAIRS = [(c, g) for c in Channel for g in GROUPS]
PREDICATE_CASES: list[tuple[dict[str, Any], DecisionFacts, bool]] = [
    ({"keywords_any": ["fraud", "threat"]}, facts(hits=("threat",)), True),
    ({"keywords_any": ["fraud", "threat"]}, facts(hits=("refund",)), False),
    ({"keywords_all": ["fraud", "threat"]}, facts(hits=("fraud", "threat")), True),
    ({"keywords_all": ["fraud", "threat"]}, facts(hits=("fraud",)), False),
    ({"keywords_none": ["fraud", "threat"]}, facts(hits=("refund",)), True),
    ({"keywords_none": ["fraud", "threat"]}, facts(hits=("fraud",)), False),
    ({"llm_category": [SAFETY, SERVICE]}, facts(category=SERVICE), True),
    ({"llm_category": [SAFETY, SERVICE]}, facts(category=INFO), False),
    ({"llm_category": [SAFETY, SERVICE, INFO]}, facts(category=None), False),  # "none"
    (
        {"llm_status": [VerdictStatus.TIMEOUT, VerdictStatus.ERROR]},
        facts(status=VerdictStatus.TIMEOUT),
        True,
    ),
    ({"llm_status": [VerdictStatus.TIMEOUT]}, facts(status=VerdictStatus.OK), False),
    ({"channel": [Channel.VOICE]}, facts(channel=Channel.VOICE), True),
    ({"channel": [Channel.VOICE, Channel.EMAIL]}, facts(channel=Channel.CHAT), False),
    ({"confidence_below": 0.7}, facts(confidence=0.69), True),
    ({"confidence_below": 0.7}, facts(confidence=0.7), False),
    ({"confidence_below": 0.7}, facts(category=None, confidence=0.0), True),  # failed model
    ({"confidence_at_least": 0.7}, facts(confidence=0.7), True),
    ({"confidence_at_least": 0.7}, facts(confidence=math.nextafter(0.7, 0)), False),
    (
        {"probability_at_least": {SAFETY: 0.2, SERVICE: 0.1}},
        facts(p={SAFETY: 0.2, SERVICE: 0.5}),
        True,
    ),
    ({"probability_at_least": {SAFETY: 0.2, SERVICE: 0.1}}, facts(p={SAFETY: 0.2}), False),
    ({"probability_at_least": {SAFETY: 1e-05}}, facts(p={SAFETY: 1e-05}), True),  # bare exponent
    ({"probability_at_least": {SAFETY: 1e-05}}, facts(p={SAFETY: 5e-324}), False),
    ({"probability_at_least": {SAFETY: 5e-324}}, facts(p={SAFETY: 5e-324}), True),
    ({"channel": [Channel.CHAT], "keywords_any": ["pii"]}, facts(hits=("pii",)), True),
    ({"channel": [Channel.CHAT], "keywords_any": ["pii"]}, facts(channel=Channel.EMAIL), False),
    (
        {"any": [{"channel": [Channel.VOICE]}, {"keywords_all": ["legal"]}]},
        facts(hits=("legal",)),
        True,
    ),
    ({"any": [{"channel": [Channel.VOICE]}, {"confidence_below": 0.1}]}, facts(), False),
    (
        {"any": [{"any": [{"keywords_any": ["pii"]}]}], "channel": [Channel.CHAT]},
        facts(hits=("pii",)),
        True,
    ),
]


@pytest.mark.parametrize(("when", "fact", "expected"), PREDICATE_CASES)
def test_each_predicate(when: dict[str, Any], fact: DecisionFacts, expected: bool) -> None:
    compiled = compile_rules(rule("the-rule", **when))
    assert compiled.evaluate(fact) == (("the-rule",) if expected else ())
    assert rules_oracle.fired([rule("the-rule", **when)], fact.to_fact()) == compiled.evaluate(fact)


def test_order_is_priority_then_position() -> None:
    rules = [
        rule("late", 50, keywords_any=["fraud"]),
        rule("first", 0, channel=[Channel.CHAT]),
        rule("late-too", 50, confidence_at_least=0.5),
        rule("never", 1, channel=[Channel.VOICE]),
        rule("middle", 10, llm_status=[VerdictStatus.OK]),
    ]
    compiled = compile_rules(*rules)
    fact = facts(hits=("fraud",))
    assert compiled.evaluate(fact) == ("first", "middle", "late", "late-too")
    assert compiled.rule_count == 5


def test_rule_matching_through_several_branches_fires_once() -> None:
    compiled = compile_rules(
        rule(
            "multi",
            keywords_any=["fraud", "threat", "legal"],
            any=[
                {"channel": [Channel.CHAT]},
                {"confidence_at_least": 0.1},
                {"keywords_any": ["pii"]},
            ],
        ),
        rule("other", 200, keywords_any=["fraud"]),
    )
    all_hits = facts(hits=("fraud", "threat", "legal", "pii"))
    assert compiled.evaluate(all_hits) == ("multi", "other")


# -- compile-time refusals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([rule("empty")], "rule 'empty': the condition has no predicates"),
        ([rule("nested", any=[{}])], "rule 'nested'.any[0]: the condition has no predicates"),
        ([rule("unknown", keywords_any=["nope"])], "keyword group 'nope' in 'keywords_any'"),
        ([unvalidated_rule("blank", keywords_all=[])], "rule 'blank': 'keywords_all' is empty"),
        ([unvalidated_rule("blank", probability_at_least={})], "'probability_at_least' is empty"),
        ([unvalidated_rule("blank", any=[])], "rule 'blank': 'any' is empty"),
        ([rule(f"r{i}", channel=[Channel.CHAT]) for i in range(501)], "at most 500"),
        ([rule(f"r{i}", channel=[Channel.CHAT]) for i in range(201)], "share one condition"),
        (
            [rule("deep", any=[{"channel": [c], "keywords_any": [g]} for c, g in PAIRS[:14]])],
            "rule 'deep' needs 16 and/or groups",
        ),
    ],
)
def test_compile_refuses(rules: list[Rule], message: str) -> None:
    with pytest.raises(RulesEngineError, match=re.escape(message)):
        CompiledRules.compile(rules, GROUPS, revision="bad")


def test_engine_refusal_at_compile_is_a_rules_engine_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(name: str, definition: str) -> int:
        raise durable_rules_engine.error("Could not create ruleset, error code: 113")

    monkeypatch.setattr(durable_rules_engine, "create_ruleset", refuse)
    with pytest.raises(RulesEngineError, match=r"rejected revision 'r1'.*113") as caught:
        CompiledRules.compile([rule("kw", keywords_any=["fraud"])], GROUPS, revision="r1")
    assert isinstance(caught.value.__cause__, durable_rules_engine.error)


def test_bad_or_colliding_keyword_group_names_are_refused() -> None:
    with pytest.raises(RulesEngineError, match="must match"):
        CompiledRules.compile([], ["Upper"], revision="bad")
    # FNV-1 of "keywords.gloczf" == FNV-1 of "keywords.gvfbpp" (found by a birthday search):
    # durable-rules would read one group's value for both.
    with pytest.raises(RulesEngineError, match="collides"):
        CompiledRules.compile([], ["gloczf", "gvfbpp"], revision="bad")


def many_groups(n: int) -> tuple[str, ...]:
    return tuple(f"g{i}" for i in range(n))


def test_stack_limit_is_exact_for_fan_out() -> None:
    """64 rules on distinct groups all matching: the most durable-rules survives; 65 refused."""
    groups = many_groups(MAX_SIMULTANEOUS + 1)
    rules = [rule(f"kw{i}", keywords_any=[g]) for i, g in enumerate(groups)]
    compiled = CompiledRules.compile(rules[:-1], groups, revision="fan-out")
    assert len(compiled.evaluate(facts(groups=groups, hits=groups))) == MAX_SIMULTANEOUS
    with pytest.raises(RulesEngineError, match="'kw64' is the first to exceed"):
        CompiledRules.compile(rules, groups, revision="fan-out")


def test_stack_limit_counts_or_branches() -> None:
    """Each rule starting with a two-channel list adds a join node the engine always pushes."""
    rules = [
        rule(f"ch{i}", channel=[Channel.CHAT, Channel.EMAIL], confidence_at_least=i / 1000)
        for i in range(MAX_SIMULTANEOUS + 1)
    ]
    compiled = CompiledRules.compile(rules[:-1], GROUPS, revision="forwards")
    assert len(compiled.evaluate(facts(confidence=1.0))) == MAX_SIMULTANEOUS
    with pytest.raises(RulesEngineError, match="'ch64' is the first"):
        CompiledRules.compile(rules, GROUPS, revision="forwards")


def test_rules_sharing_a_prefix_do_not_count_twice() -> None:
    """Equality on one field can match only one value: 3 x 50 rules fit comfortably."""
    rules = [
        rule(f"r{c.value}{i}", channel=[c], confidence_at_least=i / 100)
        for c in Channel
        for i in range(50)
    ]
    compiled = CompiledRules.compile(rules, GROUPS, revision="prefix")
    assert len(compiled.evaluate(facts(channel=Channel.VOICE, confidence=1.0))) == 50


# -- evaluation failures fail closed -----------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> tuple[list[Rule], CompiledRules]:
    rules = [
        rule("kw", 1, keywords_any=["fraud", "threat"]),
        rule("low", 2, confidence_below=0.5),
        rule("chat-safety", 3, channel=[Channel.CHAT], llm_category=[SAFETY]),
    ]
    # No remembered answers: every evaluation here must reach durable-rules' C calls.
    return rules, compile_rules(*rules, max_situations=0)


def test_facts_missing_a_keyword_group_are_an_error(
    small: tuple[list[Rule], CompiledRules],
) -> None:
    with pytest.raises(RulesEngineError, match="lack keyword groups"):
        small[1].evaluate(facts(groups=("fraud",)))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_numbers_are_an_error(
    small: tuple[list[Rule], CompiledRules], bad: float
) -> None:
    with pytest.raises(RulesEngineError, match="not valid JSON numbers"):
        small[1].evaluate(facts(confidence=bad))


def test_engine_exceptions_become_rules_engine_errors(
    small: tuple[list[Rule], CompiledRules], monkeypatch: pytest.MonkeyPatch
) -> None:
    deleted: list[str] = []
    real_delete = durable_rules_engine.delete_state

    def delete(handle: int, sid: str) -> None:
        deleted.append(sid)
        real_delete(handle, sid)

    def fail(*args: object) -> None:
        raise durable_rules_engine.error("Could not assert fact, error code: 303")

    monkeypatch.setattr(durable_rules_engine, "delete_state", delete)
    monkeypatch.setattr(durable_rules_engine, "complete_and_start_action", fail)
    with pytest.raises(RulesEngineError, match="error code: 303") as caught:
        small[1].evaluate(facts())
    assert isinstance(caught.value.__cause__, durable_rules_engine.error)
    assert len(deleted) == 1  # an action had started: the session is deleted
    monkeypatch.setattr(durable_rules_engine, "assert_fact", fail)
    with pytest.raises(RulesEngineError):
        small[1].evaluate(facts())
    assert len(deleted) == 1  # never delete a session whose assertion failed: that can crash


def test_no_action_started_is_an_error_and_the_session_is_not_deleted(
    small: tuple[list[Rule], CompiledRules], monkeypatch: pytest.MonkeyPatch
) -> None:
    deleted: list[object] = []
    monkeypatch.setattr(durable_rules_engine, "start_action_for_state", lambda *_args: None)
    monkeypatch.setattr(durable_rules_engine, "delete_state", lambda *a: deleted.append(a))
    with pytest.raises(RulesEngineError, match="catch-all"):
        small[1].evaluate(facts())
    assert deleted == []


def test_engine_still_works_after_errors(small: tuple[list[Rule], CompiledRules]) -> None:
    _, compiled = small
    fact = facts(category=SAFETY, confidence=0.4, hits=("fraud",))
    assert compiled.evaluate(fact) == ("kw", "low", "chat-safety")


# -- text never reaches durable-rules; odd names survive ---------------------------------------

ODD_MESSAGES = [
    'I lost 100% of my $500 — "refund" now!! \\o/',
    "fraud? %d %s %% $and $or {\"m\": 1} \\u0041 'quoted'",
    "🚨 threat 🔥 émoji über naïve \u200b zero-width",
    "C:\\Users\\fraud\\path and a tab\there",
    "",
]


@pytest.mark.parametrize("message", ODD_MESSAGES)
def test_odd_messages_evaluate_and_their_text_never_enters_the_fact(message: str) -> None:
    names = ("fraud", "threat", "refund", "pct-sign", "dollar_sign")
    matcher = KeywordMatcher(
        {
            "fraud": KeywordGroup(description="fraud", keywords=["fraud"]),
            "threat": KeywordGroup(description="threat", keywords=["threat", "🚨 threat"]),
            "refund": KeywordGroup(description="refund", keywords=['"refund"', "refund"]),
            "pct-sign": KeywordGroup(description="percent", keywords=["100%", "%%"]),
            "dollar_sign": KeywordGroup(description="dollar", patterns=[r"\$\w+"]),
        }
    )
    rules = [rule(f"on-{n}", keywords_any=[n]) for n in names]
    rules.append(rule("none-at-all", keywords_none=list(names)))
    compiled = compile_rules(*rules, groups=names)
    fact = DecisionFacts(Channel.EMAIL, VerdictStatus.OK, SAFETY, 0.5, {}, matcher.match(message))
    expected = rules_oracle.fired(rules, fact.to_fact())
    assert compiled.evaluate(fact) == expected
    assert expected != ("none-at-all",) or message == ""
    layout = {"kind", "channel", "llm", "status", "category", "confidence", "p", "keywords"}
    values = {"decision", "none"} | {v.value for v in [*CATEGORIES, *Channel, *VerdictStatus]}
    assert set(_keys_and_strings(fact.to_fact())) <= layout | values | set(names)
    assert not message or message not in json.dumps(fact.to_fact(), ensure_ascii=False)


def _keys_and_strings(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield key
            yield from _keys_and_strings(sub)
    elif isinstance(value, str):
        yield value


def test_non_ascii_rule_ids_and_reasons_and_limit_length_group_names() -> None:
    longest = "z" + ("9_-a" * 16)[:63]
    groups = ("a", longest, "b-1", "c_2")
    weird = Rule.model_construct(
        id='règle-🚨-"quoted"-$and-%',
        reason="Ünïcödé reason with \\ backslash and % and $",
        when=Condition(keywords_all=["a", longest], channel=[Channel.CHAT]),
        then=RuleAction(),
        priority=1,
    )
    compiled = CompiledRules.compile(
        [weird, rule("plain", keywords_any=["b-1"])], groups, revision="ü"
    )
    assert compiled.evaluate(facts(groups=groups, hits=("a", longest, "b-1"))) == (
        weird.id,
        "plain",
    )
    assert compiled.evaluate(facts(groups=groups, hits=(longest,))) == ()


# -- differential tests against the plain-Python oracle ----------------------------------------

probabilities = st.sampled_from(THRESHOLDS) | st.floats(0.0, 1.0) | st.just(5e-324)


def _values(elements: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(elements, min_size=1, max_size=3)


PREDICATES: dict[str, st.SearchStrategy[Any]] = {
    "keywords_any": _values(st.sampled_from(GROUPS)),
    "keywords_all": _values(st.sampled_from(GROUPS)),
    "keywords_none": _values(st.sampled_from(GROUPS)),
    "llm_category": _values(st.sampled_from(CATEGORIES)),
    "llm_status": _values(st.sampled_from(list(VerdictStatus))),
    "channel": _values(st.sampled_from(list(Channel))),
    "confidence_below": probabilities,
    "confidence_at_least": probabilities,
    "probability_at_least": st.dictionaries(st.sampled_from(CATEGORIES), probabilities, min_size=1),
}


@st.composite
def conditions(draw: st.DrawFn, depth: int = 2) -> Condition:
    names = [*PREDICATES, "any"] if depth else list(PREDICATES)
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    fields = {
        name: draw(
            PREDICATES[name]
            if name != "any"
            else st.lists(conditions(depth - 1), min_size=1, max_size=3)
        )
        for name in chosen
    }
    return Condition(**fields)


@st.composite
def rulesets(draw: st.DrawFn, min_rules: int = 1, max_rules: int = 8) -> list[Rule]:
    whens = draw(st.lists(conditions(), min_size=min_rules, max_size=max_rules))
    n = len(whens)
    priorities = draw(st.lists(st.sampled_from([0, 5, 100]), min_size=n, max_size=n))
    return [
        Rule(
            id=f"rule-{i}", reason="generated by hypothesis", when=w, then=RuleAction(), priority=p
        )
        for i, (w, p) in enumerate(zip(whens, priorities, strict=False))
    ]


@st.composite
def decision_facts(draw: st.DrawFn) -> DecisionFacts:
    category = draw(st.none() | st.sampled_from(CATEGORIES))
    return DecisionFacts(
        channel=draw(st.sampled_from(list(Channel))),
        llm_status=draw(st.sampled_from(list(VerdictStatus))),
        llm_category=category,
        confidence=draw(probabilities),
        probabilities=draw(st.dictionaries(st.sampled_from(CATEGORIES), probabilities)),
        keywords={g: draw(st.booleans()) for g in GROUPS},
    )


def compile_or_reject(rules: list[Rule]) -> CompiledRules:
    try:
        return CompiledRules.compile(rules, GROUPS, revision="hypothesis")
    except RulesEngineError as exc:
        error = str(exc)
    assert "and/or groups" in error  # small rulesets only ever hit the per-rule limit
    assume(False)
    raise AssertionError(error)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rulesets(), cases=st.lists(decision_facts(), min_size=25, max_size=25))
def test_random_rulesets_agree_with_the_oracle(
    rules: list[Rule], cases: list[DecisionFacts]
) -> None:
    compiled = compile_or_reject(rules)
    for case in cases:
        assert compiled.evaluate(case) == rules_oracle.fired(rules, case.to_fact())


def policy_like_rules(seed: int, count: int = 20) -> list[Rule]:
    """A reproducible random policy built from the same strategies, without hypothesis."""
    rng = random.Random(seed)
    return [
        Rule(
            id=f"p{i}",
            reason="seeded policy rule",
            when=_random_condition(rng, 2),
            then=RuleAction(),
            priority=rng.choice([0, 10, 100]),
        )
        for i in range(count)
    ]


def _random_condition(rng: random.Random, depth: int) -> Condition:
    fields: dict[str, Any] = {}
    while not fields:
        if rng.random() < 0.4:
            fields["keywords_any"] = rng.sample(GROUPS, rng.randint(1, 3))
        if rng.random() < 0.2:
            fields["keywords_none"] = rng.sample(GROUPS, rng.randint(1, 2))
        if rng.random() < 0.3:
            fields["channel"] = rng.sample(list(Channel), rng.randint(1, 2))
        if rng.random() < 0.3:
            fields["llm_category"] = rng.sample(CATEGORIES, rng.randint(1, 2))
        if rng.random() < 0.2:
            fields["llm_status"] = rng.sample(list(VerdictStatus), rng.randint(1, 3))
        if rng.random() < 0.3:
            fields["confidence_below"] = rng.choice(THRESHOLDS)
        if rng.random() < 0.2:
            fields["probability_at_least"] = {rng.choice(CATEGORIES): rng.choice(THRESHOLDS)}
        if depth and rng.random() < 0.25:
            fields["any"] = [_random_condition(rng, depth - 1) for _ in range(rng.randint(1, 3))]
    return Condition(**fields)


@pytest.fixture(scope="module")
def policy() -> tuple[list[Rule], CompiledRules]:
    rules = policy_like_rules(seed=7)
    return rules, CompiledRules.compile(rules, GROUPS, revision="seeded")


@settings(max_examples=300, deadline=None)
@given(case=decision_facts())
def test_random_facts_agree_with_the_oracle_on_a_policy(
    policy: tuple[list[Rule], CompiledRules], case: DecisionFacts
) -> None:
    rules, compiled = policy
    assert compiled.evaluate(case) == rules_oracle.fired(rules, case.to_fact())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rulesets(min_rules=30, max_rules=150), seed=st.integers(0, 2**32))
def test_accepted_large_rulesets_never_overflow_the_engine(rules: list[Rule], seed: int) -> None:
    """The static bound is sound: whatever compiles never hits durable's error 303 (or a crash)."""
    try:
        compiled = CompiledRules.compile(rules, GROUPS, revision="large")
    except RulesEngineError as exc:
        error = str(exc)
        assert "and/or groups" in error or "could match one message" in error
        return
    rng = random.Random(seed)
    extremes = [
        facts(hits=GROUPS, confidence=c, p=dict.fromkeys(CATEGORIES, c)) for c in (0.0, 1.0)
    ]
    for case in extremes + [_random_facts(rng) for _ in range(30)]:
        assert compiled.evaluate(case) == rules_oracle.fired(rules, case.to_fact())


def _random_facts(rng: random.Random) -> DecisionFacts:
    return DecisionFacts(
        channel=rng.choice(list(Channel)),
        llm_status=rng.choice(list(VerdictStatus)),
        llm_category=rng.choice([None, *CATEGORIES]),
        confidence=rng.choice([*THRESHOLDS, rng.random()]),
        probabilities={c: rng.choice([*THRESHOLDS, rng.random()]) for c in CATEGORIES},
        keywords={g: rng.random() < 0.5 for g in GROUPS},
    )


# -- threads, memory, cache --------------------------------------------------------------------


def _hammer(compiled: CompiledRules, rules: list[Rule], seed: int, n: int, out: list[int]) -> None:
    rng = random.Random(seed)
    mismatches = 0
    for _ in range(n):
        case = _random_facts(rng)
        if compiled.evaluate(case) != rules_oracle.fired(rules, case.to_fact()):
            mismatches += 1
    out.append(mismatches)


def test_threads_share_a_ruleset_without_mismatches(
    policy: tuple[list[Rule], CompiledRules],
) -> None:
    rules, compiled = policy
    results: list[int] = []
    threads = [
        threading.Thread(target=_hammer, args=(compiled, rules, seed, 2_000, results))
        for seed in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [0, 0, 0, 0]


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@pytest.mark.slow
def test_memory_and_threads_stay_flat_over_100k_evaluations(
    policy: tuple[list[Rule], CompiledRules],
) -> None:
    rules, _ = policy
    compiled = CompiledRules.compile(rules, GROUPS, revision="seeded-raw", max_situations=0)
    rng = random.Random(1)
    cases = [_random_facts(rng) for _ in range(1_000)]
    for case in cases:  # warm-up: pools and caches reach their steady size
        compiled.evaluate(case)
    threads, rss = threading.active_count(), _rss_bytes()
    for i in range(100_000):
        compiled.evaluate(cases[i % len(cases)])
    growth = _rss_bytes() - rss
    assert growth < 20 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB"
    assert threading.active_count() == threads


def test_cache_compiles_each_revision_once_and_enforces_its_cap() -> None:
    rules = [rule("kw", keywords_any=["fraud"])]
    cache = RulesCache(max_revisions=2)
    first = cache.get(rules, GROUPS, revision="rev-1")
    assert cache.get(rules, GROUPS, revision="rev-1") is first
    assert cache.compiled_count == 1
    second = cache.get(rules, iter(GROUPS), revision="rev-2")
    assert second is not first
    assert cache.compiled_count == 2
    with pytest.raises(RulesEngineError, match="already compiled 2 rule revisions"):
        cache.get(rules, GROUPS, revision="rev-3")
    assert cache.get(rules, GROUPS, revision="rev-2") is second
    assert cache.compiled_count == 2
    other = RulesCache()  # no global registry: another cache compiles its own copy
    assert other.get(rules, GROUPS, revision="rev-1") is not first
    assert second.evaluate(facts(hits=("fraud",))) == ("kw",)


def test_cache_does_not_count_rulesets_that_fail_to_compile() -> None:
    cache = RulesCache(max_revisions=1)
    with pytest.raises(RulesEngineError):
        cache.get([rule("empty")], GROUPS, revision="bad")
    assert cache.compiled_count == 0
    assert cache.get([rule("ok", channel=[Channel.CHAT])], GROUPS, revision="good").rule_count == 1


# -- remembered answers (one per situation) ----------------------------------------------------


def test_facts_in_one_situation_get_durable_rules_answer_without_another_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled = compile_rules(
        rule("low", 1, confidence_below=0.5),
        rule("likely-safety", 2, probability_at_least={SAFETY: 0.25}),
        rule("kw", 3, keywords_any=["fraud"]),
    )
    first = facts(confidence=0.31, p={SAFETY: 0.4}, hits=("fraud",))
    assert compiled.evaluate(first) == ("low", "likely-safety", "kw")
    sessions: list[str] = []
    real_assert = durable_rules_engine.assert_fact

    def counting_assert(handle: int, text: str) -> object:
        sessions.append(text)
        return real_assert(handle, text)

    monkeypatch.setattr(durable_rules_engine, "assert_fact", counting_assert)
    same = facts(confidence=0.49, p={SAFETY: 0.99}, hits=("fraud",))
    assert compiled.evaluate(same) == ("low", "likely-safety", "kw")
    assert sessions == []  # answered from the first fact's situation
    # Across each threshold, and for another keyword, the situation differs: durable-rules runs.
    for other, fired in [
        (facts(confidence=0.5, p={SAFETY: 0.4}, hits=("fraud",)), ("likely-safety", "kw")),
        (facts(confidence=0.31, p={SAFETY: 0.24999}, hits=("fraud",)), ("low", "kw")),
        (facts(confidence=0.31, p={SAFETY: 0.4}, hits=("threat",)), ("low", "likely-safety")),
    ]:
        before = len(sessions)
        assert compiled.evaluate(other) == fired
        assert len(sessions) == before + 1


def test_remembered_answers_are_capped() -> None:
    compiled = compile_rules(rule("low", 1, confidence_below=0.5), max_situations=1)
    assert compiled.evaluate(facts(confidence=0.1)) == ("low",)
    assert compiled.evaluate(facts(confidence=0.9)) == ()  # not remembered: the cap was reached
    assert compiled.evaluate(facts(confidence=0.2)) == ("low",)
    assert len(compiled._answers) == 1


@pytest.fixture(scope="module")
def raw_policy(policy: tuple[list[Rule], CompiledRules]) -> CompiledRules:
    """The seeded policy without remembered answers: every fact goes to durable-rules."""
    return CompiledRules.compile(policy[0], GROUPS, revision="seeded-raw", max_situations=0)


@settings(max_examples=300, deadline=None)
@given(cases=st.lists(decision_facts(), min_size=2, max_size=2))
def test_remembered_answers_equal_durable_rules_own(
    policy: tuple[list[Rule], CompiledRules], raw_policy: CompiledRules, cases: list[DecisionFacts]
) -> None:
    """The seeded policy's answers build up over all examples; each must be durable-rules' own."""
    _, compiled = policy
    for case in cases:
        assert compiled.evaluate(case) == raw_policy.evaluate(case)
