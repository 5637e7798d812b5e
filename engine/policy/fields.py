"""What every policy section is built from: the strict frozen base model and constrained types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
AnswerWord = Annotated[
    str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z][A-Za-z_ -]*$")
]


class StrictModel(BaseModel):
    """A policy section: unknown keys are errors, and a loaded policy never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)
