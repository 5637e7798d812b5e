"""``switchboard batch``: every line decided and recorded once, resumable after a crash (the
output cut mid-line, decisions recorded but not written), error lines for what cannot be read."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from service.intake.batch import run_batch
from service.intake.message import decision_id_for
from service.intake.runtime import intake_runtime
from service.settings import Settings


def _export(path: Path, n: int) -> Path:
    lines = [
        json.dumps(
            {"message_id": f"m-{i}", "message": f"where is my order {i}?", "channel": "email"}
        )
        for i in range(n)
    ]
    lines.insert(5, "{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _settings(policy_copy: Path, tmp_path: Path) -> Settings:
    return Settings(
        policies=policy_copy.parent,
        audit_db=str(tmp_path / "audit.db"),
        backend="fake",
        warm_up=False,
    )


async def test_a_batch_resumes_without_deciding_twice(policy_copy: Path, tmp_path: Path) -> None:
    settings = _settings(policy_copy, tmp_path)
    export = _export(tmp_path / "export.jsonl", 30)
    out = tmp_path / "decisions.jsonl"
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
    async with intake_runtime(settings, backend=backend) as runtime:
        first = await run_batch(runtime.intake, export, out, max_chars=20_000, progress=False)
    assert (first.lines, first.decided, first.errors["invalid_json"]) == (31, 30, 1)

    # The crash: the last 10 decisions were recorded but never written, the 11th is cut mid-line.
    kept = out.read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join(kept[:20]) + "\n" + kept[20][:40], encoding="utf-8")
    async with intake_runtime(settings, backend=backend) as runtime:
        again = await run_batch(runtime.intake, export, out, max_chars=20_000, progress=False)
    assert again.decided == 0, "nothing is decided twice"
    # 11 lines were lost: 10 or 11 recorded decisions (the error line may have been one of them).
    assert again.recovered_from_store + again.errors["invalid_json"] == 11
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    ids = [
        line.get("message_id") or line["metadata"]["message_id"]
        for line in lines
        if "error" not in line
    ]
    assert sorted(ids) == sorted(f"m-{i}" for i in range(30))  # each once
    assert len(lines) == 31
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        stored = {row[0] for row in conn.execute("SELECT decision_id FROM decisions")}
    assert stored == {decision_id_for("dev", "contact-center", f"m-{i}") for i in range(30)}


async def test_lines_json_cannot_hold_are_error_lines_and_the_batch_finishes(
    policy_copy: Path, tmp_path: Path
) -> None:
    """An integer over 4,300 digits, nesting deeper than the stack and a lone surrogate are
    errors of their line, as ``{not json`` is; the run used to stop at them on every resume."""
    settings = _settings(policy_copy, tmp_path)
    good = json.dumps({"message_id": "m-1", "message": "where is my order?"})
    bad = [
        '{"message_id": "m-2", "message": "hi", "n": 1' + "1" * 5_000 + "}",
        '{"message_id": "m-3", "message": "hi", "n": ' + "[" * 20_000 + "]" * 20_000 + "}",
        json.dumps({"message_id": "m-4\ud800", "message": "hi"}),
    ]
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join([*bad, good]) + "\n", encoding="utf-8")
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
    async with intake_runtime(settings, backend=backend) as runtime:
        summary = await run_batch(
            runtime.intake, export, tmp_path / "out.jsonl", max_chars=20_000, progress=False
        )
    assert (summary.lines, summary.decided, summary.errors["invalid_json"]) == (4, 1, 3)
