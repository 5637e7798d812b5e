"""The engine: one policy revision plus one backend turn a message into a ``DecisionRecord``.

Steps: normalise per channel, redact, match keywords, render the prompt, one model call, rules,
combine, workflow, record. Every failure after intake becomes part of the decision (degraded,
fail-closed to safety where it matters); only an unacceptable message raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from engine.backends.base import LabelVerdict, LLMBackend, RenderedPrompt, TokenCounter
from engine.backends.readout import DEFAULT_READOUT
from engine.categories import Category, Channel, VerdictStatus
from engine.decide.combine import combine
from engine.decide.facts import DecisionFacts
from engine.decide.head import HeadFileError, ProbeHead
from engine.decide.prepare import Preparer, utc_now
from engine.decide.prompts import PromptBuilder
from engine.decide.reading import VerdictReader, head_problems
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
from engine.decide.request import DecisionRequest, Prepared, Traced
from engine.decide.rules import CompiledRules, RulesCache
from engine.decide.workflow import WorkflowContext, continue_after_review, run_workflow
from engine.errors import (
    PolicyError,
    PolicyProblem,
    PromptRenderError,
    RedactionConfigError,
    RulesEngineError,
)
from engine.pii.base import Redactor
from engine.policy.loader import LoadedPolicy
from engine.policy.model import Redaction

REPLAY_CLOCK = datetime(2000, 1, 1, tzinfo=timezone.utc)
"""The instant every replayed decision is stamped with (``Engine.replay``)."""


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
        self.preparer = Preparer(loaded.policy, redactor=redactor, clock=clock, ids=ids)
        self.prompts = PromptBuilder(
            loaded.policy,
            loaded.prompts_dir,
            head.readout if head is not None else DEFAULT_READOUT,
            backend.count_tokens if isinstance(backend, TokenCounter) else None,
        )
        self._rules_by_id = {r.id: r for r in loaded.policy.rules}
        # Frozen, so one instance per rule serves every record that names it.
        self._fired = {r.id: FiredRule(id=r.id, reason=r.reason) for r in loaded.policy.rules}
        self.stamp = PolicyStamp(id=loaded.id, version=loaded.version, revision=loaded.revision)
        self.head = head
        self.reader = VerdictReader(loaded.policy, head)
        self._sub_intents = loaded.policy.labels.has_sub_intents()

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
            for message in head_problems(head, engine.prompts, backend):
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
        """Normalise, redact and keyword-match ``request`` (``Preparer``)."""
        return self.preparer.prepare(request)

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
        prepared = await self.preparer.prepare_async(request)
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
        """This engine's ``Prepared`` for a message ``other`` prepared (``Preparer.prepare_as``)."""
        return self.preparer.prepare_as(other.preparer, prepared)

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

    def conclude(self, prepared: Prepared, verdict: LabelVerdict) -> DecisionRecord:
        """Calibrate, rules, combine, workflow and record for a prepared message's verdict."""
        request = prepared.request
        # Rules and thresholds read the head's probabilities or the calibrated label
        # probabilities (``VerdictReader``); the record keeps the label probabilities too.
        reading = self.reader.read(verdict)
        view, probabilities, label = reading.view, reading.probabilities, reading.label
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
            policy=reading.policy,
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
                confidence=(probabilities if reading.from_head else verdict.probabilities)[label]
                if label
                else None,
                probabilities=dict(verdict.probabilities),
                calibrated=probabilities if reading.rescaled and label else None,
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
        """The hand-offs a reviewer's outcome implies (``continue_after_review``)."""
        return continue_after_review(
            self.policy.workflows.for_category(category),
            record,
            category,
            reviewer=reviewer,
            policy_revision=self.loaded.revision,
        )


def _confidence(
    status: VerdictStatus, probabilities: Mapping[Category, float], category: Category
) -> float | None:
    if status is not VerdictStatus.OK or not probabilities:
        return None
    return round(float(probabilities.get(category, 0.0)), 6)
