"""Threshold fitting on synthetic predictions, checked against a full replay of the engine."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest

from engine.backends.fake import FakeBackend
from engine.categories import Category, Channel, VerdictStatus
from engine.decide.engine import Engine
from engine.decide.rules import RulesCache
from engine.policy.loader import load_policy
from eval.charts import tradeoff_chart, tradeoff_figure
from eval.fit_head import MIN_SAFETY_RECALL, head_thresholds, plain_engine
from eval.predictions import Prediction
from eval.recorded import replay_rows
from eval.thresholds import decision_cost, engine_with, fit_thresholds
from tests.conftest import Editor

I = Category.INFORMATIONAL  # noqa: E741
S = Category.SERVICE_ACTION
A = Category.SAFETY_COMPLIANCE


def row(
    i: int, label: Category, probs: tuple[float, float, float], keywords: str = ""
) -> Prediction:
    p = dict(zip((I, S, A), probs, strict=True))
    return Prediction(
        id=f"r{i}",
        source="synthetic",
        channel=Channel.CHAT,
        label=label,
        model_status=VerdictStatus.OK,
        model_label=max(p, key=lambda c: p[c]),
        p_informational=probs[0],
        p_service_action=probs[1],
        p_safety_compliance=probs[2],
        category=label,
        confidence=None,
        requires_human_review=False,
        degraded=False,
        keywords_matched=keywords,
        rules_fired="",
        decision_path="",
        latency_ms=1.0,
        llm_ms=1.0,
        prompt_tokens=10,
        cached_tokens=0,
        output_tokens=1,
        cost_usd=0.0,
        input_redacted=f"message {i}",
    )


def synthetic() -> list[Prediction]:
    rows = [row(i, A, (0.1, 0.6, 0.3)) for i in range(10)]  # safety the model calls service
    rows += [row(10 + i, S, (0.1, 0.8, 0.1)) for i in range(10)]
    rows += [row(20 + i, I, (0.7, 0.25, 0.05)) for i in range(10)]
    rows += [row(30 + i, S, (0.2, 0.6, 0.2)) for i in range(5)]  # p(safety) 0.2, not safety
    rows += [row(40 + i, A, (0.9, 0.05, 0.05), "severe_event") for i in range(2)]  # rule catches
    return rows


def engine_for(edit_policy: Editor, policy_copy: Path, **thresholds: float) -> Engine:
    def change(doc: dict[str, Any]) -> None:
        doc["thresholds"].update(thresholds)

    edit_policy("policy.yaml", change)
    loaded = load_policy(policy_copy, policy_copy.parent.parent / "prompts")
    return Engine.build(loaded, FakeBackend(), rules_cache=RulesCache())


def test_decision_cost_follows_the_cost_matrix(edit_policy: Editor, policy_copy: Path) -> None:
    costs = engine_for(edit_policy, policy_copy).policy.cost_matrix
    assert decision_cost(A, S, True, costs) == costs.missed_safety + costs.human_review
    assert decision_cost(I, A, True, costs) == costs.false_escalation + costs.human_review
    assert decision_cost(I, S, False, costs) == costs.misroute
    assert decision_cost(I, S, True, costs) == costs.human_review  # a human fixes the route
    assert decision_cost(S, S, False, costs) == 0.0


def test_fit_finds_the_escalation_gap(edit_policy: Editor, policy_copy: Path) -> None:
    engine = engine_for(edit_policy, policy_copy, safety_escalation=0.15)
    fit = fit_thresholds(engine, synthetic())
    best = fit.best.thresholds
    # Escalate the safety messages (p=0.3) but not the service ones (p=0.2).
    assert 0.2 < best.safety_escalation <= 0.3
    # Accept every right label without review.
    assert best.service_action <= 0.6
    assert best.informational <= 0.7
    assert (
        best.safety_escalation
        <= best.safety_compliance
        <= min(best.informational, best.service_action)
    )
    assert fit.best.safety_recall == 1.0
    assert fit.best.false_escalation_rate == 0.0
    # Currently the 5 service messages are escalated: 5 * (false escalation + review) more.
    assert fit.current.cost - fit.best.cost == pytest.approx(5 * (2 + 1))
    assert fit.curve[0].thresholds.safety_escalation == 0.0


def test_fitted_operating_point_matches_a_full_replay(
    edit_policy: Editor, policy_copy: Path
) -> None:
    engine = engine_for(edit_policy, policy_copy, safety_escalation=0.15)
    rows = synthetic()
    fit = fit_thresholds(engine, rows)
    for point in (fit.best, fit.current, *fit.curve):
        replayed = replay_rows(engine_with(engine, point.thresholds), rows)
        safety = [r for r in replayed if r.label is A]
        assert point.safety_recall == pytest.approx(
            sum(r.category is A for r in safety) / len(safety)
        )
        assert point.review_rate == pytest.approx(
            sum(r.requires_human_review for r in replayed) / len(replayed)
        )
        assert point.accuracy == pytest.approx(
            sum(r.category is r.label for r in replayed) / len(replayed)
        )
        others = [r for r in replayed if r.label is not A]
        assert point.automation_rate == pytest.approx(
            sum(r.category is r.label and not r.requires_human_review for r in others) / len(others)
        )


def test_the_tradeoff_chart_is_a_png_with_every_curve(tmp_path: Path) -> None:
    path = tradeoff_chart(
        {"rules on": [(0.2, 1.0, 0.8), (0.4, 0.99, 0.9)], "rules off": [(0.2, 0.9, 0.8)]},
        (0.4, 0.99, 0.9),
        "trade-off",
        tmp_path / "tradeoff.png",
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5_000


def test_the_tradeoff_figure_draws_each_curve_in_escalation_order_and_rings_the_choice() -> None:
    curves = {
        "rules on": [(0.4, 0.99, 0.9), (0.2, 1.0, 0.8)],
        "rules off": [(0.2, 0.9, 0.8), (0.6, 0.85, 0.95)],
    }
    fig = tradeoff_figure(curves, (0.4, 0.99, 0.9), "trade-off")
    ax = fig.axes[0]
    drawn = {
        str(line.get_label()): [
            (float(x), float(y))
            for x, y in zip(np.asarray(line.get_xdata()), np.asarray(line.get_ydata()), strict=True)
        ]
        for line in ax.get_lines()
        if not str(line.get_label()).startswith("_")
    }
    assert drawn == {
        "rules on": [(1.0, 0.8), (0.99, 0.9)],
        "rules off": [(0.9, 0.8), (0.85, 0.95)],
    }
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [
        "rules on",
        "rules off",
        "chosen (escalation 0.40)",
    ]
    ringed = np.asarray(ax.collections[0].get_offsets()).tolist()
    assert ringed == [[0.99, 0.9]]
    plt.close(fig)


def test_the_loso_constraint_lowers_the_escalation_to_keep_left_out_sources_safe(
    edit_policy: Editor, policy_copy: Path
) -> None:
    engine = plain_engine(engine_for(edit_policy, policy_copy, safety_escalation=0.15))
    rows = synthetic()
    # Left out of fitting, the head is less sure of the safety messages: p(safety) 0.15.
    loso = [row(i, A, (0.15, 0.7, 0.15)) for i in range(10)] + rows[10:]
    free = head_thresholds(engine, rows, 1.0, loso_rows=loso)
    held = head_thresholds(engine, rows, 1.0, loso_rows=loso, require_loso=True)
    assert 0.2 < free.operating.thresholds.safety_escalation <= 0.3
    assert free.loso is not None
    assert free.loso.safety_recall is not None
    assert free.loso.safety_recall < MIN_SAFETY_RECALL
    assert held.feasible
    assert held.constrained_on == ("kfold", "loso")
    assert held.operating.thresholds.safety_escalation <= 0.15
    assert held.loso is not None
    assert held.loso.safety_recall == 1.0
    # The price is paid on the k-fold rows too: the service messages at p(safety) 0.2 escalate.
    assert held.operating.false_escalation_rate is not None
    assert held.operating.false_escalation_rate > 0.0
    assert len(held.loso_curve) == len(held.curve)
    # The LOSO numbers are a full replay of the engine at those thresholds.
    replayed = replay_rows(engine_with(engine, held.operating.thresholds), loso)
    safety = [r for r in replayed if r.label is A]
    assert held.loso.safety_recall == sum(r.category is A for r in safety) / len(safety)


def test_an_unmeetable_loso_constraint_is_said_not_hidden(
    edit_policy: Editor, policy_copy: Path
) -> None:
    engine = plain_engine(engine_for(edit_policy, policy_copy))
    rows = synthetic()
    # No threshold reaches a message the model gave no verdict for: the fallback decides it.
    timeout = VerdictStatus.TIMEOUT
    lost = [replace(row(i, A, (0.5, 0.5, 0.0)), model_status=timeout) for i in range(10)]
    loso = lost + rows[10:]
    held = head_thresholds(engine, rows, 1.0, loso_rows=loso, require_loso=True)
    assert not held.feasible
    assert held.loso is not None
    assert held.loso.safety_recall is not None
    assert held.loso.safety_recall < MIN_SAFETY_RECALL
