"""``SharingPhoneRecognizer`` finds what Presidio's ``PhoneRecognizer`` finds, always.

Differential tests on generated text, on repeated text (where the remembered verdicts and
extractions are reused), on the corpus, and at phonenumbers' ``max_tries`` cut-off.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from engine.pii.phone_recognizer import SharingPhoneRecognizer, _SharingMatcher, _Verdicts
from tests.engine.pii.record_golden import read_corpus
from tests.engine.pii.strategies import EDGE_REGIONS, pii_texts

DEFAULT_REGIONS = PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS
REPEATED = (
    "Order 99812: call +1 415-555-0100 or (415) 555 0199, card 4111 1111 1111 1111, "
    "DOB 1980-02-17, +44 20 7946 0958 x12, 030 12345678; "
)


def _findings(recognizer: Any, text: str) -> list[tuple[int, int, float, str, str]]:
    return sorted(
        (r.start, r.end, r.score, r.entity_type, r.analysis_explanation.textual_explanation)
        for r in recognizer.analyze(text, ["PHONE_NUMBER"])
    )


def _assert_same(text: str, regions: tuple[str, ...]) -> None:
    ours = SharingPhoneRecognizer(supported_regions=regions)
    theirs = PhoneRecognizer(supported_regions=regions)
    assert _findings(ours, text) == _findings(theirs, text), text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=pii_texts(), repeat=st.integers(1, 3))
@example(text=REPEATED, repeat=3)
def test_same_findings_as_presidio(text: str, repeat: int) -> None:
    _assert_same(text * repeat, DEFAULT_REGIONS)
    _assert_same(text * repeat, tuple(EDGE_REGIONS))


@pytest.mark.parametrize(
    "text",
    [
        REPEATED * 4,
        # the same candidate with different neighbours: glued to letters, to "%", to a time
        "x4155550100 4155550100 4155550100x %4155550100 2012-01-02 08:00 2012-01-02 08:00:00",
        "+1 415 555 0100/+1 415 555 0101 (650) 253 0000 (754) 223 3321 " * 3,
    ],
)
def test_same_findings_on_repeated_text(text: str) -> None:
    _assert_same(text, DEFAULT_REGIONS)


def test_same_findings_on_the_corpus() -> None:
    regions = (*DEFAULT_REGIONS, "SM", "GG", "AR")
    ours = SharingPhoneRecognizer(supported_regions=regions)
    theirs = PhoneRecognizer(supported_regions=regions)
    for text_id, text in read_corpus():
        assert _findings(ours, text) == _findings(theirs, text), text_id


@pytest.mark.parametrize("region", ["US", "DE"])
def test_the_max_tries_cut_off_falls_where_it_would(region: str) -> None:
    # Failing candidates, repeated, before numbers: the remembered extractions must charge
    # their tries again, or fewer tries would reach the numbers at the end.
    text = "ref 4111 1111 1111 1111 and 1980-02-17; " * 6 + "call (415) 555 0199 or 030 12345678"
    for tries in range(60):  # the numbers need 37 (US) and 43 (DE) tries
        plain = phonenumbers.PhoneNumberMatcher(text, region, leniency=1, max_tries=tries)
        sharing = _SharingMatcher(text, region, 1, _Verdicts())
        sharing._max_tries = tries
        assert [(m.start, m.end) for m in sharing] == [(m.start, m.end) for m in plain], tries


def test_an_extraction_cut_short_by_max_tries_is_not_reused() -> None:
    # A matcher that runs out of tries must not leave its truncated results to a later matcher
    # of the same region in the same call (a policy may list a region twice). The number here
    # is the fourth piece of one candidate: three tries are not enough to reach it.
    text = "call (1) (2) (415) 555 0199 now"
    verdicts = _Verdicts()
    starved = _SharingMatcher(text, "US", 1, verdicts)
    starved._max_tries = 3
    assert list(starved) == []
    plain = phonenumbers.PhoneNumberMatcher(text, "US", leniency=1)
    fresh = _SharingMatcher(text, "US", 1, verdicts)
    assert [(m.start, m.end) for m in fresh] == [(m.start, m.end) for m in plain] != []


SHORT_NATIONAL = [
    # order numbers with fewer digits than most regions' national numbers need
    "can u change the address on order 5521 pls",
    "order 552133 pls, ref 5521339, box 55213391",
    # the same digits behind each region's international prefix, without a plus sign
    "ring 00 44 20 7946 0958 or 011 44 20 7946 0958 or 0012 44 20 7946 0958",
    "0015 21 9 8765 4321, 00 49 30 1234, 011 1 415 555 0100, 00 378 0549 123456",
    "call 00 49 1640 or 011 49 1640 or 0012 49 1640 or +49 1640",  # a four-digit German number
    # a fullwidth plus, a plus inside the candidate, and "x" (letters may be read as digits)
    "\uff0b44 20 7946 0958, (+49) 30 1234, 55x2133, 552133 x12, 552 xxx 133",
    # the region's own country code written first, and national prefixes
    "1 415 555 0100, 49 30 123456, 0 30 1234, 0549 123456, 01481 256789",
]


@pytest.mark.parametrize("text", SHORT_NATIONAL)
@pytest.mark.parametrize("region", EDGE_REGIONS)
def test_short_national_candidates_are_skipped_without_changing_findings(
    text: str, region: str
) -> None:
    # One region at a time: with several, another region's finding would hide a miss.
    _assert_same(text, (region,))


def test_a_six_digit_order_number_is_parsed_for_germany_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Germany's national numbers can have four digits; the other default regions' need seven or
    more, and "552133" cannot be read as international: only one region parses it."""
    parsed: list[str] = []
    original = phonenumbers.PhoneNumberMatcher._parse_and_verify

    def counting(self: Any, candidate: str, offset: int) -> Any:
        parsed.append(self.preferred_region)
        return original(self, candidate, offset)

    monkeypatch.setattr(phonenumbers.PhoneNumberMatcher, "_parse_and_verify", counting)
    text = "order 552133 pls"
    assert SharingPhoneRecognizer(supported_regions=DEFAULT_REGIONS).analyze(text, []) == []
    assert parsed == ["DE"]
    parsed.clear()
    assert PhoneRecognizer(supported_regions=DEFAULT_REGIONS).analyze(text, []) == []
    assert sorted(parsed) == sorted(DEFAULT_REGIONS)  # Presidio's own parses it for each region
