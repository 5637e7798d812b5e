"""The metric definitions on tiny examples computed by hand."""

from __future__ import annotations

import pytest

from engine.categories import Category
from eval.metrics import classification, ece, percentiles, reliability

I = Category.INFORMATIONAL  # noqa: E741 - one-letter names keep the hand-worked tables readable
S = Category.SERVICE_ACTION
A = Category.SAFETY_COMPLIANCE


def test_classification_by_hand() -> None:
    # truth      I  I  S  A  A
    # predicted  I  S  S  A  I
    m = classification([I, I, S, A, A], [I, S, S, A, I])
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    info, service, safety = (m["per_category"][c.value] for c in (I, S, A))
    assert (info["precision"], info["recall"], info["f1"], info["support"]) == pytest.approx(
        (0.5, 0.5, 0.5, 2)
    )
    assert (service["precision"], service["recall"]) == pytest.approx((0.5, 1.0))
    assert service["f1"] == pytest.approx(2 / 3)
    assert (safety["precision"], safety["recall"], safety["f1"]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    assert m["safety_recall"] == pytest.approx(0.5)
    assert m["safety_false_escalation_rate"] == 0.0
    assert m["confusion_matrix"]["safety_compliance"] == {
        "informational": 1,
        "service_action": 0,
        "safety_compliance": 1,
    }


def test_false_escalation_rate_counts_non_safety_sent_to_safety() -> None:
    m = classification([I, S, S, A], [A, S, A, A])
    assert m["safety_false_escalation_rate"] == pytest.approx(2 / 3)
    assert m["safety_recall"] == 1.0


def test_a_missing_model_label_is_wrong_and_gets_its_own_column() -> None:
    m = classification([I, A], [I, None])
    assert m["accuracy"] == 0.5
    assert m["safety_recall"] == 0.0
    assert m["confusion_matrix"]["safety_compliance"]["none"] == 1


def test_rates_without_their_class_are_none() -> None:
    m = classification([I, S], [I, S])
    assert m["safety_recall"] is None
    assert m["safety_false_escalation_rate"] == 0.0
    assert m["macro_f1"] == 1.0  # averaged over the categories that occur


def test_ece_by_hand() -> None:
    # bin 0.9-1.0: two at 0.95, one right -> |0.5 - 0.95| * 2/4
    # bin 0.5-0.6: two at 0.55, both right -> |1.0 - 0.55| * 2/4
    assert ece([0.95, 0.95, 0.55, 0.55], [True, False, True, True]) == pytest.approx(0.45)


def test_ece_of_a_calibrated_model_is_zero() -> None:
    assert ece([0.75] * 4, [True, True, True, False]) == pytest.approx(0.0)
    assert ece([], []) is None


def test_confidence_one_falls_in_the_last_bin() -> None:
    bins = reliability([1.0, 0.0], [True, False])
    assert bins[-1].count == 1
    assert bins[0].count == 1


def test_percentiles() -> None:
    p = percentiles([float(v) for v in range(1, 101)])
    assert p == {"p50": 50.5, "p95": 95.05, "p99": 99.01}
    assert percentiles([]) == {}
