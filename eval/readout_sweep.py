"""Which hidden states should a probe head read? One pass over the data, every candidate scored.

``python -m eval.readout_sweep --data eval/data/dev.csv --channels chat,email,voice`` decodes each
message once with a readout holding every read of every candidate (cached like ``fit-head``'s
hidden states), then scores each candidate readout on its columns the way ``fit-head`` chooses a
head: the log-loss of leave-one-source-out predictions (C from the same grid, tempered), their
accuracy, safety recall and false escalation at the most likely category, and, with no rules, the
false escalation at the lowest safety probability that still catches 99% of safety messages
(leave-one-source-out and k-fold). Dev only: the holdout is never read here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.backends.readout import Readout
from engine.backends.registry import BackendSettings, build_backend
from engine.categories import CATEGORIES, Category, Channel
from eval.fit_data import HELD_OUT, gather, message_of
from eval.fit_head import (
    C_GRID,
    collect,
    fit_temperature,
    kfold_logits,
    loso_logits,
    nll,
    softmax,
    without_head,
)
from eval.runner import Progress, RunSettings, build_engine, load_policy_by_id

CANDIDATES = (
    "last:final",
    "last:9",
    "last:12",
    "last:16",
    "last:20",
    "mean:6",
    "mean:9",
    "mean:12",
    "mean:16",
    "mean:20",
    "mean:9,last:16",
    "mean:12,last:16",
    "mean:16,last:16",
    "mean:12,last:final",
    "mean:9,last:final",
)
SAFETY = CATEGORIES.index(Category.SAFETY_COMPLIANCE)
Array = npt.NDArray[np.float64]


def union(candidates: Sequence[str]) -> Readout:
    """One readout holding every read of every candidate, in first-seen order."""
    names: list[str] = []
    for candidate in candidates:
        names += [n for n in candidate.split(",") if n not in names]
    return Readout.parse(names)


def columns(all_reads: Readout, candidate: str, width: int) -> list[int]:
    names = all_reads.names()
    out: list[int] = []
    for name in Readout.parse(candidate.split(",")).names():
        start = names.index(name) * width
        out += range(start, start + width)
    return out


def at_recall(p_safety: Array, y: npt.NDArray[np.int_], recall: float = 0.99) -> float:
    """False escalation at the highest threshold that keeps ``recall`` of safety messages."""
    safety = y == SAFETY
    ranked = np.sort(p_safety[safety])
    threshold = ranked[int(np.floor((1 - recall) * safety.sum()))]
    return float((p_safety[~safety] >= threshold).mean())


def score(
    x: Array, y: npt.NDArray[np.int_], groups: Sequence[str], same_fold: Sequence[str]
) -> dict[str, Any]:
    best: tuple[float, float, Array, float] | None = None
    for c in C_GRID:
        z = loso_logits(x, y, groups, c)
        t = fit_temperature(z, y)
        loss = nll(z, y, t)
        if best is None or loss < best[0]:
            best = (loss, c, z, t)
    assert best is not None
    loss, c, z, t = best
    p = softmax(z / t)
    top = p.argmax(axis=1)
    safety = y == SAFETY
    zk = kfold_logits(x, y, c, same_fold=same_fold)
    pk = softmax(zk / fit_temperature(zk, y))
    return {
        "c": c,
        "loso_nll": round(loss, 3),
        "loso_accuracy": round(float((top == y).mean()), 3),
        "loso_safety_recall": round(float((top[safety] == SAFETY).mean()), 3),
        "loso_false_escalation": round(float((top[~safety] == SAFETY).mean()), 3),
        "loso_fe_at_recall_99": round(at_recall(p[:, SAFETY], y), 3),
        "kfold_fe_at_recall_99": round(at_recall(pk[:, SAFETY], y), 3),
    }


async def sweep(args: argparse.Namespace) -> int:
    settings = RunSettings(policies=Path(args.policies), prompts=Path(args.prompts))
    fit = gather(
        [Path(args.data)],
        holdout=[Path(f) for f in (args.holdout or HELD_OUT)],
        channels=[Channel(c) for c in args.channels.split(",")] if args.channels else (),
    )
    loaded = without_head(load_policy_by_id(settings.policies, settings.prompts, None))
    backend = build_backend(BackendSettings.from_env("embedded"))
    all_reads = union(args.candidates)
    try:
        engine = build_engine(loaded, backend, settings)
        await engine.warm_up()
        bar = Progress(len(fit.cases), label="readout-sweep")
        collected, _ = await collect(
            engine,
            fit.cases,
            Path(args.cache_dir),
            deadline_s=60.0,
            readout=all_reads,
            on_step=bar.step,
        )
    finally:
        await backend.aclose()
    usable = [c for c in collected if c.hidden is not None]
    x_all = np.stack([np.asarray(c.hidden, dtype=np.float64) for c in usable])
    width = x_all.shape[1] // len(all_reads.reads)
    y = np.array([CATEGORIES.index(c.case.label) for c in usable])
    groups = [c.case.family for c in usable]
    same_fold = [message_of(c.case.case_id) for c in usable]
    rows = []
    for candidate in args.candidates:
        x = x_all[:, columns(all_reads, candidate, width)]
        rows.append({"readout": candidate, **score(x, y, groups, same_fold)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": len(usable), "rows": rows}, indent=1) + "\n", encoding="utf-8")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.readout_sweep", description=__doc__)
    parser.add_argument("--data", default="eval/data/dev.csv")
    parser.add_argument("--channels", default="chat,email,voice")
    parser.add_argument("--holdout", action="append", metavar="FILE", help="never fitted on")
    parser.add_argument("--policies", default="policies")
    parser.add_argument("--prompts", default="prompts")
    parser.add_argument("--cache-dir", default="eval/out/hidden-cache")
    parser.add_argument("--out", default="eval/out/readout-sweep.json")
    parser.add_argument(
        "--candidates",
        type=lambda s: s.split(";"),
        default=list(CANDIDATES),
        help="readouts separated by ';', e.g. 'last:final;mean:9,last:16'",
    )
    return asyncio.run(sweep(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
