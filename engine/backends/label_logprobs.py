"""Label probabilities from a server's reported token log-probabilities (Ollama, OpenAI API).

The servers report, for each generated token, the top-N alternatives with their
log-probabilities. The label probabilities come from the alternatives at the first generated
(non-whitespace) position: each alternative whose text, left-stripped and casefolded, is a
prefix of exactly one allowed answer (or has that answer as its prefix) adds its probability to
that answer, so a label the tokenizer splits ("s" + "afety") still gets its first token's mass.
Labels that got no mass share a floor well below the smallest reported alternative, then
everything is renormalised over the allowed labels (``METHOD``).

When a server sends no log-probabilities the generated text can still be parsed
(``parse_label``); ``uncalibrated`` gives that label a declared, unmeasured confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from engine.backends.base import LabelChoice, answer_probabilities
from engine.categories import Category

METHOD = "top_logprobs"
FALLBACK_CONFIDENCE = 0.6
"""Probability given to the parsed label when the server returns no logprobs (declared, not
measured)."""
_FLOOR_GAP = math.log(10.0)
_PUNCTUATION = "\"'`*_.,:;!?()[]{}<>"


class TokenLogprob(Protocol):
    """One token and its log-probability (``ollama``'s ``Logprob``, ``TokenAlternative``)."""

    @property
    def token(self) -> str: ...
    @property
    def logprob(self) -> float: ...


class Position(TokenLogprob, Protocol):
    """A generated token with the alternatives the server reported for its position."""

    @property
    def top_logprobs(self) -> Sequence[TokenLogprob] | None: ...


@dataclass(frozen=True)
class TokenAlternative:
    """A plain ``Position``/``TokenLogprob`` for servers whose JSON is decoded by hand."""

    token: str
    logprob: float
    top_logprobs: Sequence[TokenAlternative] | None = field(default=None)


def answer_and_label_probabilities(
    positions: Sequence[Position], choices: Sequence[LabelChoice]
) -> tuple[dict[str, float], dict[Category, float]] | None:
    """Each answer's probability over all answers and each label's (the sum of its answers'),
    or None when no alternative names an answer."""
    scores = answer_logprobs(positions, choices)
    return None if scores is None else answer_probabilities(scores, choices)


def answer_logprobs(
    positions: Sequence[Position], choices: Sequence[LabelChoice]
) -> list[float] | None:
    """Per-answer log-probability mass (in ``choices`` order) from the first non-whitespace
    position's alternatives; answers that got none share a floor below the smallest one."""
    if not positions:
        return None
    first = next((lp for lp in positions if lp.token.strip()), positions[0])
    alternatives: Sequence[TokenLogprob] = first.top_logprobs or [first]
    mass: dict[int, float] = {}
    for alt in alternatives:
        index = _match_answer(alt.token.lstrip().casefold(), choices)
        if index is None or not math.isfinite(alt.logprob):
            continue
        seen = mass.get(index)
        mass[index] = alt.logprob if seen is None else _logaddexp(seen, alt.logprob)
    if not mass:
        return None
    finite = [alt.logprob for alt in alternatives if math.isfinite(alt.logprob)]
    floor = min(finite) - _FLOOR_GAP
    return [mass.get(i, floor) for i in range(len(choices))]


def _match_answer(text: str, choices: Sequence[LabelChoice]) -> int | None:
    """The index of the one choice whose answer starts with ``text`` or is a prefix of it."""
    hits = _answers_matching(text, choices)
    return hits[0] if len(hits) == 1 else None


def _answers_matching(text: str, choices: Sequence[LabelChoice]) -> list[int]:
    if not text:
        return []
    return [
        i
        for i, c in enumerate(choices)
        if (answer := c.answer.casefold()).startswith(text) or text.startswith(answer)
    ]


def match_label(text: str, choices: Sequence[LabelChoice]) -> Category | None:
    """The one category whose answers alone start with ``text`` or are a prefix of it."""
    hits = {choices[i].category for i in _answers_matching(text, choices)}
    return hits.pop() if len(hits) == 1 else None


def _logaddexp(a: float, b: float) -> float:
    top = max(a, b)
    return top + math.log(math.exp(a - top) + math.exp(b - top))


def parse_label(text: str, choices: Sequence[LabelChoice]) -> Category | None:
    """The label named by the first word of the generated text (possibly cut short)."""
    words = text.casefold().strip().lstrip(_PUNCTUATION).split()
    return match_label(words[0].rstrip(_PUNCTUATION), choices) if words else None


def uncalibrated(label: Category, choices: Sequence[LabelChoice]) -> dict[Category, float]:
    """``FALLBACK_CONFIDENCE`` for ``label``, the rest shared evenly by the others."""
    others = [c.category for c in choices if c.category is not label]
    share = (1.0 - FALLBACK_CONFIDENCE) / len(others) if others else 0.0
    probabilities = dict.fromkeys(others, share)
    probabilities[label] = FALLBACK_CONFIDENCE if others else 1.0
    return probabilities
