"""OllamaBackend against the real ``ollama.AsyncClient`` and an emulated Ollama server.

The Ollama server is an external boundary that cannot run here, so ``EmulatedOllama`` is a
small HTTP server on 127.0.0.1 that answers ``/api/chat`` and ``/api/tags`` with the JSON an
Ollama >= 0.12.11 server sends (see ``ollama/_types.py``: ``ChatResponse`` with a top-level
``logprobs`` list of ``{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}``).
It records every request body so the tests can check what the client put on the wire.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engine.backends.base import ChatMessage, LabelChoice, LLMBackend, RenderedPrompt
from engine.backends.ollama import FALLBACK_CONFIDENCE, OllamaBackend
from engine.backends.registry import BackendSettings, build_backend
from engine.categories import Category, VerdictStatus
from engine.errors import BackendConfigError

MODEL = "qwen2.5:7b-instruct"
CHOICES = (
    LabelChoice(Category.INFORMATIONAL, "informational"),
    LabelChoice(Category.SERVICE_ACTION, "action"),
    LabelChoice(Category.SAFETY_COMPLIANCE, "safety"),
)
PROMPT = RenderedPrompt(
    messages=(
        ChatMessage("system", "Answer with one word: informational, action or safety."),
        ChatMessage("user", "What are your opening hours?"),
        ChatMessage("assistant", "informational"),
        ChatMessage("user", "There is a gas smell in the basement."),
    ),
    template_hash="t1",
)


def _token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode())}


def chat_reply(
    content: str, top: list[tuple[str, float]] | None = None, *, logprobs: bool = True
) -> dict[str, Any]:
    """An ``/api/chat`` non-streaming answer shaped like Ollama's, generated token first."""
    body: dict[str, Any] = {
        "model": MODEL,
        "created_at": "2025-11-20T10:00:00.000000Z",
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": "length",
        "total_duration": 91_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": 57,
        "prompt_eval_duration": 60_000_000,
        "eval_count": 3,
        "eval_duration": 30_000_000,
    }
    if logprobs and top:
        first = {**_token(*top[0]), "top_logprobs": [_token(t, lp) for t, lp in top]}
        body["logprobs"] = [first, {**_token("_", -0.01), "top_logprobs": [_token("_", -0.01)]}]
    return body


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"{}"
    delay_s: float = 0.0


@dataclass
class EmulatedOllama:
    """A recorded/emulated Ollama server: scripted replies, captured request bodies."""

    chat: Reply = field(default_factory=Reply)
    tags: list[str] = field(default_factory=lambda: [MODEL])
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reply_json(self, body: dict[str, Any], *, delay_s: float = 0.0) -> None:
        self.chat = Reply(200, json.dumps(body).encode(), delay_s)


def _handler(state: EmulatedOllama) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def do_GET(self) -> None:
            if self.path == "/api/tags":
                models = [{"name": m, "model": m, "digest": "ab" * 32} for m in state.tags]
                self._send(Reply(body=json.dumps({"models": models}).encode()))
            else:
                self._send(Reply(404, b'{"error":"not found"}'))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append((self.path, json.loads(self.rfile.read(length))))
            reply = state.chat
            if reply.delay_s and state.release.wait(reply.delay_s):
                self.close_connection = True  # test over: the client has gone
                return
            self._send(reply)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-answer is expected in the timeout tests


@pytest.fixture
def server() -> Iterator[EmulatedOllama]:
    state = EmulatedOllama()
    httpd = _Server(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
async def backend(server: EmulatedOllama) -> AsyncIterator[OllamaBackend]:
    b = OllamaBackend(MODEL, server.host, keep_alive="30m")
    try:
        yield b
    finally:
        await b.aclose()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_is_an_llm_backend() -> None:
    b = build_backend(BackendSettings(name="ollama", ollama_model=MODEL))
    assert isinstance(b, OllamaBackend)
    assert isinstance(b, LLMBackend)
    assert (b.name, b.model_id, b.model_digest) == ("ollama", MODEL, f"ollama:{MODEL}")
    assert b.host == "http://127.0.0.1:11434"  # the registry's one default


def test_offline_commands_read_the_service_variables() -> None:
    env = {"SWITCHBOARD_OLLAMA_HOST": "http://gpu:1", "SWITCHBOARD_OLLAMA_MODEL": "m:7b"}
    settings = BackendSettings.from_env("ollama", env)
    assert (settings.ollama_host, settings.ollama_model) == ("http://gpu:1", "m:7b")


def test_rejects_top_logprobs_outside_ollama_range() -> None:
    with pytest.raises(BackendConfigError, match="top_logprobs"):
        OllamaBackend(MODEL, "http://127.0.0.1:1", top_logprobs=21)


async def test_top_logprobs_map_to_labels_and_sum_to_one(
    server: EmulatedOllama, backend: OllamaBackend
) -> None:
    top = [(" safety", -0.4), ("Saf", -1.6), ("info", -2.0), ("The", -3.0), ("s", -3.5)]
    server.reply_json(chat_reply("safety", top))
    verdict = await backend.score(PROMPT, CHOICES, deadline_s=5)
    assert verdict.status is VerdictStatus.OK, verdict.error
    assert verdict.method == "top_logprobs"
    p = verdict.probabilities
    assert math.isclose(sum(p.values()), 1.0)
    # " safety", "Saf" and "s" all belong to safety (log-sum-exp); "The" names nothing;
    # "action" got no mass and sits at the floor: a tenth of the smallest alternative.
    safety = math.exp(-0.4) + math.exp(-1.6) + math.exp(-3.5)
    info = math.exp(-2.0)
    floor = math.exp(-3.5) / 10
    total = safety + info + floor
    assert p[Category.SAFETY_COMPLIANCE] == pytest.approx(safety / total)
    assert p[Category.INFORMATIONAL] == pytest.approx(info / total)
    assert p[Category.SERVICE_ACTION] == pytest.approx(floor / total)
    assert verdict.label is Category.SAFETY_COMPLIANCE
    assert verdict.raw_output == "safety"
    assert (verdict.prompt_tokens, verdict.output_tokens) == (57, 3)
    assert verdict.latency_ms > 0


async def test_ambiguous_prefix_counts_for_no_label(
    server: EmulatedOllama, backend: OllamaBackend
) -> None:
    choices = (
        LabelChoice(Category.SERVICE_ACTION, "service"),
        LabelChoice(Category.SAFETY_COMPLIANCE, "safety"),
    )
    server.reply_json(chat_reply("s", [("s", -0.1), ("Service", -2.5), ("saf", -3.0)]))
    verdict = await backend.score(PROMPT, choices, deadline_s=5)
    assert verdict.status is VerdictStatus.OK
    assert verdict.label is Category.SERVICE_ACTION
    assert verdict.probabilities[Category.SERVICE_ACTION] == pytest.approx(1 / (1 + math.exp(-0.5)))


async def test_no_label_token_is_invalid(server: EmulatedOllama, backend: OllamaBackend) -> None:
    server.reply_json(chat_reply("Hello", [("Hello", -0.2), (" The", -1.9), ("", -4.0)]))
    verdict = await backend.score(PROMPT, CHOICES, deadline_s=5)
    assert verdict.status is VerdictStatus.INVALID
    assert verdict.raw_output == "Hello"
    assert verdict.label is None
    assert verdict.error


async def test_server_without_logprobs_falls_back_to_uncalibrated_text(
    server: EmulatedOllama, backend: OllamaBackend
) -> None:
    server.reply_json(chat_reply("**Safety**", logprobs=False))
    verdict = await backend.score(PROMPT, CHOICES, deadline_s=5)
    assert verdict.status is VerdictStatus.OK
    assert verdict.method == "generated_text_uncalibrated"
    assert verdict.label is Category.SAFETY_COMPLIANCE
    assert verdict.label is not None
    assert verdict.probabilities[verdict.label] == FALLBACK_CONFIDENCE
    rest = (1 - FALLBACK_CONFIDENCE) / 2
    assert verdict.probabilities[Category.INFORMATIONAL] == pytest.approx(rest)
    assert math.isclose(sum(verdict.probabilities.values()), 1.0)


async def test_server_without_logprobs_and_no_label_is_invalid(
    server: EmulatedOllama, backend: OllamaBackend
) -> None:
    server.reply_json(chat_reply("Hello there", logprobs=False))
    verdict = await backend.score(PROMPT, CHOICES, deadline_s=5)
    assert verdict.status is VerdictStatus.INVALID
    assert verdict.raw_output == "Hello there"


async def test_request_on_the_wire(server: EmulatedOllama, backend: OllamaBackend) -> None:
    server.reply_json(chat_reply("safety", [("safety", -0.1)]))
    await backend.score(PROMPT, CHOICES, deadline_s=5)
    [(path, body)] = server.requests
    assert path == "/api/chat"
    assert body["model"] == MODEL
    assert body["messages"] == [{"role": m.role, "content": m.content} for m in PROMPT.messages]
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 20
    assert body["options"] == {"temperature": 0, "num_predict": 3}
    assert body["stream"] is False
    assert body["keep_alive"] == "30m"


async def test_closed_port_is_an_error_quickly() -> None:
    port = _closed_port()
    b = OllamaBackend(MODEL, f"http://127.0.0.1:{port}")
    try:
        started = time.perf_counter()
        verdict = await b.score(PROMPT, CHOICES, deadline_s=5)
        assert time.perf_counter() - started < 2
        assert verdict.status is VerdictStatus.ERROR
        assert verdict.error is not None
        assert f"cannot reach Ollama at http://127.0.0.1:{port}" in verdict.error
        assert "ollama serve" in verdict.error
        assert not await b.probe()
    finally:
        await b.aclose()


async def test_slow_server_times_out_near_the_deadline(
    server: EmulatedOllama, backend: OllamaBackend
) -> None:
    server.reply_json(chat_reply("safety", [("safety", -0.1)]), delay_s=3)
    started = time.perf_counter()
    verdict = await backend.score(PROMPT, CHOICES, deadline_s=0.3)
    elapsed = time.perf_counter() - started
    assert verdict.status is VerdictStatus.TIMEOUT
    assert 0.25 < elapsed < 1.5
    assert 250 < verdict.latency_ms <= elapsed * 1000


async def test_http_500_is_an_error(server: EmulatedOllama, backend: OllamaBackend) -> None:
    server.chat = Reply(500, b'{"error":"llama runner process has terminated: signal: killed"}')
    verdict = await backend.score(PROMPT, CHOICES, deadline_s=5)
    assert verdict.status is VerdictStatus.ERROR
    assert verdict.error is not None
    assert "HTTP 500" in verdict.error
    assert "llama runner process has terminated" in verdict.error


async def test_missing_model_names_the_fix(server: EmulatedOllama, backend: OllamaBackend) -> None:
    server.chat = Reply(404, f'{{"error":"model \\"{MODEL}\\" not found"}}'.encode())
    verdict = await backend.score(PROMPT, CHOICES, deadline_s=5)
    assert verdict.status is VerdictStatus.ERROR
    assert verdict.error is not None
    assert f"ollama pull {MODEL}" in verdict.error


@pytest.mark.parametrize(
    "body",
    [b"not json {", b"[]", b'{"done": true}', b'{"message": {"role": "assistant"}, "logprobs": 3}'],
)
async def test_garbage_answer_is_a_verdict_not_an_exception(
    server: EmulatedOllama, backend: OllamaBackend, body: bytes
) -> None:
    server.chat = Reply(200, body)
    verdict = await backend.score(PROMPT, CHOICES, deadline_s=5)
    assert verdict.status in {VerdictStatus.ERROR, VerdictStatus.INVALID}
    assert verdict.label is None


async def test_probe_checks_the_model_is_listed(
    server: EmulatedOllama, backend: OllamaBackend
) -> None:
    assert await backend.probe()
    server.tags = ["llama3.2:latest"]
    assert not await backend.probe()
    untagged = OllamaBackend("llama3.2", server.host)
    try:
        assert await untagged.probe()
    finally:
        await untagged.aclose()


async def test_score_after_aclose_is_an_error(server: EmulatedOllama) -> None:
    b = OllamaBackend(MODEL, server.host)
    await b.aclose()
    verdict = await b.score(PROMPT, CHOICES, deadline_s=5)
    assert verdict.status is VerdictStatus.ERROR
