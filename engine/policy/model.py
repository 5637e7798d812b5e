"""The policy format: strict, frozen pydantic models from which the checked-in JSON Schema is made.

Compliance staff write these as YAML; every field carries a description that editors show.
``Policy`` is assembled here from its sections: labels and thresholds (``labels.py``), prompt
(``prompt.py``), keyword groups and rules (``rules.py``), fallbacks (``fallbacks.py``), workflows
(``workflows.py``), calibration, probe head and cost matrix (``fitting.py``); channel adjustments
and redaction are defined here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from engine.categories import Category, Channel
from engine.policy.fallbacks import Fallbacks
from engine.policy.fields import Identifier, Probability, StrictModel
from engine.policy.fitting import Calibration, CostMatrix, ProbeHeadSpec
from engine.policy.labels import Labels, Thresholds
from engine.policy.prompt import PromptSpec
from engine.policy.rules import KeywordGroup, Rule
from engine.policy.workflows import Workflows

SCHEMA_VERSION = 1


class ChannelAdjustment(StrictModel):
    """Per-channel normalisation and threshold changes."""

    strip_quoted_replies: bool = Field(default=False, description="Drop '>' quotes and history.")
    strip_signature: bool = Field(default=False, description="Drop text after a '-- ' line.")
    drop_disfluencies: bool = Field(default=False, description="Drop 'um', 'uh', repeats.")
    thresholds: dict[Category, Probability] = Field(
        default_factory=dict, description="Acceptance thresholds that replace the policy's."
    )


class Redaction(StrictModel):
    """PII handling: which entity types are replaced before the text reaches the model."""

    entities: list[Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z_]{1,40}$")]] = Field(
        default_factory=lambda: ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"],
        description="Presidio entity types to redact.",
    )
    custom_patterns: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z_]{1,40}$")],
        list[Annotated[str, StringConstraints(min_length=1, max_length=500)]],
    ] = Field(default_factory=dict, description="Extra entity types, each with regexes.")
    phone_regions: list[Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]] = Field(
        default_factory=list,
        description="Regions whose national phone formats PHONE_NUMBER looks for (ISO 3166 "
        "codes such as US, GB). Numbers written with +country code are found whatever this "
        "says. Each region costs about 4 ms per 1,000 characters of message. Empty or unset: "
        "Presidio's eight (US, GB, DE, FR, IL, IN, CA, BR).",
    )


class Policy(StrictModel):
    """A complete, versioned triage policy."""

    schema_version: Literal[1] = Field(description="Version of this format.")
    id: Identifier = Field(description="Policy id, used by callers to select it.")
    version: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")] = Field(
        description="Semantic version, bumped in every pull request that changes behaviour."
    )
    description: str = Field(default="", description="What this policy is for.")
    labels: Labels
    thresholds: Thresholds
    prompt: PromptSpec
    keyword_groups: dict[Identifier, KeywordGroup] = Field(default_factory=dict, max_length=100)
    rules: list[Rule] = Field(default_factory=list, max_length=500)
    fallbacks: Fallbacks
    workflows: Workflows
    channels: dict[Channel, ChannelAdjustment] = Field(default_factory=dict)
    redaction: Redaction = Field(default_factory=Redaction)
    cost_matrix: CostMatrix = Field(default_factory=CostMatrix)
    calibration: Calibration | None = Field(
        default=None, description="Optional calibration of the model's probabilities."
    )
    head: ProbeHeadSpec | None = Field(
        default=None, description="Optional probe head read from the model's hidden state."
    )

    def channel_adjustment(self, channel: Channel) -> ChannelAdjustment:
        found = self.channels.get(channel)
        return ChannelAdjustment() if found is None else found

    def accept_threshold(self, category: Category, channel: Channel) -> float:
        # Per decision: no default adjustment built for a channel the policy does not adjust.
        adjustment = self.channels.get(channel)
        override = None if adjustment is None else adjustment.thresholds.get(category)
        return self.thresholds.accept(category) if override is None else override
