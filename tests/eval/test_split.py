"""The evaluation splits are reproducible, disjoint and match the files checked in."""

from __future__ import annotations

from eval.dataset import read_cases
from eval.split import DATA, build_splits, smoke_sample


def test_splits_are_reproducible_disjoint_and_checked_in() -> None:
    dev, holdout = build_splits(DATA)
    again_dev, again_holdout = build_splits(DATA)
    assert dev == again_dev
    assert holdout == again_holdout
    assert not {c.case_id for c in dev} & {c.case_id for c in holdout}
    assert not {c.text for c in dev} & {c.text for c in holdout}
    assert read_cases(DATA / "dev.csv") == dev
    assert read_cases(DATA / "holdout.csv") == holdout
    assert read_cases(DATA / "smoke.csv") == smoke_sample(dev)


def test_every_split_has_every_source_family_and_label() -> None:
    dev, holdout = build_splits(DATA)
    for split in (dev, holdout):
        assert {c.family for c in split} == {"bitext", "medicationqa", "vaers", "own"}
        assert len({c.label for c in split}) == 3
        assert sum(c.family == "own" for c in split) >= 60
