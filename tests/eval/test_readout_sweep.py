"""The readout sweep's bookkeeping: one readout for all candidates, each candidate's columns."""

from __future__ import annotations

import numpy as np
import pytest

from eval.readout_sweep import SAFETY, at_recall, columns, union


def test_one_readout_holds_every_read_once_and_each_candidate_finds_its_columns() -> None:
    candidates = ["last:final", "mean:9,last:16", "mean:9", "last:16,last:final"]
    all_reads = union(candidates)
    assert all_reads.names() == ["last:final", "mean:9", "last:16"]
    width = 2
    x = np.arange(6)  # one row: last:final = 0,1; mean:9 = 2,3; last:16 = 4,5
    assert list(x[columns(all_reads, "mean:9,last:16", width)]) == [2, 3, 4, 5]
    assert list(x[columns(all_reads, "last:16,last:final", width)]) == [4, 5, 0, 1]
    assert list(x[columns(all_reads, "mean:9", width)]) == [2, 3]


def test_false_escalation_at_recall_keeps_the_safety_messages_it_must() -> None:
    y = np.array([SAFETY] * 100 + [0] * 3)
    safety = np.concatenate([[0.01], np.linspace(0.5, 1.0, 99)])
    p = np.concatenate([safety, [0.02, 0.3, 0.6]])
    # 99 of 100 safety messages are at or above 0.5: one other message is too.
    assert at_recall(p, y) == pytest.approx(1 / 3)
    # All 100 only at 0.01: every other message.
    assert at_recall(p, y, recall=1.0) == pytest.approx(1.0)
