"""fit-head without the model: the hidden-state cache, the out-of-fold fits, the temperature."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.backends.readout import Readout
from engine.categories import CATEGORIES, Category, Channel
from engine.decide.engine import Engine
from engine.decide.rules import RulesCache
from engine.policy.loader import load_policy
from eval.dataset import LabelledCase
from eval.fit_head import (
    choose_on_loso,
    collect,
    fit_temperature,
    kfold_logits,
    loso_logits,
    loso_table,
    softmax,
    unseen_rows,
)
from tests.conftest import DEFAULT_POLICY, PROMPTS, probe_head


def _separable(n: int = 90, dim: int = 12) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(3)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, dim))
    x[np.arange(n), y] += 4.0  # each class lights up its own feature
    groups = ["a", "b", "c"] * (n // 3)
    groups = [groups[(i // 3) % 3] for i in range(n)]  # every family holds every class
    return x, y, groups


def test_out_of_fold_heads_predict_what_they_never_saw() -> None:
    x, y, groups = _separable()
    for z in (loso_logits(x, y, groups, 1.0), kfold_logits(x, y, 1.0)):
        assert z.shape == (len(y), 3)
        assert (z.argmax(axis=1) == y).mean() > 0.9


def test_a_source_style_the_other_sources_lack_is_not_learnt_from_itself() -> None:
    """Family 'c' carries its label in a feature the others never use: LOSO cannot see it."""
    x, y, groups = _separable()
    x[:, :3] = np.random.default_rng(5).normal(size=(len(y), 3))  # no shared signal left
    c = np.array(groups) == "c"
    x[c, 3 + y[c]] += 6.0  # a style only family c has
    z = loso_logits(x, y, groups, 1.0)
    assert (z[c].argmax(axis=1) == y[c]).mean() < 0.6


def test_fit_temperature_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(9)
    true = rng.normal(size=(3000, 3)) * 3
    p = softmax(true)
    y = np.array([rng.choice(3, p=row) for row in p])
    assert fit_temperature(true * 2.0, y) == pytest.approx(2.0, rel=0.1)


async def test_collect_caches_hidden_states_and_reuses_them(tmp_path: Path) -> None:
    loaded = load_policy(DEFAULT_POLICY, PROMPTS)
    state = np.arange(8, dtype=np.float32)
    answer = Scripted(dict(zip(CATEGORIES, (0.2, 0.7, 0.1), strict=True)), hidden_state=state)
    backend = FakeBackend(default=answer)
    engine = Engine.build(loaded, backend, rules_cache=RulesCache())
    cases = [
        LabelledCase("a", "Where is my parcel?", Category.SERVICE_ACTION, "own/x", Channel.CHAT),
        LabelledCase(
            "b", "I fainted after the dose.", Category.SAFETY_COMPLIANCE, "v", Channel.CHAT
        ),
    ]
    first, hits = await collect(engine, cases, tmp_path, deadline_s=5)
    assert hits == 0
    assert len(backend.calls) == 2
    assert len(list(tmp_path.glob("*.npz"))) == 2
    again, hits = await collect(engine, cases, tmp_path, deadline_s=5)
    assert hits == 2
    assert len(backend.calls) == 2  # no model call on a rerun
    for before, after in zip(first, again, strict=True):
        assert after.hidden is not None
        assert np.array_equal(after.hidden, state)
        assert after.row.model_label is before.row.model_label is Category.SERVICE_ACTION
        assert after.row.p_service_action == pytest.approx(0.7)
        assert after.labels == pytest.approx((0.2, 0.7, 0.1))  # the fused head reads these

    # Another readout is another hidden state: asked of the model, cached apart.
    readout = Readout.parse(["mean:9", "last:16"])
    _, hits = await collect(engine, cases, tmp_path, deadline_s=5, readout=readout)
    assert hits == 0
    assert [p.readout for p in list(backend.calls)[2:]] == [readout, readout]
    assert len(list(tmp_path.glob("*.npz"))) == 4


def test_the_label_weight_is_chosen_by_what_it_adds_on_a_left_out_source() -> None:
    """Family 'c' carries its label only in a style the others lack (the probe cannot learn it
    left out); label probabilities that know family c's answers earn a weight, noise does not."""
    x, y, groups = _separable()
    c = np.array(groups) == "c"
    x[c, :3] = np.random.default_rng(5).normal(size=(int(c.sum()), 3))
    x[c, 3 + y[c]] += 6.0
    rng = np.random.default_rng(6)
    informed = np.full((len(y), 3), 0.1)
    informed[np.arange(len(y)), y] = 0.8
    noise = softmax(rng.normal(size=(len(y), 3)))
    weights = (0.0, 0.5, 1.0, 2.0, 4.0)
    best_informed = choose_on_loso(x, y, groups, np.log(informed), weights)[0]
    best_noise = choose_on_loso(x, y, groups, np.log(noise), weights)[0]
    assert best_informed[2] > 0
    assert best_noise[2] == 0
    assert best_informed[0] < best_noise[0]
    # The default is the probe alone, whatever the label probabilities know.
    assert {fit[2] for fit in choose_on_loso(x, y, groups, np.log(informed))} == {0.0}


def test_copies_of_one_message_share_a_fold() -> None:
    """A message fitted as chat, email and voice: a fold that predicts one copy never fitted
    on another. Three identical copies of random noise: with leaking folds the out-of-fold
    prediction would find its own copies; without, it is no better than chance."""
    rng = np.random.default_rng(4)
    n = 60
    base = rng.normal(size=(n, 40))
    y = rng.integers(0, 3, size=n)
    x = np.concatenate([base, base, base])
    yy = np.concatenate([y, y, y])
    keys = [str(i) for i in range(n)] * 3
    leaking = kfold_logits(x, yy, 3.0)
    grouped = kfold_logits(x, yy, 3.0, same_fold=keys)
    assert (leaking.argmax(axis=1) == yy).mean() > 0.9
    assert (grouped.argmax(axis=1) == yy).mean() < 0.6


async def test_threshold_rows_carry_the_fitted_heads_own_probabilities(tmp_path: Path) -> None:
    """--threshold-data: messages the head was not fitted on are read by the head itself (not
    by out-of-fold heads), with the same decode's label probabilities when it fuses them; a
    message without a hidden state is left out."""
    loaded = load_policy(DEFAULT_POLICY, PROMPTS)
    labels = dict(zip(CATEGORIES, (0.2, 0.7, 0.1), strict=True))
    state = np.array([3.0, -1.0, 0.5, 2.0], dtype=np.float32)
    backend = FakeBackend(default=Scripted(labels, hidden_state=state))
    engine = Engine.build(loaded, backend, rules_cache=RulesCache())
    case = LabelledCase("q", "Can it cause a rash?", Category.INFORMATIONAL, "pool", Channel.CHAT)
    (collected,), _ = await collect(engine, [case], tmp_path, deadline_s=5)
    head = probe_head(4, label_weight=2.0)
    without_state = replace(collected, hidden=None)
    (row,) = unseen_rows([collected, without_state], head)
    expected = head.probabilities(state, labels)
    assert row.id == "q"
    assert row.model_label is max(expected, key=lambda k: expected[k])
    assert row.p_informational == pytest.approx(expected[Category.INFORMATIONAL])
    assert row.p_safety_compliance == pytest.approx(expected[Category.SAFETY_COMPLIANCE])
    assert row.p_safety_compliance != pytest.approx(0.1)  # the head's, not the label's


async def test_the_loso_table_reports_each_left_out_sources_calibration(tmp_path: Path) -> None:
    """The ECE of each source's left-out predictions, at the probabilities given: a source
    whose confidence matches its accuracy reads 0, an overconfident one its gap."""
    loaded = load_policy(DEFAULT_POLICY, PROMPTS)
    backend = FakeBackend(default=Scripted(dict(zip(CATEGORIES, (0.2, 0.7, 0.1), strict=True))))
    engine = Engine.build(loaded, backend, rules_cache=RulesCache())
    cases = [
        LabelledCase("a1", "Where is my order?", Category.SERVICE_ACTION, "alpha", Channel.CHAT),
        LabelledCase("a2", "What are your hours?", Category.INFORMATIONAL, "alpha", Channel.CHAT),
        LabelledCase("b1", "I got a rash", Category.SAFETY_COMPLIANCE, "beta", Channel.CHAT),
        LabelledCase("b2", "Refund me", Category.SERVICE_ACTION, "beta", Channel.CHAT),
    ]
    collected, _ = await collect(engine, cases, tmp_path, deadline_s=5)
    info, service, safety = (CATEGORIES.index(c) for c in CATEGORIES)
    oof = np.zeros((4, 3))
    oof[0, service] = oof[1, info] = 1.0  # alpha: sure and right
    oof[2, info], oof[2, safety] = 0.9, 0.1  # beta: 0.9 sure and wrong, twice
    oof[3, info], oof[3, service] = 0.9, 0.1
    table = {row["source"]: row["head"] for row in loso_table(collected, oof)}
    assert table["alpha"]["ece"] == pytest.approx(0.0)
    assert table["beta"]["ece"] == pytest.approx(0.9)
    assert table["all"]["ece"] == pytest.approx(0.45)
    assert table["beta"]["accuracy"] == pytest.approx(0.0)
