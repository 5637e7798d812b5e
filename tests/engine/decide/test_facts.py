"""Decision facts as JSON: the text written directly is the general encoder's, exactly."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.categories import CATEGORIES, Category, Channel, VerdictStatus
from engine.decide.facts import DecisionFacts
from engine.policy.ruleset import durable_json

GROUPS = ("adverse_reaction", "kw-2", "z")
numbers = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 1.0, 1e-05, 5e-324, 1e16, -2.5e-07, 0.1, 1e300]
)


@given(
    channel=st.sampled_from(list(Channel)),
    status=st.sampled_from(list(VerdictStatus)),
    category=st.none() | st.sampled_from(CATEGORIES),
    confidence=numbers,
    probabilities=st.dictionaries(st.sampled_from(CATEGORIES), numbers),
    hits=st.lists(st.booleans(), min_size=len(GROUPS), max_size=len(GROUPS)),
    session=st.integers(0, 2**64),
)
def test_fact_json_is_durable_json_of_the_fact(
    channel: Channel,
    status: VerdictStatus,
    category: Category | None,
    confidence: float,
    probabilities: dict[Category, float],
    hits: list[bool],
    session: int,
) -> None:
    facts = DecisionFacts(
        channel,
        status,
        category,
        confidence,
        probabilities,
        dict(zip(GROUPS, hits, strict=True)),
    )
    sid = format(session, "032x")
    expected = durable_json({**facts.fact_for(GROUPS), "sid": sid})
    assert facts.fact_json(GROUPS, sid) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_number_json_cannot_hold_is_refused(bad: float) -> None:
    facts = DecisionFacts(
        Channel.CHAT, VerdictStatus.OK, None, bad, {}, dict.fromkeys(GROUPS, False)
    )
    with pytest.raises(ValueError, match="not a JSON number"):
        facts.fact_json(GROUPS, "0")


def test_a_missing_keyword_group_is_a_key_error() -> None:
    facts = DecisionFacts(
        Channel.CHAT, VerdictStatus.OK, None, 0.5, {}, dict.fromkeys(GROUPS, False)
    )
    with pytest.raises(KeyError):
        facts.fact_json((*GROUPS, "missing"), "0")
