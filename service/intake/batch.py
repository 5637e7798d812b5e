"""``switchboard batch EXPORT --out decisions.jsonl``: decide a day's export, resumable.

The export is JSON lines or CSV with ``message_id`` (or ``id``), ``message`` (or ``text``) and
optionally ``channel``, ``policy`` and ``metadata`` (JSON lines). Every line is decided by the
same engines and recorded in the same audit store as ``/classify`` (hand-offs included), and one
line is appended to the output per input line: the decision record, or ``{"line": n,
"message_id": ..., "error": reason, "detail": ...}`` for a line that cannot be decided.

Resume: the output is read first and every message id already in it is skipped; a line decided
and recorded but not yet written (a crash in between) finds its stored decision by its id and is
written without deciding it again. A partial last output line (a crash mid-write) is dropped.
Decisions run ``concurrency`` at a time: the model takes one at a time with all cores, and the
others meanwhile redact, run rules and commit (group commit shares one fsync between them).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from service.intake.intake import Decided, Intake
from service.intake.message import IntakeMessage, PoisonMessageError, json_object


@dataclass
class BatchSummary:
    lines: int = 0
    decided: int = 0
    skipped_already_written: int = 0
    recovered_from_store: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    review: int = 0
    degraded: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        per_s = self.decided / self.seconds if self.seconds else 0.0
        return {
            "lines": self.lines,
            "decided_now": self.decided,
            "skipped_already_in_output": self.skipped_already_written,
            "taken_from_audit_store": self.recovered_from_store,
            "errors": dict(self.errors),
            "categories": dict(self.categories),
            "requires_human_review": self.review,
            "degraded": self.degraded,
            "seconds": round(self.seconds, 1),
            "decisions_per_second": round(per_s, 2),
        }


def read_export(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, fields, or None and why it cannot be read)."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.DictReader(f), start=2):
                yield n, dict(row), None
        return
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                data = json_object(line)
            except PoisonMessageError as exc:
                yield n, None, f"{exc.reason}: {exc.detail}"
                continue
            yield n, data, None


def written_ids(out: Path) -> set[str]:
    """Message ids already in the output; a partial last line is cut off."""
    if not out.exists():
        return set()
    raw = out.read_bytes()
    if raw and not raw.endswith(b"\n"):
        keep = raw.rfind(b"\n") + 1
        with out.open("r+b") as f:
            f.truncate(keep)
        raw = raw[:keep]
    ids = set()
    for line in raw.splitlines():
        data = json.loads(line)
        ident = data.get("message_id") or (data.get("metadata") or {}).get("message_id")
        if ident is not None:
            ids.add(str(ident))
        if "error" in data:
            ids.add(f"line:{data['line']}")  # an unreadable line is done once it is reported
    return ids


async def run_batch(
    intake: Intake,
    export: Path,
    out: Path,
    *,
    max_chars: int,
    concurrency: int = 4,
    progress: bool = True,
) -> BatchSummary:
    summary = BatchSummary()
    started = time.perf_counter()
    done = written_ids(out)
    total = sum(1 for _ in read_export(export))
    limit = asyncio.Semaphore(concurrency)
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        out.open("a", encoding="utf-8") as sink,
        tqdm(
            total=total, unit="msg", disable=not progress, file=sys.stderr, dynamic_ncols=True
        ) as bar,
    ):

        async def one(n: int, fields: dict[str, Any] | None, unreadable: str | None) -> None:
            async with limit:
                line = await _decide_line(intake, n, fields, unreadable, max_chars, summary)
                _write(sink, line)
                bar.update(1)

        tasks = []
        for n, fields, unreadable in read_export(export):
            summary.lines += 1
            ident = str((fields or {}).get("message_id", (fields or {}).get("id", "")))
            if (ident and ident in done) or f"line:{n}" in done:
                summary.skipped_already_written += 1
                bar.update(1)
                continue
            tasks.append(asyncio.create_task(one(n, fields, unreadable)))
            if len(tasks) >= concurrency * 4:  # bounded read-ahead
                await asyncio.gather(*tasks)
                tasks = []
        await asyncio.gather(*tasks)
        sink.flush()
        os.fsync(sink.fileno())
    summary.seconds = time.perf_counter() - started
    return summary


async def _decide_line(
    intake: Intake,
    n: int,
    fields: dict[str, Any] | None,
    unreadable: str | None,
    max_chars: int,
    summary: BatchSummary,
) -> bytes:
    ident = None if fields is None else fields.get("message_id", fields.get("id"))
    try:
        if fields is None:
            reason, _, detail = (unreadable or "invalid: unreadable").partition(": ")
            raise PoisonMessageError(reason, detail)
        if isinstance(fields.get("metadata"), str):  # CSV: metadata as a JSON cell
            fields["metadata"] = json.loads(fields["metadata"] or "{}")
        decided: Decided = await intake.decide(
            IntakeMessage.from_fields(fields, max_chars=max_chars)
        )
    except (PoisonMessageError, json.JSONDecodeError) as exc:
        reason = exc.reason if isinstance(exc, PoisonMessageError) else "invalid_metadata"
        summary.errors[reason] += 1
        error = {"line": n, "message_id": ident, "error": reason, "detail": str(exc)[:300]}
        return json.dumps(error).encode()
    if decided.already:
        summary.recovered_from_store += 1
    else:
        summary.decided += 1
    summary.categories[decided.category] += 1
    summary.review += decided.requires_human_review
    summary.degraded += decided.degraded
    return decided.record


def _write(sink: IO[str], line: bytes) -> None:
    sink.write(line.decode() + "\n")
    sink.flush()  # a line is either whole in the file or cut off at resume
