"""The HTTP contract's bodies, with the examples the OpenAPI schema shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from engine import Category, Channel, DecisionRecord

ADVERSE = "I experienced a severe headache and nausea right after taking the medication."


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"message": ADVERSE, "channel": "chat"}]},
    )

    message: str = Field(min_length=1, description="The customer's message, as received.")
    channel: Channel = Field(default=Channel.CHAT, description="chat, email or voice.")
    policy: str | None = Field(default=None, description="Policy id; default policy if absent.")
    metadata: dict[str, JsonValue] | None = Field(
        default=None, description="Opaque caller data stored with the decision (no PII)."
    )


_EXAMPLE_RECORD: dict[str, Any] = {
    "decision_id": "3f1c0a9e5b2d4c8f9a7e6d5c4b3a2910",
    "created_at": "2026-11-23T12:00:00.000000+00:00",
    "channel": "chat",
    "input_redacted": ADVERSE,
    "input_chars": len(ADVERSE),
    "redaction": "applied",
    "metadata": {},
    "policy": {"id": "contact-center", "version": "1.1.0", "revision": "ae813cfa9d05837d"},
    "prompt_template_hash": "sha256:5be1c0f2…",
    "model": {"backend": "embedded", "name": "qwen2.5-coder-0.5b-instruct-q8_0", "digest": "…"},
    "llm": {
        "status": "ok",
        "label": "safety_compliance",
        "confidence": 0.91,
        "probabilities": {
            "informational": 0.04,
            "service_action": 0.05,
            "safety_compliance": 0.91,
        },
        "calibrated": None,
        "method": "label_prefix_mass",
        "raw_output": "",
        "error": None,
    },
    "keywords_matched": ["adverse_reaction"],
    "rules_fired": [
        {"id": "safety-keyword-override", "reason": "Adverse-reaction words always go to safety."}
    ],
    "category": "safety_compliance",
    "confidence": 0.91,
    "requires_human_review": True,
    "degraded": False,
    "decision_path": [
        {"stage": "model", "code": "label", "detail": "safety_compliance p=0.910"},
        {"stage": "threshold", "code": "accepted", "detail": "0.910 >= 0.3"},
        {"stage": "safety", "code": "human_review", "detail": "mandatory for safety_compliance"},
    ],
    "workflow": {
        "name": "safety_compliance",
        "completed": ["capture", "enrich", "open_case"],
        "next_step": "pv_review",
        "status": "awaiting_review",
        "queue": "pharmacovigilance",
        "sla_due_at": "2026-11-24T12:00:00+00:00",
        "case": {
            "case_id": "case-3f1c0a9e5b2d4c8f9a7e6d5c4b3a2910",
            "opened_at": "2026-11-23T12:00:00+00:00",
            "keywords_matched": ["adverse_reaction"],
            "sla_due_at": "2026-11-24T12:00:00+00:00",
        },
    },
    "next_step": "pv_review",
    "timings": {"total_ms": 412.0, "redaction_ms": 0.6, "llm_ms": 405.1, "engine_ms": 0.4},
    "tokens": {"prompt": 17, "cached": 690, "output": 1},
    "cost_usd": 0.0000707,
}


class ClassifyResponse(DecisionRecord):
    """The decision record, exactly as stored in the audit log (redacted text only)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_RECORD]})


class ReviewRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "category": "safety_compliance",
                    "note": "Confirmed ADR, filed.",
                }
            ]
        },
    )

    category: Category = Field(description="The reviewer's final category.")
    note: str = Field(default="", max_length=4000)
    # No ``reviewer``: the reviewer is the credential's subject, never what the body says.


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    problems: list[str] | None = None
