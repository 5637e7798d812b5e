"""The embedded backend: a small GGUF model run in-process by llama.cpp (``llama-cpp-python``).

One forward pass per decision: the ChatML prompt is evaluated (reusing the KV cache of the
longest prefix shared with the previous call), the next-token distribution is read from the
logits, and each label gets the probability mass of every vocabulary token that starts its
answer word ("s", "saf", "safety" for "safety"). Nothing is sampled and no text is generated.
The last prompt token is decoded on its own with embeddings on: that decode gives its logits
and its final hidden state, for a policy's probe head. The tokens before it are decoded with
embeddings off, since llama.cpp would otherwise compute vocabulary logits for every one of them.
A head that reads intermediate layers (the prompt's ``readout``) gets them from the same decodes
through llama.cpp's eval callback (``layer_capture``).
One inference runs at a time per loaded model; callers queue with a deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.backends.base import (
    ChatMessage,
    LabelChoice,
    LabelVerdict,
    RenderedPrompt,
    answer_probabilities,
)
from engine.backends.layer_capture import LayerCapture
from engine.backends.model_files import ModelSpec, assemble_model, verify_model
from engine.backends.readout import DEFAULT_READOUT, Readout
from engine.backends.vocabulary import Vocabulary
from engine.categories import VerdictStatus
from engine.errors import BackendConfigError, SwitchboardError

METHOD = "label_prefix_mass"
# Below this share of the next-token distribution the model is not answering with a label.
MIN_LABEL_MASS = 1e-4
N_BATCH = 512  # tokens per decode (one micro-batch: the layer capture counts rows per decode)


class _PromptTooLongError(SwitchboardError):
    pass


def _passive_openmp_wait() -> None:
    """Let llama.cpp's OpenMP threads sleep, not spin, while they wait for each other, unless
    the operator chose otherwise (``OMP_WAIT_POLICY`` already set).

    GNU OpenMP's default spins; on a machine whose cores are shared (other workers, the
    service's own event loop) a spinning thread holds the core its partner needs and one decode
    takes seconds instead of tenths (docs/performance.md, "OpenMP's wait"). libgomp reads the
    variable once, when llama.cpp's library is first loaded, so this runs before the import.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class EmbeddedBackend:
    """``LLMBackend`` over llama.cpp: label probabilities from one forward pass, prefix cached."""

    def __init__(
        self,
        model_path: Path,
        spec: ModelSpec,
        n_threads: int | None = None,
        n_ctx: int = 2048,
    ) -> None:
        verify_model(model_path, spec)
        _passive_openmp_wait()
        try:
            import llama_cpp
        except ImportError as exc:
            raise BackendConfigError(
                "the embedded backend needs llama-cpp-python; run: "
                "pip install 'switchboard[embedded]'"
            ) from exc
        self._lc: Any = llama_cpp
        self._spec = spec
        try:
            self._llm: Any = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=n_threads or os.cpu_count() or 1,
                n_batch=N_BATCH,
                logits_all=False,
                embedding=True,  # the hidden state too, from the same decode; logits unchanged
                verbose=False,
            )
            # The event loop's own tokenizer (``count_tokens``): the vocabulary only, so counting
            # never shares a llama.cpp object with a decode running in the worker thread.
            self._counter_llm: Any = llama_cpp.Llama(
                model_path=str(model_path), vocab_only=True, verbose=False
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendConfigError(f"llama.cpp could not load {model_path}: {exc}") from exc
        self.vocabulary = Vocabulary(llama_cpp, self._llm)  # the worker thread's
        self._counter = Vocabulary(llama_cpp, self._counter_llm)
        self._n_vocab: int = self._llm.n_vocab()
        self._n_embd: int = self._llm.n_embd()
        self._capture: LayerCapture | None = None  # made when a readout first needs a layer
        self._n_batch = N_BATCH
        self._n_layer = int(llama_cpp.llama_model_n_layer(self._llm.model))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-cpp")
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False

    @classmethod
    def from_packages(
        cls, spec: ModelSpec, model_dir: Path, n_threads: int | None = None, n_ctx: int = 2048
    ) -> EmbeddedBackend:
        """Assemble (or reuse) the model file from its installed packages, then load it."""
        return cls(assemble_model(spec, model_dir), spec, n_threads=n_threads, n_ctx=n_ctx)

    @property
    def name(self) -> str:
        return "embedded"

    @property
    def model_id(self) -> str:
        return self._spec.name

    @property
    def model_digest(self) -> str:
        return self._spec.digest

    @property
    def hidden_state_size(self) -> int:
        return self._n_embd

    @property
    def layer_count(self) -> int:
        return self._n_layer

    @property
    def layer_callback(self) -> str | None:
        """Which eval callback reads layers: "c", "python" (the extension was not built), or
        None until a readout first needs a layer."""
        if self._capture is None:
            return None
        return "c" if self._capture.native else "python"

    @property
    def n_ctx(self) -> int:
        return int(self._llm.n_ctx())

    # ----- tokens -------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """``TokenCounter``: the tokens ``text`` takes as a message's content, counted with the
        vocabulary-only load (the event loop's own; the decode's is the worker thread's)."""
        return self._counter.count(text)

    def tokenize_prompt(self, messages: Sequence[ChatMessage]) -> list[int]:
        """ChatML tokens; message contents never become control tokens (no forged turns)."""
        return self.vocabulary.tokenize(messages)[0]

    # ----- inference (worker thread only) -------------------------------------------------

    def _forward(
        self, tokens: list[int], readout: Readout = DEFAULT_READOUT, content_start: int = 0
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32] | None, int]:
        """Evaluate ``tokens`` reusing the cached prefix: the next-token logits, the readout's
        hidden states (copied: the next decode overwrites them) and the cached count.

        A readout that averages the message's tokens (from ``content_start``) decodes all of them
        anew, so the average never depends on what the previous message shared with this one.
        """
        llm = self._llm
        if len(tokens) > self.n_ctx:
            raise _PromptTooLongError(
                f"prompt has {len(tokens)} tokens, the context holds {self.n_ctx}; "
                "shorten the message or the few-shot examples, or raise n_ctx"
            )
        capture = self._layer_capture() if readout.layers_read else None
        previous = np.asarray(llm.input_ids[: llm.n_tokens])
        width = min(len(previous), len(tokens))
        differs = np.flatnonzero(previous[:width] != np.asarray(tokens[:width], dtype=np.intc))
        common = int(differs[0]) if differs.size else width
        common = min(common, len(tokens) - 1)  # evaluate at least one token to get logits
        if readout.averages:
            common = min(common, content_start)
        memory = self._lc.llama_get_memory(llm.ctx)
        if not self._lc.llama_memory_seq_rm(memory, -1, common, -1):
            self._lc.llama_memory_clear(memory, True)
            common = 0
        llm.n_tokens = common
        tail = tokens[common:]
        averaged, kept = readout.layers("mean"), readout.layers("last")
        if capture is not None:
            capture.reset()
        try:
            # With embeddings on, llama.cpp outputs every token of a batch: vocabulary logits
            # for all of them (a third more CPU and 300 MB of buffer for a 1,000-token prefix).
            # So the tokens go through with them off, and only a readout of the final state
            # decodes the last token on its own with them on (its logits and final state);
            # every other read comes out of the one pass, last token included.
            final = readout.reads_final
            body = tail[:-1] if final else tail
            self._lc.llama_set_embeddings(llm.ctx, False)
            try:
                for start in range(0, len(body), self._n_batch):
                    if capture is not None:
                        skip = content_start - common - start
                        capture.phase(averaged=averaged, kept=kept, skip_rows=skip)
                    llm.eval(body[start : start + self._n_batch])
            finally:
                self._lc.llama_set_embeddings(llm.ctx, True)
            if final:
                if capture is not None:
                    capture.phase(
                        averaged=averaged, kept=kept, skip_rows=content_start - common - len(body)
                    )
                llm.eval(tail[-1:])
        except BaseException:
            llm.n_tokens = 0  # the cache beyond the last good batch is unknown: start over
            raise
        finally:
            if capture is not None:
                capture.idle()
        pointer = self._lc.llama_get_logits_ith(llm.ctx, -1)
        if not pointer:
            raise RuntimeError("llama.cpp returned no logits for the last prompt token")
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).astype(np.float64)
        if capture is not None and capture.error is not None:
            raise RuntimeError(capture.error)
        return logits, self._read_out(readout, capture), common

    def _layer_capture(self) -> LayerCapture:
        """The eval callback, attached on first use: a context made without it pays nothing per
        graph node. Attaching makes a new context, so the prefix cache starts over once."""
        if self._capture is None:
            try:
                capture = LayerCapture.for_llama(self._lc, self._n_embd, self._n_batch)
            except OSError as exc:
                raise RuntimeError(f"llama.cpp layer readout unavailable: {exc}") from exc
            capture.attach(self._lc, self._llm)
            self._llm.n_tokens = 0
            self._capture = capture
        return self._capture

    def _read_out(
        self, readout: Readout, capture: LayerCapture | None
    ) -> npt.NDArray[np.float32] | None:
        """The readout's hidden states of the decode just made, concatenated in its order."""
        parts: list[npt.NDArray[np.float32]] = []
        for read in readout.reads:
            if read.layer is None:
                embedding = self._lc.llama_get_embeddings_ith(self._llm.ctx, -1)
                if not embedding:
                    return None
                parts.append(np.ctypeslib.as_array(embedding, shape=(self._n_embd,)).copy())
            elif capture is None:
                return None
            elif read.pool == "last":
                parts.append(capture.kept(read.layer))
            else:
                parts.append(capture.mean(read.layer))
        return np.concatenate(parts).astype(np.float32)

    def _score_sync(self, prompt: RenderedPrompt, choices: Sequence[LabelChoice]) -> LabelVerdict:
        answers = tuple(c.answer.casefold() for c in choices)
        try:
            label_tokens = self.vocabulary.answer_tokens(answers)
        except ValueError as exc:
            return LabelVerdict.failed(VerdictStatus.ERROR, str(exc))
        tokens, content_start = self.vocabulary.tokenize(prompt.messages)
        try:
            logits, hidden, cached = self._forward(tokens, prompt.readout, content_start)
        except _PromptTooLongError as exc:
            return LabelVerdict.failed(VerdictStatus.ERROR, str(exc))
        top = float(logits.max())
        log_z = top + float(np.log(np.exp(logits - top).sum()))
        log_probs = logits - log_z
        scores = [float(np.logaddexp.reduce(log_probs[ids])) for ids in label_tokens]
        raw = self.vocabulary.piece(int(logits.argmax()), special=True)
        total = float(np.exp(np.logaddexp.reduce(np.array(scores))))
        ok = total >= MIN_LABEL_MASS
        by_answer, probabilities = answer_probabilities(scores, choices)
        return LabelVerdict(
            status=VerdictStatus.OK if ok else VerdictStatus.INVALID,
            probabilities=probabilities if ok else {},
            answers=by_answer if ok else {},
            raw_output=raw,
            error=None if ok else f"labels hold {total:.2e} of the next token; top is {raw!r}",
            prompt_tokens=len(tokens) - cached,
            cached_tokens=cached,
            output_tokens=1,
            method=METHOD,
            hidden_state=hidden if ok else None,
        )

    def _reset_sync(self) -> None:
        self._llm.n_tokens = 0
        self._lc.llama_memory_clear(self._lc.llama_get_memory(self._llm.ctx), True)

    # ----- async surface ------------------------------------------------------------------

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def _run_queued(
        self, prompt: RenderedPrompt, choices: Sequence[LabelChoice]
    ) -> LabelVerdict:
        async with self._lock():
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._score_sync, prompt, choices)

    async def score(
        self, prompt: RenderedPrompt, choices: Sequence[LabelChoice], *, deadline_s: float
    ) -> LabelVerdict:
        started = time.perf_counter()
        try:
            if self._closed:
                raise RuntimeError("the embedded backend is closed")
            verdict = await asyncio.wait_for(
                self._run_queued(prompt, choices), timeout=max(deadline_s, 0.0)
            )
        except asyncio.TimeoutError:
            verdict = LabelVerdict.failed(
                VerdictStatus.TIMEOUT, f"no answer within {deadline_s:.3f}s (queue included)"
            )
        except Exception as exc:  # a backend never raises to the engine
            verdict = LabelVerdict.failed(VerdictStatus.ERROR, f"{type(exc).__name__}: {exc}")
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return dataclasses.replace(verdict, latency_ms=elapsed_ms)

    async def reset_cache(self) -> None:
        """Forget the cached prefix: the next call evaluates its whole prompt (benchmarks)."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._reset_sync)

    async def probe(self) -> bool:
        return not self._closed

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Let a running inference finish before the model's memory is freed under it.
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        self._llm.close()
        self._counter_llm.close()
