"""OpenAICompatibleBackend against a real OpenAI-compatible server, no mocks.

``llama-cpp-python``'s server runs the packaged GGUF on loopback (the ``llama_server`` session
fixture, or a server of the test's own when the test kills it). The probabilities are compared
with the embedded backend's on the same prompts; a slow server, one without logprobs and one
killed mid-call become ``timeout``, ``invalid`` and ``error`` verdicts.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import aclosing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.backends.model_files import QWEN25_CODER_05B, assemble_model, default_model_dir
from engine.backends.openai_compat import OpenAICompatibleBackend
from engine.categories import Channel, VerdictStatus
from tests.llama_server import MODEL_ALIAS, LlamaServer, start_llama_server

pytestmark = pytest.mark.model

TOLERANCE = 0.05
"""Largest allowed difference per label probability between the server and the embedded backend.

The two read the same next-token distribution differently: the embedded backend sums every
vocabulary token that is a prefix of an answer, the server path sums the top 20 alternatives
(and gives labels outside them a floor). Measured: 0.0006 (docs/testing.md)."""

MESSAGES = (
    "Where is my order? It was due on Monday.",
    "What are your opening hours on Sunday?",
    "I took the tablets and now my face is swollen and I can't breathe well.",
    "Can you change the delivery address to my office?",
    "Is ibuprofen safe to take with paracetamol?",
    "Refund the double charge on my card please.",
)


@pytest.fixture(scope="module")
def policy_prompts() -> Any:
    from engine.decide.prompts import PromptBuilder
    from engine.policy.loader import load_policy
    from tests.conftest import DEFAULT_POLICY, PROMPTS

    loaded = load_policy(DEFAULT_POLICY, PROMPTS)
    return PromptBuilder(loaded.policy, loaded.prompts_dir)


@pytest.fixture(scope="module")
def embedded() -> Iterator[Any]:
    from engine.backends.embedded import EmbeddedBackend

    backend = EmbeddedBackend.from_packages(QWEN25_CODER_05B, default_model_dir())
    yield backend
    asyncio.run(backend.aclose())


def served(*urls: str) -> OpenAICompatibleBackend:
    # Ejections outlast the test: CPU calls take seconds, and an expiry would re-admit a dead URL.
    return OpenAICompatibleBackend(urls, MODEL_ALIAS, eject_s=3600)


async def test_probabilities_agree_with_the_embedded_backend(
    llama_server: LlamaServer,
    embedded: Any,
    policy_prompts: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    worst = 0.0
    async with aclosing(served(llama_server.url)) as backend:
        for message in MESSAGES:
            prompt = policy_prompts.render(message, Channel.CHAT)
            local = await embedded.score(prompt, policy_prompts.choices, deadline_s=600)
            remote = await backend.score(prompt, policy_prompts.choices, deadline_s=600)
            assert local.status is VerdictStatus.OK, local.error
            assert remote.status is VerdictStatus.OK, remote.error
            assert remote.label is local.label, message
            for category, p in local.probabilities.items():
                worst = max(worst, abs(p - remote.probabilities[category]))
    with capsys.disabled():
        print(
            f"\nmax |p_server - p_embedded| over {len(MESSAGES)} messages x 3 labels: {worst:.4f}"
        )
    assert worst <= TOLERANCE


async def test_slow_server_against_a_deadline_is_a_timeout(
    llama_server: LlamaServer, policy_prompts: Any
) -> None:
    # Even with the static prefix cached, a CPU call scores the message's tokens and a
    # log-softmax over every position: far beyond 20 ms. The prefix stays the policy's, so the
    # server's cache is still warm for the next test.
    prompt = policy_prompts.render("Where is my parcel? It is late.", Channel.CHAT)
    async with aclosing(served(llama_server.url)) as backend:
        verdict = await backend.score(prompt, policy_prompts.choices, deadline_s=0.02)
    assert verdict.status is VerdictStatus.TIMEOUT
    assert verdict.error is not None
    assert "did not answer within 0.02s" in verdict.error


class _DroppingLogprobs(BaseHTTPRequestHandler):
    """A gateway in front of the real server that forwards requests and drops ``logprobs``."""

    upstream = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = httpx.post(
            self.upstream + self.path.removeprefix("/v1"),
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=600,
        ).json()
        for choice in answer.get("choices", []):
            choice["logprobs"] = None
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


async def test_server_without_logprobs_is_an_invalid_verdict(
    llama_server: LlamaServer, policy_prompts: Any
) -> None:
    handler = type("Handler", (_DroppingLogprobs,), {"upstream": llama_server.url})
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    prompt = policy_prompts.render("Where is my order?", Channel.CHAT)
    try:
        async with aclosing(served(f"http://127.0.0.1:{gateway.server_port}/v1")) as backend:
            verdict = await backend.score(prompt, policy_prompts.choices, deadline_s=600)
    finally:
        gateway.shutdown()
        gateway.server_close()
    assert verdict.status is VerdictStatus.INVALID, verdict
    assert verdict.error is not None
    assert "no logprobs" in verdict.error
    assert verdict.raw_output  # the server did answer: only the logprobs are missing


async def test_server_killed_mid_run(tmp_path: Path, policy_prompts: Any) -> None:
    victim = start_llama_server(
        assemble_model(QWEN25_CODER_05B, default_model_dir()), tmp_path / "victim.log"
    )
    prompt = policy_prompts.render("Where is my order?", Channel.CHAT)
    try:
        async with aclosing(served(victim.url)) as backend:
            # In flight when the process dies: the whole ~540-token prompt is being evaluated.
            call = asyncio.create_task(
                backend.score(prompt, policy_prompts.choices, deadline_s=600)
            )
            await asyncio.sleep(0.5)
            victim.kill()
            verdict = await asyncio.wait_for(call, timeout=30)
            assert verdict.status is VerdictStatus.ERROR, verdict
            after = await backend.score(prompt, policy_prompts.choices, deadline_s=600)
            assert after.status is VerdictStatus.ERROR
            assert after.error is not None
            assert victim.url in after.error
            assert await backend.probe() is False
    finally:
        victim.kill()
