"""Matches a policy's keyword groups against a message in Python, before the model runs.

Results enter the rules' facts as booleans; durable-rules never sees message text (its pattern
dialect misses alternations and non-ASCII, see the design notes). Matching is casefolded and on
word boundaries, so "rash" matches "a Rash" but not "brash"; "reaction*" matches "reactions".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from engine.policy.model import KeywordGroup

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\uff07": "'"})


def fold(text: str) -> str:
    """Casefold and normalise: full-width, upper/lower case and typographic apostrophes."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_QUOTES)


_WORD = re.compile(r"\w+")
_SINGLE_WORD = re.compile(r"^\w+$")
_FIRST_WORD = re.compile(r"^(\w+)(?=\W)")  # a phrase's first whole word, as _WORD splits it


@dataclass(frozen=True)
class _CompiledGroup:
    words: frozenset[str]  # whole single words
    stems: tuple[str, ...]  # single-word prefixes ("reaction*")
    phrases: Mapping[str, re.Pattern[str]]  # multi-word phrases, by their first word
    always: re.Pattern[str] | None  # regexes, and phrases that do not start with a word

    def search(self, folded: str, words: set[str]) -> bool:
        if not self.words.isdisjoint(words):
            return True
        if self.stems and any(w.startswith(self.stems) for w in words):
            return True
        for first in words.intersection(self.phrases):
            if self.phrases[first].search(folded):
                return True
        return self.always is not None and self.always.search(folded) is not None


class KeywordMatcher:
    """Compiled once per policy revision: single words by set lookup, the rest by one regex."""

    def __init__(self, groups: Mapping[str, KeywordGroup]) -> None:
        self._groups = {name: _compile(group) for name, group in groups.items()}

    def match(self, text: str) -> dict[str, bool]:
        folded = fold(text)
        words = set(_WORD.findall(folded))
        return {name: group.search(folded, words) for name, group in self._groups.items()}


def _compile(group: KeywordGroup) -> _CompiledGroup:
    words: set[str] = set()
    stems: set[str] = set()
    by_first: dict[str, list[str]] = {}
    always: list[str] = []
    for keyword in sorted(set(group.keywords), key=len, reverse=True):
        body = fold(keyword.rstrip("*")).strip()
        if _SINGLE_WORD.match(body):
            (stems if keyword.endswith("*") else words).add(body)
            continue
        first = _FIRST_WORD.match(body)
        target = by_first.setdefault(first.group(1), []) if first else always
        target.append(_keyword_pattern(keyword))
    always += [f"(?:{p})" for p in group.patterns]
    return _CompiledGroup(
        frozenset(words),
        tuple(sorted(stems)),
        {w: re.compile("|".join(ps), re.IGNORECASE) for w, ps in by_first.items()},
        re.compile("|".join(always), re.IGNORECASE) if always else None,
    )


def _keyword_pattern(keyword: str) -> str:
    # Flexible whitespace inside phrases; word boundaries only where the keyword has word chars;
    # a trailing '*' matches any word ending ("side effect*" matches "side effects").
    stem = keyword.endswith("*")
    words = [re.escape(w) for w in fold(keyword.rstrip("*")).split()]
    body = r"\s+".join(words)
    head = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
    tail = r"\w*" if stem else (r"(?!\w)" if re.search(r"\w$", keyword) else "")
    return f"{head}{body}{tail}"
