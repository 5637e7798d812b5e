"""``switchboard serve --backend openai`` against a llama.cpp server: time per decision with the
static prompt prefix cached by the server, and with it evicted before each decision.

With no ``--openai-base-url`` the benchmark starts ``llama-cpp-python``'s OpenAI-compatible
server on the packaged GGUF (CPU). "Not cached" sends, before each decision, one unrelated
prompt straight to the server: llama-cpp-python keeps one prompt's KV cache, so the next
decision must evaluate its whole prompt again. Against a server that caches many prefixes
(vLLM) that does not evict anything; there compare a server started with and without
``--enable-prefix-caching`` instead (``eval/bench/gpu.sh`` does).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from eval.bench.loadgen import Server, policy_workdir, run_server
from eval.bench.messages import MODEL_MESSAGES as MESSAGES
from eval.bench.report import emit, summary

ALIAS = "qwen2.5-coder-0.5b-instruct"
EVICTOR = "<|im_start|>user\nSomething unrelated, to take the server's cache slot.<|im_end|>\n"


@contextlib.contextmanager
def llama_cpp_server(logdir: Path) -> Iterator[Server]:
    """``python -m llama_cpp.server`` on the packaged model (logprobs need ``logits_all``)."""
    from engine.backends.model_files import QWEN25_CODER_05B, assemble_model, default_model_dir

    model = assemble_model(QWEN25_CODER_05B, default_model_dir())
    argv = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        ALIAS,
        "--n_ctx",
        "2048",
        "--n_threads",
        str(os.cpu_count() or 1),
        "--logits_all",
        "True",
    ]
    with run_server("llama-cpp-server", argv, {}, "/v1/models", logdir) as server:
        yield server


def _long_deadline(policy: Path) -> None:
    """A CPU server re-reads an evicted ~540-token prompt in tens of seconds: the production
    3 s deadline would turn the "evicted" row into timeouts instead of a time."""
    text = policy.read_text("utf-8")
    if "model_deadline_ms: 3000" not in text:
        raise RuntimeError(f"{policy}: the model deadline moved; update the benchmark")
    policy.write_text(text.replace("model_deadline_ms: 3000", "model_deadline_ms: 60000"), "utf-8")


def _decisions(
    client: httpx.Client, model_url: str, model: str, n: int, *, evict: bool
) -> dict[str, Any]:
    wall, llm, total, cached, statuses = [], [], [], [], []
    for i in range(n):
        if evict:
            httpx.post(
                model_url + "/completions",
                json={"model": model, "prompt": EVICTOR + str(i), "max_tokens": 1},
                timeout=600,
            ).raise_for_status()
        started = time.perf_counter()
        r = client.post("/classify", json={"message": MESSAGES[i % len(MESSAGES)]})
        wall.append(time.perf_counter() - started)
        r.raise_for_status()
        body = r.json()
        statuses.append(body["llm"]["status"])
        llm.append(body["timings"]["llm_ms"] / 1000)
        total.append(body["timings"]["total_ms"] / 1000)
        cached.append(body["tokens"]["cached"])
    return {
        "wall_ms": summary(wall, scale=1000),
        "llm_ms": summary(llm, scale=1000),
        "decision_ms": summary(total, scale=1000),
        "cached_tokens": summary(cached, digits=0),
        "model_ok": statuses.count("ok"),
    }


def run(*, n: int = 20, base_url: str | None = None, model: str = ALIAS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sb-openai-bench-") as tmp:
        root = Path(tmp)
        with contextlib.ExitStack() as stack:
            if base_url is None:
                base_url = stack.enter_context(llama_cpp_server(root)).url + "/v1"
            policies = policy_workdir(root)
            _long_deadline(policies / "contact-center" / "policy.yaml")
            env = {
                "SWITCHBOARD_POLICIES": str(policies),
                "SWITCHBOARD_AUDIT_DB": str(root / "audit.db"),
                "SWITCHBOARD_OPENAI_BASE_URLS": base_url,
                "SWITCHBOARD_OPENAI_MODEL": model,
                "SWITCHBOARD_PROBE_INTERVAL_S": "60",
                "SWITCHBOARD_BREAKER_FAILURES": "1000",
                "SWITCHBOARD_AUTH": "off",  # loopback, the dev tenant (tenants/ copied along)
            }
            argv = [sys.executable, "-m", "engine", "serve", "--backend", "openai"]
            service = stack.enter_context(
                run_server("service-openai", argv, env, "/readyz", root, ready_timeout_s=900)
            )
            with httpx.Client(base_url=service.url, timeout=600) as client:
                cached = _decisions(client, base_url, model, n, evict=False)
                uncached = _decisions(client, base_url, model, max(3, n // 4), evict=True)
    results = {
        "model_server": base_url,
        "model": model,
        "prefix_cached": cached,
        "prefix_evicted": uncached,
        "ratio_evicted_to_cached": round(
            uncached["wall_ms"]["p50"] / max(cached["wall_ms"]["p50"], 1e-9), 1
        ),
    }
    rows: list[list[Any]] = [
        ["prefix", "p50 ms (client)", "p90 ms", "llm p50 ms", "cached tokens p50", "ok/n"]
    ]
    for name, r in (("cached by the server", cached), ("evicted before each", uncached)):
        rows.append(
            [
                name,
                r["wall_ms"]["p50"],
                r["wall_ms"]["p90"],
                r["llm_ms"]["p50"],
                r["cached_tokens"]["p50"],
                f"{r['model_ok']}/{r['wall_ms']['n']}",
            ]
        )
    emit("openai_path", results, rows)
    return results
