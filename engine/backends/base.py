"""The LLM backend contract: one async call from a rendered prompt to label probabilities."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from engine.backends.readout import DEFAULT_READOUT, Readout
from engine.categories import Category, VerdictStatus

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt as chat turns: the static prefix (system + few-shot turns) then the message turn.

    Backends must keep the order so the prefix can be cached between calls.
    """

    messages: tuple[ChatMessage, ...]
    template_hash: str
    readout: Readout = DEFAULT_READOUT
    """The hidden states a backend that has them returns with the verdict (the head's)."""

    @property
    def prefix(self) -> tuple[ChatMessage, ...]:
        return self.messages[:-1]


@dataclass(frozen=True)
class LabelVerdict:
    """What the model said, or why it said nothing. Never raised, always returned."""

    status: VerdictStatus
    probabilities: Mapping[Category, float] = field(default_factory=dict)
    raw_output: str = ""
    error: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    method: str = "label_logprobs"
    answers: Mapping[str, float] = field(default_factory=dict)
    """Each allowed answer's probability (over all answers; a category's probability is the sum
    of its answers'). Only informative when a category has several answers (sub-intents)."""
    hidden_state: npt.NDArray[np.float32] | None = field(default=None, repr=False, compare=False)
    """The hidden states the prompt's readout asks for, concatenated (by default the last prompt
    token's final state), from the same decode as the probabilities (embedded backend only).
    Read by a policy's probe head; never written to a decision record (896 floats per state per
    decision would dwarf it)."""

    @property
    def label(self) -> Category | None:
        """The most probable label, or None when the model gave no usable verdict."""
        return top_label(self.probabilities) if self.status is VerdictStatus.OK else None

    @classmethod
    def failed(cls, status: VerdictStatus, error: str, *, latency_ms: float = 0.0) -> LabelVerdict:
        return cls(status=status, error=error, latency_ms=latency_ms, method="none")


@dataclass(frozen=True)
class LabelChoice:
    """An allowed answer: the category and the word the model is asked to answer with."""

    category: Category
    answer: str


@runtime_checkable
class HiddenStateBackend(Protocol):
    """A backend whose verdicts carry ``hidden_state``: the prompt's readout, ``hidden_state_size``
    floats per read, from a model of ``layer_count`` layers."""

    @property
    def model_digest(self) -> str: ...

    @property
    def hidden_state_size(self) -> int: ...

    @property
    def layer_count(self) -> int: ...


@runtime_checkable
class TokenCounter(Protocol):
    """A backend that counts a text's tokens with its model's own tokenizer, as the text would
    be tokenized inside a message (no BOS, no control tokens). Called on the event loop. None:
    this backend cannot count (a wrapper around one that has no tokenizer)."""

    def count_tokens(self, text: str) -> int | None: ...


@runtime_checkable
class LLMBackend(Protocol):
    """A model that scores the allowed labels for a prompt.

    Implementations turn every failure (timeout, connection error, garbage) into a
    ``LabelVerdict`` with a non-ok status; they never raise to the caller.
    """

    @property
    def name(self) -> str: ...

    @property
    def model_id(self) -> str: ...

    @property
    def model_digest(self) -> str: ...

    async def score(
        self, prompt: RenderedPrompt, choices: Sequence[LabelChoice], *, deadline_s: float
    ) -> LabelVerdict: ...

    async def probe(self) -> bool:
        """True when the backend can answer right now (used by readiness checks)."""
        ...

    async def aclose(self) -> None: ...


def top_label(probabilities: Mapping[Category, float]) -> Category | None:
    """The most probable label (the one argmax), None for no probabilities."""
    return max(probabilities, key=probabilities.__getitem__) if probabilities else None


def answer_probabilities(
    scores: Sequence[float], choices: Sequence[LabelChoice]
) -> tuple[dict[str, float], dict[Category, float]]:
    """Per-answer log-probability masses (one per choice, in order) into each answer's
    probability over all answers, and each category's: the sum of its answers'.

    The one place sub-intent answers map onto categories; with one answer per category it is
    the plain softmax over the three labels.
    """
    top = max(scores)
    exp = [math.exp(v - top) for v in scores]
    total = sum(exp)
    answers: dict[str, float] = {}
    categories: dict[Category, float] = {}
    for choice, value in zip(choices, exp, strict=True):
        p = value / total
        answers[choice.answer] = p
        categories[choice.category] = categories.get(choice.category, 0.0) + p
    return answers, categories


def renormalise(scores: Mapping[Category, float]) -> dict[Category, float]:
    """Softmax: per-label log-probabilities into probabilities that sum to one over the labels.

    The one softmax: backends use it on label log-probabilities, calibration on scaled ones.
    """
    top = max(scores.values())
    exp = {c: math.exp(v - top) for c, v in scores.items()}
    total = sum(exp.values())
    return {c: v / total for c, v in exp.items()}
