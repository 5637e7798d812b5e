"""The keyword pre-filter is exact: a guarded search finds what the plain regex finds, always."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.decide.keywords import fold
from engine.decide.prefilter import (
    ASCII_LOOKALIKES,
    GuardedPattern,
    guard_alternation,
    prefilter_applies,
    required_substrings,
)


def test_lookalikes_are_every_non_ascii_character_re_matches_with_ascii() -> None:
    # Derived from ``re`` itself over all of Unicode: a Python whose case tables differ fails here.
    everything = "".join(chr(c) for c in range(128, sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
    found: set[str] = set()
    for code in range(128):
        found.update(re.findall(re.escape(chr(code)), everything, re.IGNORECASE))
    assert found == set(ASCII_LOOKALIKES)
    # And the other way: each lookalike, as a pattern, matches an ASCII character.
    ascii_text = "".join(map(chr, range(128)))
    for char in ASCII_LOOKALIKES:
        assert re.search(re.escape(char), ascii_text, re.IGNORECASE)


def test_prefilter_applies_unless_a_lookalike_is_present() -> None:
    assert prefilter_applies("plain ascii")
    assert prefilter_applies("caf\u00e9 \u00fcber")
    assert not prefilter_applies("\u017fide effects")  # long s matches "s"


@pytest.mark.parametrize(
    ("pattern", "needles"),
    [
        (r"\bpills?\b.{0,20}\bcrushed\b", {"crushed", "pill"}),
        (r"(?:tablet|capsule)s? (?:were )?broken", {"broken"}),
        (r"[a-z]+@[a-z]+", {"@"}),
        (r"[a-z]+\d+", set()),  # nothing literal: the regex always runs
        (r"rash|\d+", set()),  # a branch that requires nothing: always runs
    ],
)
def test_required_substrings(pattern: str, needles: set[str]) -> None:
    alternatives = required_substrings(re.compile(pattern, re.IGNORECASE))
    found = {needle for alt in alternatives for group in alt for needle in group}
    assert needles <= found
    if not needles:
        assert alternatives == ()


def test_a_missing_substring_skips_the_regex_and_a_lookalike_forces_it() -> None:
    guarded = GuardedPattern(re.compile(r"side\s+effects?", re.IGNORECASE))
    assert not guarded.search("nothing to see", prefilter=True)
    assert guarded.search("bad side effects", prefilter=True)
    text = fold("bad \u017fide effects")  # long s (U+017F) is case-insensitively "s" to re
    assert guarded.search(text, prefilter_applies(text)) == bool(guarded.pattern.search(text))


ATOMS = [
    "side",
    "effect",
    "s",
    "rash",
    "pill",
    "k",
    "i",
    r"\d",
    r"\w+",
    r"\s+",
    ".",
    "[a-c]",
    r"\b",
    "(?:a|b)",
    "(?:rash|itch)",
    "(?=s)",
    "\u017f",  # long s
    "\u0131",  # dotless i
    "\u212a",  # Kelvin sign
    "\u00fc",
]
QUANTIFIERS = ["", "?", "*", "+", "{2}", "{0,2}", "{1,3}"]

_UNBOUNDED = (r"\w+", r"\s+")


def _quantified(atom: str, quantifier: str) -> str:
    if atom in (r"\b", "(?=s)"):
        return atom
    if atom in _UNBOUNDED and quantifier in ("*", "+"):
        quantifier = "?"  # (?:\w+)* backtracks exponentially: a hang, not a finding
    return f"(?:{atom}){quantifier}"


_piece = st.tuples(st.sampled_from(ATOMS), st.sampled_from(QUANTIFIERS)).map(
    lambda p: _quantified(*p)
)
_sequence = st.lists(_piece, min_size=1, max_size=5).map("".join)
_pattern = st.lists(_sequence, min_size=1, max_size=3).map("|".join)
_text = st.lists(
    st.sampled_from(
        [
            "side",
            "effects",
            "rash",
            "pills",
            "kit",
            "ill",
            "s",
            " ",
            "12",
            "\u017fide",
            "\u0131ll",
            "\u212ait",
            "\u0130",
            "\u00fcber",
            "abc",
        ]
    ),
    max_size=10,
).map("".join)


@given(pattern=_pattern, text=_text)
@settings(max_examples=600, deadline=None)
def test_guarded_search_agrees_with_the_regex(pattern: str, text: str) -> None:
    compiled = re.compile(pattern, re.IGNORECASE)
    folded = fold(text)
    expected = compiled.search(folded) is not None
    assert GuardedPattern(compiled).search(folded, prefilter_applies(folded)) == expected


@given(sources=st.lists(_sequence, min_size=1, max_size=4), text=_text)
@settings(max_examples=300, deadline=None)
def test_split_alternation_agrees_with_the_whole(sources: list[str], text: str) -> None:
    folded = fold(text)
    whole = re.compile("|".join(sources), re.IGNORECASE).search(folded) is not None
    guards = guard_alternation(sources, re.IGNORECASE)
    applies = prefilter_applies(folded)
    assert any(guard.search(folded, applies) for guard in guards) == whole


def test_sources_with_group_references_stay_one_alternation() -> None:
    guards = guard_alternation([r"(a)\1", "b"], re.IGNORECASE)
    assert len(guards) == 1
    assert len(guard_alternation(["rash", "itch"], re.IGNORECASE)) == 2
