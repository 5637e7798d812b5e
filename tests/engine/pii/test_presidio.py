"""Presidio redaction: placeholders, custom patterns, config errors, failures, threads, offline."""

from __future__ import annotations

import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import tldextract

from engine.errors import RedactionConfigError, RedactionFailedError, SwitchboardError
from engine.pii.base import Redacted
from engine.pii.prescan import PreScan
from engine.pii.presidio import PresidioRedactor
from engine.policy.loader import load_policy
from engine.policy.model import Redaction
from tests.conftest import DEFAULT_POLICY, PROMPTS

EMAIL = "jo.smith@example.co.uk"
PHONE = "+1 415-555-0100"
CARD = "4111 1111 1111 1111"
PII_MESSAGE = f"Hi, it's Jo. Email me at {EMAIL} or call {PHONE}; my card is {CARD}. Thanks"


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@pytest.fixture(scope="module")
def redactor() -> PresidioRedactor:
    """The default policy's redactor, built once: construction takes a fraction of a second."""
    return PresidioRedactor(load_policy(DEFAULT_POLICY, PROMPTS).policy.redaction)


def test_email_phone_and_card_are_replaced_by_typed_placeholders(
    redactor: PresidioRedactor,
) -> None:
    result = redactor.redact(PII_MESSAGE)

    for secret in (EMAIL, PHONE, CARD):
        assert secret not in result.text
    for number in (PHONE, CARD):
        assert _digits(number) not in _digits(result.text)
        assert _digits(number)[-4:] not in _digits(result.text)
    assert "example.co.uk" not in result.text
    assert _digits(result.text) == ""  # the message has no other digits
    assert "<EMAIL_ADDRESS>" in result.text
    assert "<PHONE_NUMBER>" in result.text
    assert "<CREDIT_CARD>" in result.text
    assert result.text.startswith("Hi, it's Jo. Email me at <EMAIL_ADDRESS> or call")
    assert result.entities == ("CREDIT_CARD", "EMAIL_ADDRESS", "PHONE_NUMBER")


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("call me on +1 415-555-0100 today", "PHONE_NUMBER"),
        ("call me on (415) 555 0100 today", "PHONE_NUMBER"),
        ("call me on 415.555.0100 today", "PHONE_NUMBER"),
        ("ring +44 20 7946 0958 please", "PHONE_NUMBER"),
        ("ring 020 7946 0958 please", "PHONE_NUMBER"),
        ("card 4111-1111-1111-1111 expired", "CREDIT_CARD"),
        ("card 4111111111111111 expired", "CREDIT_CARD"),
        ("card 3782 822463 10005 expired", "CREDIT_CARD"),
        ("write to Jo.Smith+orders@mail.example.com", "EMAIL_ADDRESS"),
        ("my ssn is 123-45-6788", "US_SSN"),
        ("IBAN GB82 WEST 1234 5698 7654 32", "IBAN_CODE"),
        ("from 192.168.1.20", "IP_ADDRESS"),
        ("DOB: 12/03/1985", "DATE_OF_BIRTH"),
    ],
)
def test_default_policy_entities(redactor: PresidioRedactor, text: str, entity: str) -> None:
    result = redactor.redact(text)

    assert f"<{entity}>" in result.text
    assert result.entities == (entity,)
    assert not re.search(r"\d{3}", result.text)


@pytest.mark.parametrize(
    "text",
    [
        "Where is my parcel? It was due on Monday.",
        "Order #12345 arrived damaged, can I get a refund?",
        "",
    ],
)
def test_clean_message_comes_back_unchanged(redactor: PresidioRedactor, text: str) -> None:
    assert redactor.redact(text) == Redacted(text=text, entities=())


def test_custom_patterns_become_recognizers() -> None:
    redactor = PresidioRedactor(
        Redaction(
            entities=["EMAIL_ADDRESS"],
            custom_patterns={
                "DATE_OF_BIRTH": [r"\b(?:dob|born on)\s*:?\s*\d{1,2}/\d{1,2}/\d{4}\b"],
                "MEMBER_ID": [r"\bMBR-\d{6}\b", r"\bmember\s+\d{8}\b"],
            },
        )
    )

    result = redactor.redact("DOB: 02/03/1990, id MBR-123456, member 12345678, a@example.org")

    assert result.text == "<DATE_OF_BIRTH>, id <MEMBER_ID>, <MEMBER_ID>, <EMAIL_ADDRESS>"
    assert result.entities == ("DATE_OF_BIRTH", "EMAIL_ADDRESS", "MEMBER_ID")
    assert redactor.entities == ("DATE_OF_BIRTH", "EMAIL_ADDRESS", "MEMBER_ID")


def test_only_the_policy_entities_are_redacted() -> None:
    redactor = PresidioRedactor(Redaction(entities=["EMAIL_ADDRESS"]))

    result = redactor.redact(f"{EMAIL} {PHONE}")

    assert result == Redacted(text=f"<EMAIL_ADDRESS> {PHONE}", entities=("EMAIL_ADDRESS",))


def test_an_empty_entity_list_redacts_nothing() -> None:
    redactor = PresidioRedactor(Redaction(entities=[]))

    assert redactor.redact(PII_MESSAGE) == Redacted(text=PII_MESSAGE, entities=())


@pytest.mark.parametrize("entity", ["PERSON", "LOCATION", "NOT_A_THING"])
def test_entities_without_an_offline_recognizer_are_rejected(entity: str) -> None:
    with pytest.raises(RedactionConfigError, match=entity) as caught:
        PresidioRedactor(Redaction(entities=["EMAIL_ADDRESS", entity]))

    message = str(caught.value)
    assert "Supported: " in message
    assert "EMAIL_ADDRESS" in message.split("Supported: ")[1]
    assert "PHONE_NUMBER" in message.split("Supported: ")[1]
    assert isinstance(caught.value, SwitchboardError)


def test_a_custom_pattern_can_supply_an_entity_presidio_lacks() -> None:
    redactor = PresidioRedactor(
        Redaction(entities=["PERSON"], custom_patterns={"PERSON": [r"\bMr\.? [A-Z][a-z]+\b"]})
    )

    assert redactor.redact("ask Mr Smith").text == "ask <PERSON>"


def test_an_invalid_custom_regex_is_a_config_error() -> None:
    with pytest.raises(RedactionConfigError, match="MEMBER_ID"):
        PresidioRedactor(Redaction(entities=[], custom_patterns={"MEMBER_ID": ["(unclosed"]}))


def test_a_failure_inside_presidio_fails_closed(
    redactor: PresidioRedactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"boom while reading {EMAIL}")

    monkeypatch.setattr(redactor._analyzer, "analyze", explode)

    with pytest.raises(RedactionFailedError) as caught:
        redactor.redact(PII_MESSAGE)

    assert isinstance(caught.value.__cause__, RuntimeError)
    assert EMAIL not in str(caught.value)  # the error message never carries the text


def test_a_failure_inside_the_anonymizer_fails_closed(
    redactor: PresidioRedactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("bad operator")

    monkeypatch.setattr(redactor._anonymizer, "anonymize", explode)

    with pytest.raises(RedactionFailedError):
        redactor.redact(PII_MESSAGE)


def test_concurrent_redactions_agree(redactor: PresidioRedactor) -> None:
    texts = [
        PII_MESSAGE,
        "Where is my parcel? It was due on Monday.",
        f"ring +44 20 7946 0958 or mail {EMAIL}",
        "my ssn is 123-45-6788 and card 4111-1111-1111-1111",
    ]
    expected = [redactor.redact(text) for text in texts]

    def work(offset: int) -> list[Redacted]:
        return [redactor.redact(texts[(offset + i) % len(texts)]) for i in range(200)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))

    for offset, got in enumerate(results):
        assert got == [expected[(offset + i) % len(texts)] for i in range(200)]


def test_construction_and_redaction_make_no_network_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[str] = []

    def no_connect(self: socket.socket, address: Any) -> None:
        attempts.append(f"connect {address!r}")
        raise OSError("network disabled in this test")

    def no_resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(f"resolve {host!r}")
        raise socket.gaierror("network disabled in this test")

    def no_shared_extractor(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the shared tldextract extractor fetches the suffix list")

    # tldextract swallows network errors and falls back to its snapshot, so record attempts
    # rather than rely on an exception surfacing. Resolution fails before connect does.
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket, "getaddrinfo", no_resolve)
    monkeypatch.setattr(tldextract, "extract", no_shared_extractor)

    redactor = PresidioRedactor(Redaction())
    result = redactor.redact(f"mail {EMAIL} or a.b@sub.example.museum")

    assert result.text == "mail <EMAIL_ADDRESS> or <EMAIL_ADDRESS>"
    assert attempts == []


def test_pipeline_is_renewed_so_the_vocabulary_stays_bounded() -> None:
    """spaCy interns every new token forever; real traffic is full of new tokens."""
    redactor = PresidioRedactor(
        Redaction(entities=["EMAIL_ADDRESS"]), renew_every=50, background=False
    )

    def strings() -> int:
        analyzer: Any = redactor._analyzer
        return len(analyzer.nlp_engine.nlp["en"].vocab.strings)

    sizes = []
    for i in range(400):
        out = redactor.redact(f"order zq{i}x ref kp{i}w mail a{i}@example.com")
        assert out.text.endswith("<EMAIL_ADDRESS>")
        sizes.append(strings())
    assert redactor.renewals >= 7
    assert max(sizes) < min(sizes) + 400  # without renewal it grows by ~4 strings a message


def test_renewal_in_the_background_never_stops_redaction() -> None:
    redactor = PresidioRedactor(Redaction(entities=["EMAIL_ADDRESS"]), renew_every=20)
    first = redactor._analyzer
    served_while_building = 0
    for i in range(21):
        redactor.redact(f"ref kp{i}w mail a{i}@example.com")
    deadline = time.monotonic() + 30
    while redactor.renewals == 0 and time.monotonic() < deadline:
        out = redactor.redact(f"mail b{served_while_building}@example.com")
        assert out.text == "mail <EMAIL_ADDRESS>"
        served_while_building += 1
    assert redactor.renewals == 1
    assert redactor._analyzer is not first
    assert served_while_building > 0  # the old pipeline answered while the new one was built
    assert redactor.redact("mail c@example.com").text == "mail <EMAIL_ADDRESS>"


def test_phone_regions_limit_national_formats_not_international_ones() -> None:
    redactor = PresidioRedactor(Redaction(entities=["PHONE_NUMBER"], phone_regions=["US"]))
    german, british = "030 12345678", "020 7946 0958"
    result = redactor.redact(f"call {german} or {british} or +44 20 7946 0958 or (415) 555 0199")
    # National formats of regions not listed stay (the policy said where its callers are) ...
    assert german in result.text
    assert british in result.text
    # ... while +country-code numbers and the listed region's numbers are always found.
    assert result.text.count("<PHONE_NUMBER>") == 2
    assert "415" not in result.text
    assert "+44" not in result.text

    both = PresidioRedactor(Redaction(entities=["PHONE_NUMBER"], phone_regions=["US", "GB"]))
    assert british not in both.redact(f"call {british}").text


def test_unknown_phone_region_is_a_config_error() -> None:
    with pytest.raises(RedactionConfigError, match="UK"):
        PresidioRedactor(Redaction(entities=["PHONE_NUMBER"], phone_regions=["US", "UK"]))


def test_a_message_the_prescan_clears_never_reaches_presidio(
    redactor: PresidioRedactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("analysed a message that can hold no PII")

    monkeypatch.setattr(redactor._analyzer, "analyze", explode)

    text = "Where is my parcel? It was due on Monday, 3 days ago."
    assert redactor.redact(text) == Redacted(text=text, entities=())


def test_presidio_looks_only_for_the_types_the_prescan_allows(
    redactor: PresidioRedactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[list[str]] = []
    analyze = redactor._analyzer.analyze  # type: ignore[union-attr]

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["entities"])
        return analyze(*args, **kwargs)

    monkeypatch.setattr(redactor._analyzer, "analyze", spy)

    assert redactor.redact(f"mail {EMAIL}").text == "mail <EMAIL_ADDRESS>"
    assert redactor.redact(f"call {PHONE}").text == "call <PHONE_NUMBER>"
    assert asked == [["EMAIL_ADDRESS"], ["PHONE_NUMBER"]]


def test_a_failure_inside_the_prescan_fails_closed(
    redactor: PresidioRedactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(text: str) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(redactor, "_prescan", PreScan(guards=(("EMAIL_ADDRESS", explode),)))

    with pytest.raises(RedactionFailedError):
        redactor.redact("Where is my parcel?")


def test_only_analysed_messages_count_towards_renewal() -> None:
    """Messages the pre-scan clears never reach spaCy, so they add nothing to its vocabulary."""
    redactor = PresidioRedactor(
        Redaction(entities=["EMAIL_ADDRESS"]), renew_every=5, background=False
    )
    for i in range(20):
        redactor.redact(f"where is order {i}?")
    assert redactor.renewals == 0
    for i in range(6):
        redactor.redact(f"mail a{i}@example.com")
    assert redactor.renewals == 1
