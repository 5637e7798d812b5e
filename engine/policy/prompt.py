"""The prompt section of a policy: template, few-shot examples and what the model reads of a
message."""

from __future__ import annotations

from pydantic import Field

from engine.categories import Category, Channel
from engine.policy.fields import AnswerWord, StrictModel


class FewShotExample(StrictModel):
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


class ModelInput(StrictModel):
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
    max_tokens: int | None = Field(
        default=None,
        ge=32,
        le=100_000,
        description=(
            "At most this many of the model's tokens of the message, counted by the model's own "
            "tokenizer where the backend has one (the embedded model): when the cut text is "
            "longer, head and tail shrink together until it fits. Characters bound the latency "
            "of Latin text; scripts that take a token or more per character (Chinese, Greek, "
            "Hindi) need this bound too. Without a tokenizer (Ollama, OpenAI) only the "
            "characters bound."
        ),
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


class PromptSpec(StrictModel):
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
