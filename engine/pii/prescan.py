"""A cheap pre-scan that proves which PII entity types a message cannot contain.

``PreScan.possible(text)`` lists the entity types Presidio could find in ``text``; every type it
leaves out is proven absent (Presidio would return no finding of it), so the redactor analyses
only the listed types and skips Presidio entirely when the list is empty. The pre-scan may say
"maybe" wrongly, never "no" wrongly. Each guard is derived from one configured recognizer: its
class, its exact patterns (a fingerprint), its phone regions and leniency. A recognizer that does
not match what a guard was derived from (a Presidio upgrade, a deny list, an unknown class) gets
no cheap guard: "maybe", always. ``tests/engine/pii/test_prescan.py`` checks the guards against
Presidio with hypothesis.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import regex  # type: ignore[import-untyped]  # Presidio's regex engine
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UrlRecognizer,
    UsSsnRecognizer,
)

from engine.pii import phone_digits
from engine.pii.phone_recognizer import SharingPhoneRecognizer

Guard = Callable[[str], bool]  # False: the recognizer provably finds nothing in this text


def _always(_text: str) -> bool:
    return True


# Presidio's pattern recognizers use the ``regex`` module with IGNORECASE, so their ``\d`` is
# Unicode's Nd per regex's (newer) Unicode tables. The guards use ``re``: ``\d`` plus every
# character outside the Basic Multilingual Plane, where all digits added to Unicode since
# Python 3.11's tables live (test_prescan checks the BMP agrees).
_DIGIT = r"[\d\U00010000-\U0010FFFF]"


def _email(text: str) -> bool:
    # The pattern's only way across the local part and the domain is a literal ``[@]``.
    return "@" in text


# The guards below are the recognizers' own patterns loosened (word boundaries and lookarounds
# dropped, character classes widened), so whatever the pattern matches, the guard matches too.

# "All Credit Cards (weak)": four digits starting 1, 3, 4, 5 or 6, then groups of 3-4, 3-4 and
# 3-5 digits, each after an optional "-" or " ". (The first group's "5[0-5]" is widened to "5".)
_CARD = re.compile(r"[13-6]D{3}[- ]?D{3,4}[- ]?D{3,4}[- ]?D{3}".replace("D", _DIGIT))

# SSN1-SSN5: nine ASCII digits grouped 5-4 or 3-6 with "-", 3-2-4 with "-", " " or "." (SSN3
# is SSN5 with "-"), or not grouped at all. (The shared first three digits are factored out: a
# pattern that starts with a plain class is searched for quickly.)
_SSN = re.compile(r"[0-9]{3}(?:[0-9]{2}-[0-9]{4}|-[0-9]{6}|[- .][0-9]{2}[- .][0-9]{4}|[0-9]{6})")

# "IBAN Generic": two letters (case-insensitively [A-Z]: ASCII letters and their case variants,
# all of which are Unicode letters), two ASCII digits, then at least two groups of four of
# [A-Z0-9] (all word characters), each optionally after one " " or "-".
_IBAN = re.compile(r"[0-9]{2}(?<=[^\W\d_]{2}[0-9]{2})(?:[ -]?\w{4}){2}")  # found from the digits

# IPv4 (and the dotted quad that ends IPv4_embedded): four 1-3 digit ASCII groups joined by ".".
_IPV4 = re.compile(r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")


def _ip(text: str) -> bool:
    # IPv4_mapped and IPv6_unspecified contain "::"; every IPv6 alternative either contains "::"
    # or is eight hex groups joined by seven ":"; IPv4_embedded ends with a dotted quad.
    return "::" in text or text.count(":") >= 7 or _IPV4.search(text) is not None


def _url(text: str) -> bool:
    # Every pattern contains BASE_URL_REGEX, which needs a literal "." before the top-level domain.
    return "." in text


def _fingerprint(patterns: Iterable[object]) -> str:
    joined = "\0".join(str(getattr(pattern, "regex", "")) for pattern in patterns)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


# Recognizer class -> (fingerprint of the patterns the guard was derived from, guard). Presidio
# 2.2.366; a different fingerprint means the patterns changed and the guard no longer applies.
_PATTERN_GUARDS: dict[type[PatternRecognizer], tuple[str, Guard]] = {
    EmailRecognizer: ("004723abbb67ff6c", _email),
    CreditCardRecognizer: ("f619fa242c932c37", lambda text: _CARD.search(text) is not None),
    UsSsnRecognizer: ("7df84672214248e6", lambda text: _SSN.search(text) is not None),
    IbanRecognizer: ("1f98697e78e08d67", lambda text: _IBAN.search(text) is not None),
    IpRecognizer: ("5f7f281db001a5ce", _ip),
    UrlRecognizer: ("1f980ecc7fafdcb1", _url),
}


def phone_run_guard(recognizer: PhoneRecognizer) -> Guard:
    """The cheap half of the phone guard: a run of enough digits (the lemma), nothing else."""
    leniency = recognizer.leniency
    if not phone_digits.lemma_holds(leniency):
        # Without validation only the matcher's own pattern applies, and it needs a digit.
        any_digit = re.compile(r"\d")
        return lambda text: any_digit.search(text) is not None
    # The lemma in engine.pii.phone_digits: a run of number characters holding at least
    # min_digits digits (or "x"), the fewest any number found for these regions is written with.
    run = phone_digits.run_pattern(phone_digits.min_digits(recognizer.supported_regions))
    return lambda text: run.search(text) is not None


def _first_match(recognizer: PatternRecognizer) -> Guard:
    # A policy's own regex has no general shortcut but itself: compiled once, as Presidio compiles
    # it (the ``regex`` module, the recognizer's flags). No match at all means no finding. No
    # ``timeout``: with one, each search costs ~6 us more in the regex module and far more in the
    # server (py-spy: 15% of the service's time); Presidio's own 60 s timeout on the same pattern
    # is no protection on a request path either.
    patterns: list[Pattern] = getattr(recognizer, "patterns", [])  # Presidio leaves it untyped
    compiled = [
        regex.compile(pattern.regex, flags=recognizer.global_regex_flags) for pattern in patterns
    ]
    return lambda text: any(c.search(text) for c in compiled)


def _raw_findings(recognizer: PatternRecognizer | PhoneRecognizer, entity: str) -> Guard:
    # What the recognizer itself finds. The analyzer only adjusts scores (context), drops low
    # scores and duplicates: every finding it returns is one of these. Only for recognizers that
    # read no NLP artefacts (pattern and phone recognizers), so spaCy is not needed to ask.
    return lambda text: bool(
        recognizer.analyze(text=text, entities=[entity], nlp_artifacts=None)  # type: ignore[arg-type]
    )


def _both(cheap: Guard, exact: Guard) -> Guard:
    return lambda text: cheap(text) and exact(text)


def guard_for(recognizer: EntityRecognizer, entity: str) -> Guard:
    """The cheapest guard, exact in the safe direction, for ``recognizer``'s ``entity``.

    A recognizer whose ``analyze`` is known needs no NLP artefacts: its cheap guard (a necessary
    condition on the text) runs first and, when that says "maybe", the recognizer itself, so a
    message with digits but no phone number never reaches spaCy.
    """
    if isinstance(recognizer, PhoneRecognizer) and type(recognizer).analyze in (
        PhoneRecognizer.analyze,
        SharingPhoneRecognizer.analyze,  # tested to find exactly what PhoneRecognizer finds
    ):
        return _both(phone_run_guard(recognizer), _raw_findings(recognizer, entity))
    if type(recognizer) is PatternRecognizer:
        return _both(_first_match(recognizer), _raw_findings(recognizer, entity))
    for cls, (fingerprint, guard) in _PATTERN_GUARDS.items():
        if (
            isinstance(recognizer, cls)
            and type(recognizer).analyze is cls.analyze
            and _fingerprint(getattr(recognizer, "patterns", ())) == fingerprint
        ):
            return _both(guard, _raw_findings(recognizer, entity))
    return _always


@dataclass(frozen=True)
class PreScan:
    """One guard per (entity type, recognizer) pair; an entity type is possible if any says so."""

    guards: tuple[tuple[str, Guard], ...]

    @classmethod
    def for_recognizers(
        cls, recognizers: Iterable[EntityRecognizer], entities: Iterable[str]
    ) -> PreScan:
        wanted = set(entities)
        guards = [
            (entity, guard_for(recognizer, entity))
            for recognizer in recognizers
            for entity in recognizer.supported_entities
            if entity in wanted
        ]
        return cls(tuple(sorted(guards, key=lambda pair: pair[0])))

    def possible(self, text: str) -> list[str]:
        """The entity types ``text`` may contain, sorted; the others it provably does not."""
        found: list[str] = []
        for entity, guard in self.guards:
            if (not found or found[-1] != entity) and guard(text):
                found.append(entity)
        return found
