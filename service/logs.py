"""JSON log lines. Decision lines carry ids, outcomes and timings, never message text."""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

from engine.decide.record import DecisionRecord


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        # What json.dumps(entry, ensure_ascii=False) does, without a new encoder per line; for
        # what pydantic's encoder cannot write (it writes more types than json does).
        self._encode = json.JSONEncoder(ensure_ascii=False).encode
        self._second: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    def _timestamp(self, record: logging.LogRecord) -> str:
        # Whole seconds: every line within one second has the same text, so format it once.
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, self.formatTime(record, "%Y-%m-%dT%H:%M:%S"))
        return self._second[1]

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["msg"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__  # no traceback text: it may hold input
        try:
            # Compact JSON, non-ASCII as is: a quarter of json's time for a decision line.
            return to_json(entry).decode("utf-8")
        except PydanticSerializationError:
            return self._encode(entry)


def configure_logging(level: str) -> None:
    """One JSON line per event on stderr, for the process (``switchboard serve`` calls it once).

    The lines carry none of the caller's file, thread or process: logging's documented switches
    (the "Optimization" section of the logging HOWTO) stop it from looking them up for each line.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # the HOWTO's switch for the caller lookup
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("switchboard")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def decision_fields(record: DecisionRecord) -> dict[str, Any]:
    return {
        "event": "decision",
        "decision_id": record.decision_id,
        "policy": record.policy.id,
        "revision": record.policy.revision,
        "channel": record.channel.value,
        "category": record.category.value,
        "confidence": record.confidence,
        "review": record.requires_human_review,
        "degraded": record.degraded,
        "llm_status": record.llm.status.value,
        "rules": [r.id for r in record.rules_fired],
        "next_step": record.next_step,
        "total_ms": record.timings.total_ms,
        "llm_ms": record.timings.llm_ms,
    }
