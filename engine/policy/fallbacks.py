"""What a decision falls back to when the model fails, times out, is unsure or over capacity."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field

from engine.categories import Category
from engine.policy.fields import StrictModel


class Fallback(StrictModel):
    """The decision when the model cannot be used."""

    category: Category = Field(description="Category when no rule says otherwise.")
    requires_human_review: bool = Field(default=True, description="Queue for a human.")


class LowConfidence(StrictModel):
    """What happens when the model's top label is below its acceptance threshold."""

    category: Category | Literal["keep"] = Field(
        default="keep", description="'keep' the model's label, or route to this category."
    )
    requires_human_review: bool = Field(default=True, description="Queue for a human.")


class OverloadMode(str, Enum):
    DEGRADE = "degrade"
    REJECT = "reject"


class Overload(StrictModel):
    """What a request beyond capacity gets."""

    mode: OverloadMode = Field(
        default=OverloadMode.DEGRADE,
        description="'degrade' answers rules-only; 'reject' answers 429/503 with Retry-After.",
    )
    status_code: Literal[429, 503] = Field(default=503, description="Status when rejecting.")
    retry_after_s: int = Field(default=2, ge=1, le=300, description="Retry-After when rejecting.")


class Fallbacks(StrictModel):
    """Fail-safe behaviour. Safety keyword rules still run in every case."""

    model_error: Fallback
    timeout: Fallback
    invalid_output: Fallback
    low_confidence: LowConfidence
    overload: Overload = Field(default_factory=Overload)
    model_deadline_ms: int = Field(
        default=3000, ge=50, le=60_000, description="Longest wait for the model per decision."
    )
