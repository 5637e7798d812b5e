"""OpenAICompatibleBackend over real loopback sockets: every way a server fails is a verdict.

A scripted HTTP server (``FakeModelServer``) stands in for vLLM or llama.cpp server: slow
answers, 5xx and 4xx, a hang-up, non-JSON, answers without logprobs or without a label, and a
port nothing listens on. ``score`` never raises; each failure has its status, and only faults of
the endpoint (not refusals of the request) eject it from the pool.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import aclosing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engine.backends.base import ChatMessage, LabelChoice, RenderedPrompt
from engine.backends.openai_compat import OpenAICompatibleBackend
from engine.categories import Category, VerdictStatus
from tests.llama_server import free_port

CHOICES = (
    LabelChoice(Category.INFORMATIONAL, "information"),
    LabelChoice(Category.SERVICE_ACTION, "action"),
    LabelChoice(Category.SAFETY_COMPLIANCE, "safety"),
)
PROMPT = RenderedPrompt(
    (ChatMessage("system", "One word: information, action or safety."), ChatMessage("user", "hi")),
    "t1",
)
SECRET = "sk-never-shown-42"  # noqa: S105 - a test value


def answer(top: dict[str, float] | None) -> dict[str, Any]:
    """A ``/v1/completions`` body; ``top=None`` leaves the logprobs out."""
    first = max(top, key=top.__getitem__) if top else "safety"
    logprobs = (
        {"tokens": [first], "token_logprobs": [top[first]], "top_logprobs": [top]} if top else None
    )
    return {
        "choices": [{"text": first, "logprobs": logprobs}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 1},
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send(200, json.dumps({"data": [{"id": "m"}]}).encode())

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        fake = self.server.fake
        fake.calls.append(self.headers.get("Authorization", ""))
        mode = fake.mode
        if mode == "slow":
            fake.release.wait(5)
            self._send(200, json.dumps(answer({"safety": -0.1})).encode())
        elif mode == "hang-up":
            self.close_connection = True
            self.connection.close()
        elif isinstance(mode, int):
            self._send(mode, b"model overloaded")
        elif isinstance(mode, bytes):
            self._send(200, mode)
        else:
            self._send(200, json.dumps(mode).encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    fake: FakeModelServer


class FakeModelServer:
    """A loopback HTTP server that answers every ``POST`` as ``mode`` says: ``"slow"``,
    ``"hang-up"``, an HTTP status (int), raw bytes, or a JSON body (dict)."""

    def __init__(self) -> None:
        self.mode: Any = answer({"safety": -0.1, "action": -3.0})
        self.calls: list[str] = []
        self.release = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fakes() -> Iterator[tuple[FakeModelServer, FakeModelServer]]:
    pair = (FakeModelServer(), FakeModelServer())
    yield pair
    for fake in pair:
        fake.close()


def backend(*urls: str) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(urls, "m", api_key=SECRET, eject_s=3600, probe_timeout_s=1)


NO_LABEL = answer({"hello": -0.1, "world": -1.0})


@pytest.mark.parametrize(
    ("mode", "status", "fragment"),
    [
        ("slow", VerdictStatus.TIMEOUT, "did not answer within 0.3s"),
        (503, VerdictStatus.ERROR, "answered HTTP 503: model overloaded"),
        ("hang-up", VerdictStatus.ERROR, "cannot reach"),
        (b"<html>busy</html>", VerdictStatus.ERROR, "answered non-JSON"),
        (answer(None), VerdictStatus.INVALID, "returned no logprobs"),
        (NO_LABEL, VerdictStatus.INVALID, "no top_logprobs token names a label"),
        ({"choices": []}, VerdictStatus.INVALID, "has no choices"),
        ({"choices": ["safety"]}, VerdictStatus.INVALID, "malformed"),
    ],
    ids=["slow", "503", "hang-up", "non-json", "no-logprobs", "no-label", "no-choices", "bad"],
)
async def test_each_failure_is_a_verdict(
    fakes: tuple[FakeModelServer, FakeModelServer],
    mode: Any,
    status: VerdictStatus,
    fragment: str,
) -> None:
    fake = fakes[0]
    fake.mode = mode
    async with aclosing(backend(fake.url)) as model:
        verdict = await model.score(PROMPT, CHOICES, deadline_s=0.3)
    assert verdict.status is status, verdict
    assert verdict.error is not None
    assert fragment in verdict.error
    assert SECRET not in verdict.error
    assert fake.calls == [f"Bearer {SECRET}"]


async def test_refused_connection_is_an_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    async with aclosing(backend(url)) as model:
        verdict = await model.score(PROMPT, CHOICES, deadline_s=5)
        assert verdict.status is VerdictStatus.ERROR
        assert verdict.error is not None
        assert f"cannot reach {url}: ConnectError" in verdict.error
        assert await model.probe() is False


async def test_a_server_error_moves_the_call_to_the_next_endpoint(
    fakes: tuple[FakeModelServer, FakeModelServer],
) -> None:
    broken, healthy = fakes
    broken.mode = 500
    async with aclosing(backend(broken.url, healthy.url)) as model:
        verdicts = [await model.score(PROMPT, CHOICES, deadline_s=5) for _ in range(3)]
        assert [v.status for v in verdicts] == [VerdictStatus.OK] * 3
        assert [v.label for v in verdicts] == [Category.SAFETY_COMPLIANCE] * 3
        # broken was tried once, ejected, then left out.
        assert (len(broken.calls), len(healthy.calls)) == (1, 3)
        assert {e["url"]: e["healthy"] for e in model.describe()} == {
            broken.url: False,
            healthy.url: True,
        }
        # The probe finds it answering /models again and takes it back.
        assert await model.probe() is True
        assert all(e["healthy"] for e in model.describe())


async def test_a_refused_request_is_not_retried_and_ejects_nobody(
    fakes: tuple[FakeModelServer, FakeModelServer],
) -> None:
    # 4xx: wrong model name, bad key, prompt too long. Every endpoint would refuse it alike.
    for fake in fakes:
        fake.mode = 401
    async with aclosing(backend(*(f.url for f in fakes))) as model:
        verdict = await model.score(PROMPT, CHOICES, deadline_s=5)
        assert verdict.status is VerdictStatus.ERROR
        assert verdict.error is not None
        assert "HTTP 401" in verdict.error
        assert len(fakes[0].calls) + len(fakes[1].calls) == 1
        assert all(e["healthy"] for e in model.describe())


async def test_a_timeout_spends_the_deadline_and_ejects_the_slow_endpoint(
    fakes: tuple[FakeModelServer, FakeModelServer],
) -> None:
    slow, fast = fakes
    slow.mode = "slow"
    async with aclosing(backend(slow.url, fast.url)) as model:
        first = await model.score(PROMPT, CHOICES, deadline_s=0.3)
        second = await model.score(PROMPT, CHOICES, deadline_s=0.3)
    assert first.status is VerdictStatus.TIMEOUT
    assert second.status is VerdictStatus.OK
    assert second.probabilities[Category.SAFETY_COMPLIANCE] > 0.9
    assert math.isclose(sum(second.probabilities.values()), 1.0)
    assert (len(slow.calls), len(fast.calls)) == (1, 1)
