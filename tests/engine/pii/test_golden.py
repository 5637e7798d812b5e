"""Today's ``PresidioRedactor`` redacts every corpus line exactly as the pre-speed-up one did.

``golden.json`` holds the redactions of ``corpus.csv`` (917 lines: this package's and the service
tests' PII messages, the benchmark's PII message and its variants, every message of
``eval/data/*.csv``, and synthetic lines with emails, phones in many national and international
formats, cards, SSNs, IPs, IBANs, URLs and dates of birth) made by ``engine/pii/presidio.py``
before the pre-scan and the phone and context speed-ups; its header names the command and the
commit. A difference here is a redaction gained or lost.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.pii.presidio import PresidioRedactor
from tests.engine.pii.record_golden import (
    CONFIGS,
    GOLDEN,
    as_record,
    corpus_digest,
    read_corpus,
)


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    recorded: dict[str, Any] = json.loads(GOLDEN.read_text("utf-8"))
    return recorded


def test_the_golden_file_is_for_this_corpus(golden: dict[str, Any]) -> None:
    assert golden["corpus_sha256"] == corpus_digest(), (
        "corpus.csv changed since golden.json was recorded: re-record it with the command in "
        "its header (from a commit before any change to redaction)"
    )
    assert golden["generated_by"].startswith(".venv/bin/python -m tests.engine.pii.record_golden")


@pytest.mark.parametrize("config", CONFIGS)
def test_redaction_matches_the_golden_output(golden: dict[str, Any], config: str) -> None:
    redactor = PresidioRedactor(CONFIGS[config]())
    expected = golden["configs"][config]
    corpus = read_corpus()
    assert len(expected) == len(corpus)
    differences = [
        (text_id, text, expected[text_id], got)
        for text_id, text in corpus
        if (got := as_record(redactor.redact(text))) != expected[text_id]
    ]
    assert differences == [], f"{len(differences)} lines differ, first: {differences[0]}"
