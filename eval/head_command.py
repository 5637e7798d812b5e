"""``eval fit-head``: collect hidden states, fit and choose the head, write the file and report."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine.backends.base import HiddenStateBackend
from engine.backends.registry import BackendSettings, build_backend
from engine.categories import CATEGORIES, Channel
from engine.errors import EvalDataError
from eval.charts import TradeoffPoint, tradeoff_chart
from eval.fit_data import HELD_OUT, gather, gather_unseen, message_of
from eval.fit_head import (
    MIN_SAFETY_RECALL,
    build_head,
    choose_on_loso,
    collect,
    collected_log_labels,
    fit_temperature,
    head_thresholds,
    kfold_logits,
    loso_table,
    oof_rows,
    plain_engine,
    softmax,
    thresholds_dict,
    unseen_rows,
    without_head,
)
from eval.metrics import ece
from eval.runner import Progress, RunSettings, build_engine, load_policy_by_id
from eval.thresholds import Operating, fit_thresholds, without_rules


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _report_md(report: dict[str, Any], out: Path, command: str) -> str:
    lines = [
        f"# Probe head: {out}",
        "",
        f"`{command}`",
        "",
        f"n = {report['n']}, C = {report['c']}, label weight {report['label_weight']} "
        f"(lowest LOSO NLL {report['loso_nll']:.4f}; "
        f"LOSO ECE {report['loso_ece']:.4f} at T {report['loso_temperature']}), hidden states "
        f"from cache {report['cache_hits']} of {report['n']}.",
        "",
        f"Temperature {report['temperature']} and thresholds fitted on {report['fit_on']} "
        f"out-of-fold predictions (accuracy {report['fit_accuracy']:.3f}, ECE "
        f"{report['fit_ece']:.4f})"
        + (
            f", plus the head's predictions for {report['threshold_data']} it was not fitted on "
            "(thresholds only)."
            if report.get("threshold_data")
            else "."
        ),
        "",
        "## Leave one source out (head fitted without the source) vs the label probabilities",
        "",
        "| source | n | accuracy head / labels | safety recall head / labels "
        "| false esc. head / labels | ECE head (shipped temperature) |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["loso"]:
        h, lab = r["head"], r["label_probabilities"]
        lines.append(
            f"| {r['source']} | {h['n']} | {_fmt(h['accuracy'])} / {_fmt(lab['accuracy'])} "
            f"| {_fmt(h['safety_recall'])} / {_fmt(lab['safety_recall'])} "
            f"| {_fmt(h['false_escalation'])} / {_fmt(lab['false_escalation'])} "
            f"| {_fmt(h['ece'])} |"
        )
    op, lo = report["operating"], report["operating_loso"]
    held = " and ".join(
        {"kfold": f"the {report['fit_on']} out-of-fold", "loso": "the leave-one-source-out"}[k]
        for k in report["recall_on"]
    )
    lines += [
        "",
        f"## Thresholds (cost matrix, safety recall >= {MIN_SAFETY_RECALL} on {held} "
        "predictions, rules on)",
        "",
        f"`{json.dumps(report['thresholds'])}`: safety recall {_fmt(op['safety_recall'])}, "
        f"false escalation {_fmt(op['false_escalation_rate'])}, review {_fmt(op['review_rate'])}, "
        f"automation {_fmt(op['automation_rate'])}, cost {op['cost']:.1f}."
        + (
            f" Sources left out: safety recall {_fmt(lo['safety_recall'])}, false escalation "
            f"{_fmt(lo['false_escalation_rate'])}, automation {_fmt(lo['automation_rate'])}."
            if lo
            else ""
        )
        + (
            ""
            if report["recall_feasible"]
            else " **No setting meets the recall constraint**: "
            "these are the ones with the highest recall."
        ),
        "",
        "| escalation | safety | info | service | cost | safety recall | false esc. | automation "
        "| LOSO safety recall | LOSO false esc. | LOSO automation |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    loso_curve = report["curve_loso"] or [None] * len(report["curve"])
    for o, lo_o in zip(report["curve"], loso_curve, strict=True):
        t = o["thresholds"]
        lines.append(
            f"| {t['safety_escalation']} | {t['safety_compliance']} | {t['informational']} "
            f"| {t['service_action']} | {o['cost']:.1f} | {_fmt(o['safety_recall'])} "
            f"| {_fmt(o['false_escalation_rate'])} | {_fmt(o['automation_rate'])} "
            + (
                f"| {_fmt(lo_o['safety_recall'])} | {_fmt(lo_o['false_escalation_rate'])} "
                f"| {_fmt(lo_o['automation_rate'])} |"
                if lo_o
                else "| - | - | - |"
            )
        )
    return "\n".join(lines) + "\n"


def _point(o: Operating) -> TradeoffPoint:
    return (o.thresholds.safety_escalation, o.safety_recall or 0.0, o.automation_rate or 0.0)


def _points(curve: list[Operating]) -> list[TradeoffPoint]:
    """The curve without its two degenerate ends (escalate everything; review everything)."""
    return [
        _point(o)
        for o in curve
        if o.safety_recall is not None and 0.0 < o.thresholds.safety_escalation < 0.95
    ]


def _operating(o: Any) -> dict[str, Any]:
    return {
        "thresholds": thresholds_dict(o.thresholds),
        "cost": round(o.cost, 1),
        "safety_recall": o.safety_recall,
        "false_escalation_rate": o.false_escalation_rate,
        "review_rate": o.review_rate,
        "accuracy": o.accuracy,
        "automation_rate": o.automation_rate,
    }


async def fit_head(args: argparse.Namespace, settings: RunSettings) -> int:
    out = Path(args.out)
    if out.suffix != ".json":
        raise EvalDataError("fit-head writes a head file: give --out policies/<id>/head.json")
    holdout = [Path(f) for f in (args.holdout or HELD_OUT)]
    fit = gather(
        [Path(f) for f in ([args.data] if args.data else []) + list(args.add_data or [])],
        exclude_reviewers=frozenset(args.exclude_reviewer or ()),
        holdout=holdout,
        limit=args.limit,
        channels=[Channel(c) for c in args.channels.split(",")] if args.channels else (),
    )
    cases = fit.cases
    unseen = (
        gather_unseen([Path(f) for f in args.threshold_data], fitted=cases, holdout=holdout)
        if args.threshold_data
        else None
    )
    for reviewer, n in fit.excluded.items():
        print(f"left out {n} label(s) by reviewer {reviewer}", file=sys.stderr)
    loaded = without_head(
        load_policy_by_id(settings.policies, settings.prompts, settings.policy_id)
    )
    backend = build_backend(BackendSettings.from_env(settings.backend))
    try:
        if not isinstance(backend, HiddenStateBackend):
            raise EvalDataError(
                f"the {backend.name} backend returns no hidden state; use --backend embedded"
            )
        engine = build_engine(loaded, backend, settings)
        print(f"warming up {backend.name} ({backend.model_id})...", file=sys.stderr)
        await engine.warm_up()
        todo = cases + (unseen.cases if unseen is not None else [])
        bar = Progress(len(todo), label="fit-head")
        collected, hits = await collect(
            engine,
            todo,
            Path(args.cache_dir),
            deadline_s=args.deadline_s or 60.0,
            readout=args.readout,
            on_step=bar.step,
        )
    finally:
        await backend.aclose()
    collected, for_thresholds = collected[: len(cases)], collected[len(cases) :]
    usable = [c for c in collected if c.hidden is not None]
    if len(usable) < len(collected):
        print(f"{len(collected) - len(usable)} message(s) got no hidden state", file=sys.stderr)
    x = np.stack([np.asarray(c.hidden, dtype=np.float64) for c in usable])
    y = np.array([CATEGORIES.index(c.case.label) for c in usable])
    groups = [c.case.family for c in usable]

    lp = collected_log_labels(usable)
    # Regularisation, label weight and temperature chosen on leave-one-source-out predictions.
    scored = choose_on_loso(x, y, groups, lp, args.label_weights)
    best_nll, c_best, w_best, loso_t, z = scored[0]
    probs = softmax(z / loso_t)
    loso_ece = ece(list(probs.max(axis=1)), list(probs.argmax(axis=1) == y)) or 0.0
    # Temperature and thresholds: on out-of-fold predictions of label-stratified folds (every
    # source in training, as the shipped head has it), or on the LOSO ones (--fit-on loso).
    if args.fit_on == "loso":
        fit_z, temperature = z, loso_t
    else:
        same_fold = [message_of(c.case.case_id) for c in usable]
        fit_z = kfold_logits(x, y, c_best, same_fold=same_fold) + w_best * lp
        temperature = fit_temperature(fit_z, y)
    fit_probs = softmax(fit_z / temperature)
    fit_ece = ece(list(fit_probs.max(axis=1)), list(fit_probs.argmax(axis=1) == y)) or 0.0
    head = build_head(
        x,
        y,
        c_best,
        temperature,
        label_weight=w_best,
        engine=engine,
        data=fit.described,
        data_sha256=fit.sha256,
        report={},
        readout=args.readout,
    )
    # Thresholds: on the out-of-fold rows, plus the head's own probabilities for messages it was
    # never fitted on (--threshold-data).
    unseen_predictions = unseen_rows(for_thresholds, head)
    rows = oof_rows(usable, fit_probs) + unseen_predictions
    # The leave-one-source-out probabilities at the shipped temperature: the thresholds answer
    # to them too, and the LOSO table reports them.
    loso_probs = softmax(z / temperature)
    choice = head_thresholds(
        plain_engine(engine),
        rows,
        args.max_escalation,
        loso_rows=oof_rows(usable, loso_probs),
        require_loso="loso" in args.recall_on.split(","),
    )
    operating, curve = choice.operating, choice.curve
    # What the head alone does if the keyword rules miss: the same thresholds, rules off.
    bare_curve = fit_thresholds(without_rules(plain_engine(engine)), rows).curve
    command = "switchboard " + " ".join(sys.argv[1:])
    report: dict[str, Any] = {
        "n": len(usable),
        "readout": args.readout.names(),
        "c": c_best,
        "label_weight": w_best,
        "grid_loso_nll": {f"C={c} w={w}": round(s, 4) for s, c, w, _, _ in scored},
        "temperature": round(temperature, 4),
        "loso_nll": round(best_nll, 4),
        "loso_ece": round(loso_ece, 4),
        "loso_temperature": round(loso_t, 4),
        "fit_on": args.fit_on,
        "fit_ece": round(fit_ece, 4),
        "fit_accuracy": round(float((fit_probs.argmax(axis=1) == y).mean()), 4),
        "cache_hits": hits,
        "threshold_data": (
            f"{unseen.described}: {len(unseen_predictions)} messages"
            if unseen is not None
            else None
        ),
        "loso": loso_table(usable, loso_probs),
        "thresholds": thresholds_dict(operating.thresholds),
        "operating": _operating(operating),
        "operating_loso": _operating(choice.loso) if choice.loso is not None else None,
        "recall_on": list(choice.constrained_on),
        "recall_feasible": choice.feasible,
        "curve": [_operating(o) for o in curve],
        "curve_loso": [_operating(o) for o in choice.loso_curve],
        "curve_without_rules": [_operating(o) for o in bare_curve],
        "command": command,
    }
    head = replace(
        head,
        report={
            k: report[k]
            for k in (
                "readout",
                "c",
                "label_weight",
                "loso_nll",
                "loso_ece",
                "fit_on",
                "fit_ece",
                "loso",
                "thresholds",
                "threshold_data",
            )
        },
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(head.to_json(), encoding="utf-8")
    report_dir = Path(args.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "report.md").write_text(_report_md(report, out, command), encoding="utf-8")
    (report_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    tradeoff_chart(
        {
            "rules on": _points(curve),
            "rules on, sources left out (LOSO)": _points(choice.loso_curve),
            "rules off (the head alone)": _points(bare_curve),
        },
        _point(operating),
        f"Out-of-fold trade-off, {len(usable)} rows ({args.fit_on})",
        report_dir / "tradeoff.png",
    )
    fragment = {"head": {"file": out.name, "thresholds": report["thresholds"]}}
    (report_dir / "head.patch.yaml").write_text(
        f"# Proposed by `{command}`; add to {loaded.directory}/policy.yaml.\n"
        + yaml.safe_dump(fragment, sort_keys=False),
        encoding="utf-8",
    )
    sys.stdout.write(_report_md(report, out, command))
    print(f"wrote {out}, and report.md, tradeoff.png and head.patch.yaml in {report_dir}")
    return 0
