"""``switchboard eval`` on the embedded model: a small CSV, the three outputs, sane numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval.dataset import read_cases, write_cases
from eval.predictions import read_predictions
from tests.conftest import POLICIES

DEV = Path(__file__).resolve().parents[2] / "eval" / "data" / "own.csv"


@pytest.mark.model
def test_eval_on_the_embedded_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    cases = read_cases(DEV)
    picked = [c for c in cases if c.source in ("own/email-thread", "own/slang-short")][:10]
    data = tmp_path / "ten.csv"
    write_cases(data, picked)
    out = tmp_path / "out"
    # A separate process, as a user runs it (and llama.cpp stays out of the test process).
    done = subprocess.run(
        [sys.executable, "-m", "engine", "eval", "--data", str(data), "--out", str(out),
         "--policies", str(POLICIES), "--backend", "embedded", "--deadline-s", "120"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "safety recall" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n"] == 10
    assert metrics["meta"]["backend"] == "embedded"
    assert metrics["degraded_rate"] == 0.0  # a generous deadline: every verdict arrived
    assert metrics["mean_output_tokens"] == 1.0
    assert metrics["latency_ms"]["p50"] > 0
    rows = read_predictions(out / "predictions.csv")
    assert all(abs(sum(r.probabilities.values()) - 1.0) < 1e-6 for r in rows)
    assert (out / "report.md").is_file()
