"""Intermediate layers out of a llama.cpp decode, for a probe head's readout.

llama.cpp exposes only the final hidden state. Its scheduler's eval callback (``cb_eval``, set
when the context is made) is asked, node by node of the compute graph, whether the caller wants a
tensor; a wanted tensor's data is handed over once computed. Each block's output is the node
named ``l_out-<layer>``, one row per token of the batch (every token up to the last block, which
keeps only the output rows). ``LayerCapture`` answers yes for the layers of the current phase and
copies them: for an averaged layer it sums the rows from the message's first token on, for a
kept layer it keeps the batch's last row (the decode of the last prompt token alone).

The callback is ``switchboard_capture_layer`` in ``layer_capture.c``, built by setuptools as an
optional extension and loaded with ctypes: it reads and writes only ``CaptureState`` (the numpy
buffers it points to belong to this object) and never takes the GIL. A Python callback takes
the GIL once per graph node, a few hundred times per decode: beside a thread that keeps the GIL
busy (a saturated event loop) that made a decision 31% slower (``python -m eval.bench readout``,
docs/performance.md). Where the extension was not built (no C compiler at install time) the
same logic runs in Python, and ``native`` says which one is in use. Neither may raise into C
(ctypes would return false, and false after a computed tensor stops the decode): both answer
"continue" on any surprise and record it in ``error``; the backend then reports the verdict as
an error.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array32 = npt.NDArray[np.float32]
Array64 = npt.NDArray[np.float64]

log = logging.getLogger("switchboard.backends")

MAX_READS = 8  # SWITCHBOARD_MAX_READS in layer_capture.c
NAME_SIZE = 32  # SWITCHBOARD_NAME_SIZE
_ERRORS = {
    1: "a wanted layer is not float32 rows of the hidden width",
    2: "a wanted layer has more rows than one batch",
}


class CaptureState(ctypes.Structure):
    """``struct capture_state`` of layer_capture.c, field for field."""

    _fields_ = [
        ("get_name", ctypes.c_void_p),
        ("nelements", ctypes.c_void_p),
        ("nbytes", ctypes.c_void_p),
        ("tensor_get", ctypes.c_void_p),
        ("width", ctypes.c_int64),
        ("skip_rows", ctypes.c_int64),
        ("scratch_rows", ctypes.c_int64),
        ("scratch", ctypes.c_void_p),
        ("n_wanted", ctypes.c_int32),
        ("error", ctypes.c_int32),
        ("names", (ctypes.c_char * NAME_SIZE) * MAX_READS),
        ("averaged", ctypes.c_int32 * MAX_READS),
        ("kept", ctypes.c_int32 * MAX_READS),
        ("sums", ctypes.c_void_p * MAX_READS),
        ("counts", ctypes.c_int64 * MAX_READS),
        ("last", ctypes.c_void_p * MAX_READS),
        ("has_last", ctypes.c_int32 * MAX_READS),
    ]


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


def native_callback(directory: Path | None = None) -> Any | None:
    """``switchboard_capture_layer`` from the built extension, or None where it was not built.

    A library whose state struct has another size than ``CaptureState`` (built from an older
    ``layer_capture.c``; ``make install`` rebuilds it when the file changes) would write past
    the buffers: it is not used, and the log says why.
    """
    here = directory or Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / f"_layer_capture{suffix}"
        if not path.exists():
            continue
        library = ctypes.CDLL(str(path))
        size = getattr(library, "switchboard_capture_state_size", None)
        if size is not None:
            size.restype = ctypes.c_size_t
            size.argtypes = []
        expected = ctypes.sizeof(CaptureState)
        if size is None or size() != expected:
            log.warning(
                "%s is not built from this layer_capture.c (state of another size); reinstall "
                "(make install, or pip install -e .). Reading layers with the Python callback.",
                path,
            )
            return None
        function = library.switchboard_capture_layer
        function.restype = ctypes.c_bool
        function.argtypes = [ctypes.c_void_p, ctypes.c_bool, ctypes.c_void_p]
        return function
    return None


def _address(function: Any) -> int:
    return int(ctypes.cast(function, ctypes.c_void_p).value or 0)


class LayerCapture:
    """The eval callback of one llama.cpp context and what it captured for the current decode.

    ``callback`` and ``user_data`` go into the context's parameters; this object must live as
    long as the context (it owns the state and the buffers the callback writes to).
    """

    def __init__(
        self,
        callback_type: Any,
        ggml: Any,
        width: int,
        max_rows: int,
        native: Any | None,
    ) -> None:
        self._ggml = ggml
        self._width = width
        self._scratch: Array32 = np.zeros((max_rows, width), dtype=np.float32)
        self._sums: dict[int, Array64] = {}
        self._last: dict[int, Array32] = {}
        self._counts: dict[int, int] = {}
        self._has_last: set[int] = set()
        self._slots: tuple[int, ...] = ()
        self._python_error: str | None = None
        state = CaptureState()
        state.get_name = _address(ggml.ggml_get_name)
        state.nelements = _address(ggml.ggml_nelements)
        state.nbytes = _address(ggml.ggml_nbytes)
        state.tensor_get = _address(ggml.ggml_backend_tensor_get)
        state.width, state.scratch_rows = width, max_rows
        state.scratch = self._scratch.ctypes.data
        self._state = state
        self.native = native is not None
        if native is not None:
            self.callback = ctypes.cast(native, callback_type)
            self.user_data: int | None = ctypes.addressof(state)
        else:
            # Keep the ctypes wrapper alive as long as the context that calls it.
            self.callback = callback_type(self._on_tensor)
            self.user_data = None

    @classmethod
    def for_llama(cls, llama_cpp: Any, width: int, max_rows: int) -> LayerCapture:
        """The C callback where the extension was built, the Python one otherwise."""
        return cls(
            llama_cpp.ggml_backend_sched_eval_callback,
            _ggml(llama_cpp),
            width,
            max_rows,
            native_callback(),
        )

    def attach(self, llama_cpp: Any, llm: Any) -> None:
        """Give ``llm`` (a ``llama_cpp.Llama``) a context whose scheduler calls this capture.

        llama-cpp-python's ``Llama`` takes no eval callback, and llama.cpp reads it only when a
        context is made: the context ``Llama`` made is replaced by one with the same parameters
        plus the callback (the model, the batch and the token history stay), and freed at once.
        """
        params = llm.context_params
        params.cb_eval = self.callback
        params.cb_eval_user_data = self.user_data
        context = llama_cpp._internals.LlamaContext(model=llm._model, params=params, verbose=False)
        previous = llm._ctx
        llm._ctx = llm._stack.enter_context(contextlib.closing(context))
        previous.close()

    @property
    def error(self) -> str | None:
        if self._python_error is not None:
            return self._python_error
        code = int(self._state.error)
        return f"layer capture: {_ERRORS.get(code, f'error {code}')}" if code else None

    def reset(self) -> None:
        self.idle()
        self._sums, self._last, self._counts, self._has_last = {}, {}, {}, set()
        self._state.error = 0
        self._python_error = None

    def phase(
        self, *, averaged: frozenset[int], kept: frozenset[int] = frozenset(), skip_rows: int = 0
    ) -> None:
        """What the next decode gives: rows from ``skip_rows`` on are message tokens, summed
        for the ``averaged`` layers; its last row is kept for the ``kept`` layers."""
        self._harvest()
        layers = sorted(averaged | kept)
        if len(layers) > MAX_READS:
            raise ValueError(f"a readout reads at most {MAX_READS} layers, not {len(layers)}")
        state = self._state
        for slot, layer in enumerate(layers):
            name = _name(layer)
            if len(name) >= NAME_SIZE:
                raise ValueError(f"layer {layer} has too long a name")
            state.names[slot].value = name
            state.averaged[slot] = int(layer in averaged)
            state.kept[slot] = int(layer in kept)
            if layer not in self._sums:  # buffers made once per decode, kept across its batches
                self._sums[layer] = np.zeros(self._width)
                self._last[layer] = np.zeros(self._width, np.float32)
            state.sums[slot] = self._sums[layer].ctypes.data
            state.last[slot] = self._last[layer].ctypes.data
            state.counts[slot] = self._counts.get(layer, 0)
            state.has_last[slot] = int(layer in self._has_last)
        self._slots = tuple(layers)
        state.skip_rows = max(skip_rows, 0)
        state.n_wanted = len(layers)

    def idle(self) -> None:
        self._harvest()
        self._state.n_wanted = 0
        self._slots = ()

    def kept(self, layer: int) -> Array32:
        """The last row of ``layer`` in the decode's last batch."""
        if layer not in self._has_last:
            raise KeyError(f"layer {layer} was not kept")
        return self._last[layer].copy()

    def mean(self, layer: int) -> Array32:
        """``layer`` averaged over the message's rows."""
        total = self._sums.get(layer)
        if total is None:
            raise KeyError(f"layer {layer} was not averaged")
        return (total / max(self._counts.get(layer, 0), 1)).astype(np.float32)

    def _harvest(self) -> None:
        """Take the counts and kept flags the callback wrote for the current slots."""
        state = self._state
        for slot, layer in enumerate(self._slots):
            self._counts[layer] = int(state.counts[slot])
            if state.has_last[slot]:
                self._has_last.add(layer)

    def _on_tensor(self, tensor: int, ask: bool, _user_data: int) -> bool:
        """The Python twin of ``switchboard_capture_layer``."""
        try:
            state = self._state
            if state.n_wanted <= 0:
                return not ask
            name = self._ggml.ggml_get_name(tensor) or b""
            slot = next((i for i in range(state.n_wanted) if state.names[i].value == name), None)
            if ask:
                return slot is not None
            if slot is not None:
                self._copy(tensor, slot)
        except Exception as exc:  # never into C: see the module docstring
            self._python_error = f"layer capture: {type(exc).__name__}: {exc}"
        return True

    def _copy(self, tensor: int, slot: int) -> None:
        state = self._state
        n = int(self._ggml.ggml_nelements(tensor))
        if n % self._width or self._ggml.ggml_nbytes(tensor) != n * 4:
            state.error = 1
            return
        rows = n // self._width
        if rows > state.scratch_rows:
            state.error = 2
            return
        self._ggml.ggml_backend_tensor_get(tensor, self._scratch.ctypes.data, 0, n * 4)
        layer = self._slots[slot]
        if state.kept[slot] and rows:
            self._last[layer][:] = self._scratch[rows - 1]
            state.has_last[slot] = 1
        first = int(state.skip_rows)
        if state.averaged[slot] and rows > first:
            self._sums[layer] += self._scratch[first:rows].sum(axis=0, dtype=np.float64)
            state.counts[slot] += rows - first


def _name(layer: int) -> bytes:
    return f"l_out-{layer}".encode()
