"""Matches a policy's keyword groups against a message in Python, before the model runs.

Results enter the rules' facts as booleans; durable-rules never sees message text (its pattern
dialect misses alternations and non-ASCII, see the design notes). Matching is casefolded and on
word boundaries, so "rash" matches "a Rash" but not "brash"; "reaction*" matches "reactions".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from engine.policy.model import KeywordGroup


def fold(text: str) -> str:
    """Casefold and normalise so full-width, upper- and lower-case letters compare equal."""
    return unicodedata.normalize("NFKC", text).casefold()


class KeywordMatcher:
    """One compiled alternation per group; built once per policy revision."""

    def __init__(self, groups: Mapping[str, KeywordGroup]) -> None:
        self._groups: dict[str, re.Pattern[str] | None] = {}
        for name, group in groups.items():
            parts = [
                _keyword_pattern(k) for k in sorted(set(group.keywords), key=len, reverse=True)
            ]
            parts += [f"(?:{p})" for p in group.patterns]
            self._groups[name] = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self._groups)

    def match(self, text: str) -> dict[str, bool]:
        folded = fold(text)
        return {
            name: bool(pattern is not None and pattern.search(folded))
            for name, pattern in self._groups.items()
        }


def _keyword_pattern(keyword: str) -> str:
    # Flexible whitespace inside phrases; word boundaries only where the keyword has word chars;
    # a trailing '*' matches any word ending ("side effect*" matches "side effects").
    stem = keyword.endswith("*")
    words = [re.escape(w) for w in fold(keyword.rstrip("*")).split()]
    body = r"\s+".join(words)
    head = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
    tail = r"\w*" if stem else (r"(?!\w)" if re.search(r"\w$", keyword) else "")
    return f"{head}{body}{tail}"
