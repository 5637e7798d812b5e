"""Presidio as ``PresidioRedactor`` set it up before the pre-scan: the reference to test against.

Presidio's own ``PhoneRecognizer`` and ``LemmaContextAwareEnhancer``, every recognizer the policy
enables, analysed for every entity type, no pre-scan. Built from the same private helpers as
``engine.pii.presidio`` (blank spaCy pipeline, offline email recognizer, custom patterns).
"""

from __future__ import annotations

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry
from presidio_analyzer.predefined_recognizers import (
    EmailRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
)

from engine.pii.presidio import (
    LANGUAGE,
    _BlankSpacyNlpEngine,
    _custom_recognizers,
    _OfflineEmailRecognizer,
    _quiet_language_skips,
    offline_tld_extractor,
)
from engine.policy.model import Redaction


def reference_recognizers(
    redaction: Redaction, nlp_engine: _BlankSpacyNlpEngine
) -> list[EntityRecognizer]:
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    with _quiet_language_skips():
        registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=nlp_engine)
    recognizers: list[EntityRecognizer] = []
    for predefined in registry.recognizers:
        recognizer = predefined
        if isinstance(recognizer, SpacyRecognizer):
            continue
        if isinstance(recognizer, EmailRecognizer):
            recognizer = _OfflineEmailRecognizer(
                offline_tld_extractor(), context=recognizer.context
            )
        elif isinstance(recognizer, PhoneRecognizer) and redaction.phone_regions:
            recognizer = PhoneRecognizer(
                context=recognizer.context,
                supported_regions=tuple(redaction.phone_regions),
                leniency=recognizer.leniency,
            )
        recognizers.append(recognizer)
    recognizers += _custom_recognizers(dict(redaction.custom_patterns))
    wanted = set(redaction.entities) | set(redaction.custom_patterns)
    return [r for r in recognizers if wanted & set(r.supported_entities)]


def reference_analyzer(redaction: Redaction) -> AnalyzerEngine:
    nlp_engine = _BlankSpacyNlpEngine()
    nlp_engine.load()
    registry = RecognizerRegistry(
        recognizers=reference_recognizers(redaction, nlp_engine), supported_languages=[LANGUAGE]
    )
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=[LANGUAGE])


def entity_types(redaction: Redaction) -> list[str]:
    return sorted(set(redaction.entities) | set(redaction.custom_patterns))
