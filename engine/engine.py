"""The engine: one policy revision plus one backend turn a message into a ``DecisionRecord``.

Steps: normalise per channel, redact, match keywords, render the prompt, one model call, rules,
combine, workflow, record. Every failure after intake becomes part of the decision (degraded,
fail-closed to safety where it matters); only an unacceptable message raises.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from engine.backends.base import LabelVerdict, LLMBackend
from engine.calibration import calibrate
from engine.categories import Category, Channel, VerdictStatus
from engine.channels import normalise
from engine.combine import VerdictView, combine
from engine.errors import MessageRejectedError, RulesEngineError
from engine.facts import DecisionFacts
from engine.keywords import KeywordMatcher
from engine.policy.loader import LoadedPolicy
from engine.prompts import PromptBuilder
from engine.record import (
    DecisionRecord,
    FiredRule,
    LLMResult,
    ModelStamp,
    PolicyStamp,
    Timings,
    TokenUsage,
)
from engine.redaction import RedactionFailedError, Redactor
from engine.rules import CompiledRules, RulesCache
from engine.workflow import Integrations, LoggingIntegrations, WorkflowContext, run_workflow

WITHHELD = "[message withheld: redaction failed]"
OFFLOAD_CHARS = 300


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_decision_id() -> str:
    return uuid.uuid4().hex


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


class Engine:
    """Decides for one policy revision. Immutable after construction; safe to share."""

    def __init__(
        self,
        loaded: LoadedPolicy,
        backend: LLMBackend,
        *,
        rules: CompiledRules,
        integrations: Integrations | None = None,
        redactor: Redactor | None = None,
        pricing: Pricing | None = None,
        clock: Callable[[], datetime] = utc_now,
        ids: Callable[[], str] = new_decision_id,
    ) -> None:
        self.loaded = loaded
        self.policy = loaded.policy
        self.backend = backend
        self.rules = rules
        self.integrations = integrations or LoggingIntegrations()
        self.redactor = redactor
        self.pricing = pricing or Pricing()
        self._clock = clock
        self._ids = ids
        self.prompts = PromptBuilder(loaded.policy, loaded.prompts_dir)
        self.keywords = KeywordMatcher(loaded.policy.keyword_groups)
        self._rules_by_id = {r.id: r for r in loaded.policy.rules}
        self.stamp = PolicyStamp(id=loaded.id, version=loaded.version, revision=loaded.revision)

    @classmethod
    def build(
        cls, loaded: LoadedPolicy, backend: LLMBackend, *, rules_cache: RulesCache, **kw: Any
    ) -> Engine:
        rules = rules_cache.get(
            loaded.policy.rules, loaded.policy.keyword_groups, revision=loaded.revision
        )
        return cls(loaded, backend, rules=rules, **kw)

    @property
    def deadline_s(self) -> float:
        return self.policy.fallbacks.model_deadline_ms / 1000

    async def warm_up(self, deadline_s: float = 180.0) -> LabelVerdict:
        """Process the static prompt prefix once so later decisions only pay for the message."""
        prompt = self.prompts.render("Hello.", Channel.CHAT)
        return await self.backend.score(prompt, self.prompts.choices, deadline_s=deadline_s)

    def prepare(self, request: DecisionRequest) -> Prepared:
        started = time.perf_counter()
        if not request.message or not request.message.strip():
            raise MessageRejectedError("message is empty")
        received_at = self._clock()
        text = normalise(
            request.message, request.channel, self.policy.channel_adjustment(request.channel)
        )
        redaction_started = time.perf_counter()
        redaction = "none"
        redacted = text
        if self.redactor is not None:
            try:
                redacted = self.redactor.redact(text).text
                redaction = "applied"
            except RedactionFailedError:
                redacted, redaction = WITHHELD, "failed"
        redaction_ms = (time.perf_counter() - redaction_started) * 1000
        # Keyword rules read the message as received as well as normalised: stripping a quote or
        # a signature can shorten what the model reads, never what the safety rules see.
        keywords = self.keywords.match(text)
        if text != request.message.strip():
            as_received = self.keywords.match(request.message)
            keywords = {group: hit or as_received[group] for group, hit in keywords.items()}
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
        model_allowed: bool = True,
        skip_reason: str = "",
        deadline_s: float | None = None,
    ) -> DecisionRecord:
        """Decide one message; ``deadline_s`` overrides the policy's model deadline (offline)."""
        if self.redactor is not None and len(request.message) > OFFLOAD_CHARS:
            # Redacting a long message full of PII takes tens of ms: keep the event loop free.
            prepared = await asyncio.to_thread(self.prepare, request)
        else:
            prepared = self.prepare(request)
        if prepared.redaction == "failed":
            verdict = LabelVerdict.failed(VerdictStatus.SKIPPED, "redaction failed: not sent")
        elif not model_allowed:
            verdict = LabelVerdict.failed(VerdictStatus.SKIPPED, skip_reason or "model skipped")
        else:
            prompt = self.prompts.render(prepared.redacted, request.channel)
            verdict = await self.backend.score(
                prompt, self.prompts.choices, deadline_s=deadline_s or self.deadline_s
            )
        return self.conclude(prepared, verdict)

    def conclude(self, prepared: Prepared, verdict: LabelVerdict) -> DecisionRecord:
        """Rules, combine, workflow and record for a verdict (live, or recorded for replay)."""
        request = prepared.request
        # Rules and thresholds read the calibrated probabilities; the record keeps both.
        calibration = self.policy.calibration
        probabilities = calibrate(verdict.probabilities, calibration)
        view = VerdictView(verdict.status, probabilities, verdict.error)
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
            policy=self.policy,
            channel=request.channel,
            verdict=view,
            fired=fired,
            rules_error=rules_error,
        )
        matched = tuple(name for name, hit in prepared.keywords.items() if hit)
        trace = run_workflow(
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
            self.integrations,
        )
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
                confidence=verdict.probabilities[label] if label else None,
                probabilities=dict(verdict.probabilities),
                calibrated=probabilities if calibration is not None and label else None,
                method=verdict.method,
                raw_output=verdict.raw_output[:200],
                error=verdict.error,
            ),
            keywords_matched=list(matched),
            rules_fired=[FiredRule(id=r.id, reason=r.reason) for r in fired],
            category=outcome.category,
            confidence=_confidence(verdict.status, probabilities, outcome.category),
            requires_human_review=outcome.requires_human_review,
            degraded=outcome.degraded,
            decision_path=list(outcome.path),
            workflow=trace,
            next_step=trace.next_step,
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


def _confidence(
    status: VerdictStatus, probabilities: Mapping[Category, float], category: Category
) -> float | None:
    if status is not VerdictStatus.OK or not probabilities:
        return None
    return round(float(probabilities.get(category, 0.0)), 6)
