"""``switchboard eval`` end to end with the scripted backend: the outputs and the proposals."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from engine.categories import Category, Channel
from engine.cli import main
from engine.policy.loader import load_policy
from eval.predictions import Prediction, read_predictions, write_predictions
from tests.conftest import DEFAULT_POLICY, FIXTURES, LIVE_POLICY, LIVE_PROMPTS, POLICIES

ROWS = [
    ("c1", "What is your refund policy?", "informational", "own/demo", "chat"),
    ("c2", "Cancel order 4471 please.", "service_action", "own/demo", "chat"),
    ("c3", "I fainted after the second dose.", "safety_compliance", "own/demo", "chat"),
    ("c4", "Do you ship to Canada?", "informational", "public", "chat"),
    ("c5", "The seal was broken on my bottle.", "safety_compliance", "public", "chat"),
    ("c6", "Reset my password.", "service_action", "public", "chat"),
    ("c7", "Hi,\n\nWhere is my parcel?\n\nThanks,\nAna", "service_action", "public", "email"),
    ("c8", "um my son uh threw up after the syrup", "safety_compliance", "public", "voice"),
    ("c9", "Mail me at jo@example.com about your hours", "informational", "public", "chat"),
    ("c10", "Update my address to 1 Main St.", "service_action", "public", "chat"),
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "ten.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label", "source", "channel"])
        writer.writerows(ROWS)
    return path


def run(*args: str) -> int:
    return main(["eval", "--policies", str(FIXTURES / "policies"), "--backend", "fake", *args])


def test_eval_writes_the_three_outputs(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run("--data", str(data), "--out", str(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    for key in (
        "n", "accuracy", "macro_f1", "per_category", "safety_recall",
        "safety_false_escalation_rate", "confusion_matrix", "ece", "review_rate",
        "degraded_rate", "latency_ms", "mean_prompt_tokens", "mean_output_tokens",
        "cost_per_decision_usd", "model_only", "per_source",
    ):  # fmt: skip
        assert key in metrics, key
    assert metrics["n"] == 10
    assert set(metrics["latency_ms"]) == {"p50", "p95", "p99"}
    assert set(metrics["per_source"]) == {"own", "own/demo", "public"}
    # The same ten with no model verdict: rules and fallbacks only, every one reviewed.
    assert metrics["outage"]["n"] == 10
    assert metrics["outage"]["review_rate"] == 1.0
    assert metrics["outage"]["silent_safety_misses"] == 0
    assert "during an outage" in (out / "report.md").read_text(encoding="utf-8")
    assert metrics["meta"]["policy_id"] == "contact-center"
    # The fake says service_action 0.9 to everything: the rules catch the safety reports.
    assert metrics["model_only"]["safety_recall"] == 0.0
    assert metrics["safety_recall"] == 1.0
    rows = read_predictions(out / "predictions.csv")
    assert [r.id for r in rows] == [r[0] for r in ROWS]
    assert "<EMAIL_ADDRESS>" in rows[8].input_redacted  # redacted as the service would
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "Model only versus final decision" in report
    for chart in ("confusion.png", "reliability.png", "confidence.png"):
        assert (out / chart).read_bytes().startswith(b"\x89PNG")
        assert chart in report
    assert "wrote" in capsys.readouterr().out


def test_limit_and_reused_verdicts(data: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    fast = "--no-redaction"
    assert run("--data", str(data), "--out", str(first), "--limit", "4", fast) == 0
    assert json.loads((first / "metrics.json").read_text(encoding="utf-8"))["n"] == 4
    reuse = ("--reuse-verdicts", str(first / "predictions.csv"))
    assert run("--data", str(data), "--out", str(second), "--limit", "4", fast, *reuse) == 0
    before = read_predictions(first / "predictions.csv")
    after = read_predictions(second / "predictions.csv")
    assert [(r.category, r.requires_human_review) for r in after] == [
        (r.category, r.requires_human_review) for r in before
    ]


def test_fit_thresholds_and_calibrate_write_applicable_proposals(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run("--data", str(data), "--out", str(out), "--no-redaction") == 0
    predictions = str(out / "predictions.csv")
    assert run("fit-thresholds", "--predictions", predictions, "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "trade-off curve" in printed
    proposal = yaml.safe_load((out / "thresholds.patch.yaml").read_text(encoding="utf-8"))
    assert set(proposal["thresholds"]) == {
        "informational", "service_action", "safety_compliance", "safety_escalation",
    }  # fmt: skip
    assert "+++ b/" in (out / "thresholds.diff").read_text(encoding="utf-8")

    assert run("calibrate", "--predictions", predictions, "--out", str(out)) == 0
    assert "ECE" in capsys.readouterr().out
    section = yaml.safe_load((out / "calibration.patch.yaml").read_text(encoding="utf-8"))
    assert section["calibration"]["temperature"] > 0
    assert section["calibration"]["model"] == "fake-scripted"


def test_patched_policy_still_loads(tmp_path: Path) -> None:
    from engine.policy.fitting import Calibration
    from engine.policy.labels import Thresholds
    from eval import patch

    original = (DEFAULT_POLICY / "policy.yaml").read_text(encoding="utf-8")
    text = patch.with_thresholds(original, Thresholds(
        informational=0.6, service_action=0.5, safety_compliance=0.4, safety_escalation=0.2
    ))  # fmt: skip
    text = patch.with_calibration(
        text,
        Calibration(temperature=0.5, model="m", fitted_on="dev.csv", fitted_at="2025-01-01", n=3),
    )
    target = tmp_path / "policies" / "contact-center"
    target.mkdir(parents=True)
    for name in ("rules.yaml", "workflows.yaml"):
        (target / name).write_text((DEFAULT_POLICY / name).read_text(encoding="utf-8"))
    (target / "policy.yaml").write_text(text, encoding="utf-8")
    loaded = load_policy(target, FIXTURES / "prompts")
    assert loaded.policy.thresholds.safety_escalation == 0.2
    assert loaded.policy.thresholds.service_action == 0.5
    assert loaded.policy.calibration is not None
    assert loaded.policy.calibration.temperature == 0.5


def test_bad_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,maybe\n", encoding="utf-8")
    assert run("--data", str(bad), "--out", str(tmp_path / "o")) == 2
    assert "bad.csv:2" in capsys.readouterr().err


@pytest.mark.parametrize("weights", ["-1", "x,1", "inf", "nan"])
def test_label_weights_must_be_numbers_of_at_least_zero(
    weights: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "fit-head", "--label-weights", weights, "--out", "h.json"])
    assert exit_.value.code == 2
    assert "label" in capsys.readouterr().err


def _with_head_columns(
    rows: list[Prediction], heads: dict[Category, tuple[float, float, float]]
) -> list[Prediction]:
    """Rows as if a probe head had decided: ``heads[label]`` (in CATEGORIES order) for each."""
    return [
        replace(r, h_informational=h[0], h_service_action=h[1], h_safety_compliance=h[2])
        for r in rows
        for h in [heads[r.label]]
    ]


def _current(printed: str) -> list[float]:
    line = next(x for x in printed.splitlines() if x.startswith("current:"))
    return [float(v) for v in line.split("|")[1].split()]  # cost recall f.esc review acc


def test_fit_thresholds_with_head_replays_the_heads_probabilities_and_proposes_its_thresholds(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run("--data", str(data), "--out", str(out), "--no-redaction") == 0
    recorded = read_predictions(out / "predictions.csv")  # the fake: service_action for all
    headed = tmp_path / "headed.csv"
    # Right on every message, but unsure of service requests (0.5): the head's service
    # threshold (0.56) sends them to review, and a lower one would not.
    heads = {
        Category.INFORMATIONAL: (0.96, 0.02, 0.02),
        Category.SERVICE_ACTION: (0.46, 0.5, 0.04),
        Category.SAFETY_COMPLIANCE: (0.02, 0.02, 0.96),
    }
    write_predictions(headed, _with_head_columns(recorded, heads))

    def fit(*extra: str) -> int:
        policies = str(POLICIES)  # the live policy: it has a probe head
        return main(
            [
                "eval",
                "--policies",
                policies,
                "--backend",
                "fake",
                "fit-thresholds",
                "--predictions",
                str(headed),
                "--out",
                str(tmp_path / "fit"),
                *extra,
            ]
        )

    capsys.readouterr()
    assert fit() == 0
    labels_only = _current(capsys.readouterr().out)
    assert fit("--head") == 0
    with_head = _current(capsys.readouterr().out)
    assert labels_only[4] < 1.0  # the label probabilities say service_action for every message
    assert with_head[4] == 1.0
    assert with_head[1] == 1.0

    proposal = yaml.safe_load((tmp_path / "fit" / "thresholds.patch.yaml").read_text("utf-8"))
    assert set(proposal) == {"head"}
    assert proposal["head"]["thresholds"]["service_action"] <= 0.5
    diff = (tmp_path / "fit" / "thresholds.diff").read_text(encoding="utf-8").splitlines()
    changed = [x for x in diff if x[:1] in "+-" and x[:3] not in ("+++", "---")]
    assert changed
    assert all(x[1:5] == "    " for x in changed)


def test_fit_thresholds_with_head_needs_the_heads_columns(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run("--data", str(data), "--out", str(out), "--no-redaction") == 0
    policies = str(POLICIES)  # the live policy: it has a probe head
    args = ["eval", "--policies", policies, "--backend", "fake", "fit-thresholds", "--head"]
    assert main([*args, "--predictions", str(out / "predictions.csv")]) == 2
    assert "no row carries the head's probabilities" in capsys.readouterr().err
    assert run("fit-thresholds", "--head", "--predictions", str(out / "predictions.csv")) == 2
    assert "the policy has no probe head" in capsys.readouterr().err


def test_head_thresholds_patch_changes_only_the_heads(tmp_path: Path) -> None:
    from engine.policy.labels import Thresholds
    from eval import patch

    original = (LIVE_POLICY / "policy.yaml").read_text(encoding="utf-8")
    new = Thresholds(
        informational=0.61, service_action=0.52, safety_compliance=0.43, safety_escalation=0.24
    )
    text = patch.with_head_thresholds(original, new)
    target = tmp_path / "policies" / "contact-center"
    shutil.copytree(LIVE_POLICY, target)
    (target / "policy.yaml").write_text(text, encoding="utf-8")
    loaded = load_policy(target, LIVE_PROMPTS)
    before = load_policy(LIVE_POLICY, LIVE_PROMPTS)
    assert loaded.policy.head is not None
    assert loaded.policy.head.thresholds == new
    assert loaded.policy.thresholds == before.policy.thresholds
    with pytest.raises(ValueError, match="inside a top-level 'head:'"):
        patch.with_head_thresholds("thresholds:\n  informational: 0.5\n", new)


def test_outage_replay_decides_without_a_verdict_under_the_policy() -> None:
    from engine.backends.fake import FakeBackend, Scripted
    from engine.categories import VerdictStatus
    from engine.decide.engine import Engine
    from engine.decide.rules import RulesCache
    from eval.dataset import LabelledCase
    from eval.recorded import replay_outage
    from eval.summary import outage_outcomes

    loaded = load_policy(LIVE_POLICY, LIVE_PROMPTS)
    # The model would answer service_action surely: the outage replay must not ask it.
    engine = Engine.build(
        loaded, FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.99)),
        rules_cache=RulesCache(),
    )  # fmt: skip
    safety, service = Category.SAFETY_COMPLIANCE, Category.SERVICE_ACTION
    texts = [
        ("hives after gummies. 4yo.", safety),
        ("Γεια σας, πρήστηκαν τα χείλη μου.", safety),
        ("lapseni oksensi kahdesti siirapin jälkeen", safety),  # Finnish: no group covers it
        ("Cancel order 4471 please.", service),
        ("Do you ship to Canada?", Category.INFORMATIONAL),
    ]
    cases = [LabelledCase(str(i), t, y, "t", Channel.CHAT) for i, (t, y) in enumerate(texts)]
    rows = replay_outage(engine, cases)
    assert [r.model_status for r in rows] == [VerdictStatus.TIMEOUT] * 5
    assert [r.category for r in rows] == [
        safety,  # a symptom word: safety-signal-without-verdict
        safety,  # Greek swelling: outage_report_signal
        service,  # the timeout fallback
        service,
        service,
    ]
    assert all(r.requires_human_review and r.degraded for r in rows)
    outcome = outage_outcomes(rows)
    assert outcome["safety_queue_recall"] == 2 / 3
    assert outcome["false_escalation_rate"] == 0.0
    assert outcome["silent_safety_misses"] == 0
