"""The hand-off message format: the schema file in the repo is the one generated from the model,
and what the engine emits validates against it."""

from __future__ import annotations

import json

import jsonschema
import pytest

from engine.cli import main
from engine.decide.record import handoff_schema
from service.delivery.cli import SCHEMA_FILE, schema_text
from tests.conftest import REPO
from tests.service.audit.test_outbox import with_handoff


def test_the_schema_file_is_the_generated_one() -> None:
    on_disk = (REPO / SCHEMA_FILE).read_text(encoding="utf-8")
    assert on_disk == schema_text(), "run `switchboard handoffs schema --write` and commit it"


def test_a_handoff_validates_and_a_broken_one_does_not() -> None:
    message = with_handoff(1).handoffs[0].model_dump(mode="json")
    validator = jsonschema.Draft202012Validator(handoff_schema())
    validator.validate(message)
    assert message["schema_version"] == 1
    with pytest.raises(jsonschema.ValidationError, match="idempotency_key"):
        validator.validate({k: v for k, v in message.items() if k != "idempotency_key"})


def test_the_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["handoffs", "schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "HandOff"
