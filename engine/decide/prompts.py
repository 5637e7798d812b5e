"""Renders a policy's Jinja2 prompt template into chat turns, in a sandbox, message last.

A template defines two blocks: ``system`` (instructions and label definitions; static) and
``user`` (one message). The few-shot examples are rendered with the same ``user`` block, so the
static prefix is byte-identical between calls and backends can keep it cached.

When the ``user`` block only ever prints ``{{ message }}`` as it is (no filter, test, loop or
assignment reads it, no call or random filter makes the output vary), its output is the block
rendered in the sandbox once per channel with a placeholder, and the message put where the
placeholder was: the same text, without a sandboxed render per message. Any other template is
rendered per message, as before.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jinja2 import nodes

from engine.backends.base import ChatMessage, LabelChoice, RenderedPrompt
from engine.backends.readout import DEFAULT_READOUT, Readout
from engine.categories import CATEGORIES, Category, Channel
from engine.decide.head import prefix_hash
from engine.decide.model_view import ModelView
from engine.errors import PromptRenderError
from engine.policy.model import Policy
from engine.policy.templates import template_environment

# Chat-template control sequences (<|im_start|>, <|endoftext|>, [INST], ...) never reach a model
# from a customer message: they could forge conversation turns.
_CONTROL_SEQUENCE = re.compile(r"<\|[^|<>\n]{0,40}\|>|\[/?INST\]|<</?SYS>>")


def neutralise(message: str) -> str:
    return _CONTROL_SEQUENCE.sub(" ", message)


@dataclass(frozen=True)
class _AnswerView:
    answer: str
    definition: str


@dataclass(frozen=True)
class _LabelView:
    """What a template sees of a label: ``answer`` is empty when it has sub-intents, which
    ``answers`` lists (a one-answer label lists its answer with the label's definition)."""

    name: str
    answer: str
    definition: str
    answers: tuple[_AnswerView, ...]


def _label_view(policy: Policy, category: Category) -> _LabelView:
    spec = policy.labels.spec(category)
    if spec.sub_intents:
        answers = tuple(_AnswerView(s.answer, s.definition) for s in spec.sub_intents)
    else:
        answers = (_AnswerView(spec.answer or "", spec.definition),)
    return _LabelView(category.value, spec.answer or "", spec.definition, answers)


def _marker(answer: str) -> str:
    return f"\x00answer:{answer}\x00"


class PromptBuilder:
    """Builds RenderedPrompts for one policy revision; the static prefix is rendered once."""

    def __init__(
        self,
        policy: Policy,
        prompts_dir: Path,
        readout: Readout = DEFAULT_READOUT,
        count_tokens: Callable[[str], int | None] | None = None,
    ) -> None:
        self._policy = policy
        self.readout = readout  # what the policy's head reads of the decode, carried to the backend
        env = template_environment(prompts_dir)
        path = prompts_dir / policy.prompt.template
        source = path.read_text(encoding="utf-8")
        self.template_hash = "sha256:" + hashlib.sha256(source.encode("utf-8")).hexdigest()
        self._template = env.from_string(source)
        # One choice per answer: a label with sub-intents has several, and its probability is
        # the sum of theirs (``answer_probabilities``).
        self.choices = tuple(
            LabelChoice(category=c, answer=a)
            for c in CATEGORIES
            for a in policy.labels.spec(c).answers()
        )
        self._labels = [_label_view(policy, c) for c in CATEGORIES]
        self._check_every_answer_is_shown()
        system = self._block("system", self._ctx())
        prefix: list[ChatMessage] = [ChatMessage("system", system)]
        for example in policy.prompt.examples:
            ctx = self._ctx(message=neutralise(example.message), channel=example.channel)
            prefix.append(ChatMessage("user", self._block("user", ctx)))
            answer = example.answer or policy.labels.spec(example.label).answers()[0]
            prefix.append(ChatMessage("assistant", answer))
        self._prefix = tuple(prefix)
        self.prefix_hash = prefix_hash(self._prefix)
        self.view = ModelView(policy.prompt.model_input, policy.keyword_groups, count_tokens)
        self._verbatim = _prints_message_verbatim(env.parse(source))
        # The user block's output split where the message goes, per channel (filled on first use).
        self._slots: dict[Channel, list[str]] = {}

    def _check_every_answer_is_shown(self) -> None:
        """The system block must render every answer: rendered once with a marker in place of
        each answer word, every marker must come out (a definition that happens to contain the
        word does not count). The model cannot answer with a word it was not offered."""
        marked = [
            replace(
                view,
                answer=_marker(view.answer) if view.answer else "",
                answers=tuple(replace(a, answer=_marker(a.answer)) for a in view.answers),
            )
            for view in self._labels
        ]
        system = self._block("system", {**self._ctx(), "labels": marked})
        missing = [c.answer for c in self.choices if _marker(c.answer) not in system]
        if missing:
            raise PromptRenderError(
                f"template {self._policy.prompt.template!r} never shows the answers {missing}: "
                "the model cannot answer with a word it was not offered (a label with "
                "sub_intents lists them in labels[].answers, each with answer and definition)"
            )

    def _ctx(self, message: str = "", channel: Channel = Channel.CHAT) -> dict[str, Any]:
        return {
            "labels": self._labels,
            "message": message,
            "channel": channel.value,
            "policy_id": self._policy.id,
        }

    def _block(self, block: str, context: Mapping[str, Any]) -> str:
        try:
            render = self._template.blocks[block]
            return "".join(render(self._template.new_context(dict(context)))).strip()
        except Exception as exc:  # template code is policy-authored: any failure is a render error
            raise PromptRenderError(
                f"template {self._policy.prompt.template!r} block {block!r}: {exc}"
            ) from exc

    def render(self, message: str, channel: Channel) -> RenderedPrompt:
        limit = self._policy.prompt.max_message_chars
        text = self.view(neutralise(message))[:limit]
        parts = self._slots.get(channel) if self._verbatim else None
        if parts is None and self._verbatim:
            parts = self._slot(channel)
        if parts is not None:
            # What _block returns: the block's output, stripped after the message is in.
            user = ChatMessage("user", text.join(parts).strip())
        else:
            ctx = self._ctx(message=text, channel=channel)
            user = ChatMessage("user", self._block("user", ctx))
        return RenderedPrompt(
            messages=(*self._prefix, user), template_hash=self.template_hash, readout=self.readout
        )

    def _slot(self, channel: Channel) -> list[str] | None:
        """The user block rendered for ``channel`` with a placeholder message, split around it;
        None when that render fails (each message then renders, and fails, on its own)."""
        try:
            render = self._template.blocks["user"]
            ctx = self._template.new_context(self._ctx(message=_PLACEHOLDER, channel=channel))
            output = "".join(render(ctx))
        except Exception:  # policy-authored template code: the per-message render reports it
            return None
        parts = self._slots[channel] = output.split(_PLACEHOLDER)
        return parts


# No template text holds it: a NUL and a private-use character around a name.
_PLACEHOLDER = "\x00\ue000switchboard-message\ue000\x00"


def _prints_message_verbatim(template: nodes.Template) -> bool:
    """The ``user`` block reads ``message`` only as a bare ``{{ message }}`` and its output
    depends on nothing but its context: no other template is pulled in, nothing is called,
    nothing random is drawn."""
    if any(template.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport))):
        return False
    user = next((b for b in template.find_all(nodes.Block) if b.name == "user"), None)
    if user is None or any(user.find_all(nodes.Call)):
        return False
    if any(f.name == "random" for f in user.find_all(nodes.Filter)):
        return False
    printed = {
        id(node)
        for output in user.find_all(nodes.Output)
        for node in output.nodes
        if isinstance(node, nodes.Name)
    }
    return all(
        id(name) in printed and name.ctx == "load"
        for name in user.find_all(nodes.Name)
        if name.name == "message"
    )
