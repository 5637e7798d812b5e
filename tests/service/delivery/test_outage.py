"""The broker goes away while traffic flows (our own TCP proxy to it is cut; the shared server is
never stopped): /classify keeps answering, the outbox grows and shows in the metrics, and once
the broker is back it drains to zero with nothing lost (``eval/bench/broker_outage.py``)."""

from __future__ import annotations

import pytest

from eval.bench import broker_outage
from tests.service.delivery.rabbit import rabbit_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


def test_a_broker_outage_is_absorbed_by_the_outbox_and_drained() -> None:
    rabbit_or_skip()
    run = broker_outage.run(
        before_s=2, outage_s=5, after_s=2, rate_per_s=20, out_dir=None, drain_timeout_s=45
    )
    assert run.answered > 100
    assert run.refused == 0, "/classify must keep answering while the broker is away"
    during = [p for t, p, _ in run.samples if run.cut_at + 1.5 < t <= run.restored_at]
    assert during
    assert max(during) >= 20, "the outbox depth must grow (and show in /metrics) during the outage"
    assert run.drained_at is not None, "the outbox did not drain after the broker came back"
    d = run.deliveries
    assert d is not None
    assert (d.lost, d.unknown) == (0, 0)
    assert d.unique == d.expected == run.answered
