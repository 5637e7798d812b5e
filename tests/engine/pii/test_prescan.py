"""The pre-scan never rules out an entity type Presidio would find: property-tested with hypothesis.

For generated text, every entity type Presidio (configured as before the pre-scan, see
``reference.py``) finds must be among ``PreScan.possible(text)``. Plus the guards' unit cases, and
the assumptions the guards rest on: the installed recognizers' patterns are the ones the guards
were derived from, and the ``regex`` module's character classes fit inside the guards' ones.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import pytest
import regex  # type: ignore[import-untyped]  # Presidio's regex engine, to check our classes
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UrlRecognizer,
    UsSsnRecognizer,
)

from engine.pii import prescan
from engine.pii.prescan import PreScan, guard_for
from engine.pii.presidio import PresidioRedactor
from engine.policy.loader import load_policy
from engine.policy.model import Redaction
from tests.conftest import DEFAULT_POLICY, PROMPTS
from tests.engine.pii.reference import entity_types, reference_analyzer
from tests.engine.pii.strategies import EXAMPLE_NUMBERS, pii_texts


def _policy_redaction() -> Redaction:
    return load_policy(DEFAULT_POLICY, PROMPTS).policy.redaction


CONFIGS: dict[str, Callable[[], Redaction]] = {
    # The repository policy: eight default phone regions, a custom DATE_OF_BIRTH pattern.
    "contact-center": _policy_redaction,
    "phone-US-GB": lambda: _policy_redaction().model_copy(update={"phone_regions": ["US", "GB"]}),
    # Every guarded type, and phone regions whose numbers are short or whose national prefix
    # rules add digits.
    "wide": lambda: Redaction(
        entities=[
            "EMAIL_ADDRESS",
            "PHONE_NUMBER",
            "CREDIT_CARD",
            "US_SSN",
            "IBAN_CODE",
            "IP_ADDRESS",
            "URL",
        ],
        phone_regions=["DE", "AT", "SM", "GG", "AG", "MG", "NF", "AR", "NU"],
        custom_patterns={"MEMBER_ID": [r"\bMBR-?\d{6}\b"]},
    ),
}


@pytest.fixture(scope="module")
def pairs() -> dict[str, tuple[PresidioRedactor, AnalyzerEngine, list[str]]]:
    built = {}
    for name, redaction in CONFIGS.items():
        section = redaction()
        built[name] = (
            PresidioRedactor(section),
            reference_analyzer(section),
            entity_types(section),
        )
    return built


def _check(pairs: dict[str, tuple[PresidioRedactor, AnalyzerEngine, list[str]]], text: str) -> None:
    for name, (redactor, reference, entities) in pairs.items():
        ruled_out = sorted(set(entities) - set(redactor._prescan.possible(text)))
        if not ruled_out:
            continue
        # Presidio's findings of one type do not depend on the other types analysed.
        found = reference.analyze(text=text, language="en", entities=ruled_out)
        missed = sorted({finding.entity_type for finding in found})
        assert not missed, f"{name}: the pre-scan ruled out {missed} in {text!r}"


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=pii_texts())
@example(text="mail jo@example.com")
@example(text="call +1 415-555-0100 or 030 1234 or 0151 23456789")
@example(text="card 4111 1111 1111 1111, ssn 123-45-6788, IBAN GB82 WEST 1234 5698 7654 32")
@example(text="from :: or ::1 or 2001:db8::1 or 1:2:3:4:5:6:7:8 or 10.0.0.1")
@example(text="DOB: 12/03/1985, member MBR-123456, see www.example.org")
def test_presidio_finds_nothing_the_prescan_rules_out(
    pairs: dict[str, tuple[PresidioRedactor, AnalyzerEngine, list[str]]], text: str
) -> None:
    _check(pairs, text)


def test_every_example_phone_number_is_allowed_for(
    pairs: dict[str, tuple[PresidioRedactor, AnalyzerEngine, list[str]]],
) -> None:
    """phonenumbers' example number of every type of every region, in every format."""
    for number in EXAMPLE_NUMBERS:
        _check(pairs, f"call {number} today")


def test_the_prescan_clears_plain_messages(
    pairs: dict[str, tuple[PresidioRedactor, AnalyzerEngine, list[str]]],
) -> None:
    redactor = pairs["contact-center"][0]
    for text in [
        "Where is my parcel? It was due on Monday.",
        "Order #471 arrived damaged: 2 of 30 tablets broken, can I get a refund?",
        "I take 500mg twice a day since the 3rd (about 10:30), is that ok?",
        "",
    ]:
        assert redactor._prescan.possible(text) == [], text


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("jo@example.com", "EMAIL_ADDRESS"),
        ("4111 1111 1111 1111", "CREDIT_CARD"),
        ("123-45-6788", "US_SSN"),
        ("GB82 WEST 1234 5698 7654 32", "IBAN_CODE"),
        ("10.0.0.1", "IP_ADDRESS"),
        ("::", "IP_ADDRESS"),
        ("1:2:3:4:5:6:7:8", "IP_ADDRESS"),
        ("+1 415-555-0100", "PHONE_NUMBER"),
        ("030 1234", "PHONE_NUMBER"),  # German numbers can be this short: four digits needed
        ("dob 01/01/2000", "DATE_OF_BIRTH"),
    ],
)
def test_each_guard_lets_its_entity_through(
    pairs: dict[str, tuple[PresidioRedactor, AnalyzerEngine, list[str]]], text: str, entity: str
) -> None:
    assert entity in pairs["contact-center"][0]._prescan.possible(f"see {text} here")


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("jo at example.com", "EMAIL_ADDRESS"),
        ("4111 1111 1111", "CREDIT_CARD"),  # 12 digits: one short
        ("123-45-678", "US_SSN"),
        ("GB82 WEST 123", "IBAN_CODE"),  # a group of four short
        ("10.0.1", "IP_ADDRESS"),
        ("at 10:30", "IP_ADDRESS"),
        ("order 123", "PHONE_NUMBER"),
        ("DOB unknown", "DATE_OF_BIRTH"),
    ],
)
def test_each_guard_rules_out_near_misses(
    pairs: dict[str, tuple[PresidioRedactor, AnalyzerEngine, list[str]]], text: str, entity: str
) -> None:
    assert entity not in pairs["contact-center"][0]._prescan.possible(f"see {text} here")


def _cheap_phone_guard(redactor: PresidioRedactor) -> Callable[[str], bool]:
    assert redactor._analyzer is not None
    (phone,) = [
        r for r in redactor._analyzer.registry.recognizers if isinstance(r, PhoneRecognizer)
    ]
    return prescan.phone_run_guard(phone)


def test_phone_regions_set_the_digits_a_phone_needs(
    pairs: dict[str, tuple[PresidioRedactor, AnalyzerEngine, list[str]]],
) -> None:
    # The cheap half of the phone guard: with DE among the regions four digits may be a number;
    # with US and GB only, six.
    assert _cheap_phone_guard(pairs["contact-center"][0])("ring 4471")
    assert not _cheap_phone_guard(pairs["phone-US-GB"][0])("ring 44 71 5")
    assert _cheap_phone_guard(pairs["phone-US-GB"][0])("ring 44 71 56")


def test_digits_that_are_no_phone_number_never_reach_the_analyzer(
    pairs: dict[str, tuple[PresidioRedactor, AnalyzerEngine, list[str]]],
) -> None:
    # The cheap guard says "maybe"; the recognizer itself finds nothing, so spaCy is not asked.
    redactor = pairs["contact-center"][0]
    assert _cheap_phone_guard(redactor)("can u change the address on order 5521 pls")
    assert redactor._prescan.possible("can u change the address on order 5521 pls") == []
    assert redactor._prescan.possible("call me on +1 415-555-0100") == ["PHONE_NUMBER"]


def test_installed_recognizers_are_the_ones_the_guards_were_derived_from() -> None:
    """Fails after a Presidio upgrade that changes a pattern: re-derive that guard, then update."""
    for cls in (
        EmailRecognizer,
        CreditCardRecognizer,
        UsSsnRecognizer,
        IbanRecognizer,
        IpRecognizer,
        UrlRecognizer,
    ):
        assert guard_for(cls(), cls().supported_entities[0]) is not prescan._always, cls


def test_a_changed_pattern_or_an_unknown_recognizer_gets_maybe() -> None:
    changed = CreditCardRecognizer(patterns=[Pattern("any", r"\d+", 0.5)])
    # What a deny list does: one more pattern.
    with_deny_list = EmailRecognizer(
        patterns=[*EmailRecognizer.PATTERNS, Pattern("deny_list", "secret", 1.0)]
    )
    assert guard_for(changed, "CREDIT_CARD") is prescan._always
    assert guard_for(with_deny_list, "EMAIL_ADDRESS") is prescan._always

    class Subclassed(IpRecognizer):
        def analyze(self, *args: Any, **kwargs: Any) -> Any:
            return super().analyze(*args, **kwargs)

    assert guard_for(Subclassed(), "IP_ADDRESS") is prescan._always


def test_custom_patterns_are_guarded_by_running_them() -> None:
    recognizer = PatternRecognizer(
        supported_entity="MEMBER_ID", patterns=[Pattern("m", r"\bMBR-\d{6}\b", 0.85)]
    )
    scan = PreScan.for_recognizers([recognizer], ["MEMBER_ID"])
    assert scan.possible("id MBR-123456") == ["MEMBER_ID"]
    assert scan.possible("id MBR-12345") == []
    assert scan.possible("id mbr-123456") == ["MEMBER_ID"]  # Presidio matches case-insensitively


def test_lenient_phone_matching_needs_only_a_digit() -> None:
    lenient = PhoneRecognizer(supported_regions=("US",), leniency=0)
    cheap = prescan.phone_run_guard(lenient)
    assert cheap("a 1")
    assert not cheap("no digits here")


@pytest.mark.parametrize(
    ("presidio", "flags", "ours"),
    [
        (r"\d", 0, prescan._DIGIT),  # the card guard's digits
        (r"[A-Z]", regex.IGNORECASE, r"[^\W\d_]"),  # the IBAN guard's letters
        (r"[A-Z0-9]", regex.IGNORECASE, r"\w"),  # the IBAN guard's group characters
    ],
)
def test_the_guards_classes_hold_every_character_presidio_matches(
    presidio: str, flags: int, ours: str
) -> None:
    """Presidio matches with ``regex`` (its own Unicode tables); the guards use ``re``."""
    theirs, mine = regex.compile(presidio, flags), re.compile(ours)
    missing = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if theirs.fullmatch(chr(code)) and not mine.fullmatch(chr(code))
    ]
    assert missing == []


@given(st.text(alphabet=" -.x1", max_size=40))
def test_the_phone_run_pattern_stays_fast_on_ambiguous_text(text: str) -> None:
    cheap = prescan.phone_run_guard(PhoneRecognizer(supported_regions=("FR",)))
    cheap(text * 20)  # backtracking that blew up would time out hypothesis' deadline
