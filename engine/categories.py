"""The closed vocabularies the engine shares: categories, verdict statuses, channels."""

from __future__ import annotations

from enum import Enum


class Category(str, Enum):
    """What a message is about, and so which workflow handles it."""

    INFORMATIONAL = "informational"
    SERVICE_ACTION = "service_action"
    SAFETY_COMPLIANCE = "safety_compliance"


class VerdictStatus(str, Enum):
    """How the model call ended. Anything but ``ok`` means the model's label is not used."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    INVALID = "invalid"
    SKIPPED = "skipped"  # not called: overload, open circuit, failed redaction


class Channel(str, Enum):
    """Where the message came from; each channel has its own normalisation."""

    CHAT = "chat"
    EMAIL = "email"
    VOICE = "voice"


CATEGORIES: tuple[Category, ...] = tuple(Category)
