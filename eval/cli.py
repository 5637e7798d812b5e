"""``switchboard eval``: run a labelled CSV through the engine; fit thresholds; fit calibration.

- ``switchboard eval --data FILE.csv [--out DIR] ...`` writes metrics.json, report.md (+ PNG
  charts) and predictions.csv.
- ``switchboard eval fit-thresholds --predictions DIR/predictions.csv`` (or ``--data``) replays
  the recorded model probabilities, prints the cost trade-off curve and writes the proposed
  thresholds as a YAML fragment and a diff of the policy file; ``--head`` replays the probe
  head's recorded probabilities and proposes ``head.thresholds`` instead.
- ``switchboard eval calibrate --predictions DIR/predictions.csv`` (or ``--data``) fits a
  temperature, prints ECE before and after and writes the ``calibration`` section the same way.
- ``switchboard eval fit-head --data dev.csv --out policies/<id>/head.json`` fits the probe head
  on the model's hidden states with leave-one-source-out reporting (``eval/fit_head.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from engine.backends.readout import DEFAULT_READOUT, Readout, ReadoutError
from engine.backends.registry import BACKENDS
from engine.errors import EvalDataError, SwitchboardError
from engine.policy.loader import default_policies_dir
from eval.calibrate_command import propose_calibration
from eval.fit_data import HELD_OUT
from eval.run_command import evaluate, run_settings
from eval.runner import DEFAULT_USD_PER_1K_OUTPUT, DEFAULT_USD_PER_1K_PROMPT
from eval.thresholds_command import propose_thresholds

ACTIONS = ("run", "fit-thresholds", "calibrate", "fit-head")


def _handle(args: argparse.Namespace) -> int:
    try:
        if args.action == "fit-head":
            from eval.head_command import fit_head

            return asyncio.run(fit_head(args, run_settings(args)))
        if args.action == "fit-thresholds":
            return asyncio.run(propose_thresholds(args))
        if args.action == "calibrate":
            return asyncio.run(propose_calibration(args))
        if not args.data:
            raise EvalDataError("switchboard eval needs --data FILE.csv")
        asyncio.run(evaluate(args))
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
        "--head",
        action="store_true",
        help="fit-thresholds: replay the probe head's recorded probabilities and propose "
        "head.thresholds",
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
        "--threshold-data",
        action="append",
        metavar="FILE",
        help="fit-head: a labelled CSV the head is not fitted on, added to the out-of-fold "
        "predictions the thresholds are fitted on (repeatable)",
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
        action="append",
        metavar="FILE",
        help="fit-head: refuse to fit on any message of this file (repeatable; default: "
        + " and ".join(HELD_OUT)
        + ", the holdout split and the current unseen check)",
    )
    ev.add_argument(
        "--fit-on",
        choices=["kfold", "loso"],
        default="kfold",
        help="fit-head: out-of-fold predictions the temperature and thresholds are fitted on",
    )
    ev.add_argument(
        "--recall-on",
        choices=["kfold", "kfold,loso"],
        default="kfold,loso",
        help="fit-head: the out-of-fold predictions held to safety recall >= 0.99 when the "
        "thresholds are chosen (the leave-one-source-out ones are reported either way)",
    )
    ev.add_argument(
        "--label-weights",
        type=_weights,
        default=(0.0,),
        help="fit-head: label weights to choose from on leave-one-source-out predictions, "
        "comma-separated (default 0: the probe alone; docs/evaluation.md, 'Fusing')",
    )
    ev.add_argument(
        "--readout",
        type=_readout,
        default=DEFAULT_READOUT,
        metavar="READ,...",
        help="fit-head: the hidden states the head reads, e.g. mean:9,last:16 (a layer's "
        "average over the message's tokens, a layer at the last token; default last:final)",
    )
    ev.set_defaults(handler=_handle)


def _readout(text: str) -> Readout:
    try:
        return Readout.parse(text.split(","))
    except ReadoutError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _weights(text: str) -> tuple[float, ...]:
    try:
        weights = tuple(float(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers: {text!r}") from None
    if not weights or any(not (w >= 0 and w < float("inf")) for w in weights):
        raise argparse.ArgumentTypeError(f"label weights are numbers >= 0: {text!r}")
    return weights
