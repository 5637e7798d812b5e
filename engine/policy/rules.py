"""Keyword groups and the deterministic rules over them and the model's verdict."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from engine.categories import Category, Channel, VerdictStatus
from engine.policy.fields import Identifier, Probability, StrictModel


class KeywordGroup(StrictModel):
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


class Condition(StrictModel):
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


class RuleAction(StrictModel):
    """What a fired rule contributes to the decision."""

    category: Category | None = Field(
        default=None, description="Route to this category (a rule can never leave safety)."
    )
    requires_human_review: bool = Field(
        default=False, description="Send the decision to the human review queue."
    )


class Rule(StrictModel):
    """A deterministic rule evaluated by durable-rules over the decision's facts."""

    id: Identifier = Field(description="Stable id; appears in decision paths and metrics.")
    reason: str = Field(min_length=10, description="Why the rule exists, shown to reviewers.")
    when: Condition = Field(description="The condition under which the rule fires.")
    then: RuleAction = Field(description="What the rule does when it fires.")
    priority: int = Field(default=100, ge=0, le=10_000, description="Lower applies first.")
