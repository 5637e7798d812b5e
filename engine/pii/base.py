"""The PII redaction contract: text in, text with typed placeholders out.

The engine redacts before the model, the logs or the record see a message. A redactor that fails
raises ``RedactionFailedError``; the engine then does not call the model (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Redacted:
    text: str
    entities: tuple[str, ...]  # entity types found, e.g. ("EMAIL_ADDRESS", "PHONE_NUMBER")


class Redactor(Protocol):
    def redact(self, text: str) -> Redacted: ...
