"""Would another quantization of the packaged model read long messages faster? Measured.

``python -m eval.bench quant`` requantizes the packaged Qwen2.5-Coder-0.5B file (Q4_K_M: most of
its tensors are in fact Q5_0, its 896-wide rows do not split into k-quant blocks) to Q4_0, Q8_0,
IQ4_NL and BF16 (the packaged weights rounded to bfloat16) with llama.cpp's own
``llama_model_quantize``, into a temporary folder, and scores the rendered prompts of the
long-message benchmark (``long_messages``) with one file at a time, as a server holds one model
(loaded, warmed, every prompt, closed), prefix cached, in ``rounds`` rounds with the order reversed
each round. Not interleaved message by message: with three models loaded at once the packaged
file's p50 went from about 1.4 s to 2.1 s and Q4_0's did not move, a slowdown a server with one
model never sees. Reports each file's p50/p95 per message and how far its label probabilities move
from the packaged file's (largest and mean absolute difference, top-label changes). Nothing here is
used at run time: a file other than the packaged one would also need the probe head refitted.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.backends.base import RenderedPrompt, top_label
from engine.backends.embedded import EmbeddedBackend
from engine.backends.model_files import (
    QWEN25_CODER_05B,
    assemble_model,
    default_model_dir,
    hash_file,
)
from engine.categories import Category, Channel
from engine.decide.prompts import PromptBuilder
from engine.policy.loader import load_policy
from eval.bench.long_messages import long_messages
from eval.bench.report import emit, percentile

PACKAGED = "q4_k_m (packaged)"
TYPES = ("Q4_0", "Q8_0", "IQ4_NL", "BF16")


def known_types() -> list[str]:
    """The ``kind`` names llama.cpp's Python binding knows (``LLAMA_FTYPE_MOSTLY_<kind>``)."""
    import llama_cpp

    prefix = "LLAMA_FTYPE_MOSTLY_"
    return sorted(name[len(prefix) :] for name in dir(llama_cpp) if name.startswith(prefix))


def requantize(source: Path, target: Path, kind: str) -> Path:
    """``source`` requantized to llama.cpp's ``LLAMA_FTYPE_MOSTLY_<kind>`` at ``target``."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.allow_requantize = True
    params.nthread = 2
    if llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not requantize {source} to {kind}")
    return target


def _backend(path: Path) -> EmbeddedBackend:
    spec = replace(QWEN25_CODER_05B, size=path.stat().st_size, sha256=hash_file(path))
    return EmbeddedBackend(path, spec)


async def _score_all(
    backend: EmbeddedBackend, prompts: list[RenderedPrompt], builder: PromptBuilder
) -> list[tuple[float, dict[Category, float]]]:
    try:
        await backend.score(builder.render("Hello.", Channel.CHAT), builder.choices, deadline_s=300)
        scored = []
        for prompt in prompts:
            started = time.perf_counter()
            verdict = await backend.score(prompt, builder.choices, deadline_s=60)
            scored.append(((time.perf_counter() - started) * 1000, dict(verdict.probabilities)))
        return scored
    finally:
        await backend.aclose()


def run(rounds: int = 2, types: tuple[str, ...] = TYPES) -> dict[str, Any]:
    loaded = load_policy(Path("policies/contact-center"), Path("prompts"))
    builder = PromptBuilder(loaded.policy, loaded.prompts_dir)
    messages = long_messages()
    prompts = [builder.render(m.text, m.channel) for m in messages]
    packaged = assemble_model(QWEN25_CODER_05B, default_model_dir())
    with tempfile.TemporaryDirectory() as tmp:
        paths = {PACKAGED: packaged}
        for kind in types:
            paths[kind] = requantize(packaged, Path(tmp) / f"{kind}.gguf", kind)
        sizes = {name: path.stat().st_size for name, path in paths.items()}
        # Every file in every round, the order reversed each round: what drifts with the clock
        # (page cache, the machine's other load) falls on each file alike.
        scored: dict[str, list[tuple[float, dict[Category, float]]]] = {n: [] for n in paths}
        order = list(paths)
        for _ in range(rounds):
            for name in order:
                scored[name] += asyncio.run(_score_all(_backend(paths[name]), prompts, builder))
            order.reverse()
    n = len(prompts)  # label probabilities are the same every round: compare the first
    base = [p for _, p in scored[PACKAGED][:n]]
    results: dict[str, Any] = {"messages": len(prompts), "rounds": rounds}
    table: list[list[Any]] = [
        [
            "file",
            "MB",
            "p50 ms",
            "p95 ms",
            "p50 by round",
            "max |Δp|",
            "mean |Δp|",
            "top label changed",
        ]
    ]
    for name, rows in scored.items():
        ms = [t for t, _ in rows]
        diffs = [max(abs(a[c] - b[c]) for c in a) for a, (_, b) in zip(base, rows[:n], strict=True)]
        flips = sum(top_label(a) != top_label(b) for a, (_, b) in zip(base, rows[:n], strict=True))
        results[name] = {
            "bytes": sizes[name],
            "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(percentile(ms, 95), 1),
            "p50_ms_by_round": [
                round(statistics.median(ms[i * n : (i + 1) * n])) for i in range(rounds)
            ],
            "max_abs_diff": round(max(diffs), 3),
            "mean_abs_diff": round(statistics.mean(diffs), 3),
            "top_label_changed": flips,
        }
        r = results[name]
        table.append(
            [
                name,
                round(sizes[name] / 1e6),
                r["p50_ms"],
                r["p95_ms"],
                " / ".join(str(v) for v in r["p50_ms_by_round"]),
                r["max_abs_diff"],
                r["mean_abs_diff"],
                f"{flips} of {n}",
            ]
        )
    emit("requantized", results, table)
    return results
