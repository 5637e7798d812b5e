"""One message decided under two policy revisions, sharing the model verdict when it can.

The one replay ``switchboard diff`` and the workbench's playground both use. Each message is
prepared by both engines (channel normalisation, redaction, keyword groups) and its prompt is
rendered by both. When the two prompts are identical, one verdict serves both sides: a recorded
one when there is one, otherwise one model call. Only when the prompt itself changed is the model
asked twice. The verdict is the only input the two sides could disagree on by chance, so every
difference between the two decisions is caused by the policy change.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from engine.backends.base import LabelVerdict, RenderedPrompt
from engine.categories import Category, Channel, VerdictStatus
from engine.decide.engine import Engine
from engine.decide.record import DecisionRecord, PathStep
from engine.decide.request import DecisionRequest
from engine.errors import MessageRejectedError, ReplayError

SAFETY = Category.SAFETY_COMPLIANCE
CACHED = "cached"
"""The ``method`` of a verdict read back from a ``VerdictCache``."""
T = TypeVar("T")


class VerdictCache(Protocol):
    """Verdicts with their hidden state, kept between runs by model and rendered prompt (e.g.
    ``eval.hidden_cache.HiddenStateCache``); a verdict read back has ``method == CACHED``."""

    def get(self, model_digest: str, prompt: RenderedPrompt) -> LabelVerdict | None: ...

    def put(self, model_digest: str, prompt: RenderedPrompt, verdict: LabelVerdict) -> None: ...


@dataclass(frozen=True)
class ReplayCase:
    """One message to decide under both revisions, with what is known about it."""

    case_id: str
    message: str
    channel: Channel
    source: str
    label: Category | None = None
    recorded: LabelVerdict | None = None


def read_csv_cases(path: Path) -> list[ReplayCase]:
    """A labelled CSV: ``text`` (required), ``id``, ``label``, ``channel`` (optional)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from exc
    if rows and "text" not in rows[0]:
        raise ReplayError(f"{path} has no 'text' column; expected id,text,label[,channel]")
    cases = []
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            label = Category(row["label"]) if row.get("label") else None
            channel = Channel(row["channel"]) if row.get("channel") else Channel.CHAT
        except ValueError as exc:
            raise ReplayError(f"{path}:{i}: {exc}") from exc
        cases.append(
            ReplayCase(
                case_id=row.get("id") or f"{path.stem}-{i}",
                message=row["text"] or "",
                channel=channel,
                source=path.name,
                label=label,
            )
        )
    return cases


@dataclass(frozen=True)
class Difference:
    """One aspect of the decision as each revision answers it."""

    aspect: str  # "category", "confidence", "human review", "keyword groups", ...
    base: str
    head: str

    @property
    def differs(self) -> bool:
        return self.base != self.head


def aligned(left: Sequence[T], right: Sequence[T]) -> list[tuple[T | None, T | None]]:
    """Two paths as rows, the steps both share on the same row (a line diff of the paths)."""
    rows: list[tuple[T | None, T | None]] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            rows += zip(left[i1:i2], right[j1:j2], strict=True)
        else:
            rows += [(step, None) for step in left[i1:i2]]
            rows += [(None, step) for step in right[j1:j2]]
    return rows


@dataclass(frozen=True)
class Comparison:
    """One message decided under both revisions."""

    case: ReplayCase
    base: DecisionRecord
    head: DecisionRecord
    verdict_source: str  # "recorded", "cached", "model" (one call for both sides) or "model x2"

    @property
    def category_changed(self) -> bool:
        return self.base.category is not self.head.category

    @property
    def leaves_safety(self) -> bool:
        return self.base.category is SAFETY and self.head.category is not SAFETY

    @property
    def enters_safety(self) -> bool:
        return self.base.category is not SAFETY and self.head.category is SAFETY

    @property
    def review_changed(self) -> bool:
        return self.base.requires_human_review != self.head.requires_human_review

    @property
    def workflow_changed(self) -> bool:
        return _route(self.base) != _route(self.head)

    @property
    def changed(self) -> bool:
        return self.category_changed or self.review_changed or self.workflow_changed

    def path_rows(self) -> list[tuple[PathStep | None, PathStep | None]]:
        """The two decision paths aligned step by step; a row with one side empty differs."""
        return aligned(self.base.decision_path, self.head.decision_path)

    def aspects(self) -> list[Difference]:
        """Every aspect both sides answer, in the order a reviewer reads a decision."""
        return [Difference(aspect, read(self.base), read(self.head)) for aspect, read in _ASPECTS]

    def differences(self) -> list[Difference]:
        """The aspects the two revisions answer differently."""
        return [d for d in self.aspects() if d.differs]


def _head_json(engine: Engine) -> str | None:
    return None if engine.head is None else engine.head.to_json()


def _route(record: DecisionRecord) -> tuple[object, ...]:
    w = record.workflow
    return (w.name, tuple(w.completed), w.next_step, w.status, w.queue)


def _confidence(record: DecisionRecord) -> str:
    return "—" if record.confidence is None else f"{record.confidence:.3f}"


def _names(items: Sequence[str]) -> str:
    return ", ".join(items) or "—"


def _workflow(record: DecisionRecord) -> str:
    w = record.workflow
    where = f" in {w.queue}" if w.queue else ""
    return f"{w.name.value}: {w.status}{where}"


_ASPECTS = (
    ("category", lambda r: r.category.value),
    ("confidence", _confidence),
    ("human review", lambda r: "yes" if r.requires_human_review else "no"),
    ("keyword groups", lambda r: _names(r.keywords_matched)),
    ("rules fired", lambda r: _names([f.id for f in r.rules_fired])),
    ("decision path", lambda r: " → ".join(f"{s.stage} {s.code}" for s in r.decision_path)),
    ("workflow", _workflow),
    ("workflow next step", lambda r: r.next_step or "—"),
)


class Replayer:
    """Decides cases under a base and a head engine that share one backend.

    ``model_calls`` counts the calls made: at most one per case unless the prompt changed.
    """

    def __init__(
        self,
        base: Engine,
        head: Engine,
        *,
        deadline_s: float = 120.0,
        hidden_cache: VerdictCache | None = None,
    ) -> None:
        self.base = base
        self.head = head
        self.deadline_s = deadline_s
        self.hidden_cache = hidden_cache
        self.model_calls = 0
        # A probe head reads the hidden state, which no decision record holds. When the change
        # under review is the head itself, a recorded verdict cannot show what it moves: the
        # cache or the model must answer. When both sides share one head, a recorded verdict
        # still isolates the policy change (both sides decide it without the head).
        self.reads_hidden_state = base.head is not None or head.head is not None
        self.head_changed = _head_json(base) != _head_json(head)

    def _cached(self, engine: Engine, prompt: RenderedPrompt | None) -> LabelVerdict | None:
        if self.hidden_cache is None or prompt is None or not self.reads_hidden_state:
            return None
        return self.hidden_cache.get(engine.backend.model_digest, prompt)

    async def _ask(self, engine: Engine, prompt: RenderedPrompt | None) -> LabelVerdict:
        if prompt is None:
            return LabelVerdict.failed(VerdictStatus.SKIPPED, "redaction failed: not sent")
        cached = self._cached(engine, prompt)
        if cached is not None:
            return cached
        self.model_calls += 1
        verdict = await engine.ask_model(prompt, deadline_s=self.deadline_s)
        if self.hidden_cache is not None and self.reads_hidden_state:
            self.hidden_cache.put(engine.backend.model_digest, prompt, verdict)
        return verdict

    async def compare(self, case: ReplayCase) -> Comparison | None:
        """Both decisions for ``case``; None when the message is not decidable (e.g. empty)."""
        request = DecisionRequest(case.message, case.channel, decision_id=case.case_id)
        try:
            base_prompt = self.base.prompt_for(request)
            head_prompt = self.head.prompt_for(request)
        except MessageRejectedError:
            return None
        same_prompt = _same(base_prompt, head_prompt, self)
        recorded = case.recorded
        if same_prompt and recorded is not None and recorded.hidden_state is None:
            cached = self._cached(self.base, base_prompt)
            if cached is not None:
                recorded = cached
            elif self.head_changed:
                recorded = None
        if same_prompt and recorded is not None:
            base_verdict = head_verdict = recorded
            source = "cached" if recorded.method == CACHED else "recorded"
        elif same_prompt:
            base_verdict = head_verdict = await self._ask(self.base, base_prompt)
            source = "cached" if base_verdict.method == CACHED else "model"
        else:
            base_verdict = await self._ask(self.base, base_prompt)
            head_verdict = await self._ask(self.head, head_prompt)
            source = "model x2"
        return Comparison(
            case=case,
            base=self.base.replay(request, base_verdict),
            head=self.head.replay(request, head_verdict),
            verdict_source=source,
        )


def _same(base: RenderedPrompt | None, head: RenderedPrompt | None, replayer: Replayer) -> bool:
    return (
        base is not None
        and head is not None
        and base.messages == head.messages
        and base.readout == head.readout  # a head reads its own hidden states of the decode
        and replayer.base.prompts.choices == replayer.head.prompts.choices
    )
