"""Sub-intent answers onto categories: each answer's probability, each category's their sum."""

from __future__ import annotations

import math

import pytest

from engine.backends.base import LabelChoice, answer_probabilities, renormalise
from engine.backends.label_logprobs import TokenAlternative, answer_and_label_probabilities
from engine.categories import Category

INFO, SERVICE, SAFETY = Category.INFORMATIONAL, Category.SERVICE_ACTION, Category.SAFETY_COMPLIANCE
SUB_INTENTS = (
    LabelChoice(INFO, "information"),
    LabelChoice(INFO, "question"),
    LabelChoice(SERVICE, "action"),
    LabelChoice(SAFETY, "reaction"),
    LabelChoice(SAFETY, "defect"),
)


def test_a_category_gets_the_sum_of_its_answers() -> None:
    scores = [math.log(p) for p in (0.05, 0.25, 0.1, 0.4, 0.2)]
    answers, categories = answer_probabilities(scores, SUB_INTENTS)
    assert answers == pytest.approx(
        {"information": 0.05, "question": 0.25, "action": 0.1, "reaction": 0.4, "defect": 0.2}
    )
    assert categories == pytest.approx({INFO: 0.3, SERVICE: 0.1, SAFETY: 0.6})


def test_masses_that_do_not_sum_to_one_are_renormalised_over_all_answers() -> None:
    scores = [math.log(p) for p in (0.01, 0.01, 0.02, 0.03, 0.03)]
    answers, categories = answer_probabilities(scores, SUB_INTENTS)
    assert sum(answers.values()) == pytest.approx(1.0)
    assert categories[SAFETY] == pytest.approx(0.6)


def test_one_answer_per_category_is_the_plain_softmax() -> None:
    choices = (
        LabelChoice(INFO, "information"),
        LabelChoice(SERVICE, "action"),
        LabelChoice(SAFETY, "safety"),
    )
    scores = [-1.2, -0.3, -2.5]
    _, categories = answer_probabilities(scores, choices)
    assert categories == pytest.approx(
        renormalise({INFO: -1.2, SERVICE: -0.3, SAFETY: -2.5}), abs=1e-12
    )


def test_server_logprobs_are_read_per_answer() -> None:
    # "re" starts "reaction" only, "def" starts "defect", "q" starts "question": each answer
    # gets its own mass, and the safety label the sum of "reaction" and "defect".
    position = TokenAlternative(
        "re",
        math.log(0.5),
        top_logprobs=[
            TokenAlternative("re", math.log(0.5)),
            TokenAlternative(" def", math.log(0.2)),
            TokenAlternative("q", math.log(0.2)),
            TokenAlternative("action", math.log(0.1)),
        ],
    )
    found = answer_and_label_probabilities([position], SUB_INTENTS)
    assert found is not None
    answers, categories = found
    # "information" got no alternative: the floor, a tenth of the smallest one (0.01)
    total = 1.01
    assert answers["reaction"] == pytest.approx(0.5 / total)
    assert answers["defect"] == pytest.approx(0.2 / total)
    assert answers["information"] == pytest.approx(0.01 / total)
    assert categories[SAFETY] == pytest.approx(0.7 / total)
    assert categories[INFO] == pytest.approx(0.21 / total)
