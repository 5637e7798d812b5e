"""The engine: one policy revision plus one backend turn a message into a ``DecisionRecord``.

Steps: normalise per channel, redact, match keywords, render the prompt, one model call, rules,
combine, workflow, record. Every failure after intake becomes part of the decision (degraded,
fail-closed to safety where it matters); only an unacceptable message raises.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from engine.backends.base import HiddenStateBackend, LabelVerdict, LLMBackend, RenderedPrompt
from engine.categories import Category, Channel, VerdictStatus
from engine.decide.calibration import calibrate
from engine.decide.channels import normalise
from engine.decide.combine import combine
from engine.decide.facts import DecisionFacts
from engine.decide.head import METHOD as HEAD_METHOD
from engine.decide.head import HeadFileError, ProbeHead, head_mismatches
from engine.decide.keywords import KeywordMatcher
from engine.decide.prompts import PromptBuilder
from engine.decide.record import (
    DecisionRecord,
    FiredRule,
    HandOff,
    LLMResult,
    ModelStamp,
    PolicyStamp,
    Timings,
    TokenUsage,
)
from engine.decide.rules import CompiledRules, RulesCache
from engine.decide.workflow import WorkflowContext, run_workflow
from engine.errors import (
    MessageRejectedError,
    PolicyError,
    PolicyProblem,
    PromptRenderError,
    RedactionConfigError,
    RedactionFailedError,
    RulesEngineError,
)
from engine.pii.base import Redactor
from engine.policy.loader import LoadedPolicy
from engine.policy.model import Redaction

WITHHELD = "[message withheld: redaction failed]"
REPLAY_CLOCK = datetime(2000, 1, 1, tzinfo=timezone.utc)
"""The instant every replayed decision is stamped with (``Engine.replay``)."""
OFFLOAD_CHARS = 300


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


_CLEAR_VERSION = ~((0xC000 << 48) | (0xF000 << 64))
_VERSION_4 = (0x8000 << 48) | (4 << 76)


class DecisionIds:
    """Random (version 4) UUIDs as 32 hex digits, as ``uuid.uuid4().hex`` makes them, with the
    random bytes read from ``os.urandom`` for 256 ids at a time.

    One system call per decision is not free in a busy process: it releases the GIL, and taking
    it back waits for whichever thread grabbed it. A forked child draws a fresh pool, so no two
    processes share ids.
    """

    _BATCH = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0
        self._pid = os.getpid()

    def __call__(self) -> str:
        with self._lock:
            if self._at >= len(self._pool) or self._pid != os.getpid():
                self._pool, self._at, self._pid = os.urandom(16 * self._BATCH), 0, os.getpid()
            value = int.from_bytes(self._pool[self._at : self._at + 16], "big")
            self._at += 16
        # What uuid.UUID(bytes=..., version=4) sets: the variant (RFC 4122) and the version.
        return format(value & _CLEAR_VERSION | _VERSION_4, "032x")


@dataclass(frozen=True)
class Pricing:
    """Price of model tokens, for the cost estimate in each record (USD per 1,000 tokens)."""

    usd_per_1k_prompt_tokens: float = 0.0001
    usd_per_1k_output_tokens: float = 0.0002

    def cost(self, prompt_tokens: int, output_tokens: int) -> float:
        return (
            prompt_tokens * self.usd_per_1k_prompt_tokens
            + output_tokens * self.usd_per_1k_output_tokens
        ) / 1000


@dataclass(frozen=True)
class DecisionRequest:
    message: str
    channel: Channel = Channel.CHAT
    metadata: Mapping[str, Any] = field(default_factory=dict)
    decision_id: str | None = None


@dataclass(frozen=True)
class Prepared:
    """A message made ready for the model: normalised, redacted, keyword-matched."""

    request: DecisionRequest
    decision_id: str
    received_at: datetime
    redacted: str
    redaction: str
    keywords: Mapping[str, bool]
    redaction_ms: float
    started: float


@dataclass(frozen=True)
class Traced:
    """A decision with what it was made from (``Engine.decide_traced``)."""

    record: DecisionRecord
    prepared: Prepared
    prompt: RenderedPrompt | None
    verdict: LabelVerdict


class Engine:
    """Decides for one policy revision. Immutable after construction; safe to share."""

    def __init__(
        self,
        loaded: LoadedPolicy,
        backend: LLMBackend,
        *,
        rules: CompiledRules,
        redactor: Redactor | None = None,
        pricing: Pricing | None = None,
        clock: Callable[[], datetime] = utc_now,
        ids: Callable[[], str] | None = None,
        head: ProbeHead | None = None,
    ) -> None:
        self.loaded = loaded
        self.policy = loaded.policy
        self.backend = backend
        self.rules = rules
        self.redactor = redactor
        self.pricing = pricing or Pricing()
        self._clock = clock
        self._ids = ids or DecisionIds()
        self.prompts = PromptBuilder(loaded.policy, loaded.prompts_dir)
        self.keywords = KeywordMatcher(loaded.policy.keyword_groups)
        self._rules_by_id = {r.id: r for r in loaded.policy.rules}
        # Frozen, so one instance per rule serves every record that names it.
        self._fired = {r.id: FiredRule(id=r.id, reason=r.reason) for r in loaded.policy.rules}
        self._adjustments = {c: loaded.policy.channel_adjustment(c) for c in Channel}
        self.stamp = PolicyStamp(id=loaded.id, version=loaded.version, revision=loaded.revision)
        self.head = head
        self._sub_intents = loaded.policy.labels.has_sub_intents()
        spec = loaded.policy.head
        # The head's probabilities have their own scale, so their own thresholds (when given).
        self._head_policy = (
            loaded.policy.model_copy(update={"thresholds": spec.thresholds})
            if spec is not None and spec.thresholds is not None
            else loaded.policy
        )

    @classmethod
    def build(
        cls,
        loaded: LoadedPolicy,
        backend: LLMBackend,
        *,
        rules_cache: RulesCache,
        redactor_factory: Callable[[Redaction], Redactor] | None = None,
        **kw: Any,
    ) -> Engine:
        """Compile, construct and check everything a decision needs, before any request.

        The one way engines are built: ``switchboard check`` calls it too, so a policy that
        passes ``check`` builds. Every failure is a ``PolicyError`` whose problems point at the
        policy file and line: the rules (durable-rules), the redaction section (Presidio) and
        the prompt template (rendered once here).
        """
        policy = loaded.policy
        problems: list[PolicyProblem] = []
        rules = redactor = head = None
        if policy.head is not None:
            try:
                head = ProbeHead.from_file(loaded.directory / policy.head.file)
            except HeadFileError as exc:
                problems.append(loaded.problem(("head", "file"), str(exc)))
        try:
            rules = rules_cache.get(policy.rules, policy.keyword_groups, revision=loaded.revision)
        except RulesEngineError as exc:
            problems.append(loaded.problem(exc.path or ("rules",), str(exc)))
        if redactor_factory is not None:
            try:
                redactor = redactor_factory(policy.redaction)
            except RedactionConfigError as exc:
                problems.append(loaded.problem(exc.path, str(exc)))
        engine = None
        if rules is not None:
            try:
                engine = cls(loaded, backend, rules=rules, redactor=redactor, head=head, **kw)
            except PromptRenderError as exc:
                problems.append(loaded.problem(("prompt", "template"), str(exc)))
        if engine is not None and head is not None:
            for message in _head_problems(head, engine, backend):
                problems.append(loaded.problem(("head", "file"), message))
        if problems or engine is None:
            raise PolicyError(str(loaded.directory), problems)
        return engine

    @property
    def deadline_s(self) -> float:
        return self.policy.fallbacks.model_deadline_ms / 1000

    async def warm_up(self, deadline_s: float = 180.0) -> LabelVerdict:
        """Process the static prompt prefix once so later decisions only pay for the message."""
        prompt = self.prompts.render("Hello.", Channel.CHAT)
        return await self.backend.score(prompt, self.prompts.choices, deadline_s=deadline_s)

    def prepare(self, request: DecisionRequest) -> Prepared:
        started, received_at, text = self._intake(request)
        redaction_started = time.perf_counter()
        redacted, redaction = self._redact(text)
        redaction_ms = (time.perf_counter() - redaction_started) * 1000
        return self._prepared(
            request, started, received_at, text, redacted, redaction, redaction_ms
        )

    async def _prepare_off_loop(self, request: DecisionRequest) -> Prepared:
        """``prepare`` with only the redaction in a worker thread (a long message full of PII
        takes tens of ms to redact): normalising and keywords stay on the event loop.

        Redaction time is what the loop waited for, the hand-offs to and from the thread
        included: that wait exists only to redact, so ``engine_ms`` leaves it out.
        """
        started, received_at, text = self._intake(request)
        redaction_started = time.perf_counter()
        redacted, redaction = await asyncio.to_thread(self._redact, text)
        redaction_ms = (time.perf_counter() - redaction_started) * 1000
        return self._prepared(
            request, started, received_at, text, redacted, redaction, redaction_ms
        )

    def _intake(self, request: DecisionRequest) -> tuple[float, datetime, str]:
        started = time.perf_counter()
        if not request.message or not request.message.strip():
            raise MessageRejectedError("message is empty")
        received_at = self._clock()
        adjustment = self._adjustments[request.channel]
        return started, received_at, normalise(request.message, request.channel, adjustment)

    def _redact(self, text: str) -> tuple[str, str]:
        """The text the model and the record may see, and ``'none'``/``'applied'``/``'failed'``."""
        if self.redactor is None:
            return text, "none"
        try:
            return self.redactor.redact(text).text, "applied"
        except RedactionFailedError:
            return WITHHELD, "failed"

    def _prepared(
        self,
        request: DecisionRequest,
        started: float,
        received_at: datetime,
        text: str,
        redacted: str,
        redaction: str,
        redaction_ms: float,
    ) -> Prepared:
        # Keyword rules read the message as received as well as normalised: stripping a quote or
        # a signature can shorten what the model reads, never what the safety rules see.
        keywords = self.keywords.match(text)
        if text != request.message.strip():
            # Only the groups the normalised text missed: a hit stays a hit either way.
            missed = [group for group, hit in keywords.items() if not hit]
            keywords.update(self.keywords.match(request.message, missed))
        return Prepared(
            request=request,
            decision_id=request.decision_id or self._ids(),
            received_at=received_at,
            redacted=redacted,
            redaction=redaction,
            # Keywords come from the original, not the redacted text: redaction cannot blind them.
            keywords=keywords,
            redaction_ms=redaction_ms,
            started=started,
        )

    async def decide(
        self,
        request: DecisionRequest,
        *,
        skip_model: str | None = None,
        deadline_s: float | None = None,
    ) -> DecisionRecord:
        """Decide one message.

        ``skip_model`` is admission's answer when the model must not be called (overload, open
        circuit): the decision is then rules-only and says why. ``deadline_s`` overrides the
        policy's model deadline (offline runs).
        """
        traced = await self.decide_traced(request, skip_model=skip_model, deadline_s=deadline_s)
        return traced.record

    async def decide_traced(
        self,
        request: DecisionRequest,
        *,
        skip_model: str | None = None,
        deadline_s: float | None = None,
    ) -> Traced:
        """``decide``, also returning what went into the record: the prepared message, the
        prompt sent (None when none was) and the verdict. A shadow run decides the same message
        under a candidate revision with this verdict when its prompt is the same."""
        prompt: RenderedPrompt | None = None
        if self.redactor is not None and len(request.message) > OFFLOAD_CHARS:
            prepared = await self._prepare_off_loop(request)
        else:
            prepared = self.prepare(request)
        if prepared.redaction == "failed":
            verdict = LabelVerdict.failed(VerdictStatus.SKIPPED, "redaction failed: not sent")
        elif skip_model is not None:
            verdict = LabelVerdict.failed(VerdictStatus.SKIPPED, skip_model)
        else:
            try:
                prompt = self.prompts.render(prepared.redacted, request.channel)
            except PromptRenderError as exc:
                # The template failed on this message: decide rules-only rather than lose it.
                verdict = LabelVerdict.failed(VerdictStatus.ERROR, str(exc))
            else:
                verdict = await self.backend.score(
                    prompt, self.prompts.choices, deadline_s=deadline_s or self.deadline_s
                )
        return Traced(self.conclude(prepared, verdict), prepared, prompt, verdict)

    def prepare_as(self, other: Engine, prepared: Prepared) -> Prepared | None:
        """This engine's ``Prepared`` for a message ``other`` prepared, reusing its redaction
        (None when this engine would redact or normalise differently: then ``prepare`` it).

        Same decision id and receipt time, this engine's keyword groups (matched again: cheap)."""
        request = prepared.request
        if self.redactor is not other.redactor or (
            self._adjustments[request.channel] != other._adjustments[request.channel]
        ):
            return None
        started, _, text = self._intake(request)
        return replace(
            self._prepared(
                request,
                started,
                prepared.received_at,
                text,
                prepared.redacted,
                prepared.redaction,
                0.0,
            ),
            decision_id=prepared.decision_id,
        )

    def prompt_for(self, request: DecisionRequest) -> RenderedPrompt | None:
        """What the model would be sent for ``request``; None when nothing would be sent."""
        prepared = self.prepare(request)
        if prepared.redaction == "failed":
            return None
        return self.prompts.render(prepared.redacted, request.channel)

    async def ask_model(self, prompt: RenderedPrompt, *, deadline_s: float) -> LabelVerdict:
        """One model call for a prompt of this engine (replay shares it between revisions)."""
        return await self.backend.score(prompt, self.prompts.choices, deadline_s=deadline_s)

    def replay(
        self,
        request: DecisionRequest,
        verdict: LabelVerdict,
        *,
        keywords: Collection[str] | None = None,
    ) -> DecisionRecord:
        """Decide ``request`` again with a recorded (or shared) verdict: no model call.

        Every replayed decision is stamped ``REPLAY_CLOCK``, so SLA due times compare equal
        between revisions. ``keywords`` gives the groups recorded as matched when the original
        text is gone (a recorded row holds only the redacted text); otherwise they are matched
        again.
        """
        prepared = replace(self.prepare(request), received_at=REPLAY_CLOCK)
        if keywords is not None:
            matched = frozenset(keywords)
            groups = self.policy.keyword_groups
            prepared = replace(prepared, keywords={name: name in matched for name in groups})
        return self.conclude(prepared, verdict)

    def _head_probabilities(self, verdict: LabelVerdict) -> dict[Category, float] | None:
        hidden = verdict.hidden_state
        if self.head is None or hidden is None or verdict.status is not VerdictStatus.OK:
            return None
        if hidden.shape != (self.head.dim,):  # build checked the backend: not expected
            return None
        return self.head.probabilities(hidden)

    def conclude(self, prepared: Prepared, verdict: LabelVerdict) -> DecisionRecord:
        """Calibrate, rules, combine, workflow and record for a prepared message's verdict."""
        request = prepared.request
        # Rules and thresholds read the head's probabilities when it can read this verdict, else
        # the calibrated label probabilities; the record keeps the label probabilities too.
        calibration = self.policy.calibration
        policy = self.policy
        head_probabilities = self._head_probabilities(verdict)
        if head_probabilities is not None:
            probabilities, policy = head_probabilities, self._head_policy
            view = replace(verdict, probabilities=probabilities, method=HEAD_METHOD)
        else:
            probabilities = calibrate(verdict.probabilities, calibration)
            view = replace(verdict, probabilities=probabilities)
        label = view.label
        facts = DecisionFacts(
            channel=request.channel,
            llm_status=verdict.status,
            llm_category=label,
            confidence=probabilities[label] if label else 0.0,
            probabilities=probabilities if label else {},
            keywords=prepared.keywords,
        )
        rules_error: str | None = None
        try:
            fired_ids = self.rules.evaluate(facts)
        except RulesEngineError as exc:
            fired_ids, rules_error = (), str(exc)
        fired = [self._rules_by_id[i] for i in fired_ids]
        outcome = combine(
            policy=policy,
            channel=request.channel,
            verdict=view,
            fired=fired,
            rules_error=rules_error,
        )
        matched = tuple(name for name, hit in prepared.keywords.items() if hit)
        run = run_workflow(
            self.policy.workflows.for_category(outcome.category),
            WorkflowContext(
                decision_id=prepared.decision_id,
                category=outcome.category,
                requires_human_review=outcome.requires_human_review,
                received_at=prepared.received_at,
                channel=request.channel.value,
                keywords_matched=matched,
                policy_revision=self.loaded.revision,
            ),
        )
        trace = run.trace
        total_ms = (time.perf_counter() - prepared.started) * 1000
        llm_ms = verdict.latency_ms
        prompt_tokens = verdict.prompt_tokens + verdict.cached_tokens
        return DecisionRecord(
            decision_id=prepared.decision_id,
            created_at=prepared.received_at.isoformat(),
            channel=request.channel,
            input_redacted=prepared.redacted,
            input_chars=len(request.message),
            redaction=prepared.redaction,
            metadata=dict(request.metadata),
            policy=self.stamp,
            prompt_template_hash=self.prompts.template_hash,
            model=ModelStamp(
                backend=self.backend.name,
                name=self.backend.model_id,
                digest=self.backend.model_digest,
            ),
            llm=LLMResult(
                status=verdict.status,
                label=label,
                confidence=view.probabilities[label]
                if label and head_probabilities is not None
                else (verdict.probabilities[label] if label else None),
                probabilities=dict(verdict.probabilities),
                calibrated=probabilities
                if (calibration is not None or head_probabilities is not None) and label
                else None,
                method=view.method,
                raw_output=verdict.raw_output[:200],
                error=verdict.error,
                answers=dict(verdict.answers) if self._sub_intents and verdict.answers else None,
            ),
            keywords_matched=list(matched),
            rules_fired=[self._fired[r.id] for r in fired],
            category=outcome.category,
            confidence=_confidence(verdict.status, probabilities, outcome.category),
            requires_human_review=outcome.requires_human_review,
            degraded=outcome.degraded,
            decision_path=list(outcome.path),
            workflow=trace,
            next_step=trace.next_step,
            handoffs=list(run.handoffs),
            timings=Timings(
                total_ms=round(total_ms, 3),
                redaction_ms=round(prepared.redaction_ms, 3),
                llm_ms=round(llm_ms, 3),
                engine_ms=round(max(total_ms - llm_ms - prepared.redaction_ms, 0.0), 3),
            ),
            tokens=TokenUsage(
                prompt=verdict.prompt_tokens,
                cached=verdict.cached_tokens,
                output=verdict.output_tokens,
            ),
            cost_usd=self.pricing.cost(prompt_tokens, verdict.output_tokens),
        )

    def after_review(
        self, record: Mapping[str, Any], category: Category, *, reviewer: str
    ) -> tuple[HandOff, ...]:
        """The hand-offs a reviewer's outcome implies for a stored decision record.

        The reviewed ``category``'s workflow (which may differ from the decision's) runs from
        its ``after_review`` step, as reviewed (no further review); what the decision's workflow
        collected (channel, receipt, keywords, case id) is carried over.
        """
        workflow = self.policy.workflows.for_category(category)
        if workflow.after_review is None:
            return ()
        case = (record.get("workflow") or {}).get("case") or {}
        carried: dict[str, Any] = {
            "review": {"category": category.value, "reviewer": reviewer},
            "decided_category": record["category"],
        }
        if case.get("case_id"):
            carried["case_id"] = case["case_id"]
        run = run_workflow(
            workflow,
            WorkflowContext(
                decision_id=str(record["decision_id"]),
                category=category,
                requires_human_review=False,
                received_at=datetime.fromisoformat(str(record["created_at"])),
                channel=str(record["channel"]),
                keywords_matched=tuple(record.get("keywords_matched") or ()),
                policy_revision=self.loaded.revision,
                cause="review",
                carried=tuple(carried.items()),
            ),
            start=workflow.after_review,
        )
        return run.handoffs


def _head_problems(head: ProbeHead, engine: Engine, backend: LLMBackend) -> list[str]:
    """The head must read the hidden states of the model the embedded backend runs.

    A backend without hidden states (Ollama, the fake ``check`` builds with) is compared with the
    packaged model, the only one the embedded backend loads.
    """
    if isinstance(backend, HiddenStateBackend):
        digest, size = backend.model_digest, backend.hidden_state_size
    else:
        from engine.backends.model_files import QWEN25_CODER_05B

        digest, size = QWEN25_CODER_05B.digest, None
    return head_mismatches(
        head,
        model_digest=digest,
        hidden_size=size,
        template_hash=engine.prompts.template_hash,
        prompt_prefix_hash=engine.prompts.prefix_hash,
    )


def _confidence(
    status: VerdictStatus, probabilities: Mapping[Category, float], category: Category
) -> float | None:
    if status is not VerdictStatus.OK or not probabilities:
        return None
    return round(float(probabilities.get(category, 0.0)), 6)
