"""PII redaction with Microsoft Presidio, pattern recognizers only, fully offline.

``PresidioRedactor`` implements ``engine.pii.base.Redactor`` from a policy's ``redaction``
section. Build one per policy revision (construction takes a few hundred milliseconds) and
share it: ``redact`` is safe to call from many threads.

- NLP: a blank spaCy pipeline (``spacy.blank("en")``: a tokenizer, no trained model, nothing
  downloaded). Entities that need named-entity recognition (PERSON, LOCATION, ...) are
  therefore unavailable; a policy naming one is rejected at construction.
- Recognizers: Presidio's predefined pattern/validation recognizers for the entity types the
  policy names, plus one ``PatternRecognizer`` per ``custom_patterns`` entry. The phone
  recognizer searches the national formats of ``phone_regions`` only, when the policy sets it,
  and parses far fewer candidates (``engine.pii.phone_recognizer``); the context enhancer
  copies less and finds tokens by bisection (``engine.pii.context``). Both give exactly what
  Presidio's own classes give.
- Pre-scan: ``engine.pii.prescan`` proves cheaply which entity types a message cannot contain;
  Presidio analyses only the others, and a message that can contain none skips it entirely.
- Offline: Presidio's email recognizer validates domains with ``tldextract``, whose default
  extractor fetches the public suffix list over HTTP on first use (and caches it in
  ``~/.cache``). Here it is replaced by a subclass using a private ``TLDExtract`` that reads only
  the snapshot bundled with ``tldextract`` and has no disk cache.
- Output: each finding becomes a typed placeholder (``<EMAIL_ADDRESS>``, ``<PHONE_NUMBER>``...).
  Any error during analysis or anonymisation raises ``RedactionFailedError`` (fail closed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import phonenumbers
import spacy
import tldextract
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
)
from presidio_analyzer.nlp_engine import SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    EmailRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
)
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig

from engine.errors import RedactionConfigError, RedactionFailedError
from engine.pii.base import Redacted
from engine.pii.context import BisectingContextEnhancer
from engine.pii.phone_recognizer import SharingPhoneRecognizer
from engine.pii.prescan import PreScan
from engine.policy.model import Redaction

LANGUAGE = "en"
CUSTOM_PATTERN_SCORE = 0.85  # a policy's own regex is deliberate; rank it above weak built-ins
_WARMUP_TEXT = (
    "Mail jo@example.com or call +1 415-555-0100, +44 20 7946 0958; "
    "card 4111 1111 1111 1111; ip 10.0.0.1."
)
_LANGUAGE_SKIP_LOG = "Recognizer not added to registry because language is not supported"


class _BlankSpacyNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine over ``spacy.blank``: tokens only, no model load or download."""

    def __init__(self) -> None:
        super().__init__(models=[{"lang_code": LANGUAGE, "model_name": f"blank:{LANGUAGE}"}])

    def load(self) -> None:
        # Presidio annotates ``nlp`` by its initial ``None``; the base class stores this same dict.
        self.nlp = {LANGUAGE: spacy.blank(LANGUAGE)}  # type: ignore[assignment]


class _OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer, validating domains against the bundled suffix list only."""

    def __init__(self, extractor: tldextract.TLDExtract, context: list[str] | None) -> None:
        super().__init__(context=context, supported_language=LANGUAGE)
        self._extractor = extractor

    def validate_result(self, pattern_text: str) -> bool:
        return self._extractor(pattern_text).fqdn != ""


class _DropRecord(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self._prefix)


@contextmanager
def _quiet_language_skips() -> Iterator[None]:
    """Drop Presidio's per-recognizer WARNING that es/it/pl recognizers were not loaded."""
    presidio_logger = logging.getLogger("presidio-analyzer")
    log_filter = _DropRecord(_LANGUAGE_SKIP_LOG)
    presidio_logger.addFilter(log_filter)
    try:
        yield
    finally:
        presidio_logger.removeFilter(log_filter)


def offline_tld_extractor() -> tldextract.TLDExtract:
    """A ``TLDExtract`` that never touches the network or the disk: bundled snapshot only."""
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def _predefined_recognizers(
    nlp_engine: _BlankSpacyNlpEngine,
    extractor: tldextract.TLDExtract,
    phone_regions: Sequence[str] | None = None,
) -> list[EntityRecognizer]:
    """Presidio's predefined English recognizers that work without NER, made offline."""
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    with _quiet_language_skips():
        registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=nlp_engine)
    recognizers: list[EntityRecognizer] = []
    for recognizer in registry.recognizers:
        if isinstance(recognizer, SpacyRecognizer):
            continue  # reads NER entities, which a blank pipeline never produces
        if isinstance(recognizer, EmailRecognizer):
            recognizers.append(_OfflineEmailRecognizer(extractor, context=recognizer.context))
        elif isinstance(recognizer, PhoneRecognizer):
            # The phone matcher scans the whole text once per region: with Presidio's own
            # recognizer, the dominant cost of redacting a long message (35 of 37 ms for 1,000
            # characters with eight regions). This one finds the same numbers for far less.
            recognizers.append(
                SharingPhoneRecognizer(
                    context=recognizer.context,
                    supported_regions=(
                        recognizer.supported_regions
                        if phone_regions is None
                        else tuple(phone_regions)
                    ),
                    leniency=recognizer.leniency,
                )
            )
        else:
            recognizers.append(recognizer)
    return recognizers


def _custom_recognizers(patterns: dict[str, list[str]]) -> list[EntityRecognizer]:
    recognizers: list[EntityRecognizer] = []
    for entity, regexes in sorted(patterns.items()):
        try:
            compiled = [
                Pattern(name=f"{entity.lower()}_{index}", regex=regex, score=CUSTOM_PATTERN_SCORE)
                for index, regex in enumerate(regexes)
            ]
        except ValueError as exc:  # Presidio's Pattern reports a bad regex as ValueError
            raise RedactionConfigError(
                f"redaction.custom_patterns.{entity}: {exc}; fix the regular expression",
                path=("redaction", "custom_patterns", entity),
            ) from exc
        recognizers.append(
            PatternRecognizer(
                supported_entity=entity,
                name=f"custom_{entity}",
                patterns=compiled,
                supported_language=LANGUAGE,
            )
        )
    return recognizers


def _supported(recognizers: Sequence[EntityRecognizer]) -> set[str]:
    return {entity for recognizer in recognizers for entity in recognizer.supported_entities}


log = logging.getLogger("switchboard.pii")

RENEW_EVERY = 50_000  # analysed messages per blank spaCy pipeline (a rebuild: a few hundred ms)


class PresidioRedactor:
    """Replaces the policy's PII entity types with ``<ENTITY_TYPE>`` placeholders."""

    def __init__(
        self, redaction: Redaction, *, renew_every: int = RENEW_EVERY, background: bool = True
    ) -> None:
        self.entities: tuple[str, ...] = tuple(
            sorted(set(redaction.entities) | set(redaction.custom_patterns))
        )
        self._redaction = redaction
        self._renew_every = renew_every
        self._background = background
        self._served = 0
        self.renewals = 0
        self._renewing: threading.Thread | None = None
        self._lock = threading.Lock()
        self._analyzer: AnalyzerEngine | None = None
        self._prescan = PreScan(guards=())
        self._anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]
        self._operators = {"DEFAULT": OperatorConfig("replace")}  # "<ENTITY_TYPE>"
        if not self.entities:
            return  # nothing to find; an empty registry would make Presidio load every recognizer
        unknown = sorted(set(redaction.phone_regions) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise RedactionConfigError(
                f"redaction.phone_regions: {', '.join(unknown)} unknown; use ISO 3166 codes",
                path=("redaction", "phone_regions"),
            )
        self._analyzer = self._build()
        self._prescan = PreScan.for_recognizers(self._analyzer.registry.recognizers, self.entities)
        # Load lazy state (phone metadata, suffix list, compiled regexes) before any caller waits.
        self.redact(_WARMUP_TEXT)

    def _build(self) -> AnalyzerEngine:
        nlp_engine = _BlankSpacyNlpEngine()
        nlp_engine.load()
        regions = self._redaction.phone_regions or None  # empty: Presidio's default regions
        available = _predefined_recognizers(nlp_engine, offline_tld_extractor(), regions)
        available += _custom_recognizers(dict(self._redaction.custom_patterns))
        missing = sorted(set(self.entities) - _supported(available))
        if missing:
            entities = list(self._redaction.entities)
            where = entities.index(missing[0]) if missing[0] in entities else None
            raise RedactionConfigError(
                f"redaction.entities names {', '.join(missing)}, which no offline recognizer "
                "can find (names, places and other NER entities need a spaCy model, which "
                "Switchboard does not load); remove them, or add them under "
                "redaction.custom_patterns with regexes. Supported: "
                f"{', '.join(sorted(_supported(available)))}",
                path=("redaction", "entities", *(() if where is None else (where,))),
            )
        wanted = set(self.entities)
        registry = RecognizerRegistry(
            recognizers=[r for r in available if wanted & set(r.supported_entities)],
            supported_languages=[LANGUAGE],
        )
        return AnalyzerEngine(
            registry=registry,
            nlp_engine=nlp_engine,
            supported_languages=[LANGUAGE],
            context_aware_enhancer=BisectingContextEnhancer(),
        )

    def _renew_if_due(self) -> None:
        """spaCy interns every token it has seen, forever (~2 KB per message of real traffic):
        a fresh blank pipeline every ``renew_every`` analysed messages keeps memory bounded
        (messages the pre-scan clears never reach spaCy, so they are not counted). Called
        locked. Building one takes ~250 ms, so by default it is built in a thread while the
        current one keeps serving, and swapped in when ready: no request waits for it."""
        self._served += 1
        if self._served <= self._renew_every or self._renewing is not None:
            return
        if not self._background:
            self._analyzer, self._served = self._build(), 0
            self.renewals += 1
            return
        self._renewing = threading.Thread(target=self._renew, name="pii-renew", daemon=True)
        self._renewing.start()

    def _renew(self) -> None:
        try:
            fresh: AnalyzerEngine | None = self._build()
        except Exception:  # the current pipeline keeps serving; try again later
            log.exception("PII pipeline renewal failed")
            fresh = None
        with self._lock:
            if fresh is not None:
                self._analyzer = fresh
                self.renewals += 1
            self._served = 0
            self._renewing = None

    def redact(self, text: str) -> Redacted:
        """Return ``text`` with every finding replaced; raise ``RedactionFailedError`` on error."""
        if self._analyzer is None:
            return Redacted(text=text, entities=())
        try:
            # spaCy's tokenizer and Presidio's recognizers keep unsynchronised caches, and
            # neither documents thread safety. The work holds the GIL anyway, so a lock costs
            # no parallelism.
            with self._lock:
                # Entity types the pre-scan rules out would yield no findings: not analysing
                # them changes nothing but the time taken.
                possible = self._prescan.possible(text)
                if not possible:
                    return Redacted(text=text, entities=())
                self._renew_if_due()
                assert self._analyzer is not None
                findings = self._analyzer.analyze(text=text, language=LANGUAGE, entities=possible)
                if not findings:
                    return Redacted(text=text, entities=())
                result = self._anonymizer.anonymize(
                    text=text,
                    # Each package has its own RecognizerResult; the anonymizer reads the
                    # analyzer's by duck typing, as Presidio's own examples do.
                    analyzer_results=findings,  # type: ignore[arg-type]
                    operators=self._operators,
                )
        except Exception as exc:
            raise RedactionFailedError(f"PII redaction failed: {type(exc).__name__}") from exc
        return Redacted(
            text=result.text, entities=tuple(sorted({item.entity_type for item in result.items}))
        )
