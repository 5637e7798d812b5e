"""Keyword groups: word boundaries, stems, phrases, casefolding, regexes, odd characters."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.decide.keywords import KeywordMatcher
from engine.policy.rules import KeywordGroup


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
        (("can't breathe",), "I can\u2019t breathe well", True),  # phone keyboards' apostrophe
        (("überdosis",), "ÜBERDOSIS genommen", True),
        (("nause*",), "feeling nauseous", True),
        (("rash*",), "that was brashly said", False),  # a stem starts a word
        (("ash*", "zz*"), "rash or zzz", True),
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


def _oracle(keywords: list[str], text: str) -> bool:
    """The plain semantics: one regex per keyword, word boundaries, '*' = any word ending."""
    import re

    from engine.decide.keywords import fold

    folded = fold(text)
    for keyword in keywords:
        words = [re.escape(w) for w in fold(keyword.rstrip("*")).split()]
        body = r"\s+".join(words)
        head = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
        tail = (
            r"\w*" if keyword.endswith("*") else (r"(?!\w)" if re.search(r"\w$", keyword) else "")
        )
        if re.search(head + body + tail, folded):
            return True
    return False


VOCAB = [
    "i",
    "had",
    "a",
    "rash",
    "rashes",
    "after",
    "taking",
    "it",
    "my",
    "son",
    "can't",
    "breathe",
    "side",
    "effects",
    "effect",
    "ill",
    "i'll",
    "Rash",
    "HAD",
    "100%",
    "x-ray",
    "brash",
    "ash",
    "\u0131ll",  # dotless i: re matches it with "i" case-insensitively (engine.decide.prefilter)
    "\u017fide",  # long s
]


@given(
    keywords=st.lists(
        st.lists(st.sampled_from(VOCAB), min_size=1, max_size=3)
        .map(" ".join)
        .flatmap(lambda k: st.sampled_from([k, k + "*"]))
        .filter(lambda k: len(k.rstrip("*")) >= 2),
        min_size=1,
        max_size=6,
    ),
    text=st.lists(st.sampled_from([*VOCAB, ",", ".", "  ", "\n"]), max_size=12).map(" ".join),
)
@settings(max_examples=400, deadline=None)
@example(keywords=["i \u0131ll"], text="i ill")  # a phrase once matched case-insensitively
@example(keywords=["\u0131ll \u0131ll"], text="ill \u0131ll")
def test_matcher_agrees_with_one_regex_per_keyword(keywords: list[str], text: str) -> None:
    assert _matcher(*keywords).match(text) == {"g": _oracle(keywords, text)}


STEM_VOCAB = ["ra", "ras", "rash", "rashe", "brash", "rea", "reac", "reaction", "ıll", "ill", "si"]


@given(
    groups=st.lists(
        st.lists(
            st.sampled_from([*STEM_VOCAB, *VOCAB])
            .filter(lambda k: len(k) >= 2)
            .flatmap(lambda k: st.sampled_from([k, k + "*"])),
            min_size=1,
            max_size=5,
        ),
        min_size=1,
        max_size=4,
    ),
    text=st.lists(
        st.sampled_from([*STEM_VOCAB, *VOCAB, "reactions", "rashly", ",", "\n"]), max_size=12
    ).map(" ".join),
)
@settings(max_examples=400, deadline=None)
@example(groups=[["ras*"], ["rash*"], ["ra*"]], text="rashes")  # one table key, three groups
@example(groups=[["rea*"], ["reaction*"]], text="reactor")  # same key, only the shorter stem
def test_groups_share_one_stem_table_and_agree_with_one_regex_per_keyword(
    groups: list[list[str]], text: str
) -> None:
    """Stems of every group are looked up in one table (by their first three characters, shorter
    ones apart); each group still answers as its own keywords do."""
    keyword_groups = {
        f"g{i}": KeywordGroup(description="test", keywords=keywords)
        for i, keywords in enumerate(groups)
    }
    expected = {f"g{i}": _oracle(keywords, text) for i, keywords in enumerate(groups)}
    assert KeywordMatcher(keyword_groups).match(text) == expected
