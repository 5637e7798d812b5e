"""The evaluation splits are reproducible, disjoint and match the files checked in."""

from __future__ import annotations

from eval.dataset import read_cases, text_key
from eval.split import DATA, build_splits, fit_pool, smoke_sample


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


def test_the_fit_pool_is_checked_in_and_shares_no_message_with_either_split() -> None:
    dev, holdout = build_splits(DATA)
    pool = fit_pool(DATA, dev, holdout)
    assert read_cases(DATA / "fit_pool.csv") == pool
    texts = {text_key(c.text) for c in (*dev, *holdout)}
    ids = {c.case_id for c in (*dev, *holdout)}
    assert pool
    assert not [c for c in pool if c.case_id in ids]
    assert not [c for c in pool if text_key(c.text) in texts]
    assert {c.family for c in pool} == {"bitext", "medicationqa"}
