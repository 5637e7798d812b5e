"""``switchboard eval`` (run): decide a labelled CSV, write metrics, report and predictions.

Also where the fitting commands get their predictions: recorded ones, or a fresh run of --data.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine import Engine, default_prompts_dir
from engine.backends.registry import BackendSettings, build_backend
from engine.errors import EvalDataError
from eval.dataset import file_digest, read_cases
from eval.fit_head import without_head
from eval.predictions import Prediction, read_predictions
from eval.recorded import replay_cases, replay_outage, verdict_key
from eval.report import write_outputs
from eval.runner import Progress, RunSettings, build_engine, decide_all, load_policy_by_id


def run_settings(args: argparse.Namespace) -> RunSettings:
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


async def evaluate(args: argparse.Namespace) -> tuple[list[Prediction], Engine, dict[str, Any]]:
    """Decide the CSV's cases (model, or recorded verdicts) and write the outputs."""
    settings = run_settings(args)
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
    outage = replay_outage(engine, cases)  # no model call
    meta = _meta(args, engine, key, extra)
    out = Path(args.out)
    doc = write_outputs(out, rows, meta, engine.policy.calibration, outage)
    _print_summary(doc, out)
    return rows, engine, doc


def _check_key(recorded_path: Path, key: str) -> None:
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
    if o := doc.get("outage"):
        print(
            f"  outage          safety queue recall {f(o['safety_queue_recall'])}, false "
            f"escalation {f(o['false_escalation_rate'])}, silent {o['silent_safety_misses']} "
            "(no model verdicts, rules and fallbacks only)"
        )
    print(f"wrote {out / 'metrics.json'}, {out / 'report.md'}, {out / 'predictions.csv'}")


async def rows_for_fit(args: argparse.Namespace) -> tuple[list[Prediction], Engine, str]:
    """Predictions to fit on (recorded, or a fresh run of --data) and an engine to replay with."""
    if args.data:
        rows, engine, _ = await evaluate(args)
        return rows, engine, str(args.data)
    if not args.predictions:
        raise EvalDataError("give --predictions DIR/predictions.csv or --data FILE.csv")
    settings = run_settings(args)
    loaded = load_policy_by_id(settings.policies, settings.prompts, settings.policy_id)
    backend = build_backend(BackendSettings(name="fake"))  # replay never calls the model
    engine = build_engine(loaded, backend, settings, redactor=None)
    return read_predictions(Path(args.predictions)), engine, str(args.predictions)
