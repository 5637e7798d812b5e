"""``switchboard eval fit-thresholds``: the cost trade-off curve and a thresholds proposal.

Replays recorded model probabilities (or a fresh run of --data) under candidate thresholds and
writes the best as a YAML fragment and a diff of the policy file (``eval/patch.py``).

With ``--head`` it replays the probe head's recorded probabilities (the ``h_*`` columns) through
the policy without its head, at the head's thresholds, and proposes ``head.thresholds``: what the
decisions of a head policy use. Without it, the label probabilities and the top-level
``thresholds`` (what decides when no head reads the model: another backend, a missing state).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine import Engine
from engine.errors import EvalDataError
from eval import patch
from eval.fit_head import plain_engine
from eval.predictions import Prediction, as_head_rows
from eval.recorded import replay_rows
from eval.run_command import rows_for_fit
from eval.thresholds import Fit, Operating, engine_with, fit_thresholds, without_rules


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


def head_replay(engine: Engine, rows: list[Prediction]) -> tuple[Engine, list[Prediction]]:
    """The policy without its head at the head's thresholds, and rows carrying the head's
    recorded probabilities as the model's (``--head``)."""
    if engine.policy.head is None:
        raise EvalDataError("--head: the policy has no probe head; fit one with eval fit-head")
    head_rows, without = as_head_rows(rows)
    if without == len(rows):
        raise EvalDataError(
            "--head: no row carries the head's probabilities (h_* columns); record the "
            "predictions with a policy whose head decided"
        )
    if without:
        print(f"--head: {without} row(s) without the head's probabilities replayed as recorded")
    return engine_with(plain_engine(engine), engine.reader.head_thresholds), head_rows


async def propose_thresholds(args: argparse.Namespace) -> int:
    rows, engine, source = await rows_for_fit(args)
    if args.head:
        engine, rows = head_replay(engine, rows)
    if args.without_rules:
        print("without rules: the model and thresholds alone (not a proposal)")
        _print_fit(fit_thresholds(without_rules(engine), rows))
        return 0
    fit = fit_thresholds(engine, rows, max_escalation=args.max_escalation)
    _print_fit(fit)
    # The winner, checked by a full replay.
    best_engine_rows = replay_rows(engine_with(engine, fit.best.thresholds), rows)
    reviewed = sum(r.requires_human_review for r in best_engine_rows) / len(best_engine_rows)
    print(f"full replay of the best setting: review rate {reviewed:.3f}")
    policy_path = patch.policy_file(engine.loaded.directory)
    before = policy_path.read_text(encoding="utf-8")
    write = patch.with_head_thresholds if args.head else patch.with_thresholds
    after = write(before, fit.best.thresholds)
    header = (
        f"# Proposed by `switchboard eval fit-thresholds` from {source} "
        f"({len(rows)} decisions, policy {engine.loaded.id} {engine.loaded.version} "
        f"revision {engine.loaded.revision}).\n"
        f"# Cost {fit.current.cost:.1f} -> {fit.best.cost:.1f} with cost_matrix "
        f"{engine.policy.cost_matrix.model_dump()}.\n"
    )
    patch.write_proposal(
        Path(args.out),
        "thresholds",
        header,
        {"head": {"thresholds": fit.best.thresholds.model_dump()}}
        if args.head
        else {"thresholds": fit.best.thresholds.model_dump()},
        policy_path,
        before,
        after,
    )
    return 0
