"""A cheap, exact test that rules a regex search out: substrings every match must contain.

Keyword groups search casefolded text with case-insensitive regexes, and most of them find
nothing in most messages; scanning 2,000 characters costs tens of microseconds per regex.
``GuardedPattern`` reads a compiled pattern's parse tree once, at policy load, for the literal
text any match must contain ("pill" or "tablet" ..., then "crushed" or ...), and runs the regex
only when those substrings are present (``in``: a C substring search). It never guesses: a
construct it does not understand requires nothing, and a text holding a character that matches an
ASCII letter case-insensitively (dotless i, long s, dotted capital I, the Kelvin sign) is
always searched.
"""

from __future__ import annotations

import importlib
import re
import string
from collections.abc import Iterable
from typing import Any

# The parser re.compile itself uses (private; re._parser on Python 3.11+, sre_parse before).
# Imported by name: whether type checkers know re's private submodules depends on what else
# they happen to load, so a typed import needs a type: ignore that is sometimes unused.
try:
    _sre: Any = importlib.import_module("re._constants")
    _sre_parse: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - Python 3.10
    _sre = importlib.import_module("sre_constants")
    _sre_parse = importlib.import_module("sre_parse")

# The only non-ASCII characters that re.IGNORECASE matches with an ASCII character (dotted
# capital I, dotless i, long s, Kelvin sign).
# tests/engine/decide/test_prefilter.py derives this set from ``re`` over all of Unicode (too slow
# to do at import), so a Python whose case tables differ fails the tests, not silently here.
ASCII_LOOKALIKES = "\u0130\u0131\u017f\u212a"
_LOOKALIKE = re.compile(f"[{ASCII_LOOKALIKES}]")
# Casefolded text never holds an ASCII capital: each lookalike stands for one of the others.
_LOOKALIKE_OF = {
    char: next(
        a
        for a in map(chr, range(128))
        if a not in string.ascii_uppercase and re.fullmatch(re.escape(char), a, re.IGNORECASE)
    )
    for char in ASCII_LOOKALIKES
}
_REPEATS = {
    op
    for op in (
        getattr(_sre, "MAX_REPEAT", None),
        getattr(_sre, "MIN_REPEAT", None),
        getattr(_sre, "POSSESSIVE_REPEAT", None),
    )
    if op is not None
}
_ATOMIC = getattr(_sre, "ATOMIC_GROUP", None)
_MAX_GROUPS = 3  # the most selective requirements kept per pattern: each costs a scan


def prefilter_applies(folded: str) -> bool:
    """Whether substring tests are exact for ``folded``: no character there is a case-insensitive
    match for a different ASCII character."""
    return folded.isascii() or _LOOKALIKE.search(folded) is None


Alternative = tuple[tuple[str, ...], ...]
"""Groups of ASCII strings: a text holds this alternative when it holds one string of each."""


class GuardedPattern:
    """A compiled regex, and what a text must hold for the regex to match in it."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.alternatives = required_substrings(pattern)

    def search(self, folded: str, prefilter: bool) -> bool:
        """``pattern.search(folded)``, skipped when ``prefilter`` holds and no alternative does.

        ``prefilter`` is ``prefilter_applies(folded)``, computed once per text by the caller.
        """
        if prefilter and self.alternatives and not _holds_one(self.alternatives, folded):
            return False
        return self.pattern.search(folded) is not None


def _holds_one(alternatives: tuple[Alternative, ...], folded: str) -> bool:
    # Plain loops: this runs for every pattern and message, and generators cost twice as much.
    for alternative in alternatives:
        for group in alternative:
            for needle in group:
                if needle in folded:
                    break
            else:  # no string of this group: the alternative is absent
                break
        else:  # every group present
            return True
    return False


def guard_alternation(sources: list[str], flags: int) -> tuple[GuardedPattern, ...]:
    """Guards for ``re.compile("|".join(sources), flags)``: one per source when each source
    compiled alone matches exactly where it matches inside the alternation, so only the sources
    whose substrings are present run; else one guard for the whole alternation.

    Alone and inside the alternation differ only when a source refers to a group by number or
    name (the numbers shift) or sets flags for the whole pattern; those keep the alternation.
    The alternation is compiled either way, so a pattern that cannot be combined fails here, at
    load, as it always did.
    """
    combined = re.compile("|".join(sources), flags)
    alone = [re.compile(source, flags) for source in sources]
    if len(alone) < 2 or any(
        part.flags != combined.flags or _refers_to_groups(part) for part in alone
    ):
        return (GuardedPattern(combined),)
    return tuple(GuardedPattern(part) for part in alone)


def _refers_to_groups(pattern: re.Pattern[str]) -> bool:
    references = {getattr(_sre, name, None) for name in ("GROUPREF", "GROUPREF_EXISTS")}
    references.discard(None)

    def walk(node: Any) -> bool:
        if isinstance(node, tuple | list):
            return any(walk(item) for item in node)
        if isinstance(node, _sre_parse.SubPattern):
            return any(op in references or walk(av) for op, av in node)
        return False

    try:
        return walk(_sre_parse.parse(pattern.pattern, pattern.flags))
    except Exception:  # a parser that changed shape: assume the worst
        return True


def required_substrings(pattern: re.Pattern[str]) -> tuple[Alternative, ...]:
    """What a match of ``pattern`` in casefolded text contains: at least one of the alternatives
    (one per top-level ``|`` branch). Empty when nothing is known: the regex then always runs."""
    try:
        parsed = list(_sre_parse.parse(pattern.pattern, pattern.flags))
        if len(parsed) == 1 and parsed[0][0] is _sre.BRANCH:
            branches = list(parsed[0][1][1])
        else:
            branches = [parsed]
        alternatives = [_sequence(branch) for branch in branches]
    except Exception:  # a parser that changed shape: run the regex, as before this existed
        return ()
    if not all(alternatives):  # a branch that requires nothing can match anywhere
        return ()
    return tuple(_ranked(groups) for groups in alternatives)


def _ranked(groups: list[frozenset[str]]) -> Alternative:
    best = sorted(set(groups), key=_selectivity, reverse=True)[:_MAX_GROUPS]
    return tuple(tuple(sorted(g, key=len, reverse=True)) for g in best)


def _selectivity(group: frozenset[str]) -> tuple[int, int]:
    # Longer needles are rarer; among equals, fewer alternatives mean fewer scans.
    return min(len(n) for n in group), -len(group)


def _ascii_equivalent(code: int) -> str | None:
    """The ASCII character, as casefolded text has them, that re.IGNORECASE matches with ``code``;
    None when only non-ASCII characters match it."""
    if code < 128:
        return chr(code).lower()
    return _LOOKALIKE_OF.get(chr(code))


def _sequence(items: Iterable[tuple[Any, Any]]) -> list[frozenset[str]]:
    """Requirements of a sequence: each literal run, and what each required element needs."""
    groups: list[frozenset[str]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            groups.append(frozenset(["".join(run)]))
            run.clear()

    for op, av in items:
        if op is _sre.LITERAL:
            ascii_char = _ascii_equivalent(av)
            if ascii_char is None:  # matches only non-ASCII text: split the run here
                flush()
            else:
                run.append(ascii_char)
            continue
        flush()
        if op is _sre.SUBPATTERN:
            groups += _sequence(av[-1])
        elif op is _ATOMIC:
            groups += _sequence(av)
        elif op in _REPEATS and av[0] >= 1:
            groups += _sequence(av[2])
        elif op is _sre.BRANCH and (alternatives := _branch(av[1])) is not None:
            groups.append(alternatives)
        # Anything else (classes, anchors, lookarounds, backreferences) requires no literal.
    flush()
    return groups


def _branch(alternatives: Iterable[Iterable[tuple[Any, Any]]]) -> frozenset[str] | None:
    """One of the alternatives matches, so one of their (best) requirements is present."""
    needles: set[str] = set()
    for alternative in alternatives:
        groups = _sequence(alternative)
        if not groups:
            return None
        best: frozenset[str] = max(groups, key=_selectivity)
        needles |= best
    return frozenset(needles)
