"""Intermediate layers out of a llama.cpp decode, for a probe head's readout.

llama.cpp exposes only the final hidden state. Its scheduler's eval callback (``cb_eval``, set
when the context is made) is asked, node by node of the compute graph, whether the caller wants a
tensor; a wanted tensor's data is handed over once computed. Each block's output is the node
named ``l_out-<layer>``, one row per token of the batch (every token up to the last block, which
keeps only the output rows). ``LayerCapture`` answers yes for the layers of the current phase and
copies them: for an averaged layer it sums the rows from the message's first token on, for a
kept layer it keeps the batch's last row (the decode of the last prompt token alone).

The callback runs in the decoding thread and takes the GIL once per graph node (a few hundred per
decode): nothing measurable on a quiet process, 31% more time per decision beside a thread that
keeps the GIL busy (``python -m eval.bench readout``, docs/performance.md). It must never
raise into C (ctypes would return false, and false after a computed tensor stops the decode), so
it answers "continue" on any error and records it; the backend then reports the verdict as an
error.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array32 = npt.NDArray[np.float32]
Array64 = npt.NDArray[np.float64]


def _ggml(llama_cpp: Any) -> ctypes.CDLL:
    """ggml's base library as llama-cpp-python ships it (the tensor accessors live there)."""
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    found = sorted(lib_dir.glob("libggml-base.*"))
    if not found:
        raise OSError(f"no libggml-base library in {lib_dir}")
    lib = ctypes.CDLL(str(found[0]))
    lib.ggml_get_name.restype = ctypes.c_char_p
    lib.ggml_get_name.argtypes = [ctypes.c_void_p]
    lib.ggml_nelements.restype = ctypes.c_int64
    lib.ggml_nelements.argtypes = [ctypes.c_void_p]
    lib.ggml_nbytes.restype = ctypes.c_size_t
    lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_tensor_get.restype = None
    lib.ggml_backend_tensor_get.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
    ]
    return lib


def _names(layers: Iterable[int]) -> dict[bytes, int]:
    return {f"l_out-{layer}".encode(): layer for layer in layers}


class LayerCapture:
    """The eval callback of one llama.cpp context and what it captured for the current decode."""

    def __init__(self, llama_cpp: Any, width: int) -> None:
        self._ggml = _ggml(llama_cpp)
        self._width = width
        self._wanted: dict[bytes, int] = {}
        self._averaged: frozenset[int] = frozenset()
        self._kept: frozenset[int] = frozenset()
        self._skip = 0
        self.sums: dict[int, Array64] = {}
        self.counts: dict[int, int] = {}
        self.last: dict[int, Array32] = {}
        self.error: str | None = None
        # Keep the ctypes wrapper alive as long as the context that calls it.
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_tensor)

    def reset(self) -> None:
        self.idle()
        self.sums, self.counts, self.last = {}, {}, {}
        self.error = None

    def phase(
        self, *, averaged: frozenset[int], kept: frozenset[int] = frozenset(), skip_rows: int = 0
    ) -> None:
        """What the next decode gives: rows from ``skip_rows`` on are message tokens, summed
        for the ``averaged`` layers; its last row is kept for the ``kept`` layers."""
        self._averaged, self._kept, self._skip = averaged, kept, max(skip_rows, 0)
        self._wanted = _names(averaged | kept)

    def idle(self) -> None:
        self._wanted, self._averaged, self._kept = {}, frozenset(), frozenset()

    def mean(self, layer: int) -> Array32:
        return (self.sums[layer] / max(self.counts.get(layer, 0), 1)).astype(np.float32)

    def _on_tensor(self, tensor: int, ask: bool, _user_data: int) -> bool:
        try:
            if not self._wanted:
                return not ask
            layer = self._wanted.get(self._ggml.ggml_get_name(tensor) or b"")
            if ask:
                return layer is not None
            if layer is not None:
                self._copy(tensor, layer)
        except Exception as exc:  # never into C: see the module docstring
            self.error = f"layer capture: {type(exc).__name__}: {exc}"
        return True

    def _copy(self, tensor: int, layer: int) -> None:
        n = int(self._ggml.ggml_nelements(tensor))
        if self._ggml.ggml_nbytes(tensor) != n * 4 or n % self._width:
            raise ValueError(f"l_out-{layer} is not {self._width} float32 columns")
        rows: Array32 = np.empty((n // self._width, self._width), dtype=np.float32)
        self._ggml.ggml_backend_tensor_get(tensor, rows.ctypes.data, 0, n * 4)
        if layer in self._kept:
            self.last[layer] = rows[-1].copy()
        taken = rows[self._skip :]
        if layer in self._averaged and taken.shape[0]:
            total = taken.sum(axis=0, dtype=np.float64)
            previous = self.sums.get(layer)
            self.sums[layer] = total if previous is None else previous + total
            self.counts[layer] = self.counts.get(layer, 0) + int(taken.shape[0])
