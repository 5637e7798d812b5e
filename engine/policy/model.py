"""The policy format: strict, frozen pydantic models from which the checked-in JSON Schema is made.

Compliance staff write these as YAML; every field carries a description that editors show.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from engine.categories import Category, Channel, VerdictStatus

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


AnswerWord = Annotated[
    str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z][A-Za-z_ -]*$")
]


class SubIntent(_Strict):
    """One of several answers a category's messages can get (e.g. a side-effect question)."""

    answer: AnswerWord = Field(
        description=(
            "The word or phrase the model answers with for this sub-intent. Every answer of the "
            "policy must start with its own letter (one next-token step scores them all)."
        )
    )
    definition: str = Field(
        min_length=10, description="What this sub-intent covers; rendered into the prompt."
    )


class LabelSpec(_Strict):
    """How one category is described to the model: one answer, or several sub-intent answers."""

    definition: str = Field(
        min_length=10, description="What belongs in this category; rendered into the prompt."
    )
    answer: AnswerWord | None = Field(
        default=None,
        description=(
            "The word the model answers with for this category. Answers must start differently "
            "so one forward pass scores all three (e.g. information / service / safety). "
            "Give either answer or sub_intents."
        ),
    )
    sub_intents: list[SubIntent] | None = Field(
        default=None,
        min_length=1,
        max_length=8,
        description=(
            "Instead of one answer: several answers, each with its own definition; the "
            "category's probability is the sum of its sub-intents' probabilities, and the "
            "decision record keeps each one (llm.answers)."
        ),
    )

    def answers(self) -> tuple[str, ...]:
        """The answers that mean this category, in policy order (one unless sub-intents)."""
        if self.sub_intents:
            return tuple(s.answer for s in self.sub_intents)
        return (self.answer,) if self.answer else ()


class Labels(_Strict):
    """The three categories and their definitions."""

    informational: LabelSpec
    service_action: LabelSpec
    safety_compliance: LabelSpec

    def spec(self, category: Category) -> LabelSpec:
        spec: LabelSpec = getattr(self, category.value)
        return spec

    def has_sub_intents(self) -> bool:
        return any(self.spec(c).sub_intents for c in Category)


class Thresholds(_Strict):
    """Minimum model probability at which its label is accepted without human review."""

    informational: Probability = Field(description="Accept 'informational' at or above this.")
    service_action: Probability = Field(description="Accept 'service_action' at or above this.")
    safety_compliance: Probability = Field(
        description="Accept 'safety_compliance' at or above this. Must not exceed the others."
    )
    safety_escalation: Probability = Field(
        description=(
            "Route to safety whenever the model's probability of safety reaches this, whatever "
            "its top label. Must not exceed the safety acceptance threshold."
        )
    )

    def accept(self, category: Category) -> float:
        value: float = getattr(self, category.value)
        return value


class FewShotExample(_Strict):
    """A worked example shown to the model before the real message."""

    message: str = Field(min_length=1, max_length=2000, description="Example customer message.")
    label: Category = Field(description="The correct category for the example.")
    answer: AnswerWord | None = Field(
        default=None,
        description=(
            "The sub-intent answer the example shows (required when its label has "
            "sub_intents; otherwise the label's answer is used)."
        ),
    )
    channel: Channel = Field(default=Channel.CHAT, description="Channel the example came from.")


class ModelInput(_Strict):
    """What the model reads of a message. Keyword rules always read the whole message."""

    head_chars: int = Field(
        ge=50,
        le=100_000,
        description=(
            "The model reads at most the first head_chars and the last tail_chars characters "
            "(joined by ' [...] '): bounds the tokens, and so the latency, of long messages."
        ),
    )
    tail_chars: int = Field(
        default=0, ge=0, le=100_000, description="Characters kept from the end of a long message."
    )
    withhold_clauses: list[str] = Field(
        default_factory=list,
        max_length=20,
        description=(
            "Keyword groups naming instructions to the classifier: from where a match starts to "
            "the end of its sentence, the text is withheld from the model (a quoted or signature "
            "line that matches, whole), so an instruction inside a message never reaches it."
        ),
    )


class PromptSpec(_Strict):
    """Which template renders the prompt, and what goes into it."""

    template: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+\.j2$",
        description="File name of a Jinja2 template in prompts/ (blocks 'system' and 'user').",
    )
    examples: list[FewShotExample] = Field(
        default_factory=list, max_length=40, description="Few-shot examples, in order."
    )
    max_message_chars: int = Field(
        default=4000,
        ge=100,
        le=100_000,
        description="Longer messages are truncated for the model (never for keyword rules).",
    )
    model_input: ModelInput | None = Field(
        default=None,
        description="Bounds and cleans what the model reads (head + tail, withheld clauses).",
    )


class KeywordGroup(_Strict):
    """Words and patterns matched in Python on the casefolded message, before the model runs."""

    description: str = Field(min_length=3, description="What this group detects, for reviewers.")
    keywords: list[Annotated[str, StringConstraints(min_length=2, max_length=100)]] = Field(
        default_factory=list,
        max_length=2000,
        description="Phrases matched on word boundaries, case-insensitively.",
    )
    patterns: list[Annotated[str, StringConstraints(min_length=1, max_length=500)]] = Field(
        default_factory=list,
        max_length=200,
        description="Python regular expressions, searched case-insensitively.",
    )


class Condition(_Strict):
    """When a rule fires. Every predicate given must hold; ``any`` adds alternatives."""

    keywords_any: list[Identifier] | None = Field(
        default=None, min_length=1, description="At least one of these keyword groups matched."
    )
    keywords_all: list[Identifier] | None = Field(
        default=None, min_length=1, description="Every one of these keyword groups matched."
    )
    keywords_none: list[Identifier] | None = Field(
        default=None, min_length=1, description="None of these keyword groups matched."
    )
    llm_category: list[Category] | None = Field(
        default=None, min_length=1, description="The model's top label is one of these."
    )
    llm_status: list[VerdictStatus] | None = Field(
        default=None, min_length=1, description="The model call ended with one of these statuses."
    )
    channel: list[Channel] | None = Field(
        default=None, min_length=1, description="The message's channel."
    )
    confidence_below: Probability | None = Field(
        default=None, description="The model's confidence in its top label is below this."
    )
    confidence_at_least: Probability | None = Field(
        default=None, description="The model's confidence in its top label is at least this."
    )
    probability_at_least: dict[Category, Probability] | None = Field(
        default=None,
        min_length=1,
        description="The model's probability of each named category is at least.",
    )
    any: list[Condition] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="At least one of these sub-conditions holds.",
    )


class RuleAction(_Strict):
    """What a fired rule contributes to the decision."""

    category: Category | None = Field(
        default=None, description="Route to this category (a rule can never leave safety)."
    )
    requires_human_review: bool = Field(
        default=False, description="Send the decision to the human review queue."
    )


class Rule(_Strict):
    """A deterministic rule evaluated by durable-rules over the decision's facts."""

    id: Identifier = Field(description="Stable id; appears in decision paths and metrics.")
    reason: str = Field(min_length=10, description="Why the rule exists, shown to reviewers.")
    when: Condition = Field(description="The condition under which the rule fires.")
    then: RuleAction = Field(description="What the rule does when it fires.")
    priority: int = Field(default=100, ge=0, le=10_000, description="Lower applies first.")


class Fallback(_Strict):
    """The decision when the model cannot be used."""

    category: Category = Field(description="Category when no rule says otherwise.")
    requires_human_review: bool = Field(default=True, description="Queue for a human.")


class LowConfidence(_Strict):
    """What happens when the model's top label is below its acceptance threshold."""

    category: Category | Literal["keep"] = Field(
        default="keep", description="'keep' the model's label, or route to this category."
    )
    requires_human_review: bool = Field(default=True, description="Queue for a human.")


class OverloadMode(str, Enum):
    DEGRADE = "degrade"
    REJECT = "reject"


class Overload(_Strict):
    """What a request beyond capacity gets."""

    mode: OverloadMode = Field(
        default=OverloadMode.DEGRADE,
        description="'degrade' answers rules-only; 'reject' answers 429/503 with Retry-After.",
    )
    status_code: Literal[429, 503] = Field(default=503, description="Status when rejecting.")
    retry_after_s: int = Field(default=2, ge=1, le=300, description="Retry-After when rejecting.")


class Fallbacks(_Strict):
    """Fail-safe behaviour. Safety keyword rules still run in every case."""

    model_error: Fallback
    timeout: Fallback
    invalid_output: Fallback
    low_confidence: LowConfidence
    overload: Overload = Field(default_factory=Overload)
    model_deadline_ms: int = Field(
        default=3000, ge=50, le=60_000, description="Longest wait for the model per decision."
    )


class StepAction(str, Enum):
    """What a workflow step does. ``external`` steps call an integration."""

    CAPTURE = "capture"
    ENRICH = "enrich"
    QUEUE_HUMAN_REVIEW = "queue_human_review"
    CREATE_CASE_RECORD = "create_case_record"
    EXTERNAL = "external"


class WorkflowStep(_Strict):
    """One node of a category's workflow graph."""

    action: StepAction = Field(description="What the step does.")
    description: str = Field(default="", description="For reviewers.")
    integration: Identifier | None = Field(
        default=None, description="External system an 'external' step calls (e.g. ticketing)."
    )
    queue: Identifier | None = Field(
        default=None, description="Review queue a 'queue_human_review' step uses."
    )
    next: Identifier | None = Field(default=None, description="The following step; none ends.")
    next_if_review: Identifier | None = Field(
        default=None, description="The following step when the decision requires human review."
    )


class Workflow(_Strict):
    """A category's step graph."""

    start: Identifier = Field(description="The first step.")
    sla_hours: float | None = Field(
        default=None, gt=0, le=24 * 30, description="Time by which the workflow must finish."
    )
    steps: dict[Identifier, WorkflowStep] = Field(min_length=1, max_length=50)
    after_review: Identifier | None = Field(
        default=None,
        description="The step a decision continues from once a reviewer has decided, also when "
        "the reviewer moved it into this category; none ends the workflow at the review.",
    )


class Workflows(_Strict):
    informational: Workflow
    service_action: Workflow
    safety_compliance: Workflow

    def for_category(self, category: Category) -> Workflow:
        workflow: Workflow = getattr(self, category.value)
        return workflow


class ChannelAdjustment(_Strict):
    """Per-channel normalisation and threshold changes."""

    strip_quoted_replies: bool = Field(default=False, description="Drop '>' quotes and history.")
    strip_signature: bool = Field(default=False, description="Drop text after a '-- ' line.")
    drop_disfluencies: bool = Field(default=False, description="Drop 'um', 'uh', repeats.")
    thresholds: dict[Category, Probability] = Field(
        default_factory=dict, description="Acceptance thresholds that replace the policy's."
    )


class Redaction(_Strict):
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


class CostMatrix(_Strict):
    """Relative cost of outcomes, for threshold fitting."""

    missed_safety: float = Field(default=100.0, ge=0, description="A safety message not routed.")
    false_escalation: float = Field(default=2.0, ge=0, description="Non-safety sent to safety.")
    human_review: float = Field(default=1.0, ge=0, description="A decision queued for a human.")
    misroute: float = Field(default=5.0, ge=0, description="Wrong non-safety category.")


class Calibration(_Strict):
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


class ProbeHeadSpec(_Strict):
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


class Policy(_Strict):
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
