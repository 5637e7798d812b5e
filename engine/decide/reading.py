"""What a decision reads of the model's verdict, and which thresholds it reads them against.

The probe head's probabilities when the policy has a head and it can read this verdict (an OK
verdict carrying a hidden state of the head's size), with the head's own thresholds; otherwise the
label probabilities, calibrated when the policy says so, with the policy's thresholds. The record
keeps the label probabilities either way. ``head_problems`` is the build-time check that a head
reads the model the backend will run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from engine.backends.base import HiddenStateBackend, LabelVerdict, LLMBackend
from engine.backends.model_files import PACKAGED_MODELS, packaged_model_with_digest
from engine.categories import Category, VerdictStatus
from engine.decide.calibration import calibrate
from engine.decide.head import METHOD as HEAD_METHOD
from engine.decide.head import ProbeHead, head_mismatches
from engine.decide.prompts import PromptBuilder
from engine.policy.labels import Thresholds
from engine.policy.model import Policy


@dataclass(frozen=True)
class Reading:
    """A verdict as the thresholds and rules read it."""

    view: LabelVerdict
    """The verdict with the probabilities read (its label is the argmax of those)."""
    policy: Policy
    """The policy whose thresholds apply to ``view``'s probabilities."""
    from_head: bool
    rescaled: bool
    """True when ``view``'s probabilities are not the label probabilities as the model gave them
    (a head read them, or the policy calibrates)."""

    @property
    def probabilities(self) -> Mapping[Category, float]:
        return self.view.probabilities

    @property
    def label(self) -> Category | None:
        return self.view.label


class VerdictReader:
    """One per engine: reads every verdict of one policy revision."""

    def __init__(self, policy: Policy, head: ProbeHead | None) -> None:
        self.head = head
        self._policy = policy
        spec = policy.head
        # The head's probabilities have their own scale, so their own thresholds (when given).
        self._head_policy = (
            policy.model_copy(update={"thresholds": spec.thresholds})
            if spec is not None and spec.thresholds is not None
            else policy
        )

    @property
    def head_thresholds(self) -> Thresholds:
        """The thresholds a decision the head read is held to."""
        return self._head_policy.thresholds

    def read(self, verdict: LabelVerdict) -> Reading:
        from_head = self._head_probabilities(verdict)
        if from_head is not None:
            view = replace(verdict, probabilities=from_head, method=HEAD_METHOD)
            return Reading(view, self._head_policy, from_head=True, rescaled=True)
        calibration = self._policy.calibration
        view = replace(verdict, probabilities=calibrate(verdict.probabilities, calibration))
        return Reading(view, self._policy, from_head=False, rescaled=calibration is not None)

    def _head_probabilities(self, verdict: LabelVerdict) -> dict[Category, float] | None:
        hidden = verdict.hidden_state
        if self.head is None or hidden is None or verdict.status is not VerdictStatus.OK:
            return None
        if hidden.shape != (self.head.dim,):  # build checked the backend: not expected
            return None
        if not self.head.reads(verdict.probabilities):
            return None  # a fusing head needs every label's probability: not expected either
        return self.head.probabilities(hidden, verdict.probabilities)


def head_problems(head: ProbeHead, prompts: PromptBuilder, backend: LLMBackend) -> list[str]:
    """The head must read the hidden states of the model the embedded backend runs.

    A backend without hidden states (Ollama, the fake ``check`` builds with) cannot say which
    model will serve: the head must then name one of the packaged models the embedded backend
    loads.
    """
    if isinstance(backend, HiddenStateBackend):
        digest, size, layers = (
            backend.model_digest,
            backend.hidden_state_size,
            backend.layer_count,
        )
    else:
        packaged = packaged_model_with_digest(head.model_digest) or PACKAGED_MODELS[0]
        digest, size, layers = packaged.digest, None, packaged.layers
    return head_mismatches(
        head,
        model_digest=digest,
        hidden_size=size,
        template_hash=prompts.template_hash,
        prompt_prefix_hash=prompts.prefix_hash,
        layer_count=layers,
    )
