"""How few digits a phone number that phonenumbers' matcher accepts can be written with.

The pre-scan (``engine.pii.prescan``) and the phone recognizer (``engine.pii.phone_recognizer``)
both rest on one lemma, for the matcher at leniency VALID or stricter (Presidio uses VALID):

    every number it finds for default region R is written with at least ``min_digits([R])``
    digits, counting "x"/"X" as digits, inside one run of ``RUN_CHARACTER`` characters.

Why, following phonenumbers 9.0 (``phonenumbermatcher``, ``phonenumberutil.parse``):

1. A match is a candidate from ``_PATTERN`` (or a piece of one): up to two leading brackets or
   plus signs, then digit blocks joined by ``_VALID_PUNCTUATION`` (which includes "x" and the
   space), then perhaps an extension. All of it but the extension is ``RUN_CHARACTER``.
2. ``parse`` reads the country code (if any) and the national significant number (NSN) from the
   digits of that number part, after stripping the extension: only digits, or letters mapped to
   digits when the string holds three ASCII letters. The only letters in a number part are
   "x"/"X" (counted here). An extension label's letters ("ext", "int"...) never get mapped: the
   extension is stripped whenever the number before it is viable, and when it is not the whole
   string is not viable either; and a label containing "x" fails ``_contains_only_valid_x_chars``
   (an "x" must precede exactly the extension digits).
3. VALID means ``is_valid_number``: the NSN's length is one of ``general_desc.possible_length``
   of a region sharing the number's country code. Parsing can only drop written digits
   (national prefix, carrier code, international prefix), except that a national-prefix
   transform rule may add its literal digits (San Marino's ``0549\\1``).
4. Without a country code the number takes R's code and is parsed with R's metadata; with one
   ("+", R's international prefix, or R's own code), the code's digits are written too and the
   code's main region's metadata is used.

So the NSN takes at least ``shortest NSN - digits the transform adds`` written digits (never
fewer than ``_MIN_LENGTH_FOR_NSN``, below which ``parse`` rejects the number), plus the
country code's digits when one is written. ``tests/engine/pii/test_phone_digits.py`` checks the
lemma against the matcher on generated text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

import phonenumbers
from phonenumbers import phonenumbermatcher, phonenumberutil, re_util

# One character of a number part (point 1). Compile with ``FLAGS``, as phonenumbers does.
RUN_CHARACTER = (
    "[" + phonenumberutil._VALID_PUNCTUATION + phonenumbermatcher._LEAD_CLASS_CHARS + r"\d]"
)
FLAGS = phonenumberutil._REGEX_FLAGS
VALIDATING = phonenumbers.Leniency.VALID  # the lemma needs this leniency or a stricter one


def lemma_holds(leniency: int | None) -> bool:
    """Whether the matcher at ``leniency`` validates numbers, as the lemma needs."""
    return leniency is not None and leniency >= VALIDATING


def digit_count(candidate: str) -> int:
    """Digits of ``candidate`` as the lemma counts them: ``\\d`` (``isdecimal``) and "x"/"X"."""
    return sum(1 for char in candidate if char.isdecimal() or char in "xX")


def _transform_adds(rule: str | None) -> int:
    """Most digits a national-prefix transform rule (e.g. ``0549\\1``) can add (point 3)."""
    if not rule:
        return 0
    if len(re.findall(r"\\(?:\d|g<)|\$\d", rule)) > 1:
        return phonenumberutil._MAX_LENGTH_FOR_NSN  # a group used twice: no useful bound
    return sum(char.isdigit() for char in rule)  # counts the group's number too: an overestimate


def _transform_of(country_code: int, region: str) -> str | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    return metadata.national_prefix_transform_rule if metadata else None


def _shortest_nsn(country_code: int) -> int:
    """Fewest digits of a valid NSN for any region with this country code (point 3)."""
    shortest = phonenumberutil._MAX_LENGTH_FOR_NSN
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[country_code]:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            country_code, region
        )
        desc = metadata.general_desc if metadata else None
        lengths = desc.possible_length if desc else ()
        # No lengths listed: the length is not checked, so only parse's own minimum holds.
        shortest = min(shortest, min(lengths, default=phonenumberutil._MIN_LENGTH_FOR_NSN))
    return shortest


def _written_nsn(country_code: int, region: str) -> int:
    floor = phonenumberutil._MIN_LENGTH_FOR_NSN
    return max(
        floor, _shortest_nsn(country_code) - _transform_adds(_transform_of(country_code, region))
    )


@cache
def _min_digits(regions: frozenset[str]) -> int:
    national = min(
        _written_nsn(phonenumbers.country_code_for_region(region), region) for region in regions
    )
    international = min(
        len(str(code)) + _written_nsn(code, phonenumbers.region_code_for_country_code(code))
        for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    )
    return min(national, international)


def min_digits(regions: Iterable[str]) -> int:
    """Fewest digits (see ``digit_count``) a number found for any of ``regions`` is written with."""
    return _min_digits(frozenset(regions))


@cache
def run_pattern(need: int) -> re.Pattern[str]:
    """A run of ``RUN_CHARACTER`` characters holding at least ``need`` digits (or "x"): what a
    text must contain for the matcher to find a number written with ``need`` digits."""
    return re.compile(r"[\dxX](?:" + RUN_CHARACTER + r"*?[\dxX]){" + str(need - 1) + "}", FLAGS)


_PLUS = frozenset(phonenumberutil._PLUS_CHARS)


@cache
def national_min_digits(region: str) -> int:
    """Fewest digits a number the matcher accepts for ``region`` is written with when it is
    written in national form: no plus sign and no international prefix (point 4, first case)."""
    code = phonenumbers.country_code_for_region(region)
    return _written_nsn(code, region)


@cache
def _international_prefix(region: str) -> re.Pattern[str] | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.international_prefix is None:
        return None
    return re_util.re_compile(metadata.international_prefix)  # as parse compiles it


def national_only(candidate: str, region: str) -> bool:
    """Whether ``parse(candidate, region)`` can only read a national number: no plus sign, no
    "x" (three letters would be mapped to digits before the prefix is read) and its digits do not
    start with the region's international prefix. Then the number has the region's country
    code, and ``national_min_digits(region)`` bounds its written digits.

    ``parse`` reads an international number only after a plus sign or the region's prefix at
    the start of the normalised digits (``_maybe_strip_i18n_prefix_and_normalize``); what it
    reads is a prefix of all the candidate's digits (an extension only cuts the end), and a
    prefix pattern that matches the start of a prefix matches the start of the whole. The other
    way is the region's own country code written first, which leaves the national number after
    it: at least as many written digits as without it.
    """
    if not _PLUS.isdisjoint(candidate) or "x" in candidate or "X" in candidate:
        return False
    prefix = _international_prefix(region)
    return prefix is None or prefix.match(phonenumbers.normalize_digits_only(candidate)) is None
