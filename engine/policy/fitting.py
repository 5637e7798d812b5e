"""What is fitted on labelled data: the cost matrix thresholds are fitted against, the
calibration temperature and the probe head."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.policy.fields import Probability, StrictModel
from engine.policy.labels import Thresholds


class CostMatrix(StrictModel):
    """Relative cost of outcomes, for threshold fitting."""

    missed_safety: float = Field(default=100.0, ge=0, description="A safety message not routed.")
    false_escalation: float = Field(default=2.0, ge=0, description="Non-safety sent to safety.")
    human_review: float = Field(default=1.0, ge=0, description="A decision queued for a human.")
    misroute: float = Field(default=5.0, ge=0, description="Wrong non-safety category.")


class Calibration(StrictModel):
    """Temperature scaling of the model's label probabilities, fitted on labelled data.

    Applied by the engine before rules and thresholds; the decision record keeps the raw and the
    calibrated probabilities. Refit (``switchboard eval calibrate``) whenever the model, the
    prompt or the few-shot examples change.
    """

    method: Literal["temperature"] = Field(
        default="temperature",
        description="p_i is proportional to p_i ** (1 / temperature); the top label never changes.",
    )
    temperature: float = Field(
        gt=0.0,
        le=100.0,
        description="Above 1 softens an over-confident model, below 1 sharpens an unsure one.",
    )
    model: str = Field(min_length=1, description="The model the temperature was fitted for.")
    fitted_on: str = Field(min_length=1, description="The labelled data it was fitted on.")
    fitted_at: str = Field(min_length=1, description="When it was fitted (ISO date).")
    n: int = Field(ge=1, description="How many labelled decisions it was fitted on.")
    ece_before: Probability | None = Field(
        default=None, description="Expected calibration error on that data before."
    )
    ece_after: Probability | None = Field(
        default=None, description="Expected calibration error on that data after."
    )


class ProbeHeadSpec(StrictModel):
    """A classification head over the model's hidden state, fitted by ``switchboard eval fit-head``.

    When the backend returns the hidden state (the embedded model), the head's probabilities
    replace the label probabilities for rules and thresholds (``llm.method: probe_head``; the
    label probabilities stay in the record). Without one (Ollama, a timeout) decisions use the
    label probabilities, the calibration and the policy's thresholds as before. The head file
    records the model and prompt it was fitted for; ``check`` refuses it after either changes.
    """

    file: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+\.json$",
        description="The head file in this policy's directory (written by `eval fit-head`).",
    )
    thresholds: Thresholds | None = Field(
        default=None,
        description=(
            "Thresholds for the head's probabilities (another scale than the label "
            "probabilities); unset: the policy's thresholds."
        ),
    )
