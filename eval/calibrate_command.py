"""``switchboard eval calibrate``: fit a temperature and propose the ``calibration`` section.

Prints ECE before and after and writes the section as a YAML fragment and a diff of the policy
file (``eval/patch.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from eval import patch
from eval.calibrate import fit_temperature
from eval.run_command import rows_for_fit


async def propose_calibration(args: argparse.Namespace) -> int:
    rows, engine, source = await rows_for_fit(args)
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
    patch.write_proposal(
        Path(args.out),
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
