"""Builds the evaluation splits: ``python -m eval.split`` writes dev, holdout, smoke and fit pool.

Deterministic (seeded): the same inputs always give the same split. Each split samples every public
source, stratified by label, and the hand-written cases stratified by kind (``own/<kind>``). The
holdout is never used for tuning prompts, examples, rules, thresholds or calibration. ``smoke.csv``
is 30 dev rows (10 per label) for a quick end-to-end run. ``fit_pool.csv`` is more public rows for
fitting the probe head only (``eval fit-head --add-data``), drawn from what neither split holds,
so adding or resizing it never changes dev or the holdout.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from eval.dataset import LabelledCase, read_cases, text_key, write_cases

DATA = Path(__file__).resolve().parent / "data"
SEED = 20250601
# Rows per split drawn from each public source (stratified by label within the source).
PUBLIC_PER_SPLIT = {"bitext": 90, "medicationqa": 55, "vaers": 55}
OWN_HOLDOUT_SHARE = 0.6
SMOKE_PER_LABEL = 10
# Public rows for fitting the probe head beyond dev, per source (None: every row left). Only
# non-safety sources: the head's safety side is fitted on dev's VAERS and hand-written reports,
# so the recall constraint of the threshold fit is judged on the same safety cases as before.
FIT_POOL_PER_SOURCE: dict[str, int | None] = {"bitext": 240, "medicationqa": None}


def _stratified(
    cases: Sequence[LabelledCase], key: str, total: int, rng: random.Random
) -> list[LabelledCase]:
    """``total`` cases drawn without replacement, each stratum in proportion to its size."""
    strata: dict[str, list[LabelledCase]] = defaultdict(list)
    for case in cases:
        strata[getattr(case, key).value if key == "label" else getattr(case, key)].append(case)
    chosen: list[LabelledCase] = []
    names = sorted(strata)
    for i, name in enumerate(names):
        group = sorted(strata[name], key=lambda c: c.case_id)
        rng.shuffle(group)
        want = (
            total - len(chosen) if i == len(names) - 1 else round(total * len(group) / len(cases))
        )
        chosen.extend(group[: min(want, len(group))])
    return chosen


def build_splits(data: Path, seed: int = SEED) -> tuple[list[LabelledCase], list[LabelledCase]]:
    """(dev, holdout): disjoint, each with public rows and about 40/60 of the own cases."""
    rng = random.Random(seed)
    dev: list[LabelledCase] = []
    holdout: list[LabelledCase] = []
    for name, per_split in sorted(PUBLIC_PER_SPLIT.items()):
        cases = read_cases(data / "public" / f"{name}.csv")
        both = _stratified(cases, "label", 2 * per_split, rng)
        rng.shuffle(both)
        by_label: dict[str, list[LabelledCase]] = defaultdict(list)
        for case in both:
            by_label[case.label.value].append(case)
        for group in by_label.values():  # alternate within each label: both splits stratified
            dev.extend(group[0::2])
            holdout.extend(group[1::2])
    own: dict[str, list[LabelledCase]] = defaultdict(list)
    for case in read_cases(data / "own.csv"):
        own[case.source].append(case)
    for kind in sorted(own):
        group = sorted(own[kind], key=lambda c: c.case_id)
        rng.shuffle(group)
        cut = round(len(group) * OWN_HOLDOUT_SHARE)
        holdout.extend(group[:cut])
        dev.extend(group[cut:])
    # Written after the first holdout run, for dev only: adding them never changes the holdout.
    dev.extend(read_cases(data / "own_dev_extra.csv"))
    dev.sort(key=lambda c: (c.source, c.case_id))
    holdout.sort(key=lambda c: (c.source, c.case_id))
    return dev, holdout


def fit_pool(
    data: Path, dev: Sequence[LabelledCase], holdout: Sequence[LabelledCase], seed: int = SEED
) -> list[LabelledCase]:
    """Public rows in neither split (by id and by text), for fitting a probe head only."""
    rng = random.Random(seed + 2)
    taken = {c.case_id for c in (*dev, *holdout)}
    seen = {text_key(c.text) for c in (*dev, *holdout)}
    pool: list[LabelledCase] = []
    for name, size in sorted(FIT_POOL_PER_SOURCE.items()):
        left: list[LabelledCase] = []
        for case in read_cases(data / "public" / f"{name}.csv"):
            if case.case_id not in taken and text_key(case.text) not in seen:
                seen.add(text_key(case.text))  # a text repeated inside a source is fitted once
                left.append(case)
        pool.extend(left if size is None else _stratified(left, "label", size, rng))
    return sorted(pool, key=lambda c: (c.source, c.case_id))


def smoke_sample(dev: Sequence[LabelledCase], seed: int = SEED) -> list[LabelledCase]:
    """A small dev sample with every label and as many sources as the draw gives."""
    rng = random.Random(seed + 1)
    picked: list[LabelledCase] = []
    for label in sorted({c.label.value for c in dev}):
        group = [c for c in dev if c.label.value == label]
        rng.shuffle(group)
        picked.extend(group[:SMOKE_PER_LABEL])
    return sorted(picked, key=lambda c: (c.source, c.case_id))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.split", description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    dev, holdout = build_splits(args.data, args.seed)
    write_cases(args.data / "dev.csv", dev)
    write_cases(args.data / "holdout.csv", holdout)
    write_cases(args.data / "smoke.csv", smoke_sample(dev, args.seed))
    pool = fit_pool(args.data, dev, holdout, args.seed)
    write_cases(args.data / "fit_pool.csv", pool)
    print(
        f"dev: {len(dev)} rows, holdout: {len(holdout)} rows, fit pool: {len(pool)} rows "
        f"(seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
