"""The decision record: one immutable, self-explaining account of a decision.

It carries what is needed to explain and replay the decision (policy revision, template hash,
model digest, label probabilities, fired rules, ordered path) and never the raw message: only the
redacted text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from engine.categories import Category, Channel, VerdictStatus


@dataclass(frozen=True)
class PathStep:
    """One step of the decision path: which stage, what happened, the detail."""

    stage: str
    code: str
    detail: str = ""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PolicyStamp(_Frozen):
    id: str
    version: str
    revision: str


class ModelStamp(_Frozen):
    backend: str
    name: str
    digest: str


class LLMResult(_Frozen):
    status: VerdictStatus
    label: Category | None
    confidence: float | None
    probabilities: dict[Category, float] = Field(
        description="The model's own label probabilities (before any calibration)."
    )
    calibrated: dict[Category, float] | None = Field(
        default=None,
        description=(
            "The probabilities rules and thresholds used, when the policy calibrates or its "
            "probe head read the model's hidden state (method 'probe_head')."
        ),
    )
    method: str
    raw_output: str = ""
    error: str | None = None
    answers: dict[str, float] | None = Field(
        default=None,
        description=(
            "Each sub-intent answer's probability, when the policy gives a category several "
            "answers (labels.<category>.sub_intents): a category's entry in 'probabilities' is "
            "the sum of its answers'. Null for one answer per category."
        ),
    )


class FiredRule(_Frozen):
    id: str
    reason: str


class CaseRecord(_Frozen):
    """The case a workflow's ``create_case_record`` step opened."""

    case_id: str
    opened_at: str
    keywords_matched: list[str] | None = Field(
        default=None, description="Keyword groups matched, when an enrich step ran before."
    )
    sla_due_at: str | None = None


class WorkflowTrace(_Frozen):
    name: Category
    completed: list[str]
    next_step: str | None
    status: str = Field(description="'awaiting_review', 'dispatched' or 'completed'.")
    queue: str | None = Field(default=None, description="Review queue while awaiting review.")
    sla_due_at: str | None = None
    case: CaseRecord | None = None


class HandOff(_Frozen):
    """One piece of work a decision hands to someone outside the engine: a human review queue or
    an external system (ticketing, the safety database).

    The engine only says what is to be handed off; the service commits it with the record (the
    outbox) and delivers it afterwards. This model is the message format downstream systems
    read (``schemas/handoff.v1.schema.json`` is generated from it).
    """

    schema_version: Literal[1] = Field(default=1, description="Version of this message format.")
    idempotency_key: str = Field(
        description="'<decision_id>:<step>'. The same hand-off always has the same key: a "
        "consumer that has seen a key drops the message (delivery is at least once)."
    )
    decision_id: str = Field(description="The decision record: GET /decisions/{decision_id}.")
    cause: Literal["decision", "review"] = Field(
        description="'decision': implied by the decision; 'review': by a reviewer's outcome."
    )
    kind: Literal["review", "dispatch"] = Field(
        description="'review': queue for a human; 'dispatch': hand to an external system."
    )
    step: str = Field(description="The workflow step that hands off (e.g. report_to_safety_db).")
    target: str = Field(description="The review queue or the integration the step names.")
    routing_key: str = Field(description="'review.<queue>' or 'dispatch.<integration>'.")
    category: Category
    policy_revision: str
    payload: dict[str, JsonValue] = Field(
        description="What the workflow collected for the step: channel, received_at, "
        "keywords_matched, sla_due_at, case_id, review (when cause is 'review')."
    )


def handoff(
    *,
    decision_id: str,
    cause: Literal["decision", "review"],
    kind: Literal["review", "dispatch"],
    step: str,
    target: str,
    category: Category,
    policy_revision: str,
    payload: dict[str, JsonValue],
) -> HandOff:
    """A hand-off with its idempotency key and routing key derived, the one place they are."""
    return HandOff(
        idempotency_key=f"{decision_id}:{step}",
        decision_id=decision_id,
        cause=cause,
        kind=kind,
        step=step,
        target=target,
        routing_key=f"{kind}.{target}",
        category=category,
        policy_revision=policy_revision,
        payload=payload,
    )


HANDOFF_SCHEMA_ID = "https://switchboard.example/schemas/handoff.v1.schema.json"


def handoff_schema() -> dict[str, object]:
    """The hand-off message format as JSON Schema, generated from ``HandOff`` (the file in
    ``schemas/`` is this, written by ``switchboard handoffs schema --write``)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": HANDOFF_SCHEMA_ID,
        **HandOff.model_json_schema(),
    }


class Timings(_Frozen):
    total_ms: float
    redaction_ms: float
    llm_ms: float
    engine_ms: float = Field(description="Everything but redaction and the model call.")


class TokenUsage(_Frozen):
    prompt: int
    cached: int
    output: int


class DecisionRecord(_Frozen):
    """What was decided, why, by which policy revision and model, and how long it took."""

    decision_id: str
    created_at: str
    channel: Channel
    input_redacted: str
    input_chars: int
    redaction: str = Field(description="'applied', 'none' or 'failed'.")
    metadata: dict[str, JsonValue] = Field(
        default_factory=dict, description="The caller's opaque metadata, stored as given."
    )
    policy: PolicyStamp
    prompt_template_hash: str
    model: ModelStamp
    llm: LLMResult
    keywords_matched: list[str]
    rules_fired: list[FiredRule]
    category: Category
    confidence: float | None = Field(
        description="The model's probability of the final category; null when it was not used."
    )
    requires_human_review: bool
    degraded: bool
    decision_path: list[PathStep]
    workflow: WorkflowTrace
    next_step: str | None
    handoffs: list[HandOff] = Field(
        default_factory=list,
        description="What the decision hands off; committed with the record, delivered after.",
    )
    timings: Timings
    tokens: TokenUsage
    cost_usd: float

    def explain(self) -> str:
        """The decision path as lines a reviewer can read."""
        return "\n".join(f"{s.stage:>9} | {s.code}: {s.detail}" for s in self.decision_path)


def encode_record(record: DecisionRecord) -> bytes:
    """The record as JSON: made once per decision, the same bytes answer and are stored."""
    return record.__pydantic_serializer__.to_json(record)
