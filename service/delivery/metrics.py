"""The delivery side's Prometheus metrics, registered on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = self.registry = registry
        self.pending = Gauge(
            "switchboard_outbox_pending",
            "Committed hand-offs not delivered yet (outbox depth)",
            registry=r,
        )
        self.dead = Gauge(
            "switchboard_outbox_dead",
            "Hand-offs in the dead-letter state (see GET /admin/outbox; replayable)",
            registry=r,
        )
        self.delivered = Counter(
            "switchboard_handoffs_delivered",
            "Hand-offs delivered (broker confirmed)",
            ["routing_key"],
            registry=r,
        )
        self.failures = Counter(
            "switchboard_handoff_failures",
            "Failed delivery attempts: 'broker' (unreachable) or 'rejected' (this message)",
            ["kind"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "switchboard_handoffs_dead_lettered",
            "Hand-offs moved to the dead-letter state",
            ["routing_key"],
            registry=r,
        )
        self.broker_up = Gauge(
            "switchboard_broker_up",
            "1 while the last delivery reached the broker (or the log), 0 while it is unreachable",
            registry=r,
        )
