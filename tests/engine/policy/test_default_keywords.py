"""The live default policy's keyword groups on the wordings policies 1.4.1 and 1.4.3 added or
narrowed: a death of a person but not of a phone, an expiry date already past, a dose change or
stopping, a tablet imprint that differs from the usual one; and the symptoms 1.7.2 added: a
throat that closed in other words, an adrenaline pen used."""

from __future__ import annotations

import pytest

from engine.decide.keywords import KeywordMatcher
from engine.policy.loader import load_policy
from tests.conftest import LIVE_POLICY, LIVE_PROMPTS


@pytest.fixture(scope="module")
def matcher() -> KeywordMatcher:
    return KeywordMatcher(load_policy(LIVE_POLICY, LIVE_PROMPTS).policy.keyword_groups)


@pytest.mark.parametrize(
    ("text", "group", "hit"),
    [
        ("my phone died mid checkout, charged twice", "severe_event", False),
        ("the card reader died at the till", "severe_event", False),
        ("my husband died two days after the injection", "severe_event", True),
        ("Patient died in his sleep 3 days after dose 2", "severe_event", True),
        ("The expiry date on the box was last year.", "product_defect", True),
        ("the expiry printed on the amoxicillin suspension was last month", "product_defect", True),
        ("these tablets are out of date", "product_defect", True),
        ("my card expired, please update the payment", "product_defect", False),
        ("when is the expiry of my subscription?", "product_defect", False),
        ("weird ringing in my ears since upping the aspirin", "personal_report", True),
        ("brain zaps since I stopped venlafaxine", "personal_report", True),
        ("ran out of my pills 3 days ago and I'm shaking", "personal_report", True),
        ("how long does delivery take", "personal_report", False),
        ("imprint says M 30 but my usual ones say A 12", "product_defect", True),
        ("what does the imprint on my tablets mean?", "product_defect", False),
        ("the antibiotics made my throat close up", "symptom", True),
        ("felt my throat tightening after the second tablet", "symptom", True),
        ("I had to use my EpiPen", "symptom", True),
        ("we gave him his epi-pen in the car", "symptom", True),
        ("do you stock EpiPen Jr?", "symptom", False),
        ("how do I use an auto-injector?", "symptom", False),
        ("what time do you close on Sundays?", "symptom", False),
    ],
)
def test_the_default_groups(matcher: KeywordMatcher, text: str, group: str, hit: bool) -> None:
    assert matcher.match(text)[group] is hit
