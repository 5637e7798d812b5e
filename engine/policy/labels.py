"""The policy's categories as the model sees them (definitions, answers, sub-intents) and the
thresholds at which its label is accepted."""

from __future__ import annotations

from pydantic import Field

from engine.categories import Category
from engine.policy.fields import AnswerWord, Probability, StrictModel


class SubIntent(StrictModel):
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


class LabelSpec(StrictModel):
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


class Labels(StrictModel):
    """The three categories and their definitions."""

    informational: LabelSpec
    service_action: LabelSpec
    safety_compliance: LabelSpec

    def spec(self, category: Category) -> LabelSpec:
        spec: LabelSpec = getattr(self, category.value)
        return spec

    def has_sub_intents(self) -> bool:
        return any(self.spec(c).sub_intents for c in Category)


class Thresholds(StrictModel):
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
