"""Prometheus metrics, in a registry owned by one app instance (nothing global)."""

from __future__ import annotations

from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from engine.categories import VerdictStatus
from engine.decide.record import DecisionRecord

_STAGES = ("redaction", "llm", "engine", "store", "total")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.decisions = Counter(
            "switchboard_decisions",
            "Decisions made",
            ["category", "outcome", "policy_version", "channel"],
            registry=r,
        )
        self.confidence = Histogram(
            "switchboard_confidence",
            "Model probability of the final category",
            ["category"],
            buckets=[i / 10 for i in range(1, 11)],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "switchboard_stage_seconds",
            "Latency per stage",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_calls = Counter(
            "switchboard_model_calls", "Model calls by verdict status", ["status"], registry=r
        )
        self.fallbacks = Counter(
            "switchboard_fallbacks", "Decisions that used a fallback", ["kind"], registry=r
        )
        self.rules_fired = Counter(
            "switchboard_rules_fired", "Rules fired (overrides included)", ["rule"], registry=r
        )
        self.reloads = Counter("switchboard_reloads", "Policy reloads", ["result"], registry=r)
        self.in_flight = Gauge("switchboard_in_flight", "Requests being handled", registry=r)
        self.model_queue = Gauge(
            "switchboard_model_queue", "Requests waiting for a model slot", registry=r
        )
        self.shed = Counter("switchboard_shed", "Requests beyond capacity", ["action"], registry=r)
        self.loop_lag = Gauge(
            "switchboard_event_loop_lag_seconds",
            "How late the event loop wakes up (moving average)",
            registry=r,
        )
        self.model_up = Gauge(
            "switchboard_model_up",
            "1 when the model backend answered its last probe (readiness does not depend on it)",
            registry=r,
        )
        self.circuit_open = Gauge(
            "switchboard_circuit_open", "1 while the model circuit is open", registry=r
        )
        self.rulesets_compiled = Gauge(
            "switchboard_rulesets_compiled", "durable-rules rulesets compiled", registry=r
        )
        self.active_revision = Gauge(
            "switchboard_policy_active",
            "1 for the active policy revision",
            ["policy", "version", "revision"],
            registry=r,
        )

        self.model_seconds = Histogram(
            "switchboard_model_seconds",
            "Model latency (the wait for a model slot included) of decisions that called it",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # The newest model latencies (ms), for the workbench's live page: "now", not since start.
        self.recent_model_ms: deque[float] = deque(maxlen=256)
        self.model_requests = Gauge(
            "switchboard_model_requests",
            "Calls handed to the model backend since start (live decisions, shadow runs and "
            "warm-ups; a decision that skipped the model is not one)",
            registry=r,
        )
        self.shadow_decisions = Counter(
            "switchboard_shadow_decisions",
            "Live decisions a shadow candidate also decided: whether it agreed (category and "
            "review), whether it would move the decision out of safety (leave) or into it "
            "(enter), and whether it reused the live verdict (shared) or called the model",
            ["tenant", "agreement", "safety", "verdict"],
            registry=r,
        )
        self.shadow_skipped = Counter(
            "switchboard_shadow_skipped",
            "Live decisions a running shadow did not decide, by reason (not_sampled, "
            "model_busy, queue_full, no_candidate, stopped, failed)",
            ["reason"],
            registry=r,
        )
        self.shadow_queue = Gauge(
            "switchboard_shadow_queue", "Live decisions waiting for the shadow worker", registry=r
        )
        self.shadow_active = Gauge(
            "switchboard_shadow_active", "1 while a shadow candidate runs", registry=r
        )

        # Labelled children, looked up once: ``labels()`` validates, converts and locks on each
        # call. Nothing here removes a child, so a cached one is the one the registry exports.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._stages = {stage: self.stage_seconds.labels(stage) for stage in _STAGES}

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, record: DecisionRecord, store_seconds: float) -> None:
        outcome = (
            "degraded"
            if record.degraded
            else "review"
            if record.requires_human_review
            else "automatic"
        )
        category = record.category.value
        self._child(
            self.decisions, category, outcome, record.policy.version, record.channel.value
        ).inc()
        if record.confidence is not None:
            self._child(self.confidence, category).observe(record.confidence)
        t, stages = record.timings, self._stages
        stages["redaction"].observe(t.redaction_ms / 1000)
        stages["llm"].observe(t.llm_ms / 1000)
        stages["engine"].observe(t.engine_ms / 1000)
        stages["store"].observe(store_seconds)
        stages["total"].observe(t.total_ms / 1000 + store_seconds)
        self._child(self.model_calls, record.llm.status.value).inc()
        if record.llm.status is not VerdictStatus.SKIPPED:
            self.model_seconds.observe(t.llm_ms / 1000)
            self.recent_model_ms.append(t.llm_ms)
        for step in record.decision_path:
            if step.stage == "fallback":
                self._child(self.fallbacks, step.code).inc()
        for rule in record.rules_fired:
            self._child(self.rules_fired, rule.id).inc()
