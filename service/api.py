"""The HTTP contract's bodies, with the examples the OpenAPI schema shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.categories import Category, Channel

ADVERSE = "I experienced a severe headache and nausea right after taking the medication."


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"message": ADVERSE, "channel": "chat"}]},
    )

    message: str = Field(min_length=1, description="The customer's message, as received.")
    channel: Channel = Field(default=Channel.CHAT, description="chat, email or voice.")
    policy: str | None = Field(default=None, description="Policy id; default policy if absent.")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Opaque caller data stored with the decision (no PII)."
    )


class PolicyRef(BaseModel):
    id: str
    version: str
    revision: str


class TimingsOut(BaseModel):
    total_ms: float
    redaction_ms: float
    llm_ms: float
    engine_ms: float


class PathStepOut(BaseModel):
    stage: str
    code: str
    detail: str


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "decision_id": "3f1c0a9e5b2d4c8f9a7e6d5c4b3a2910",
                    "category": "safety_compliance",
                    "confidence": 0.91,
                    "requires_human_review": True,
                    "degraded": False,
                    "next_step": "pv_review",
                    "decision_path": [
                        {"stage": "model", "code": "label", "detail": "safety_compliance p=0.910"},
                        {"stage": "threshold", "code": "accepted", "detail": "0.910 >= 0.3"},
                        {"stage": "safety", "code": "human_review", "detail": "mandatory"},
                    ],
                    "policy": {
                        "id": "contact-center",
                        "version": "1.0.0",
                        "revision": "ae813cfa9d05837d",
                    },
                    "timings": {
                        "total_ms": 412.0,
                        "redaction_ms": 0.6,
                        "llm_ms": 405.1,
                        "engine_ms": 6.3,
                    },
                }
            ]
        }
    )

    decision_id: str
    category: Category
    confidence: float | None = Field(description="Model probability of the final category.")
    requires_human_review: bool
    degraded: bool = Field(description="True when the model was not used or failed.")
    next_step: str | None
    decision_path: list[PathStepOut]
    policy: PolicyRef
    timings: TimingsOut
    workflow: dict[str, Any] = Field(default_factory=dict)
    rules_fired: list[dict[str, str]] = Field(default_factory=list)
    llm: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, str] = Field(default_factory=dict)


class ReviewRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "category": "safety_compliance",
                    "note": "Confirmed ADR, filed.",
                    "reviewer": "pv-specialist-7",
                }
            ]
        },
    )

    category: Category = Field(description="The reviewer's final category.")
    note: str = Field(default="", max_length=4000)
    reviewer: str = Field(min_length=1, max_length=200)


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    problems: list[str] | None = None
