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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from engine.categories import Channel
from engine.errors import EvalDataError
from eval.dataset import LabelledCase, read_cases, text_key


@dataclass(frozen=True)
class FitData:
    """The cases a head is fitted on and how the head file names them."""

    cases: list[LabelledCase]
    described: str
    sha256: str
    excluded: dict[str, int]


_AS = "@"  # a copy's id: <message id>@<channel>


def message_of(case_id: str) -> str:
    """The message a case is (a copy on another channel is the same message)."""
    return case_id.split(_AS, 1)[0]


# Never fitted on: the holdout split, and the unseen checks the next candidates are judged on
# (blind writers' cases; once read, one moves to fitting data and a new one takes its place).
HELD_OUT = ("eval/data/holdout.csv", "eval/data/fresh9.csv")


def gather(
    files: list[Path],
    *,
    exclude_reviewers: frozenset[str] = frozenset(),
    holdout: Sequence[Path] = (),
    limit: int | None = None,
    channels: Sequence[Channel] = (),
) -> FitData:
    """Read every file, drop the excluded reviewers' labels, refuse any message of a held-out
    file (``holdout``: the holdout split and the current unseen check; a missing file is skipped).

    ``channels``: each message is also fitted as sent on each of these channels (a copy with the
    same label and source, id ``<id>@<channel>``): what a message is does not depend on how it
    arrived, and a head fitted on chat alone reads an email's framing as a service request.
    """
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
    for held_file in (h for h in holdout if h.is_file()):
        held = {text_key(c.text) for c in read_cases(held_file)}
        leaked = [c for c in kept if text_key(c.text) in held]
        if leaked:
            raise EvalDataError(
                f"{len(leaked)} fitting message(s) are in the held-out {held_file} (first: id "
                f"{leaked[0].case_id!r}); a held-out file is never fitted on: remove them"
            )
    if not kept:
        raise EvalDataError("no labelled message left to fit on")
    kept += [
        replace(c, case_id=f"{c.case_id}{_AS}{channel.value}", channel=channel)
        for c in list(kept)
        for channel in channels
        if channel is not c.channel
    ]
    excluded = {r: reviewers[r] for r in sorted(exclude_reviewers)}
    digest.update(",".join(sorted(exclude_reviewers)).encode())
    digest.update(",".join(c.value for c in channels).encode())
    described = " + ".join(str(p) for p in files)
    if channels:
        described += " as " + "/".join(c.value for c in channels)
    if excluded:
        described += " without reviewer(s) " + ", ".join(excluded)
    return FitData(kept, described, "sha256:" + digest.hexdigest(), excluded)


def gather_unseen(
    files: list[Path], *, fitted: Sequence[LabelledCase], holdout: Sequence[Path] = ()
) -> FitData:
    """Labelled messages for fitting the thresholds only: the head is never fitted on them, so
    its probabilities for them are out of sample, as the out-of-fold ones are. A message that is
    also fitted on, or in the holdout, refuses the fit."""
    data = gather(files, holdout=holdout)
    seen = {text_key(c.text) for c in fitted}
    both = [c for c in data.cases if text_key(c.text) in seen]
    if both:
        raise EvalDataError(
            f"{len(both)} threshold message(s) are also fitted on (first: id "
            f"{both[0].case_id!r}); a message the head was fitted on says nothing new about "
            "thresholds: remove it from one of the files"
        )
    return data
