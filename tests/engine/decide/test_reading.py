"""What a decision reads of a verdict: the probe head's probabilities and thresholds when the head
can read it, the (calibrated) label probabilities and the policy's thresholds otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backends.base import LabelVerdict
from engine.categories import Category, VerdictStatus
from engine.decide.head import METHOD
from engine.decide.reading import VerdictReader
from engine.policy.fitting import Calibration, ProbeHeadSpec
from engine.policy.labels import Thresholds
from engine.policy.loader import load_policy
from engine.policy.model import Policy
from tests.conftest import DEFAULT_POLICY, PROMPTS, probe_head

DIM = 6
LABELS = {
    Category.INFORMATIONAL: 0.2,
    Category.SERVICE_ACTION: 0.7,
    Category.SAFETY_COMPLIANCE: 0.1,
}
HEAD_THRESHOLDS = Thresholds(
    informational=0.61, service_action=0.62, safety_compliance=0.33, safety_escalation=0.34
)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(DEFAULT_POLICY, PROMPTS).policy


def _with_head(policy: Policy) -> Policy:
    spec = ProbeHeadSpec(file="head.json", thresholds=HEAD_THRESHOLDS)
    return policy.model_copy(update={"head": spec})


def _verdict(hidden: np.ndarray | None, status: VerdictStatus = VerdictStatus.OK) -> LabelVerdict:
    return LabelVerdict(status=status, probabilities=dict(LABELS), hidden_state=hidden)


def test_a_readable_verdict_is_read_by_the_head_against_the_heads_thresholds(
    policy: Policy,
) -> None:
    head = probe_head(DIM)
    state = np.linspace(-1.0, 1.0, DIM, dtype=np.float32)
    reading = VerdictReader(_with_head(policy), head).read(_verdict(state))
    assert reading.from_head
    assert reading.rescaled
    assert reading.view.method == METHOD
    assert reading.probabilities == pytest.approx(head.probabilities(state, LABELS))
    assert reading.policy.thresholds == HEAD_THRESHOLDS
    assert reading.label is max(reading.probabilities, key=lambda c: reading.probabilities[c])


@pytest.mark.parametrize(
    ("hidden", "status"),
    [
        (None, VerdictStatus.OK),  # a backend without hidden states (Ollama)
        (np.zeros(DIM + 1, dtype=np.float32), VerdictStatus.OK),  # another model's state
        (np.zeros(DIM, dtype=np.float32), VerdictStatus.TIMEOUT),
    ],
)
def test_a_verdict_the_head_cannot_read_is_read_as_label_probabilities(
    policy: Policy, hidden: np.ndarray | None, status: VerdictStatus
) -> None:
    reading = VerdictReader(_with_head(policy), probe_head(DIM)).read(_verdict(hidden, status))
    assert not reading.from_head
    assert reading.view.method != METHOD
    assert reading.policy.thresholds == policy.thresholds
    assert reading.probabilities == pytest.approx(LABELS)


def test_without_a_head_the_calibration_decides_whether_the_reading_is_rescaled(
    policy: Policy,
) -> None:
    plain = VerdictReader(policy.model_copy(update={"calibration": None}), None)
    assert not plain.read(_verdict(None)).rescaled
    calibration = Calibration(temperature=2.0, model="m", fitted_on="dev.csv", fitted_at="x", n=3)
    tempered = VerdictReader(policy.model_copy(update={"calibration": calibration}), None)
    reading = tempered.read(_verdict(None))
    assert reading.rescaled
    assert not reading.from_head
    # Temperature 2 flattens: the top label keeps its place with a lower probability.
    assert reading.label is Category.SERVICE_ACTION
    assert reading.probabilities[Category.SERVICE_ACTION] < LABELS[Category.SERVICE_ACTION]
