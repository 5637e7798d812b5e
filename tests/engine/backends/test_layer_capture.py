"""The layer readout's eval callback, C and Python, driven by a fake compute graph.

The graph is three float32 tensors behind ctypes stand-ins for ggml's accessors, fed to the
callback as llama.cpp's scheduler does: ask for every node, then hand over each wanted one. The C
callback (``layer_capture.c``) and its Python twin must capture the same rows as numpy does.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.backends.layer_capture import LayerCapture, native_callback

WIDTH = 4
Make = Callable[..., LayerCapture]
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_bool, ctypes.c_void_p)


class FakeGraph:
    """Named float32 tensors, addressed by small integers, and ggml's four accessors over them."""

    def __init__(self) -> None:
        self.tensors: dict[int, tuple[ctypes.Array[ctypes.c_char], np.ndarray]] = {}
        self.ggml_get_name = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p)(self._name)
        self.ggml_nelements = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)(self._nelements)
        self.ggml_nbytes = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p)(self._nbytes)
        self.ggml_backend_tensor_get = ctypes.CFUNCTYPE(
            None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t
        )(self._get)

    def add(self, name: str, data: np.ndarray) -> int:
        handle = len(self.tensors) + 1  # 0 would be a null pointer
        self.tensors[handle] = (ctypes.create_string_buffer(name.encode()), data)
        return handle

    def _name(self, handle: int) -> int:
        return ctypes.addressof(self.tensors[handle][0])

    def _nelements(self, handle: int) -> int:
        return int(self.tensors[handle][1].size)

    def _nbytes(self, handle: int) -> int:
        return int(self.tensors[handle][1].nbytes)

    def _get(self, handle: int, data: int, offset: int, size: int) -> None:
        ctypes.memmove(data, self.tensors[handle][1].ctypes.data + offset, size)


def run(capture: LayerCapture, graph: FakeGraph, nodes: list[int]) -> None:
    """One decode as the scheduler runs it: ask about every node, hand over the wanted ones."""
    user_data = capture.user_data
    for node in nodes:
        if capture.callback(node, True, user_data):
            assert capture.callback(node, False, user_data)


def implementations() -> Iterator[str]:
    yield "python"
    yield "c"


@pytest.fixture(params=list(implementations()))
def make(request: pytest.FixtureRequest) -> Make:
    native = None
    if request.param == "c":
        native = native_callback()
        if native is None:
            message = "the C layer capture was not built (pip install -e . builds it)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message)
            pytest.skip(message)

    def build(graph: FakeGraph, max_rows: int = 8) -> LayerCapture:
        capture = LayerCapture(CALLBACK, graph, WIDTH, max_rows, native)
        assert capture.native is (native is not None)
        return capture

    return build


def test_averages_from_the_message_on_and_keeps_the_last_row(make: Make) -> None:
    rng = np.random.default_rng(7)
    graph = FakeGraph()
    first = {layer: rng.standard_normal((5, WIDTH)).astype(np.float32) for layer in (9, 16)}
    second = {layer: rng.standard_normal((3, WIDTH)).astype(np.float32) for layer in (9, 16)}
    batch1 = [graph.add(f"l_out-{layer}", first[layer]) for layer in (9, 16)]
    batch2 = [graph.add(f"l_out-{layer}", second[layer]) for layer in (9, 16)]
    noise = graph.add("l_out-1", rng.standard_normal((5, WIDTH)).astype(np.float32))
    capture = make(graph)

    capture.reset()
    capture.phase(averaged=frozenset({9}), kept=frozenset({16}), skip_rows=2)
    run(capture, graph, [noise, *batch1])
    capture.phase(averaged=frozenset({9}), kept=frozenset({16}), skip_rows=-3)
    run(capture, graph, [batch2[0], noise, batch2[1]])
    capture.idle()

    assert capture.error is None
    expected = np.concatenate([first[9][2:], second[9]]).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(capture.mean(9), expected, rtol=1e-6)
    np.testing.assert_array_equal(capture.kept(16), second[16][-1])
    with pytest.raises(KeyError):
        capture.kept(9)  # averaged, not kept
    with pytest.raises(KeyError):
        capture.mean(1)  # never asked for


def test_idle_wants_nothing_and_reset_starts_over(make: Make) -> None:
    graph = FakeGraph()
    node = graph.add("l_out-9", np.ones((2, WIDTH), np.float32))
    capture = make(graph)
    capture.reset()
    assert not capture.callback(node, True, capture.user_data)  # idle: not wanted
    assert capture.callback(node, False, capture.user_data)  # and never stops the decode
    capture.phase(averaged=frozenset({9}))
    run(capture, graph, [node])
    capture.reset()
    capture.phase(averaged=frozenset({9}))
    run(capture, graph, [graph.add("l_out-9", np.full((1, WIDTH), 3.0, np.float32))])
    capture.idle()
    np.testing.assert_array_equal(capture.mean(9), np.full(WIDTH, 3.0, np.float32))


@pytest.mark.parametrize(
    ("data", "max_rows", "error"),
    [
        (np.ones((2, WIDTH + 1), np.float32), 8, "not float32 rows of the hidden width"),
        (np.ones((2, WIDTH), np.float64), 8, "not float32 rows of the hidden width"),
        (np.ones((9, WIDTH), np.float32), 8, "more rows than one batch"),
    ],
)
def test_a_surprise_is_an_error_not_a_stopped_decode(
    make: Make, data: np.ndarray, max_rows: int, error: str
) -> None:
    graph = FakeGraph()
    node = graph.add("l_out-9", data)
    capture = make(graph, max_rows)
    capture.reset()
    capture.phase(averaged=frozenset({9}), kept=frozenset({9}))
    run(capture, graph, [node])
    capture.idle()
    assert capture.error is not None
    assert error in capture.error
    capture.reset()
    assert capture.error is None


@pytest.mark.parametrize(("defines", "used"), [([], True), (["-DSWITCHBOARD_MAX_READS=4"], False)])
def test_a_library_built_from_another_layout_is_not_used(
    tmp_path: Path, defines: list[str], used: bool
) -> None:
    """A stale build (another struct layout) would write past the buffers: the Python twin
    reads the layers instead."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    source = Path(__file__).parents[3] / "engine" / "backends" / "layer_capture.c"
    library = tmp_path / f"_layer_capture{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", *defines, str(source), "-o", str(library)],
        check=True,
    )
    assert (native_callback(tmp_path) is not None) is used
