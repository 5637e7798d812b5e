"""The delivery side's Prometheus metrics, registered on the app's own registry."""

from __future__ import annotations

import copy

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
        self._regional: tuple[Gauge, Gauge] | None = None

    def for_region(self, region: str) -> DeliveryMetrics:
        """The metrics of a dispatcher draining another region's outbox (a replica serving
        several regions): the counters and ``broker_up`` are shared, the depth gauges are
        ``switchboard_outbox_region_{pending,dead}{region=...}`` so the home region's
        ``switchboard_outbox_pending`` and ``switchboard_outbox_dead`` keep their meaning."""
        if self._regional is None:
            self._regional = (
                Gauge(
                    "switchboard_outbox_region_pending",
                    "Committed hand-offs not delivered yet, in a non-home region's outbox",
                    ["region"],
                    registry=self.registry,
                ),
                Gauge(
                    "switchboard_outbox_region_dead",
                    "Dead-lettered hand-offs in a non-home region's outbox",
                    ["region"],
                    registry=self.registry,
                ),
            )
        view = copy.copy(self)
        view.pending = self._regional[0].labels(region)
        view.dead = self._regional[1].labels(region)
        return view
