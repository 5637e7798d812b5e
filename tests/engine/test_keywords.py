"""Keyword groups: word boundaries, stems, phrases, casefolding, regexes, odd characters."""

from __future__ import annotations

import pytest

from engine.keywords import KeywordMatcher
from engine.policy.model import KeywordGroup


def _matcher(*keywords: str, patterns: tuple[str, ...] = ()) -> KeywordMatcher:
    group = KeywordGroup(description="test", keywords=list(keywords), patterns=list(patterns))
    return KeywordMatcher({"g": group})


@pytest.mark.parametrize(
    ("keywords", "text", "hit"),
    [
        (("rash",), "I have a Rash on my arm", True),
        (("rash",), "that was brash of me", False),
        (("reaction*",), "several reactions", True),
        (("side effect*",), "SIDE   EFFECTS after the dose", True),
        (("can't breathe",), "I can't breathe well", True),
        (("überdosis",), "ÜBERDOSIS genommen", True),
        (("nause*",), "feeling nauseous", True),
        (("ill",), "I'll call tomorrow", False),
        (("100%",), "it is 100% broken", True),
        (("fever",), "Ｆｅｖｅｒ since yesterday", True),  # full-width letters, NFKC
        (("headache",), "😖 headache!!", True),
    ],
)
def test_keyword_matching(keywords: tuple[str, ...], text: str, hit: bool) -> None:
    assert _matcher(*keywords).match(text) == {"g": hit}


def test_patterns_are_case_insensitive_regexes() -> None:
    matcher = _matcher(patterns=(r"\bpills?\b.{0,20}\bcrushed\b",))
    assert matcher.match("The PILLS arrived crushed") == {"g": True}
    assert matcher.match("crushed pills") == {"g": False}


def test_special_characters_are_literal_in_keywords() -> None:
    matcher = _matcher("a.b", "(x)", "$5")
    assert matcher.match("axb") == {"g": False}
    assert matcher.match("it costs $5 now") == {"g": True}
    assert matcher.match("see (x) here") == {"g": True}
