"""What a head's readout costs the embedded model, on a quiet process and beside a busy one.

Reading intermediate layers goes through llama.cpp's eval callback, which the decoding thread
calls for every node of the compute graph (several hundred per decode). Written in Python, each
call takes the GIL: cheap on a quiet process, but when another thread of the process keeps the
GIL busy (a saturated event loop) each call can wait for it. The callback is C
(``engine/backends/layer_capture.c``) where the extension was built; the report says which.
This benchmark scores the same short messages with each readout, prefix cached, first with
nothing else running, then with a thread that spins in Python, and prints the time per decision.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.backends.embedded import EmbeddedBackend
from engine.backends.model_files import ModelSpec, assemble_model, default_model_dir
from engine.backends.readout import DEFAULT_READOUT, Readout
from engine.categories import Channel
from engine.decide.prompts import PromptBuilder
from engine.policy.loader import load_policy
from eval.bench.messages import MODEL_MESSAGES
from eval.bench.report import emit, summary

READOUTS = (DEFAULT_READOUT, Readout.parse(["mean:9", "last:16"]))


def _spin(stop: threading.Event) -> None:
    total = 0
    while not stop.is_set():
        for i in range(1000):  # pure Python: the GIL is taken back every switch interval
            total += i


async def _time(
    backend: EmbeddedBackend, builder: PromptBuilder, readout: Readout, busy: bool, rounds: int
) -> list[float]:
    warm = replace(builder.render("Hello.", Channel.CHAT), readout=readout)
    await backend.score(warm, builder.choices, deadline_s=300)
    stop = threading.Event()
    spinner = threading.Thread(target=_spin, args=(stop,), daemon=True) if busy else None
    if spinner is not None:
        spinner.start()
    times: list[float] = []
    try:
        for _ in range(rounds):
            for message in MODEL_MESSAGES:
                prompt = replace(builder.render(message, Channel.CHAT), readout=readout)
                verdict = await backend.score(prompt, builder.choices, deadline_s=300)
                times.append(verdict.latency_ms / 1000)
    finally:
        stop.set()
        if spinner is not None:
            spinner.join()
    return times


def run(spec: ModelSpec, policy_dir: Path, rounds: int = 2) -> dict[str, Any]:
    loaded = load_policy(policy_dir, Path("prompts"))
    builder = PromptBuilder(loaded.policy, loaded.prompts_dir)
    backend = EmbeddedBackend(assemble_model(spec, default_model_dir()), spec)
    results: dict[str, Any] = {"model": spec.name, "messages": len(MODEL_MESSAGES) * rounds}
    rows: list[list[Any]] = [["readout", "process", "p50 ms", "p90 ms", "mean ms"]]
    try:
        for busy in (False, True):
            for readout in READOUTS:
                times = asyncio.run(_time(backend, builder, readout, busy, rounds))
                stats = summary(times, scale=1000)
                label = ",".join(readout.names())
                where = "busy thread" if busy else "quiet"
                results[f"{label} {where}"] = stats
                rows.append([label, where, stats["p50"], stats["p90"], stats["mean"]])
        results["layer callback"] = backend.layer_callback
    finally:
        asyncio.run(backend.aclose())
    emit("readout", results, rows)
    return results
