"""What a head reads of the decode: readouts written, checked and sized."""

from __future__ import annotations

import pytest

from engine.backends.readout import DEFAULT_READOUT, LayerRead, Readout, ReadoutError, readout_of


def test_a_readout_round_trips_through_its_names() -> None:
    readout = Readout.parse(["mean:9", "last:16", "last:final"])
    assert readout.reads == (LayerRead("mean", 9), LayerRead("last", 16), LayerRead("last", None))
    assert Readout.parse(readout.names()) == readout
    assert readout.layers("mean") == {9}
    assert readout.layers("last") == {16}
    assert readout.averages
    assert readout.size(896) == 3 * 896


def test_the_default_reads_the_final_state_at_the_last_token() -> None:
    assert readout_of(None) == readout_of([]) == DEFAULT_READOUT
    assert DEFAULT_READOUT.names() == ["last:final"]
    assert DEFAULT_READOUT.is_default
    assert not DEFAULT_READOUT.averages
    assert not Readout.parse(["last:final", "mean:3"]).is_default


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["mean:final"], "last token only"),
        (["avg:3"], "<pool>:<layer>"),
        (["last:"], "<pool>:<layer>"),
        (["last:x"], "a number"),
        (["last:-1"], "a number"),
        (["mean:9", "mean:9"], "each read once"),
        ([], None),
    ],
)
def test_a_wrong_readout_says_how_to_write_it(names: list[str], message: str | None) -> None:
    if not names:
        with pytest.raises(ReadoutError, match="at least one"):
            Readout(())
        return
    with pytest.raises(ReadoutError, match=message):
        Readout.parse(names)


def test_problems_name_each_layer_the_model_does_not_have() -> None:
    readout = Readout.parse(["last:23", "last:24", "mean:30", "last:final"])
    problems = readout.problems(24)
    assert problems == [
        "the readout reads last:24, and the model has layers 0 to 23",
        "the readout reads mean:30, and the model has layers 0 to 23",
    ]
    assert readout.problems(31) == []
