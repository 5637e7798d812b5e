"""The /classify fast path: the answers FastAPI's route gives, and FastAPI for everything else.

A body sent as ``application/vnd.switchboard+json`` is JSON to FastAPI but not taken by the fast
path, so the same request can be answered both ways and compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.types import Message

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from service.problems import ProblemError, install_problem_handlers
from service.routes import classify_fast
from service.routes.classify_fast import ClassifyFastPath
from tests.service.conftest import Served, ServeFactory

FAST = {"content-type": "application/json"}
ROUTE = {"content-type": "application/vnd.switchboard+json"}
VARYING = {"decision_id", "created_at", "timings", "workflow", "handoffs"}


def _same_answer(served: Served, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    content = json.dumps(body).encode()
    fast = served.client.post("/classify", content=content, headers={**FAST, **headers})
    route = served.client.post("/classify", content=content, headers={**ROUTE, **headers})
    assert fast.status_code == route.status_code, (fast.text, route.text)
    drop = {"date", "content-length"}
    assert {k: v for k, v in fast.headers.items() if k not in drop} == {
        k: v for k, v in route.headers.items() if k not in drop
    }
    assert list(fast.headers) == list(route.headers)
    a, b = fast.json(), route.json()
    if fast.status_code == 200:
        for key in VARYING:
            a.pop(key), b.pop(key)
    assert a == b
    return dict(fast.json())


def test_the_fast_path_answers_as_the_route_does(make_served: ServeFactory) -> None:
    served = make_served(FakeBackend(default=Scripted.label(Category.SAFETY_COMPLIANCE, 0.9)))
    adverse = "I experienced a severe headache and nausea right after taking the medication."
    record = _same_answer(served, {"message": adverse, "channel": "email", "metadata": {"a": 1}})
    assert record["category"] == "safety_compliance"
    assert _same_answer(served, {"message": "hi", "policy": "nope"})["status"] == 404
    assert _same_answer(served, {"message": "x" * 30_000})["status"] == 413
    # Both were recorded: the fast path's 200 is in the audit store like the route's.
    stored = served.client.get(f"/decisions/{record['decision_id']}").json()
    assert stored["record"]["metadata"] == {"a": 1}


def test_the_fast_path_checks_credentials_as_the_route_does(make_served: ServeFactory) -> None:
    served = make_served(auth="on")
    assert _same_answer(served, {"message": "hi"})["status"] == 401
    problem = _same_answer(served, {"message": "hi"}, authorization="Bearer sb_nope")
    assert problem["status"] == 401


# -- the ASGI layer alone -------------------------------------------------------------------


@dataclass
class _Inner:
    """The app behind the fast path: records what reached it."""

    bodies: list[bytes] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@dataclass
class _Access:
    refuse: bool = False

    async def authorize(self, authorization: str | None, permission: Any) -> str:
        if self.refuse:
            raise ProblemError(401, "Unauthorized", "no", headers={"WWW-Authenticate": "Bearer"})
        return f"caller {authorization}"


class _App:
    def __init__(self, access: _Access, overrides: dict[Any, Any] | None = None) -> None:
        from fastapi import FastAPI

        handlers = FastAPI()
        install_problem_handlers(handlers)
        self.exception_handlers = handlers.exception_handlers
        self.dependency_overrides = overrides or {}
        self.state = type("State", (), {"switchboard": type("S", (), {"access": access})()})()


async def _call(app: _App, body: bytes, content_type: bytes) -> tuple[_Inner, list[Message]]:
    inner = _Inner()
    sent: list[Message] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/classify",
        "headers": [(b"content-type", content_type), (b"authorization", b"Bearer k")],
        "app": app,
        "query_string": b"",
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await ClassifyFastPath(inner)(scope, receive, send)
    return inner, sent


@pytest.fixture
def decided(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    calls: list[tuple[Any, Any]] = []

    async def decide(state: Any, request: Any, caller: Any) -> bytes:
        calls.append((request, caller))
        return b'{"decided":true}'

    monkeypatch.setattr(classify_fast, "decide", decide)
    return calls


async def test_a_valid_json_body_is_decided_without_fastapi(decided: list[Any]) -> None:
    inner, sent = await _call(_App(_Access()), b'{"message": "hi"}', b"application/json")
    assert inner.bodies == []
    assert decided[0][0].message == "hi"
    assert decided[0][1] == "caller Bearer k"
    assert sent[0]["status"] == 200
    headers = [(b"content-length", b"16"), (b"content-type", b"application/json")]
    assert sent[0]["headers"] == headers
    assert sent[1]["body"] == b'{"decided":true}'


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"message": ""}', b"application/json"),  # invalid: FastAPI's 422
        (b'{"message": "hi", "extra": 1}', b"application/json"),
        (b"{not json", b"application/json"),  # FastAPI's 400
        (b'{"message": "hi"}', b"text/plain"),  # FastAPI's own reading of the content type
        (b'{"message": "hi"}', b"application/vnd.switchboard+json"),
    ],
)
async def test_anything_else_reaches_fastapi_unchanged(
    decided: list[Any], body: bytes, content_type: bytes
) -> None:
    inner, sent = await _call(_App(_Access()), body, content_type)
    assert inner.bodies == [body]
    assert decided == []
    assert sent[0]["status"] == 299


async def test_a_dependency_override_leaves_the_request_to_fastapi(decided: list[Any]) -> None:
    app = _App(_Access(), overrides={object(): object()})
    inner, _ = await _call(app, b'{"message": "hi"}', b"application/json")
    assert inner.bodies == [b'{"message": "hi"}']


async def test_errors_go_to_the_apps_exception_handlers(decided: list[Any]) -> None:
    inner, sent = await _call(_App(_Access(refuse=True)), b'{"message": "hi"}', b"application/json")
    assert inner.bodies == []
    assert decided == []
    assert sent[0]["status"] == 401
    assert (b"www-authenticate", b"Bearer") in sent[0]["headers"]
    assert b'"title":"Unauthorized"' in sent[1]["body"]
