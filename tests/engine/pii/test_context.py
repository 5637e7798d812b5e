"""``BisectingContextEnhancer`` scores every finding as Presidio's enhancer does."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts

from engine.pii.context import BisectingContextEnhancer
from engine.pii.presidio import LANGUAGE, _BlankSpacyNlpEngine
from engine.policy.loader import load_policy
from tests.conftest import DEFAULT_POLICY, PROMPTS
from tests.engine.pii.record_golden import read_corpus
from tests.engine.pii.reference import entity_types, reference_recognizers
from tests.engine.pii.strategies import pii_texts

NLP = spacy.blank(LANGUAGE)


@pytest.fixture(scope="module")
def analyzers() -> tuple[AnalyzerEngine, AnalyzerEngine, list[str]]:
    redaction = load_policy(DEFAULT_POLICY, PROMPTS).policy.redaction
    nlp_engine = _BlankSpacyNlpEngine()
    nlp_engine.load()
    registry = RecognizerRegistry(
        recognizers=reference_recognizers(redaction, nlp_engine), supported_languages=[LANGUAGE]
    )

    def build(enhancer: Any) -> AnalyzerEngine:
        return AnalyzerEngine(
            registry=registry,
            nlp_engine=nlp_engine,
            supported_languages=[LANGUAGE],
            context_aware_enhancer=enhancer,
        )

    return (
        build(BisectingContextEnhancer()),
        build(LemmaContextAwareEnhancer()),
        entity_types(redaction),
    )


def _lemmatized(analyzer: AnalyzerEngine, text: str) -> NlpArtifacts:
    """NLP artefacts with lemmas (the token texts, lower-cased): a blank pipeline has none, so
    context words never match in production; with these they do, and scores change."""
    doc = NLP(text)
    return NlpArtifacts(
        entities=[],
        tokens=doc,
        tokens_indices=[token.idx for token in doc],
        lemmas=[token.text.lower() for token in doc],
        nlp_engine=analyzer.nlp_engine,
        language=LANGUAGE,
    )


def _enhanced(analyzer: AnalyzerEngine, text: str, entities: list[str]) -> list[Any]:
    artifacts = _lemmatized(analyzer, text)
    found = analyzer.analyze(
        text=text, language=LANGUAGE, entities=entities, nlp_artifacts=artifacts
    )
    return sorted((f.start, f.end, f.entity_type, f.score) for f in found)


def test_same_scores_on_the_corpus(
    analyzers: tuple[AnalyzerEngine, AnalyzerEngine, list[str]],
) -> None:
    ours, theirs, entities = analyzers
    boosted = 0
    for text_id, text in read_corpus():
        expected = _enhanced(theirs, text, entities)
        assert _enhanced(ours, text, entities) == expected, text_id
        boosted += any(score not in (0.05, 0.3, 0.4, 0.5, 0.6, 0.85, 1.0) for *_, score in expected)
    assert boosted > 20  # context words did raise scores, so the tokens found mattered


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=pii_texts())
def test_same_scores_on_generated_text(
    analyzers: tuple[AnalyzerEngine, AnalyzerEngine, list[str]], text: str
) -> None:
    ours, theirs, entities = analyzers
    assert _enhanced(ours, text, entities) == _enhanced(theirs, text, entities)


@given(text=st.text(alphabet=" \n\t-.,:;()+@x1aé", max_size=40))
def test_bisection_picks_the_token_the_scan_picks(text: str) -> None:
    doc = NLP(text)
    indices = [token.idx for token in doc]
    enhancer = BisectingContextEnhancer()
    # What enhance_using_context sets up for the duration of a call.
    enhancer._tokens, enhancer._indices = doc, indices
    enhancer._starts = indices
    enhancer._ends = [i + len(t) for i, t in zip(indices, doc, strict=True)]
    for start in range(len(text) + 2):
        try:
            expected: Any = LemmaContextAwareEnhancer._find_index_of_match_token(
                "w", start, doc, indices
            )
        except ValueError as exc:
            expected = str(exc)
        try:
            got: Any = enhancer._find_index_of_match_token("w", start, doc, indices)
        except ValueError as exc:
            got = str(exc)
        assert got == expected, start


def test_the_findings_passed_in_are_left_as_they_were(
    analyzers: tuple[AnalyzerEngine, AnalyzerEngine, list[str]],
) -> None:
    ours, _, entities = analyzers
    text = "my phone: +1 415-555-0100, my card number is 4111 1111 1111 1111"
    artifacts = _lemmatized(ours, text)
    recognizers = ours.registry.get_recognizers(language=LANGUAGE, entities=entities)
    raw = [
        finding
        for recognizer in recognizers
        for finding in recognizer.analyze(text, entities, artifacts)
    ]
    before = copy.deepcopy(raw)
    enhanced = ours.context_aware_enhancer.enhance_using_context(
        text=text, raw_results=raw, nlp_artifacts=artifacts, recognizers=recognizers
    )
    assert [f.score for f in enhanced] != [f.score for f in raw]  # context raised a score
    assert [vars(f.analysis_explanation) for f in raw] == [
        vars(f.analysis_explanation) for f in before
    ]
    assert [(f.score, f.recognition_metadata) for f in raw] == [
        (f.score, f.recognition_metadata) for f in before
    ]
    enhancer = ours.context_aware_enhancer
    assert isinstance(enhancer, BisectingContextEnhancer)
    assert enhancer._tokens is None  # the message's tokens are not kept
