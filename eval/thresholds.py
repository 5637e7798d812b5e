"""Fits the acceptance thresholds and the safety escalation that minimise the policy's cost matrix.

Uses the recorded model probabilities only (no model call). For every message the engine's own
``conclude`` is replayed under three probe settings, which give the decision in each of the
three states the thresholds can put it in: escalated to safety (p(safety) >= escalation), accepted
(top label's probability >= its threshold) or below threshold (the low-confidence fallback).
Rules run in every probe, so keyword overrides are accounted for exactly. The search over a 0.01
grid is then arithmetic on those states, and the winner is checked by one more full replay.

Cost of one decision (``cost_matrix``): ``missed_safety`` when a safety message is not decided
as safety; ``false_escalation`` when another message is; ``human_review`` for every decision
queued for a human; ``misroute`` for a wrong non-safety category that no human reviews.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from engine.backends.base import top_label
from engine.categories import Category, VerdictStatus
from engine.decide.calibration import calibrate
from engine.decide.engine import Engine
from engine.decide.rules import RulesCache
from engine.policy.fitting import CostMatrix
from engine.policy.labels import Thresholds
from engine.policy.loader import LoadedPolicy
from engine.policy.model import Policy
from eval.predictions import Prediction
from eval.recorded import replay_row

SAFETY = Category.SAFETY_COMPLIANCE
GRID = np.round(np.linspace(0.0, 1.0, 101), 2)
ESC, ACC, LOW = 0, 1, 2
_TIE = 1e-6  # among equal costs prefer thresholds near the current ones


def decision_cost(label: Category, category: Category, review: bool, costs: CostMatrix) -> float:
    cost = costs.human_review if review else 0.0
    if label is SAFETY and category is not SAFETY:
        cost += costs.missed_safety
    elif label is not SAFETY and category is SAFETY:
        cost += costs.false_escalation
    elif category is not label and not review:
        cost += costs.misroute
    return cost


@dataclass(frozen=True)
class Operating:
    """One threshold setting and what it does on the data."""

    thresholds: Thresholds
    cost: float
    safety_recall: float | None
    false_escalation_rate: float | None
    review_rate: float
    accuracy: float
    automation_rate: float | None = None  # non-safety messages decided right without review


@dataclass(frozen=True)
class _States:
    """Per message: the decision in each state, and what selects the state."""

    label: npt.NDArray[np.int_]  # index of the true label
    model: npt.NDArray[np.int_]  # index of the model's label, -1 when it gave none
    conf: npt.NDArray[np.float64]
    p_safety: npt.NDArray[np.float64]
    fixed_accept: npt.NDArray[np.float64]  # channel override of the threshold, nan if none
    category: npt.NDArray[np.int_]  # shape (n, 3): decided category per state
    review: npt.NDArray[np.bool_]  # shape (n, 3)
    cost: npt.NDArray[np.float64]  # shape (n, 3)


CATS = (Category.INFORMATIONAL, Category.SERVICE_ACTION, SAFETY)


def _with_thresholds(loaded: LoadedPolicy, thresholds: Thresholds) -> LoadedPolicy:
    policy: Policy = loaded.policy.model_copy(update={"thresholds": thresholds})
    return replace(loaded, policy=policy)


def _probe(value_accept: float, escalation: float) -> Thresholds:
    return Thresholds(
        informational=value_accept,
        service_action=value_accept,
        safety_compliance=value_accept,
        safety_escalation=escalation,
    )


def engine_with(engine: Engine, thresholds: Thresholds) -> Engine:
    return Engine(
        _with_thresholds(engine.loaded, thresholds),
        engine.backend,
        rules=engine.rules,
        pricing=engine.pricing,
    )


def without_rules(engine: Engine) -> Engine:
    """The same policy with no rules: the model and thresholds as the only safety net."""
    policy: Policy = engine.policy.model_copy(update={"rules": []})
    loaded = replace(engine.loaded, policy=policy, revision=engine.loaded.revision + "-no-rules")
    return Engine.build(loaded, engine.backend, rules_cache=RulesCache(), pricing=engine.pricing)


def _states(engine: Engine, rows: Sequence[Prediction]) -> _States:
    probes = {
        ESC: engine_with(engine, _probe(0.0, 0.0)),
        ACC: engine_with(engine, _probe(0.0, 1.0)),
        LOW: engine_with(engine, _probe(1.0, 1.0)),
    }
    policy = engine.policy
    costs = policy.cost_matrix
    n = len(rows)
    category = np.zeros((n, 3), dtype=int)
    review = np.zeros((n, 3), dtype=bool)
    cost = np.zeros((n, 3))
    model = np.full(n, -1)
    conf = np.zeros(n)
    p_safety = np.zeros(n)
    fixed = np.full(n, np.nan)
    for i, row in enumerate(rows):
        probs = calibrate(row.probabilities, policy.calibration)
        top = top_label(probs) if row.model_status is VerdictStatus.OK else None
        if top is not None:
            model[i], conf[i], p_safety[i] = CATS.index(top), probs[top], probs.get(SAFETY, 0.0)
            override = policy.channel_adjustment(row.channel).thresholds.get(top)
            fixed[i] = np.nan if override is None else override
        for state, probe in probes.items():
            record = replay_row(probe, row)
            category[i, state] = CATS.index(record.category)
            review[i, state] = record.requires_human_review
            cost[i, state] = decision_cost(
                row.label, record.category, record.requires_human_review, costs
            )
    label = np.array([CATS.index(r.label) for r in rows], dtype=int)
    return _States(label, model, conf, p_safety, fixed, category, review, cost)


def _state_grid(s: _States, rows: npt.NDArray[np.bool_]) -> npt.NDArray[np.int_]:
    """State of each selected message for every (escalation, acceptance) grid pair: (101,101,k)."""
    e = GRID[:, None, None]
    t = GRID[None, :, None]
    conf = s.conf[rows][None, None, :]
    fixed = s.fixed_accept[rows][None, None, :]
    threshold = np.where(np.isnan(fixed), t, fixed)
    escalate = (s.model[rows] != CATS.index(SAFETY))[None, None, :] & (
        s.p_safety[rows][None, None, :] >= e
    )
    accepted = conf >= threshold
    return np.where(escalate, ESC, np.where(accepted, ACC, LOW))


def _pick(values: npt.NDArray[np.float64], states: npt.NDArray[np.int_]) -> npt.NDArray[np.float64]:
    """Sum over messages of the per-state value: values (k, 3), states (..., k) -> (...)."""
    k = values.shape[0]
    chosen: npt.NDArray[np.float64] = values[np.arange(k), states]
    total: npt.NDArray[np.float64] = chosen.sum(axis=-1)
    return total


def _curves(s: _States) -> tuple[dict[int, npt.NDArray[np.float64]], float]:
    """Cost per (escalation, threshold) for each model label, and the constant for failures."""
    curves: dict[int, npt.NDArray[np.float64]] = {}
    for idx in range(3):
        mask = s.model == idx
        curves[idx] = (
            _pick(s.cost[mask], _state_grid(s, mask))
            if mask.any()
            else np.zeros((len(GRID), len(GRID)))
        )
    failed = float(s.cost[s.model == -1, LOW].sum())
    return curves, failed


def _operating(s: _States, t: Thresholds) -> Operating:
    index = np.full(len(s.model), LOW)
    for idx, cat in enumerate(CATS):
        mask = s.model == idx
        if not mask.any():
            continue
        threshold = np.where(np.isnan(s.fixed_accept[mask]), t.accept(cat), s.fixed_accept[mask])
        escalate = (idx != CATS.index(SAFETY)) & (s.p_safety[mask] >= t.safety_escalation)
        index[mask] = np.where(escalate, ESC, np.where(s.conf[mask] >= threshold, ACC, LOW))
    rows = np.arange(len(index))
    cat = s.category[rows, index]
    review = s.review[rows, index]
    safety = CATS.index(SAFETY)
    is_safety = s.label == safety
    return Operating(
        thresholds=t,
        cost=float(s.cost[rows, index].sum()),
        safety_recall=float((cat[is_safety] == safety).mean()) if is_safety.any() else None,
        false_escalation_rate=(
            float((cat[~is_safety] == safety).mean()) if (~is_safety).any() else None
        ),
        review_rate=float(review.mean()) if len(review) else 0.0,
        accuracy=float((cat == s.label).mean()) if len(cat) else 0.0,
        automation_rate=(
            float(((cat == s.label) & ~review)[~is_safety].mean()) if (~is_safety).any() else None
        ),
    )


@dataclass(frozen=True)
class Fit:
    current: Operating
    best: Operating
    curve: list[Operating]  # the best setting for each escalation value on a 0.05 grid
    points: list[Operating]  # the same on the 0.01 grid (what a constrained choice picks from)


def fit_thresholds(
    engine: Engine, rows: Sequence[Prediction], *, max_escalation: float = 1.0
) -> Fit:
    """The cost-minimising thresholds, subject to escalation <= safety <= the other two.

    ``max_escalation`` caps the safety escalation: a compliance choice to keep the model a safety
    net of its own even where the keyword rules already catch every safety message in the data.
    """
    s = _states(engine, rows)
    curves, failed = _curves(s)
    now = engine.policy.thresholds
    near = {cat: _TIE * np.abs(GRID - now.accept(cat)) for cat in CATS}
    info = curves[0] + near[Category.INFORMATIONAL][None, :]
    service = curves[1] + near[Category.SERVICE_ACTION][None, :]
    # Best threshold at or above each grid value: suffix minima along the threshold axis.
    info_min = np.minimum.accumulate(info[:, ::-1], axis=1)[:, ::-1]
    service_min = np.minimum.accumulate(service[:, ::-1], axis=1)[:, ::-1]
    safety = curves[2][0] + near[SAFETY]  # independent of the escalation
    esc_near = _TIE * np.abs(GRID - now.safety_escalation)
    total = info_min + service_min + safety[None, :] + esc_near[:, None] + failed
    allowed = GRID[:, None] <= GRID[None, :]  # escalation <= safety acceptance
    allowed &= GRID[:, None] <= max_escalation + 1e-9
    total = np.where(allowed, total, np.inf)

    def best_for(e_idx: int) -> Thresholds:
        s_idx = int(np.argmin(total[e_idx]))
        i_idx = s_idx + int(np.argmin(info[e_idx, s_idx:]))
        v_idx = s_idx + int(np.argmin(service[e_idx, s_idx:]))
        return Thresholds(
            informational=float(GRID[i_idx]),
            service_action=float(GRID[v_idx]),
            safety_compliance=float(GRID[s_idx]),
            safety_escalation=float(GRID[e_idx]),
        )

    e_best = int(np.unravel_index(np.argmin(total), total.shape)[0])
    feasible = [e for e in range(len(GRID)) if GRID[e] <= max_escalation + 1e-9]
    points = [_operating(s, best_for(e)) for e in feasible]
    curve = [o for e, o in zip(feasible, points, strict=True) if e % 5 == 0]
    return Fit(
        current=_operating(s, now),
        best=_operating(s, best_for(e_best)),
        curve=curve,
        points=points,
    )


def operating_at(
    engine: Engine, rows: Sequence[Prediction], settings: Sequence[Thresholds]
) -> list[Operating]:
    """What each threshold setting does on ``rows`` (one replay of the rows for all of them)."""
    s = _states(engine, rows)
    return [_operating(s, t) for t in settings]
