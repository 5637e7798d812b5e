"""``switchboard eval fit-head``: fit the probe head on labelled messages and report it honestly.

One model call per message collects the last prompt token's hidden state and the label
probabilities of the same decode (cached on disk by model digest, template hash and the rendered
prompt, so a rerun costs no model time). The head is a standardised multinomial logistic
regression whose logits are added to ``label_weight`` times the log label probabilities; its
regularisation and label weight are chosen, its temperature and thresholds fitted, on
leave-one-source-out predictions (fit without a source family, predict it), the only
predictions that say how it does on a kind of message it has never seen. The final head is
fitted on every row and written with what it was fitted for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine import DecisionRequest, Engine
from engine.backends.readout import DEFAULT_READOUT, Readout
from engine.categories import CATEGORIES, Category
from engine.decide.head import ProbeHead, log_labels
from engine.policy.labels import Thresholds
from engine.policy.loader import LoadedPolicy
from eval.dataset import LabelledCase
from eval.hidden_cache import HiddenStateCache
from eval.metrics import ece
from eval.predictions import Prediction
from eval.thresholds import Operating, engine_with, fit_thresholds, operating_at

SAFETY = Category.SAFETY_COMPLIANCE
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
FOLDS = 5
MIN_SAFETY_RECALL = 0.99
Array = npt.NDArray[np.float64]


def without_head(loaded: LoadedPolicy) -> LoadedPolicy:
    """The policy as it decides without its head (label probabilities, calibration, thresholds)."""
    if loaded.policy.head is None:
        return loaded
    return replace(loaded, policy=loaded.policy.model_copy(update={"head": None}))


# ----- hidden states, cached ------------------------------------------------------------------


@dataclass(frozen=True)
class Collected:
    case: LabelledCase
    hidden: npt.NDArray[np.float32] | None
    labels: tuple[float, ...]  # the same decode's label probabilities, in CATEGORIES order
    row: Prediction  # the decision today's path makes (label probabilities), for comparison


async def collect(
    engine: Engine,
    cases: Sequence[LabelledCase],
    cache_dir: Path,
    *,
    deadline_s: float,
    readout: Readout = DEFAULT_READOUT,
    on_step: Any = None,
) -> tuple[list[Collected], int]:
    """Every case's hidden states (``readout``; cached or one model call) and today's decision
    for it."""
    out: list[Collected] = []
    cache = HiddenStateCache(cache_dir)
    digest = engine.backend.model_digest
    for case in cases:
        request = DecisionRequest(case.text, case.channel, decision_id=case.case_id)
        prepared = engine.prepare(request)
        prompt = replace(engine.prompts.render(prepared.redacted, case.channel), readout=readout)
        verdict = cache.get(digest, prompt)
        if verdict is None:
            verdict = await engine.ask_model(prompt, deadline_s=deadline_s)
            cache.put(digest, prompt, verdict)
        record = engine.conclude(prepared, replace(verdict, hidden_state=None))
        labels = tuple(float(verdict.probabilities.get(c, 0.0)) for c in CATEGORIES)
        row = Prediction.from_record(case, record)
        out.append(Collected(case, verdict.hidden_state, labels, row))
        if on_step is not None:
            on_step(case.case_id)
    return out, cache.hits


# ----- fitting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Standardised:
    mean: Array
    scale: Array


def standardiser(x: Array) -> Standardised:
    return Standardised(x.mean(axis=0), x.std(axis=0) + 1e-6)


def fit_lr(x: Array, y: npt.NDArray[np.int_], c: float) -> tuple[Array, Array, Standardised]:
    """Multinomial logistic regression on standardised features: weights, bias, standardiser."""
    from sklearn.linear_model import LogisticRegression

    st = standardiser(x)
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit((x - st.mean) / st.scale, y)
    if len(model.classes_) != len(CATEGORIES):
        raise ValueError("every category needs labelled examples in each fitting fold")
    weights: Array = np.asarray(model.coef_, dtype=np.float64)
    bias: Array = np.asarray(model.intercept_, dtype=np.float64)
    return weights, bias, st


def logits_of(weights: Array, bias: Array, st: Standardised, x: Array) -> Array:
    out: Array = ((x - st.mean) / st.scale) @ weights.T + bias
    return out


def softmax(z: Array) -> Array:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: Array = e / e.sum(axis=1, keepdims=True)
    return out


def nll(z: Array, y: npt.NDArray[np.int_], temperature: float = 1.0) -> float:
    p = softmax(z / temperature)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(z: Array, y: npt.NDArray[np.int_]) -> float:
    grid = np.exp(np.linspace(math.log(0.2), math.log(10.0), 200))
    return float(min(grid, key=lambda t: nll(z, y, float(t))))


def collected_log_labels(collected: Sequence[Collected]) -> Array:
    """The label probabilities of each row's decode as logs, as the head adds them."""
    return log_labels([c.labels for c in collected])


def loso_logits(x: Array, y: npt.NDArray[np.int_], groups: Sequence[str], c: float) -> Array:
    """Out-of-fold logits: each source family predicted by a head fitted without it."""
    z = np.zeros((len(y), len(CATEGORIES)))
    g = np.asarray(groups)
    for family in sorted(set(groups)):
        test = g == family
        weights, bias, st = fit_lr(x[~test], y[~test], c)
        z[test] = logits_of(weights, bias, st, x[test])
    return z


LosoFit = tuple[float, float, float, float, Array]  # NLL, C, label weight, temperature, logits


def choose_on_loso(
    x: Array,
    y: npt.NDArray[np.int_],
    groups: Sequence[str],
    log_label_p: Array,
    label_weights: Sequence[float] = (0.0,),
) -> list[LosoFit]:
    """Every C of the grid and weight of ``label_weights`` scored by the tempered NLL of its LOSO
    logits, best first: the probe's logits fitted without each source family plus the weight
    times the log label probabilities (which no fit saw), so a weight is chosen on unseen kinds
    of message. The default weight 0 is the probe alone."""
    scored: list[LosoFit] = []
    for c in C_GRID:
        probe = loso_logits(x, y, groups, c)
        for w in label_weights:
            z = probe + w * log_label_p
            t = fit_temperature(z, y)
            scored.append((nll(z, y, t), c, w, t, z))
    return sorted(scored, key=lambda s: s[0])


def kfold_logits(
    x: Array,
    y: npt.NDArray[np.int_],
    c: float,
    folds: int = FOLDS,
    *,
    same_fold: Sequence[str] | None = None,
) -> Array:
    """Out-of-fold logits over ``folds`` label-stratified folds (seeded: reproducible).

    Rows with the same ``same_fold`` key (one message fitted as sent on several channels) share
    a fold, so no message is predicted by a head that was fitted on a copy of it.
    """
    keys = list(same_fold) if same_fold is not None else [str(i) for i in range(len(y))]
    label_of: dict[str, int] = {}
    for key, label in zip(keys, y, strict=True):
        label_of.setdefault(key, int(label))
    rng = np.random.default_rng(11)
    fold_of: dict[str, int] = {}
    for k in range(len(CATEGORIES)):
        members = [key for key, label in label_of.items() if label == k]
        for position, i in enumerate(rng.permutation(len(members))):
            fold_of[members[i]] = position % folds
    fold = np.array([fold_of[key] for key in keys])
    z = np.zeros((len(y), len(CATEGORIES)))
    for f in range(folds):
        test = fold == f
        weights, bias, st = fit_lr(x[~test], y[~test], c)
        z[test] = logits_of(weights, bias, st, x[test])
    return z


# ----- reporting ------------------------------------------------------------------------------


def _rates(y: Sequence[Category], pred: Sequence[Category]) -> dict[str, Any]:
    n = len(y)
    safety = [p for t, p in zip(y, pred, strict=True) if t is SAFETY]
    other = [p for t, p in zip(y, pred, strict=True) if t is not SAFETY]
    return {
        "n": n,
        "accuracy": round(sum(t is p for t, p in zip(y, pred, strict=True)) / n, 3) if n else None,
        "safety_recall": round(sum(p is SAFETY for p in safety) / len(safety), 3)
        if safety
        else None,
        "false_escalation": round(sum(p is SAFETY for p in other) / len(other), 3)
        if other
        else None,
    }


def loso_table(collected: Sequence[Collected], oof: Array) -> list[dict[str, Any]]:
    """Per source family and overall: the head left out of fitting vs the label probabilities.

    ``oof`` are the leave-one-source-out probabilities at the temperature the head ships with,
    so each family's ``ece`` is the calibration error of the confidence decisions would use on
    a source the head never saw.
    """
    families = [c.case.family for c in collected]
    truth = [c.case.label for c in collected]
    head = [CATEGORIES[int(i)] for i in oof.argmax(axis=1)]
    label = [c.row.model_label or Category.SERVICE_ACTION for c in collected]
    table: list[dict[str, Any]] = []
    for family in [*sorted(set(families)), "all"]:
        idx = [i for i, f in enumerate(families) if family in ("all", f)]
        t = [truth[i] for i in idx]
        rates = _rates(t, [head[i] for i in idx])
        calibration = ece([float(oof[i].max()) for i in idx], [head[i] is truth[i] for i in idx])
        rates["ece"] = None if calibration is None else round(calibration, 3)
        table.append(
            {
                "source": family,
                "head": rates,
                "label_probabilities": _rates(t, [label[i] for i in idx]),
            }
        )
    return table


def oof_rows(collected: Sequence[Collected], probs: Array) -> list[Prediction]:
    """Today's recorded rows with the head's out-of-fold probabilities as the model's."""
    return [c.row.answered(p) for c, p in zip(collected, probs, strict=True)]


def unseen_rows(collected: Sequence[Collected], head: ProbeHead) -> list[Prediction]:
    """Rows for messages ``head`` was not fitted on, with its own probabilities as the model's
    (out of sample, like the out-of-fold rows; ``eval fit-head --threshold-data``)."""
    kept = [c for c in collected if c.hidden is not None]
    probs = [
        head.probabilities(np.asarray(c.hidden), dict(zip(CATEGORIES, c.labels, strict=True)))
        for c in kept
    ]
    return oof_rows(kept, np.array([[p[k] for k in CATEGORIES] for p in probs]))


@dataclass(frozen=True)
class ThresholdChoice:
    """The thresholds fit-head proposes, and what they and the curve do on the LOSO rows."""

    operating: Operating  # on the k-fold (and --threshold-data) rows
    curve: list[Operating]
    loso: Operating | None  # the chosen thresholds on the leave-one-source-out rows
    loso_curve: list[Operating]  # each curve setting on the leave-one-source-out rows
    constrained_on: tuple[str, ...]  # the row sets held to safety recall >= MIN_SAFETY_RECALL
    feasible: bool  # some setting met the constraint on every one of them


def _recall_ok(o: Operating) -> bool:
    return o.safety_recall is not None and o.safety_recall >= MIN_SAFETY_RECALL


def head_thresholds(
    engine: Engine,
    rows: Sequence[Prediction],
    max_escalation: float,
    *,
    loso_rows: Sequence[Prediction] = (),
    require_loso: bool = False,
) -> ThresholdChoice:
    """Cheapest thresholds (the policy's cost matrix) with safety recall >= 0.99 on ``rows``,
    and on ``loso_rows`` too when ``require_loso``.

    ``engine`` must be the policy without head and calibration: the rows' probabilities are the
    head's, already tempered. Where no setting meets the constraint, the one with the highest
    recall (then the lowest cost) is proposed and ``feasible`` says so.
    """
    if require_loso and not loso_rows:
        raise ValueError("require_loso needs the leave-one-source-out rows")
    fit = fit_thresholds(engine, rows, max_escalation=max_escalation)
    candidates = [fit.best, *fit.points]
    on_loso = (
        operating_at(engine, loso_rows, [o.thresholds for o in candidates + fit.curve])
        if loso_rows
        else []
    )
    loso_of = on_loso[: len(candidates)]
    held = [candidates, loso_of] if require_loso else [candidates]
    keep = [k for k in range(len(candidates)) if all(_recall_ok(h[k]) for h in held)]
    if keep:
        i = min(keep, key=lambda k: candidates[k].cost)
    else:
        i = max(
            range(len(candidates)),
            key=lambda k: (min(h[k].safety_recall or 0.0 for h in held), -candidates[k].cost),
        )
    return ThresholdChoice(
        operating=candidates[i],
        curve=fit.curve,
        loso=loso_of[i] if loso_of else None,
        loso_curve=on_loso[len(candidates) :],
        constrained_on=("kfold", "loso") if require_loso else ("kfold",),
        feasible=bool(keep),
    )


def plain_engine(engine: Engine) -> Engine:
    """``engine``'s policy without head and calibration (rows carry final probabilities)."""
    policy = engine.policy.model_copy(update={"head": None, "calibration": None})
    loaded = replace(engine.loaded, policy=policy)
    return engine_with(
        Engine(loaded, engine.backend, rules=engine.rules, pricing=engine.pricing),
        policy.thresholds,
    )


def build_head(
    x: Array,
    y: npt.NDArray[np.int_],
    c: float,
    temperature: float,
    *,
    label_weight: float,
    engine: Engine,
    data: str,
    data_sha256: str,
    report: dict[str, Any],
    readout: Readout = DEFAULT_READOUT,
) -> ProbeHead:
    weights, bias, st = fit_lr(x, y, c)
    return ProbeHead(
        classes=CATEGORIES,
        weights=weights,
        bias=bias,
        mean=st.mean,
        scale=st.scale,
        temperature=round(temperature, 4),
        label_weight=label_weight,
        model=engine.backend.model_id,
        model_digest=engine.backend.model_digest,
        template_hash=engine.prompts.template_hash,
        prefix_hash=engine.prompts.prefix_hash,
        fitted_on=data,
        data_sha256=data_sha256,
        policy_revision=engine.loaded.revision,
        n=len(y),
        fitted_at=datetime.now(timezone.utc).date().isoformat(),
        report=report,
        readout=readout,
    )


def thresholds_dict(t: Thresholds) -> dict[str, float]:
    return {k: round(float(v), 2) for k, v in t.model_dump().items()}
