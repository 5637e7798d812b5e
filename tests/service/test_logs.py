"""JSON log lines: one object per line, the event's fields, never a traceback's text."""

from __future__ import annotations

import json
import logging
import sys

from service.logs import JsonFormatter


def _record(fields: object, *, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("the customer's message")  # a real exc_info
        except ValueError:
            info = sys.exc_info()
    record = logging.LogRecord("switchboard.decisions", logging.INFO, "", 0, "decision", (), info)
    record.fields = fields
    return record


def test_a_line_is_the_events_fields_as_one_json_object() -> None:
    fields = {"event": "decision", "category": "informational", "rules": ["a"], "ms": 1e-05}
    line = JsonFormatter().format(_record({**fields, "note": "Übelkeit"}))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "INFO"
    assert parsed["logger"] == "switchboard.decisions"
    assert {k: parsed[k] for k in fields} == fields
    assert "Übelkeit" in line  # non-ASCII written as is


def test_an_error_names_its_class_only() -> None:
    line = JsonFormatter().format(_record({"event": "audit_write_failed"}, exc=True))
    assert json.loads(line)["error"] == "ValueError"
    assert "customer" not in line


def test_a_line_without_fields_carries_the_message() -> None:
    assert json.loads(JsonFormatter().format(_record(None)))["msg"] == "decision"


def test_a_value_json_cannot_write_fails_as_before() -> None:
    class Opaque:
        pass

    try:
        JsonFormatter().format(_record({"event": "x", "value": Opaque()}))
    except TypeError:
        return
    raise AssertionError("an unserialisable value must not be written")
