"""Matches a policy's keyword groups against a message in Python, before the model runs.

Results enter the rules' facts as booleans; durable-rules never sees message text (its pattern
dialect misses alternations and non-ASCII, see the design notes). Matching is casefolded and on
word boundaries, so "rash" matches "a Rash" but not "brash"; "reaction*" matches "reactions".
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.decide.prefilter import GuardedPattern, guard_alternation, prefilter_applies
from engine.policy.rules import KeywordGroup

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\uff07": "'"})


def fold(text: str) -> str:
    """Casefold and normalise: full-width, upper/lower case and typographic apostrophes."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_QUOTES)


_WORD = re.compile(r"\w+")
_SINGLE_WORD = re.compile(r"^\w+$")
_FIRST_WORD = re.compile(r"^(\w+)(?=\W)")  # a phrase's first whole word, as _WORD splits it


@dataclass(frozen=True)
class _Phrase:
    words: frozenset[str]  # whole words of the text in every match (ASCII; see _whole_words)
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class _CompiledGroup:
    words: frozenset[str]  # whole single words
    stems: tuple[str, ...]  # single-word prefixes ("reaction*"), matched by ``_StemIndex``
    phrases: Mapping[str, tuple[_Phrase, ...]]  # multi-word phrases, by their first word
    always: tuple[GuardedPattern, ...]  # regexes, and phrases that do not start with a word

    def search(self, folded: str, words: set[str], stem_hit: bool, prefilter: bool) -> bool:
        """``stem_hit``: a word of the text starts with one of ``stems``; ``prefilter`` is
        ``prefilter_applies(folded)``."""
        if stem_hit or not self.words.isdisjoint(words):
            return True
        for first in words.intersection(self.phrases):
            for phrase in self.phrases[first]:
                if (not prefilter or phrase.words <= words) and phrase.pattern.search(folded):
                    return True
        return any(pattern.search(folded, prefilter) for pattern in self.always)


_STEM_KEY = 3  # stems are found by their first three characters


class _StemIndex:
    """Every group's stems in one table, so a text's words are looked up once for all groups.

    A word starts with a stem of three or more characters only if its first three characters are
    the stem's: each word is one dict lookup, then ``startswith`` on the few stems sharing that
    key. The rare shorter stem is found by bisecting the sorted words, as before.
    """

    def __init__(self, groups: Mapping[str, _CompiledGroup]) -> None:
        by_key: dict[str, list[tuple[str, str]]] = {}
        short: list[tuple[str, str]] = []
        for name, group in groups.items():
            for stem in group.stems:
                if len(stem) >= _STEM_KEY:
                    by_key.setdefault(stem[:_STEM_KEY], []).append((stem, name))
                else:
                    short.append((stem, name))
        self._by_key = {key: tuple(entries) for key, entries in by_key.items()}
        self._short = tuple(short)

    def groups_hit(self, words: set[str]) -> set[str]:
        """The groups with a stem that some word of ``words`` starts with."""
        hit: set[str] = set()
        by_key = self._by_key
        for word in words if by_key else ():
            entries = by_key.get(word[:_STEM_KEY])
            if entries is not None:
                hit.update(name for stem, name in entries if word.startswith(stem))
        if self._short:
            ordered = sorted(words)
            hit.update(name for stem, name in self._short if _starts_with_any(ordered, (stem,)))
        return hit


def _starts_with_any(ordered: Sequence[str], stems: tuple[str, ...]) -> bool:
    # The words starting with a stem sort together, from the first word not below the stem.
    for stem in stems:
        at = bisect_left(ordered, stem)
        if at < len(ordered) and ordered[at].startswith(stem):
            return True
    return False


class KeywordMatcher:
    """Compiled once per policy revision: single words by set lookup, the rest by regexes that
    run only when the text holds the literal text they need (``engine.decide.prefilter``)."""

    def __init__(self, groups: Mapping[str, KeywordGroup]) -> None:
        self._groups = {name: _compile(group) for name, group in groups.items()}
        self._stems = _StemIndex(self._groups)

    def match(self, text: str, groups: Iterable[str] | None = None) -> dict[str, bool]:
        """Which groups ``text`` matches: every group, or only ``groups`` (in that order)."""
        folded = fold(text)
        words = set(_WORD.findall(folded))
        stem_hits = self._stems.groups_hit(words)
        prefilter = prefilter_applies(folded)
        chosen = self._groups if groups is None else groups
        return {
            name: self._groups[name].search(folded, words, name in stem_hits, prefilter)
            for name in chosen
        }


def _compile(group: KeywordGroup) -> _CompiledGroup:
    words: set[str] = set()
    stems: set[str] = set()
    by_first: dict[str, list[_Phrase]] = {}
    always: list[str] = []
    for keyword in sorted(set(group.keywords), key=len, reverse=True):
        body = fold(keyword.rstrip("*")).strip()
        if _SINGLE_WORD.match(body):
            (stems if keyword.endswith("*") else words).add(body)
            continue
        first = _FIRST_WORD.match(body)
        if first is None:
            always.append(_keyword_pattern(keyword))
            continue
        # One regex per phrase (they have no groups, so alone each matches as in an alternation).
        # Case-sensitive: text and keyword are both casefolded, and re.IGNORECASE would add
        # matches a single word does not get (a dotless i, U+0131, would match "i").
        pattern = re.compile(_keyword_pattern(keyword))
        by_first.setdefault(first.group(1), []).append(_Phrase(_whole_words(keyword), pattern))
    always += [f"(?i:{p})" for p in group.patterns]  # a policy's own regexes ignore case
    return _CompiledGroup(
        frozenset(words),
        tuple(sorted(stems)),
        {w: tuple(phrases) for w, phrases in by_first.items()},
        guard_alternation(always, 0) if always else (),
    )


def _whole_words(keyword: str) -> frozenset[str]:
    """The words every match of ``_keyword_pattern(keyword)`` holds as whole words of the text:
    each word the pattern bounds on both sides, so all but a last word left open (a trailing '*',
    or no word boundary after it). Empty for a keyword with a non-ASCII character, whose words
    a case-insensitive match may spell differently (see ``engine.decide.prefilter``)."""
    text = fold(keyword.rstrip("*"))
    if not text.isascii():
        return frozenset()
    found = _WORD.findall(text)
    closed = not keyword.endswith("*") and re.search(r"\w$", keyword) is not None
    if found and not closed and _WORD.fullmatch(text.rstrip()[-1]):
        found.pop()
    return frozenset(found)


def _keyword_pattern(keyword: str) -> str:
    # Flexible whitespace inside phrases; word boundaries only where the keyword has word chars;
    # a trailing '*' matches any word ending ("side effect*" matches "side effects").
    stem = keyword.endswith("*")
    words = [re.escape(w) for w in fold(keyword.rstrip("*")).split()]
    body = r"\s+".join(words)
    head = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
    tail = r"\w*" if stem else (r"(?!\w)" if re.search(r"\w$", keyword) else "")
    return f"{head}{body}{tail}"
