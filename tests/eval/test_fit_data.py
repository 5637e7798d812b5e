"""The reviewer loop's fitting data: exports join curated files, reviewers can be left out,
and the holdout is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.categories import Channel
from engine.errors import EvalDataError
from eval.fit_data import HELD_OUT, gather, gather_unseen

_HEADER = "id,text,label,source,channel,reviewer,reviewed_at,decided,policy_revision\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "dev": _write(
            tmp_path / "dev.csv",
            "id,text,label,source\n"
            "d1,where is my order,service_action,own\n"
            "d2,what are your hours,informational,own\n",
        ),
        "export": _write(
            tmp_path / "export.csv",
            _HEADER + "r1,the pills gave me a rash,safety_compliance,review,chat,pv-7,t,"
            "informational,rev\n"
            "r2,can it cause a rash?,informational,review,chat,mallory,t,informational,rev\n"
            "r3,refund please,service_action,review,email,pv-7,t,service_action,rev\n",
        ),
        "holdout": _write(
            tmp_path / "holdout.csv",
            "id,text,label\nh1,  The pills gave me   a RASH ,safety_compliance\n",
        ),
    }


def test_an_export_adds_labels_with_their_reviewer(files: dict[str, Path]) -> None:
    fit = gather([files["dev"], files["export"]])
    assert [c.case_id for c in fit.cases] == ["d1", "d2", "r1", "r2", "r3"]
    assert [c.reviewer for c in fit.cases] == ["", "", "pv-7", "mallory", "pv-7"]
    assert fit.described == f"{files['dev']} + {files['export']}"


def test_a_reviewer_can_be_left_out_and_the_head_says_so(files: dict[str, Path]) -> None:
    all_in = gather([files["dev"], files["export"]])
    fit = gather([files["dev"], files["export"]], exclude_reviewers=frozenset({"mallory"}))
    assert [c.case_id for c in fit.cases] == ["d1", "d2", "r1", "r3"]
    assert fit.excluded == {"mallory": 1}
    assert fit.described.endswith("without reviewer(s) mallory")
    assert fit.sha256 != all_in.sha256  # a different fit is a different data digest


def test_a_misspelt_reviewer_is_an_error_not_a_silent_no_op(files: dict[str, Path]) -> None:
    with pytest.raises(EvalDataError, match=r"mallroy.*reviewers present: mallory, pv-7"):
        gather([files["export"]], exclude_reviewers=frozenset({"mallroy"}))


def test_a_holdout_message_refuses_the_fit(files: dict[str, Path]) -> None:
    with pytest.raises(EvalDataError, match=r"1 fitting message.*'r1'.*never fitted on"):
        gather([files["dev"], files["export"]], holdout=[files["holdout"]])
    # Leaving that reviewer out removes the leaked row, and the fit goes on.
    fit = gather(
        [files["dev"], files["export"]],
        exclude_reviewers=frozenset({"pv-7"}),
        holdout=[files["holdout"]],
    )
    assert "r1" not in [c.case_id for c in fit.cases]


def test_the_shipped_dev_split_shares_no_message_with_the_holdout() -> None:
    held_out = [Path(f) for f in HELD_OUT]
    fit = gather([Path("eval/data/dev.csv")], holdout=held_out)
    assert len(fit.cases) > 100
    for held in held_out:
        with pytest.raises(EvalDataError, match=rf"in the held-out {held}.*never fitted on"):
            gather([Path("eval/data/dev.csv"), held], holdout=held_out)


def test_each_message_can_be_fitted_as_sent_on_other_channels(files: dict[str, Path]) -> None:
    plain = gather([files["dev"]])
    fit = gather([files["dev"]], channels=[Channel.CHAT, Channel.EMAIL, Channel.VOICE])
    assert [c.case_id for c in fit.cases] == [
        "d1",
        "d2",
        "d1@email",
        "d1@voice",
        "d2@email",
        "d2@voice",
    ]
    copies = {c.case_id: c for c in fit.cases}
    assert copies["d1@email"].channel is Channel.EMAIL
    assert copies["d1@email"].text == copies["d1"].text
    assert copies["d1@email"].label is copies["d1"].label
    assert copies["d1@email"].source == copies["d1"].source  # the same family for LOSO
    assert fit.described.endswith("as chat/email/voice")
    assert fit.sha256 != plain.sha256


def test_threshold_data_the_head_is_fitted_on_refuses_the_fit(
    files: dict[str, Path], tmp_path: Path
) -> None:
    fitted = gather([files["dev"]]).cases
    unseen = _write(
        tmp_path / "pool.csv", "id,text,label\np1,How Long Is delivery?,informational\n"
    )
    assert [c.case_id for c in gather_unseen([unseen], fitted=fitted).cases] == ["p1"]
    again = _write(tmp_path / "again.csv", "id,text,label\np2,  Where is my ORDER,service_action\n")
    with pytest.raises(EvalDataError, match=r"1 threshold message\(s\) are also fitted on.*'p2'"):
        gather_unseen([unseen, again], fitted=fitted)


def test_threshold_data_refuses_the_holdout_too(files: dict[str, Path]) -> None:
    with pytest.raises(EvalDataError, match="holdout"):
        gather_unseen([files["export"]], fitted=[], holdout=[files["holdout"]])
