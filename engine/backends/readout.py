"""What a probe head reads out of the model's decode besides the label probabilities.

A readout is a list of hidden states, concatenated in order: a layer's output at the last prompt
token (``last:16``) or averaged over the tokens of the message turn (``mean:9``), or the model's
final, normalised hidden state at the last prompt token (``last:final``, the default and what
heads fitted before readouts existed read). Middle layers of a small model carry more of what a
message is about than its last layer, which is shaped for predicting the next word; the mean over
the message's tokens carries the whole message, not only what the last token attended to. The
head file names its readout, and the prompt carries it to the backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from engine.errors import SwitchboardError

Pool = Literal["last", "mean"]
FINAL = "final"
POOLS: tuple[Pool, ...] = ("last", "mean")


class ReadoutError(SwitchboardError):
    """A readout written wrongly ("mean:9", "last:final"); the message says how to write it."""


@dataclass(frozen=True)
class LayerRead:
    """One hidden state: ``layer`` (0-based; None is the final, normalised state) pooled."""

    pool: Pool
    layer: int | None

    @classmethod
    def parse(cls, text: str) -> LayerRead:
        pool, _, layer = text.strip().partition(":")
        if pool not in POOLS or not layer:
            raise ReadoutError(
                f"{text!r}: write a read as <pool>:<layer>, pool one of {', '.join(POOLS)} and "
                f"layer a 0-based number or {FINAL!r} (e.g. 'mean:9', 'last:16', 'last:final')"
            )
        if layer == FINAL:
            if pool != "last":
                raise ReadoutError(
                    f"{text!r}: the final state exists for the last token only; "
                    "average an intermediate layer instead (e.g. 'mean:12')"
                )
            return cls("last", None)
        if not layer.isdigit():
            raise ReadoutError(f"{text!r}: the layer must be a number from 0 or {FINAL!r}")
        return cls(pool, int(layer))

    def __str__(self) -> str:
        return f"{self.pool}:{FINAL if self.layer is None else self.layer}"


@dataclass(frozen=True)
class Readout:
    """The hidden states a verdict carries, concatenated in order."""

    reads: tuple[LayerRead, ...] = (LayerRead("last", None),)

    def __post_init__(self) -> None:
        if not self.reads:
            raise ReadoutError("a readout reads at least one hidden state")
        if len(set(self.reads)) != len(self.reads):
            raise ReadoutError(f"{self.names()}: each read once")

    @classmethod
    def parse(cls, texts: Iterable[str]) -> Readout:
        return cls(tuple(LayerRead.parse(t) for t in texts))

    def names(self) -> list[str]:
        return [str(r) for r in self.reads]

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_READOUT

    @property
    def averages(self) -> bool:
        """Whether some read averages the message's tokens (they must all be decoded anew)."""
        return any(r.pool == "mean" for r in self.reads)

    @property
    def reads_final(self) -> bool:
        """Whether some read is the final state (which takes a decode with embeddings on)."""
        return any(r.layer is None for r in self.reads)

    @property
    def layers_read(self) -> bool:
        """Whether some read is of an intermediate layer (not the final state)."""
        return any(r.layer is not None for r in self.reads)

    def layers(self, pool: Pool) -> frozenset[int]:
        return frozenset(r.layer for r in self.reads if r.pool == pool and r.layer is not None)

    def size(self, hidden_size: int) -> int:
        return hidden_size * len(self.reads)

    def problems(self, layer_count: int) -> list[str]:
        """Reads of layers the model does not have."""
        return [
            f"the readout reads {r}, and the model has layers 0 to {layer_count - 1}"
            for r in self.reads
            if r.layer is not None and not 0 <= r.layer < layer_count
        ]


DEFAULT_READOUT = Readout()


def readout_of(texts: Sequence[str] | None) -> Readout:
    """A readout from its names; none given is the default (the final state, last token)."""
    return Readout.parse(texts) if texts else DEFAULT_READOUT
