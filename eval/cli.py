"""``switchboard eval``: run a labelled CSV through the engine; fit thresholds; fit calibration.

- ``switchboard eval --data FILE.csv [--out DIR] ...`` writes metrics.json, report.md (+ PNG
  charts) and predictions.csv.
- ``switchboard eval fit-thresholds --predictions DIR/predictions.csv`` (or ``--data``) replays
  the recorded model probabilities, prints the cost trade-off curve and writes the proposed
  thresholds as a YAML fragment and a diff of the policy file.
- ``switchboard eval calibrate --predictions DIR/predictions.csv`` (or ``--data``) fits a
  temperature, prints ECE before and after and writes the ``calibration`` section the same way.
- ``switchboard eval fit-head --data dev.csv --out policies/<id>/head.json`` fits the probe head
  on the model's hidden states with leave-one-source-out reporting (``eval/fit_head.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine import Engine, default_prompts_dir
from engine.backends.registry import BACKENDS, BackendSettings, build_backend
from engine.errors import EvalDataError, SwitchboardError
from engine.policy.loader import default_policies_dir
from eval import patch
from eval.calibrate import fit_temperature
from eval.dataset import file_digest, read_cases
from eval.fit_head import without_head
from eval.predictions import Prediction, read_predictions
from eval.recorded import replay_cases, replay_rows, verdict_key
from eval.report import write_outputs
from eval.runner import (
    DEFAULT_USD_PER_1K_OUTPUT,
    DEFAULT_USD_PER_1K_PROMPT,
    Progress,
    RunSettings,
    build_engine,
    decide_all,
    load_policy_by_id,
)
from eval.thresholds import Fit, Operating, fit_thresholds, without_rules

ACTIONS = ("run", "fit-thresholds", "calibrate", "fit-head")


def _settings(args: argparse.Namespace) -> RunSettings:
    policies = Path(args.policies)
    return RunSettings(
        policies=policies,
        prompts=default_prompts_dir(policies),
        policy_id=args.policy,
        backend=args.backend,
        usd_per_1k_prompt=args.price_per_1k,
        usd_per_1k_output=args.output_price_per_1k,
        deadline_s=args.deadline_s,
        redact=not args.no_redaction,
    )


def _meta(
    args: argparse.Namespace, engine: Engine, key: str, extra: dict[str, Any]
) -> dict[str, Any]:
    cal = engine.policy.calibration
    return {
        "data": str(args.data),
        "data_digest": file_digest(Path(args.data)),
        "model": engine.backend.model_id,
        "model_digest": engine.backend.model_digest,
        "backend": engine.backend.name,
        "policy_id": engine.loaded.id,
        "policy_version": engine.loaded.version,
        "policy_revision": engine.loaded.revision,
        "prompt_template_hash": engine.prompts.template_hash,
        "verdict_key": key,
        "calibration": f"temperature {cal.temperature}" if cal is not None else None,
        "date": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "command": "switchboard " + shlex.join(sys.argv[1:])
        if sys.argv[1:]
        else "switchboard eval",
        "usd_per_1k_prompt": args.price_per_1k,
        "usd_per_1k_output": args.output_price_per_1k,
        "deadline_s": args.deadline_s,
        **extra,
    }


async def _evaluate(args: argparse.Namespace) -> tuple[list[Prediction], Engine, dict[str, Any]]:
    """Decide the CSV's cases (model, or recorded verdicts) and write the outputs."""
    settings = _settings(args)
    cases = read_cases(Path(args.data), limit=args.limit)
    loaded = load_policy_by_id(settings.policies, settings.prompts, settings.policy_id)
    if args.without_head:
        loaded = without_head(loaded)
    elif loaded.policy.head is not None and args.reuse_verdicts:
        print(
            "note: recorded verdicts carry no hidden state: the replay decides with the label "
            "probabilities (as --without-head)",
            file=sys.stderr,
        )
    backend = build_backend(BackendSettings.from_env(settings.backend))
    try:
        engine = build_engine(loaded, backend, settings)
        key = verdict_key(engine)
        extra: dict[str, Any] = {}
        if args.reuse_verdicts:
            recorded_path = Path(args.reuse_verdicts)
            _check_key(recorded_path, key)
            rows = replay_cases(engine, cases, read_predictions(recorded_path))
            extra["verdicts_replayed_from"] = str(recorded_path)
        else:
            print(f"warming up {backend.name} ({backend.model_id})...", file=sys.stderr)
            await engine.warm_up()
            bar = Progress(len(cases))
            rows = await decide_all(
                engine, cases, deadline_s=settings.deadline_s, on_step=lambda r: bar.step(r.id)
            )
    finally:
        await backend.aclose()
    meta = _meta(args, engine, key, extra)
    out = Path(args.out)
    doc = write_outputs(out, rows, meta, engine.policy.calibration)
    _print_summary(doc, out)
    return rows, engine, doc


def _check_key(recorded_path: Path, key: str) -> None:
    import json

    metrics = recorded_path.parent / "metrics.json"
    if not metrics.is_file():
        raise EvalDataError(f"{metrics} not found: cannot tell which prompt the verdicts came from")
    recorded = json.loads(metrics.read_text(encoding="utf-8")).get("meta", {}).get("verdict_key")
    if recorded != key:
        raise EvalDataError(
            f"the recorded verdicts in {recorded_path} were made with a different prompt, model, "
            f"redaction or normalisation ({recorded} != {key}); rerun without --reuse-verdicts"
        )


def _print_summary(doc: dict[str, Any], out: Path) -> None:
    m = doc["model_only"]
    lat = doc["latency_ms"]

    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    print(f"n={doc['n']}  (model only -> final decision)")
    print(f"  accuracy        {f(m['accuracy'])} -> {f(doc['accuracy'])}")
    print(f"  macro-F1        {f(m['macro_f1'])} -> {f(doc['macro_f1'])}")
    print(f"  safety recall   {f(m['safety_recall'])} -> {f(doc['safety_recall'])}")
    print(
        f"  false escalation {f(m['safety_false_escalation_rate'])} -> "
        f"{f(doc['safety_false_escalation_rate'])}"
    )
    print(f"  ECE             {f(m['ece'])} -> {f(doc['ece'])}")
    print(f"  review rate     {f(doc['review_rate'])}   degraded {f(doc['degraded_rate'])}")
    print(
        f"  latency ms      p50 {lat.get('p50')} p95 {lat.get('p95')} p99 {lat.get('p99')}; "
        f"cost/decision ${doc['cost_per_decision_usd']}"
    )
    print(f"wrote {out / 'metrics.json'}, {out / 'report.md'}, {out / 'predictions.csv'}")


async def _rows_for_fit(args: argparse.Namespace) -> tuple[list[Prediction], Engine, str]:
    """Predictions to fit on (recorded, or a fresh run of --data) and an engine to replay with."""
    if args.data:
        rows, engine, _ = await _evaluate(args)
        return rows, engine, str(args.data)
    if not args.predictions:
        raise EvalDataError("give --predictions DIR/predictions.csv or --data FILE.csv")
    settings = _settings(args)
    loaded = load_policy_by_id(settings.policies, settings.prompts, settings.policy_id)
    backend = build_backend(BackendSettings(name="fake"))  # replay never calls the model
    engine = build_engine(loaded, backend, settings, redactor=None)
    return read_predictions(Path(args.predictions)), engine, str(args.predictions)


def _curve_line(o: Operating) -> str:
    t = o.thresholds

    def f(v: float | None) -> str:
        return "  n/a" if v is None else f"{v:.3f}"

    return (
        f"{t.safety_escalation:5.2f} {t.safety_compliance:6.2f} {t.informational:5.2f} "
        f"{t.service_action:7.2f} | {o.cost:8.1f} {f(o.safety_recall)} "
        f"{f(o.false_escalation_rate)} {f(o.review_rate)} {f(o.accuracy)}"
    )


def _print_fit(fit: Fit) -> None:
    print("trade-off curve (best setting for each safety escalation value):")
    print("  esc safety  info service |     cost recall f.esc review   acc")
    for o in fit.curve:
        print("  " + _curve_line(o))
    print("current: " + _curve_line(fit.current))
    print("best:    " + _curve_line(fit.best))


async def _fit_thresholds(args: argparse.Namespace) -> int:
    rows, engine, source = await _rows_for_fit(args)
    if args.without_rules:
        print("without rules: the model and thresholds alone (not a proposal)")
        _print_fit(fit_thresholds(without_rules(engine), rows))
        return 0
    fit = fit_thresholds(engine, rows, max_escalation=args.max_escalation)
    _print_fit(fit)
    best_engine_rows = replay_rows(
        _engine_with_thresholds(engine, fit), rows
    )  # the winner, checked by a full replay
    reviewed = sum(r.requires_human_review for r in best_engine_rows) / len(best_engine_rows)
    print(f"full replay of the best setting: review rate {reviewed:.3f}")
    policy_path = patch.policy_file(engine.loaded.directory)
    before = policy_path.read_text(encoding="utf-8")
    after = patch.with_thresholds(before, fit.best.thresholds)
    header = (
        f"# Proposed by `switchboard eval fit-thresholds` from {source} "
        f"({len(rows)} decisions, policy {engine.loaded.id} {engine.loaded.version} "
        f"revision {engine.loaded.revision}).\n"
        f"# Cost {fit.current.cost:.1f} -> {fit.best.cost:.1f} with cost_matrix "
        f"{engine.policy.cost_matrix.model_dump()}.\n"
    )
    _write_proposal(
        args,
        "thresholds",
        header,
        {"thresholds": fit.best.thresholds.model_dump()},
        policy_path,
        before,
        after,
    )
    return 0


def _engine_with_thresholds(engine: Engine, fit: Fit) -> Engine:
    from eval.thresholds import engine_with

    return engine_with(engine, fit.best.thresholds)


def _write_proposal(
    args: argparse.Namespace,
    name: str,
    header: str,
    fragment: dict[str, Any],
    policy_path: Path,
    before: str,
    after: str,
) -> None:
    import yaml

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fragment_path = out / f"{name}.patch.yaml"
    fragment_path.write_text(
        header + yaml.safe_dump(fragment, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    diff_path = out / f"{name}.diff"
    diff_path.write_text(
        patch.unified_diff(policy_path, before, after, Path.cwd()), encoding="utf-8"
    )
    print(f"wrote {fragment_path} and {diff_path} (apply with: git apply {diff_path})")


async def _calibrate(args: argparse.Namespace) -> int:
    rows, engine, source = await _rows_for_fit(args)
    fit = fit_temperature(rows, model=engine.backend.model_id, fitted_on=source)
    if args.predictions and not args.data:
        fit = _with_model_from(fit, args)
    cal = fit.calibration
    print(f"temperature {cal.temperature} fitted on {cal.n} decisions")
    print(f"  NLL {fit.nll_before:.4f} -> {fit.nll_after:.4f}")
    print(f"  ECE {fit.ece_before:.4f} -> {fit.ece_after:.4f}")
    policy_path = patch.policy_file(engine.loaded.directory)
    before = policy_path.read_text(encoding="utf-8")
    after = patch.with_calibration(before, cal)
    header = (
        f"# Proposed by `switchboard eval calibrate` from {source}: ECE "
        f"{fit.ece_before:.4f} -> {fit.ece_after:.4f}.\n"
    )
    _write_proposal(
        args,
        "calibration",
        header,
        {"calibration": cal.model_dump(mode="json", exclude_none=True)},
        policy_path,
        before,
        after,
    )
    return 0


def _with_model_from(fit: Any, args: argparse.Namespace) -> Any:
    """Recorded predictions name their model in the metrics.json beside them."""
    import dataclasses
    import json

    metrics = Path(args.predictions).parent / "metrics.json"
    if not metrics.is_file():
        return fit
    meta = json.loads(metrics.read_text(encoding="utf-8")).get("meta", {})
    if not meta.get("model"):
        return fit
    update = {"model": meta["model"]}
    if meta.get("data"):
        update["fitted_on"] = f"{meta['data']} (policy revision {meta.get('policy_revision')})"
    cal = fit.calibration.model_copy(update=update)
    return dataclasses.replace(fit, calibration=cal)


def _handle(args: argparse.Namespace) -> int:
    try:
        if args.action == "fit-head":
            from eval.head_command import fit_head

            return asyncio.run(fit_head(args, _settings(args)))
        if args.action == "fit-thresholds":
            return asyncio.run(_fit_thresholds(args))
        if args.action == "calibrate":
            return asyncio.run(_calibrate(args))
        if not args.data:
            raise EvalDataError("switchboard eval needs --data FILE.csv")
        asyncio.run(_evaluate(args))
        return 0
    except ValueError as exc:
        raise SwitchboardError(str(exc)) from exc


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = sub.add_parser(
        "eval",
        help="evaluate decision quality on a labelled CSV; fit thresholds or calibration",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("action", nargs="?", choices=ACTIONS, default="run")
    ev.add_argument("--data", help="labelled CSV: text,label[,id,source,channel]")
    ev.add_argument("--predictions", help="a predictions.csv to fit on (no model call)")
    ev.add_argument("--policy", help="policy id (default: the first loaded)")
    ev.add_argument("--policies", default=str(default_policies_dir()))
    ev.add_argument(
        "--backend", choices=BACKENDS, default=os.environ.get("SWITCHBOARD_BACKEND", "embedded")
    )
    ev.add_argument("--out", default="eval/out", help="output directory (default: eval/out)")
    ev.add_argument("--limit", type=int, help="only the first N rows")
    ev.add_argument(
        "--price-per-1k",
        type=float,
        default=DEFAULT_USD_PER_1K_PROMPT,
        help=f"USD per 1,000 prompt tokens (default {DEFAULT_USD_PER_1K_PROMPT}, as the service)",
    )
    ev.add_argument(
        "--output-price-per-1k",
        type=float,
        default=DEFAULT_USD_PER_1K_OUTPUT,
        help=f"USD per 1,000 output tokens (default {DEFAULT_USD_PER_1K_OUTPUT})",
    )
    ev.add_argument(
        "--deadline-s", type=float, help="model deadline per message (default: the policy's)"
    )
    ev.add_argument(
        "--reuse-verdicts",
        help="a predictions.csv whose model verdicts to reuse (prompt must be unchanged)",
    )
    ev.add_argument("--no-redaction", action="store_true", help="skip Presidio (not as online)")
    ev.add_argument(
        "--max-escalation",
        type=float,
        default=1.0,
        help="fit-thresholds: cap the safety escalation (keep the model a safety net of its own)",
    )
    ev.add_argument(
        "--without-rules",
        action="store_true",
        help="fit-thresholds: print the curve with every rule switched off (no proposal)",
    )
    ev.add_argument(
        "--without-head",
        action="store_true",
        help="decide with the label probabilities even when the policy names a probe head",
    )
    ev.add_argument(
        "--cache-dir",
        default="eval/out/hidden-cache",
        help="fit-head: hidden states cached by model, template and prompt",
    )
    ev.add_argument(
        "--report-dir",
        default="eval/out/fit-head",
        help="fit-head: where the report and the policy fragment go",
    )
    ev.add_argument(
        "--add-data",
        action="append",
        metavar="FILE",
        help="fit-head: another labelled CSV to fit on, e.g. a /reviews/export (repeatable)",
    )
    ev.add_argument(
        "--exclude-reviewer",
        action="append",
        metavar="NAME",
        help="fit-head: leave out the labels this reviewer gave (repeatable)",
    )
    ev.add_argument(
        "--channels",
        metavar="CHANNEL,...",
        help="fit-head: also fit each message as sent on these channels, e.g. chat,email,voice",
    )
    ev.add_argument(
        "--holdout",
        default="eval/data/holdout.csv",
        help="fit-head: refuse to fit on any message of this file (default: %(default)s)",
    )
    ev.add_argument(
        "--fit-on",
        choices=["kfold", "loso"],
        default="kfold",
        help="fit-head: out-of-fold predictions the temperature and thresholds are fitted on",
    )
    ev.set_defaults(handler=_handle)
