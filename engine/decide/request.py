"""What a decision starts from and carries between stages: the request, the prepared message
(``Preparer``'s output) and, for a traced decision, what the record was made from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.backends.base import LabelVerdict, RenderedPrompt
from engine.categories import Channel
from engine.decide.record import DecisionRecord


@dataclass(frozen=True)
class DecisionRequest:
    message: str
    channel: Channel = Channel.CHAT
    metadata: Mapping[str, Any] = field(default_factory=dict)
    decision_id: str | None = None


@dataclass(frozen=True)
class Prepared:
    """A message made ready for the model: normalised, redacted, keyword-matched."""

    request: DecisionRequest
    decision_id: str
    received_at: datetime
    redacted: str
    redaction: str
    keywords: Mapping[str, bool]
    redaction_ms: float
    started: float


@dataclass(frozen=True)
class Traced:
    """A decision with what it was made from (``Engine.decide_traced``)."""

    record: DecisionRecord
    prepared: Prepared
    prompt: RenderedPrompt | None
    verdict: LabelVerdict
