"""Presidio's phone recognizer, finding the same numbers with far fewer parses.

Presidio runs phonenumbers' matcher over the whole text once per region. For every candidate
(and every piece of a candidate it splits up) the matcher calls ``_parse_and_verify``: the most
expensive step, and a pure function of the candidate, the characters just before and after it,
the region and the leniency. ``_SharingMatcher`` and ``analyze`` change five things, nothing else:

- the search for the next candidate (``_PATTERN`` from a position, then trimming a second
  number off its end) depends on the text alone, so all regions share one per position;
- it rejects without parsing a candidate written with fewer digits than any number valid for
  its region needs (the lemma in ``engine.pii.phone_digits``, which the pre-scan rests on too),
  or one that can only be read as a national number (no plus sign, no international prefix)
  with fewer digits than the region's national numbers need (``phone_digits.national_only``: a
  six-digit order number is parsed for Germany only); and ``analyze`` runs no matcher at all for
  a region when the text has no run of as many digits as it needs (an order number of four
  digits is searched as a German number only: Germany's shortest is four, the others' six);
- within one ``analyze`` call it keeps each region's verdicts by that key, so a repeated number
  or card group is parsed once per region instead of once per occurrence;
- a candidate that ``phonenumbers.parse`` reads without a default region (a "+" and a known
  country code) gets one verdict for all regions: parse then takes the country code from the
  digits and never consults the region, and the checks after it do not know the region either;
- ``_extract_match`` (a candidate, then its pieces, until one verifies) is likewise remembered
  per region, by the candidate, the character before it and the three after it (all it reads of
  the text), with the tries it used, which are charged again on a hit; a hit is used only while
  more tries remain than it charges, so the matcher's ``max_tries`` cut-off falls where it would.

Which candidates are tried, in which order, and ``max_tries`` stay the matcher's logic (``_find``
is phonenumbers 9.0's, with the search shared), so the matches are the same.
``tests/engine/pii/test_phone_recognizer.py`` compares it with Presidio's own recognizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberMatch, PhoneNumberMatcher
from phonenumbers.phonenumbermatcher import _PATTERN
from phonenumbers.phonenumberutil import _SECOND_NUMBER_START_PATTERN, NumberParseException
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from engine.pii import phone_digits

# (candidate, character before it or None, character after it or None)
_Key = tuple[str, str | None, str | None]
# (start - candidate's start, raw string, number) of what ``_extract_match`` found, or None
_Found = tuple[int, str, PhoneNumber] | None


@dataclass
class _Verdicts:
    """One ``analyze`` call's parse verdicts: the parsed number, or None when rejected."""

    # search position -> (start, candidate) of the next candidate, or None: for every region
    candidates: dict[int, tuple[int, str] | None] = field(default_factory=dict)
    international: dict[str, bool] = field(default_factory=dict)  # parse(candidate) succeeds
    shared: dict[_Key, PhoneNumber | None] = field(default_factory=dict)  # for every region
    by_region: dict[str, dict[_Key, PhoneNumber | None]] = field(default_factory=dict)
    # region -> (candidate, character before, three characters after) -> (tries used, found)
    extracted: dict[str, dict[tuple[str, str | None, str], tuple[int, _Found]]] = field(
        default_factory=dict
    )

    def is_international(self, candidate: str) -> bool:
        if candidate not in self.international:
            if "+" not in candidate and "\uff0b" not in candidate:  # parse needs a plus sign
                self.international[candidate] = False
                return False
            try:
                phonenumbers.parse(candidate)  # no default region: needs "+" and a country code
                self.international[candidate] = True
            except NumberParseException:
                self.international[candidate] = False
        return self.international[candidate]


class _SharingMatcher(PhoneNumberMatcher):
    """phonenumbers' matcher, taking ``_parse_and_verify`` verdicts from ``verdicts``."""

    def __init__(self, text: str, region: str, leniency: int | None, verdicts: _Verdicts) -> None:
        # None is phonenumbers' ValueError, as with Presidio's own call.
        super().__init__(text, region, leniency=leniency)  # type: ignore[arg-type]
        self._verdicts = verdicts
        self._own = verdicts.by_region.setdefault(region, {})
        self._extracted = verdicts.extracted.setdefault(region, {})
        validating = phone_digits.lemma_holds(leniency)
        self._min_digits = phone_digits.min_digits([region]) if validating else 0
        self._national_min = phone_digits.national_min_digits(region) if validating else 0
        self._region = region

    def _next_candidate(self, index: int) -> tuple[int, str] | None:
        if index not in self._verdicts.candidates:
            found = _PATTERN.search(self.text, index)
            self._verdicts.candidates[index] = (
                None
                if found is None
                else (
                    found.start(),
                    self._trim_after_first_match(
                        _SECOND_NUMBER_START_PATTERN, self.text[found.start() : found.end()]
                    ),
                )
            )
        return self._verdicts.candidates[index]

    def _find(self, index: int) -> PhoneNumberMatch | None:
        # phonenumbers 9.0.43's PhoneNumberMatcher._find, the candidate search shared.
        found = self._next_candidate(index)
        while self._max_tries > 0 and found is not None:
            start, candidate = found
            if len(candidate) >= self._min_candidate_length:
                match = self._extract_match(candidate, start)
                if match is not None:
                    return match
                self._max_tries -= 1
            found = self._next_candidate(start + len(candidate))
        return None

    def _extract_match(self, candidate: str, offset: int) -> PhoneNumberMatch | None:
        # It reads the text only around the pieces it parses (inside the candidate, or the
        # character on either side) and, for a time stamp, the ":MM" after the candidate.
        end = offset + len(candidate)
        key = (candidate, self.text[offset - 1] if offset > 0 else None, self.text[end : end + 3])
        if key in self._extracted:
            tries, found = self._extracted[key]
            if self._max_tries > tries:
                self._max_tries -= tries
                if found is None:
                    return None
                return PhoneNumberMatch(offset + found[0], found[1], found[2])
        before = self._max_tries
        match = super()._extract_match(candidate, offset)
        if self._max_tries > 0:  # at 0 the tries may have cut the search short: not reusable
            self._extracted[key] = (
                before - self._max_tries,
                None if match is None else (match.start - offset, match.raw_string, match.number),
            )
        return match

    def _parse_and_verify(self, candidate: str, offset: int) -> PhoneNumberMatch | None:
        # phonenumbers 9.0 reads exactly these two characters around the candidate (to reject
        # numbers glued to letters or currency symbols); the rest depends on the candidate alone.
        end = offset + len(candidate)
        key = (
            candidate,
            self.text[offset - 1] if offset > 0 else None,
            self.text[end] if end < len(self.text) else None,
        )
        known = self._own if key in self._own else self._verdicts.shared
        if key in known:
            number = known[key]
            return None if number is None else PhoneNumberMatch(offset, candidate, number)
        digits = phone_digits.digit_count(candidate)
        if digits < self._min_digits:
            match = None  # too few digits for any number valid for this region: parse rejects it
        elif digits < self._national_min and phone_digits.national_only(candidate, self._region):
            match = None  # too few for a national number, and it cannot be read as international
        else:
            match = super()._parse_and_verify(candidate, offset)
        # A rejection for too few digits holds for every region when the verdict does not
        # depend on the region.
        into = self._verdicts.shared if self._verdicts.is_international(candidate) else self._own
        into[key] = None if match is None else match.number
        return match


class SharingPhoneRecognizer(PhoneRecognizer):
    """``PhoneRecognizer`` whose matcher parses each distinct candidate as rarely as it can."""

    def analyze(  # the analyzer passes ``entities`` by keyword; a phone recognizer has one
        self,
        text: str,
        entities: list[str],  # noqa: ARG002
        nlp_artifacts: Any = None,
    ) -> list[Any]:
        # Presidio 2.2's PhoneRecognizer.analyze with the matcher swapped. The region it parses
        # from a number only labels the finding's explanation.
        results: list[RecognizerResult] = []
        verdicts = _Verdicts()
        # raw match -> (the region phonenumbers reads from it without a default region,) or
        # None when it cannot read it so (a national number)
        labels: dict[str, tuple[str | None] | None] = {}
        validating = phone_digits.lemma_holds(self.leniency)
        runs: dict[int, bool] = {}  # digits needed -> the text has a run of that many
        for region in self.supported_regions:
            if validating:
                need = phone_digits.min_digits([region])
                if need not in runs:
                    runs[need] = phone_digits.run_pattern(need).search(text) is not None
                if not runs[need]:
                    continue  # the lemma (engine.pii.phone_digits): nothing to find for region
            for match in _SharingMatcher(text, region, self.leniency, verdicts):
                raw = text[match.start : match.end]
                if raw not in labels:
                    try:
                        parsed = phonenumbers.parse(raw)
                        labels[raw] = (phonenumbers.region_code_for_number(parsed),)
                    except NumberParseException:
                        labels[raw] = None
                label = labels[raw]
                if label is not None:
                    region = label[0]  # noqa: PLW2901 - as upstream: it labels later matches too
                results.append(
                    self._get_recognizer_result(  # type: ignore[no-untyped-call]
                        match, text, region, nlp_artifacts
                    )
                )
        return list(EntityRecognizer.remove_duplicates(results))
