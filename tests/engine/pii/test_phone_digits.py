"""The phone lemma: a number the matcher finds for region R is written with ``min_digits([R])``.

Checked directly against phonenumbers' own matcher (leniency VALID, as Presidio uses it), for
regions chosen to strain the bound: short numbers, national-prefix rules that add digits.
"""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from engine.pii import phone_digits
from engine.pii.prescan import guard_for, phone_run_guard
from tests.engine.pii.strategies import EDGE_REGIONS, EXAMPLE_NUMBERS, REGIONS, pii_texts


def _assert_lemma(text: str, region: str) -> None:
    need = phone_digits.min_digits([region])
    recognizer = PhoneRecognizer(supported_regions=(region,))
    run_search = phone_run_guard(recognizer)
    found = False
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=1):
        found = True
        # The lemma is about the number part: the extension's digits do not count.
        written = phone_digits.digit_count(match.raw_string) - len(match.number.extension or "")
        assert written >= need, (region, match.raw_string)
        assert run_search(match.raw_string), (region, match.raw_string)
    # The whole guard reads the whole text: a number found only in its context ("6678x" inside
    # ",6678x/8" but not alone, region NU) must still pass it.
    if found:
        assert guard_for(recognizer, "PHONE_NUMBER")(text), (region, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=pii_texts())
@example(text="030 1234, 0043 1 234567, +378 0549 123456, 812345, +683 4002, 1 int 2345")
@example(text=",6678x/8")  # NU finds "6678x" here, and nothing in "6678x" alone
def test_every_number_found_has_enough_digits(text: str) -> None:
    for region in EDGE_REGIONS:
        _assert_lemma(text, region)


@pytest.mark.parametrize("region", EDGE_REGIONS)
def test_every_example_number_has_enough_digits(region: str) -> None:
    _assert_lemma(" ; ".join(EXAMPLE_NUMBERS), region)


@pytest.mark.slow  # about 2.5 minutes
@pytest.mark.parametrize("region", sorted(set(REGIONS) - set(EDGE_REGIONS)))
def test_every_example_number_has_enough_digits_in_every_other_region(region: str) -> None:
    _assert_lemma(" ; ".join(EXAMPLE_NUMBERS), region)


def test_the_bounds_follow_the_regions() -> None:
    assert phone_digits.min_digits(["US"]) == 6  # +43 plus a four-digit Austrian NSN
    assert phone_digits.min_digits(["US", "GB"]) == 6
    assert phone_digits.min_digits(["DE"]) == 4  # German NSNs can have four digits
    assert phone_digits.min_digits(["US", "DE"]) == 4
    assert phone_digits.min_digits(["GG"]) == 2  # its prefix rule adds digits: no bound left


def test_digit_count_counts_unicode_digits_and_x() -> None:
    assert phone_digits.digit_count("+1 (415) 555-0100") == 11
    assert phone_digits.digit_count("٠٢٠ ٧٩٤٦") == 7
    assert phone_digits.digit_count("12x34 X") == 6
    assert phone_digits.digit_count("ext") == 1
