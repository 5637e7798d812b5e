"""The live page's arithmetic: bars, ages, the newest calls' percentiles."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from service.audit import Backlog, Tally
from service.workbench.live_numbers import age, category_bars, percentile, queue_lines


def test_every_category_has_a_bar_scaled_to_the_largest() -> None:
    bars = category_bars(
        [
            Tally("service_action", False, 30),
            Tally("service_action", True, 10),
            Tally("safety_compliance", False, 20),
        ]
    )
    assert [(b.label, b.count, b.percent) for b in bars] == [
        ("informational", 0, 0.0),
        ("service_action", 40, 100.0),
        ("safety_compliance", 20, 50.0),
    ]
    assert all(b.percent == 0 for b in category_bars([]))


def test_ages_read_like_a_person_would_say_them() -> None:
    assert age(timedelta(seconds=59)) == "0 min"
    assert age(timedelta(minutes=200)) == "3 h 20 min"
    assert age(timedelta(hours=50)) == "2 d 2 h"
    assert age(timedelta(seconds=-5)) == "0 min"  # a clock a little ahead of the store's


def test_queue_lines_age_the_oldest_case() -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
    (line,) = queue_lines([Backlog("pharmacovigilance", 3, "2026-12-05T10:30:00+00:00")], now)
    assert (line.queue, line.count, line.oldest_age) == ("pharmacovigilance", 3, "1 h 30 min")


def test_percentiles_of_the_newest_calls() -> None:
    assert percentile([], 0.5) is None
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.95) == 96.0
