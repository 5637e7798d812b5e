"""Where committed hand-offs go: the ``Integrations`` a dispatcher delivers through.

``deliver`` returns once the receiving side has taken responsibility for the message (for
RabbitMQ: the publisher confirm), raises ``BrokerUnavailableError`` when the transport is down
(the hand-off stays pending, nothing is counted against it) and ``HandOffRejectedError`` when this
one message was refused (retried, then a dead letter). ``LoggingIntegrations`` is the broker-less
default: each hand-off becomes a JSON log line, so ``make run`` needs no broker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol


class Integrations(Protocol):
    """The systems hand-offs are delivered to (a broker, or the log)."""

    name: str

    async def deliver(self, message: Mapping[str, Any]) -> None: ...

    async def close(self) -> None: ...


class _AsJson:
    """A log message that is its fields as JSON, encoded only if a handler formats the message
    (the service's JSON formatter writes ``fields`` and never does)."""

    __slots__ = ("fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return json.dumps(self.fields)


class LoggingIntegrations:
    """Broker-less stand-in for ticketing, review queues and the safety database: logs each
    hand-off as JSON (``event: handed_off``) and counts it as delivered."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("switchboard.integrations")

    async def deliver(self, message: Mapping[str, Any]) -> None:
        fields = {"event": "handed_off", **message}
        self._log.info("%s", _AsJson(fields), extra={"fields": fields})

    async def close(self) -> None:
        return None


class RecordingIntegrations:
    """Keeps every delivered message in memory (tests). ``fail_with`` makes each delivery raise
    that error instead, to drive the dispatcher's retry and dead-letter paths."""

    name = "memory"

    def __init__(self) -> None:
        self.delivered: list[dict[str, Any]] = []
        self.fail_with: BaseException | None = None
        self.attempts = 0

    async def deliver(self, message: Mapping[str, Any]) -> None:
        self.attempts += 1
        if self.fail_with is not None:
            raise self.fail_with
        self.delivered.append(dict(message))

    async def close(self) -> None:
        return None
