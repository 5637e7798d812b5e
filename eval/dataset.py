"""Labelled evaluation data: CSV with `text` and `label` (`id`, `source`, `channel` optional).

A reviewer export (`/reviews/export`) also has `reviewer`: who gave the label.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from engine.categories import Category, Channel
from engine.errors import EvalDataError

COLUMNS = ("id", "text", "label", "source", "channel")


@dataclass(frozen=True)
class LabelledCase:
    """One message with its true category."""

    case_id: str
    text: str
    label: Category
    source: str = "unknown"
    channel: Channel = Channel.CHAT
    reviewer: str = ""
    """Who gave the label, for labels from the review queue (empty: a curated file)."""

    @property
    def family(self) -> str:
        """The source before any '/': ``own/third-party`` belongs to ``own``."""
        return self.source.split("/", 1)[0]


def read_cases(path: Path, *, limit: int | None = None) -> list[LabelledCase]:
    """Read a labelled CSV; raise ``EvalDataError`` listing the first bad line."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"text", "label"} - set(reader.fieldnames or ())
            if missing:
                raise EvalDataError(
                    f"{path}: missing column(s) {sorted(missing)}; expected {','.join(COLUMNS)} "
                    "(text and label are required)"
                )
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EvalDataError(f"cannot read {path}: {exc}") from exc
    cases: list[LabelledCase] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        text = (row.get("text") or "").strip()
        if not text:
            raise EvalDataError(f"{path}:{line}: empty text")
        try:
            label = Category((row.get("label") or "").strip())
            channel = Channel((row.get("channel") or "chat").strip() or "chat")
        except ValueError as exc:
            raise EvalDataError(
                f"{path}:{line}: {exc}; labels are {[c.value for c in Category]}, "
                f"channels {[c.value for c in Channel]}"
            ) from exc
        case_id = (row.get("id") or "").strip() or f"{path.stem}-{line}"
        if case_id in seen:
            raise EvalDataError(f"{path}:{line}: id {case_id!r} is used twice")
        seen.add(case_id)
        source = (row.get("source") or "").strip() or "unknown"
        reviewer = (row.get("reviewer") or "").strip()
        cases.append(LabelledCase(case_id, text, label, source, channel, reviewer))
        if limit is not None and len(cases) >= limit:
            break
    if not cases:
        raise EvalDataError(f"{path}: no rows")
    return cases


def text_key(text: str) -> str:
    """The text as it identifies a message: white space folded, case folded.

    Two cases with the same key are the same message, whatever their ids or line breaks.
    """
    return " ".join(text.split()).casefold()


def write_cases(path: Path, cases: list[LabelledCase]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for c in cases:
            writer.writerow([c.case_id, c.text, c.label.value, c.source, c.channel.value])


def file_digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
