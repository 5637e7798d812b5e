"""The embedded model's time per decision: prefix cached, prefix re-processed, JSON generation.

Label scoring reads the label probabilities from one forward pass over the new tokens; the
naive alternative asks the model to write ``{"label": ..., "rationale": ...}`` and parses it.
Same model, same few-shot prompt, same messages; run on a quiet machine (2 threads).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from engine.backends.embedded import EmbeddedBackend
from engine.backends.model_files import ModelSpec, assemble_model, default_model_dir
from engine.categories import Channel
from engine.decide.prompts import PromptBuilder
from engine.policy.loader import load_policy
from eval.bench.messages import MODEL_MESSAGES as MESSAGES
from eval.bench.report import emit, summary

JSON_INSTRUCTION = (
    '\n\nAnswer with JSON only: {"label": "<one of: information, action, safety>", '
    '"rationale": "<one sentence>"}'
)


def _chatml(messages: list[dict[str, str]]) -> str:
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + "<|im_start|>assistant\n"


def _json_messages(builder: PromptBuilder, message: str) -> list[dict[str, str]]:
    prompt = builder.render(message, Channel.CHAT)
    msgs = [{"role": m.role, "content": m.content} for m in prompt.messages]
    msgs[0]["content"] += JSON_INSTRUCTION
    for m in msgs[1:-1]:  # few-shot answers in the same JSON shape the model must produce
        if m["role"] == "assistant":
            m["content"] = json.dumps({"label": m["content"], "rationale": RATIONALE[m["content"]]})
    return msgs


RATIONALE = {
    "information": "The customer asks a question.",
    "action": "The customer asks us to do something on an order or account.",
    "safety": "Someone reports a reaction or a product problem.",
}


def _json_generation(
    backend: EmbeddedBackend, builder: PromptBuilder, n: int, *, cached: bool
) -> dict[str, Any]:
    """The naive design: generate a JSON verdict with a rationale (greedy, up to 64 tokens)."""
    llm: Any = backend._llm  # the benchmark needs the raw model for generation
    times, prompt_tokens, output_tokens, parsed = [], [], [], 0
    llm.create_completion(_chatml(_json_messages(builder, "warm up")), max_tokens=1)
    for i in range(n):
        msgs = _json_messages(builder, MESSAGES[i % len(MESSAGES)])
        if not cached:
            llm.reset()  # as a stateless server without prefix caching would
        started = time.perf_counter()
        out = llm.create_completion(
            _chatml(msgs), max_tokens=64, temperature=0.0, stop=["}", "<|im_end|>"]
        )
        times.append(time.perf_counter() - started)
        prompt_tokens.append(out["usage"]["prompt_tokens"])
        output_tokens.append(out["usage"]["completion_tokens"])
        try:
            json.loads(out["choices"][0]["text"] + "}")
            parsed += 1
        except json.JSONDecodeError:
            pass
    return {
        "ms": summary(times, scale=1000),
        "prompt_tokens": summary(prompt_tokens, digits=0),
        "output_tokens": summary(output_tokens, digits=0),
        "parsed_json": parsed,
    }


async def _scored(
    backend: EmbeddedBackend, builder: PromptBuilder, n: int, *, cached: bool
) -> dict[str, Any]:
    times, new_tokens = [], []
    await backend.score(builder.render("warm up", Channel.CHAT), builder.choices, deadline_s=300)
    for i in range(n):
        if not cached:
            await backend.reset_cache()
        prompt = builder.render(MESSAGES[i % len(MESSAGES)], Channel.CHAT)
        verdict = await backend.score(prompt, builder.choices, deadline_s=300)
        times.append(verdict.latency_ms / 1000)
        new_tokens.append(verdict.prompt_tokens)
    return {"ms": summary(times, scale=1000), "tokens_processed": summary(new_tokens, digits=0)}


def run(spec: ModelSpec, *, n: int = 20) -> dict[str, Any]:
    loaded = load_policy(Path("policies/contact-center"), Path("prompts"))
    builder = PromptBuilder(loaded.policy, loaded.prompts_dir)
    started = time.perf_counter()
    backend = EmbeddedBackend(assemble_model(spec, default_model_dir()), spec)
    load_s = time.perf_counter() - started
    try:
        cached = asyncio.run(_scored(backend, builder, n, cached=True))
        uncached = asyncio.run(_scored(backend, builder, max(3, n // 4), cached=False))
        generated = _json_generation(backend, builder, n, cached=True)
        generated_uncached = _json_generation(backend, builder, max(3, n // 4), cached=False)
    finally:
        asyncio.run(backend.aclose())
    base = cached["ms"]["p50"]
    results = {
        "model": spec.name,
        "load_s": round(load_s, 2),
        "label_scoring_prefix_cached": cached,
        "label_scoring_uncached": uncached,
        "json_generation_prefix_cached": generated,
        "json_generation_uncached": generated_uncached,
        "ratio_uncached_to_cached": round(uncached["ms"]["p50"] / base, 1),
        "ratio_json_cached_to_label_cached": round(generated["ms"]["p50"] / base, 1),
    }
    rows: list[list[Any]] = [["design", "p50 ms", "p90 ms", "tokens in (p50)", "n"]]
    rows.append(
        [
            "label scoring, prefix cached",
            base,
            cached["ms"]["p90"],
            cached["tokens_processed"]["p50"],
            cached["ms"]["n"],
        ]
    )
    rows.append(
        [
            "label scoring, no cache",
            uncached["ms"]["p50"],
            uncached["ms"]["p90"],
            uncached["tokens_processed"]["p50"],
            uncached["ms"]["n"],
        ]
    )
    rows.append(
        [
            "JSON + rationale, prefix cached",
            generated["ms"]["p50"],
            generated["ms"]["p90"],
            f"out {generated['output_tokens']['p50']}",
            generated["ms"]["n"],
        ]
    )
    rows.append(
        [
            "JSON + rationale, no cache",
            generated_uncached["ms"]["p50"],
            generated_uncached["ms"]["p90"],
            generated_uncached["prompt_tokens"]["p50"],
            generated_uncached["ms"]["n"],
        ]
    )
    emit("model_path", results, rows)
    return results
