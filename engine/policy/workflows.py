"""Each category's workflow: a graph of steps up to a human review or an external system."""

from __future__ import annotations

from enum import Enum

from pydantic import Field

from engine.categories import Category
from engine.policy.fields import Identifier, StrictModel


class StepAction(str, Enum):
    """What a workflow step does. ``external`` steps call an integration."""

    CAPTURE = "capture"
    ENRICH = "enrich"
    QUEUE_HUMAN_REVIEW = "queue_human_review"
    CREATE_CASE_RECORD = "create_case_record"
    EXTERNAL = "external"


class WorkflowStep(StrictModel):
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


class Workflow(StrictModel):
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


class Workflows(StrictModel):
    informational: Workflow
    service_action: Workflow
    safety_compliance: Workflow

    def for_category(self, category: Category) -> Workflow:
        workflow: Workflow = getattr(self, category.value)
        return workflow
