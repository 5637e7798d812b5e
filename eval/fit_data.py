"""What a probe head is fitted on: labelled files plus reviewer exports, never the holdout.

The reviewer loop feeds ``/reviews/export`` back into ``eval fit-head --add-data``. Each exported
label names its reviewer, so a fit can leave out one reviewer's labels (``--exclude-reviewer``)
until reviewers are trusted by role; the head file records the files, their digest and who was
left out. A message that is also in the holdout refuses the fit: the holdout is what the head is
judged on, and a reviewer's export can carry one back in.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EvalDataError
from eval.dataset import LabelledCase, read_cases


@dataclass(frozen=True)
class FitData:
    """The cases a head is fitted on and how the head file names them."""

    cases: list[LabelledCase]
    described: str
    sha256: str
    excluded: dict[str, int]


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def gather(
    files: list[Path],
    *,
    exclude_reviewers: frozenset[str] = frozenset(),
    holdout: Path | None = None,
    limit: int | None = None,
) -> FitData:
    """Read every file, drop the excluded reviewers' labels, refuse any holdout message."""
    if not files:
        raise EvalDataError("fit-head needs --data FILE.csv (labelled; never the holdout)")
    cases: list[LabelledCase] = []
    digest = hashlib.sha256()
    for path in files:
        cases.extend(read_cases(path, limit=limit))
        digest.update(path.read_bytes())
    reviewers = Counter(c.reviewer for c in cases if c.reviewer)
    unknown = sorted(exclude_reviewers - reviewers.keys())
    if unknown:
        raise EvalDataError(
            f"--exclude-reviewer {', '.join(unknown)}: no label in the data is theirs "
            f"(reviewers present: {', '.join(sorted(reviewers)) or 'none'}); check the name"
        )
    kept = [c for c in cases if c.reviewer not in exclude_reviewers]
    if holdout is not None and holdout.is_file():
        held = {_key(c.text) for c in read_cases(holdout)}
        leaked = [c for c in kept if _key(c.text) in held]
        if leaked:
            raise EvalDataError(
                f"{len(leaked)} fitting message(s) are in the holdout {holdout} (first: id "
                f"{leaked[0].case_id!r}); the holdout is never fitted on: remove them"
            )
    if not kept:
        raise EvalDataError("no labelled message left to fit on")
    excluded = {r: reviewers[r] for r in sorted(exclude_reviewers)}
    digest.update(",".join(sorted(exclude_reviewers)).encode())
    described = " + ".join(str(p) for p in files)
    if excluded:
        described += " without reviewer(s) " + ", ".join(excluded)
    return FitData(kept, described, "sha256:" + digest.hexdigest(), excluded)
