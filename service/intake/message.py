"""An intake message (queue or batch line): parsed, bounded, or refused with the reason.

A message is ``{"message_id": ..., "message": ..., "channel": ..., "tenant": ..., "policy": ...,
"metadata": ...}`` (``text`` is accepted for ``message``, ``id`` for ``message_id``). What
cannot be decided (not JSON or not UTF-8 text, no id or one over 255 bytes, no text, an unknown
channel, too large) is a ``PoisonMessageError`` that says why: the consumer sends it to the
dead-letter queue, the batch writes it to its output as an error line. An unknown tenant or
policy, or a tenant whose region this process does not serve, is found when the message is
placed (``service.intake.intake``), with the same error.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from engine.categories import Channel
from engine.errors import SwitchboardError

_NAMESPACE = uuid.UUID("6b1f3c52-9d0e-4b7a-8a43-2f5d1c9e7a10")
MAX_MESSAGE_ID_BYTES = 255  # an AMQP short string: the id returns as the result's correlation id


class PoisonMessageError(SwitchboardError):
    """A message that can never be decided; ``reason`` is a short code, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class IntakeMessage:
    message_id: str
    message: str
    channel: Channel = Channel.CHAT
    policy: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None

    @classmethod
    def from_json(cls, raw: bytes, *, max_bytes: int, max_chars: int) -> IntakeMessage:
        if len(raw) > max_bytes:
            raise PoisonMessageError("oversize", f"{len(raw)} bytes; the limit is {max_bytes}")
        data = json_object(raw)
        return cls.from_fields(data, max_chars=max_chars)

    @classmethod
    def from_fields(cls, data: dict[str, Any], *, max_chars: int) -> IntakeMessage:
        message_id = data.get("message_id", data.get("id"))
        text = data.get("message", data.get("text"))
        if not isinstance(message_id, (str, int)) or not str(message_id).strip():
            raise PoisonMessageError("no_message_id", "every message needs 'message_id'")
        if len(str(message_id).encode(errors="replace")) > MAX_MESSAGE_ID_BYTES:
            raise PoisonMessageError(
                "invalid_message_id",
                f"'message_id' is over {MAX_MESSAGE_ID_BYTES} bytes of UTF-8",
            )
        if not isinstance(text, str) or not text.strip():
            raise PoisonMessageError("no_text", "'message' must be non-empty text")
        if len(text) > max_chars:
            raise PoisonMessageError("oversize", f"{len(text)} characters; limit {max_chars}")
        try:
            channel = Channel(data.get("channel") or "chat")
        except ValueError as exc:
            raise PoisonMessageError(
                "unknown_channel", f"{data.get('channel')!r}: use chat, email or voice"
            ) from exc
        policy = data.get("policy") or None
        tenant = data.get("tenant") or None
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise PoisonMessageError("invalid_metadata", "'metadata' must be an object")
        return cls(
            str(message_id),
            text,
            channel,
            str(policy) if policy else None,
            metadata,
            str(tenant) if tenant else None,
        )


def json_object(raw: bytes | str) -> dict[str, Any]:
    """One message's JSON object, or ``PoisonMessageError("invalid_json", why)``."""
    try:
        data = json.loads(raw)
        # JSON may escape a lone surrogate (``"\\ud800"``), which no UTF-8 text holds: the
        # store, the results queue and the log could never write it.
        json.dumps(data, ensure_ascii=False).encode()
    except (ValueError, RecursionError) as exc:
        # Not only JSONDecodeError and UnicodeDecodeError: an integer of over 4,300 digits is
        # a ValueError, nesting deeper than the stack a RecursionError, a lone surrogate a
        # UnicodeEncodeError. Each is the message's fault: refuse it, never retry it.
        raise PoisonMessageError("invalid_json", str(exc)[:200]) from exc
    if not isinstance(data, dict):
        raise PoisonMessageError("invalid_json", "expected a JSON object")
    return data


def decision_id_for(tenant_id: str, policy_id: str, message_id: str) -> str:
    """The decision id of a tenant's message: the same message always maps to the same id, and
    two tenants' messages never share one."""
    return uuid.uuid5(_NAMESPACE, f"{tenant_id}\x00{policy_id}\x00{message_id}").hex
