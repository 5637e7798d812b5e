"""Overload and a sick model: degrade or shed with Retry-After, never a 5xx."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category, VerdictStatus
from tests.conftest import Editor
from tests.service.conftest import ServeFactory

ADVERSE = "I experienced a severe headache and nausea right after taking the medication."


async def _burst(url: str, n: int, message: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await asyncio.gather(
            *(client.post("/classify", json={"message": message}) for _ in range(n))
        )


def test_burst_beyond_capacity_degrades_with_every_record_kept(make_served: ServeFactory) -> None:
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9), latency_s=0.2)
    served = make_served(backend, model_concurrency=1, model_queue=2)
    responses = asyncio.run(_burst(served.url, 20, ADVERSE))
    assert all(r.status_code == 200 for r in responses)
    bodies = [r.json() for r in responses]
    degraded = [b for b in bodies if b["degraded"]]
    assert degraded, "nothing was shed"
    assert all(b["category"] == "safety_compliance" for b in bodies)
    metrics = served.client.get("/metrics").text
    assert 'switchboard_shed_total{action="degraded"}' in metrics
    for b in bodies:
        assert served.client.get(f"/decisions/{b['decision_id']}").status_code == 200


def test_reject_mode_answers_503_with_retry_after(
    make_served: ServeFactory, edit_policy: Editor
) -> None:
    def reject(d: dict[str, Any]) -> None:
        d["fallbacks"]["overload"] = {"mode": "reject", "status_code": 503, "retry_after_s": 3}

    edit_policy("policy.yaml", reject)
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9), latency_s=0.3)
    served = make_served(backend, model_concurrency=1, model_queue=1)
    responses = asyncio.run(_burst(served.url, 12, "where is my order"))
    codes = sorted({r.status_code for r in responses})
    assert codes == [200, 503]
    shed = [r for r in responses if r.status_code == 503]
    assert all(r.headers["retry-after"] == "3" for r in shed)
    assert all(r.headers["content-type"] == "application/problem+json" for r in shed)


def test_circuit_opens_after_repeated_failures(make_served: ServeFactory) -> None:
    backend = FakeBackend(default=Scripted(status=VerdictStatus.ERROR))
    served = make_served(backend, breaker_failures=3, breaker_cooldown_s=60)
    for _ in range(5):
        assert served.client.post("/classify", json={"message": "hi"}).status_code == 200
    assert len(backend.calls) == 3  # the last two never reached the model
    last = served.client.post("/classify", json={"message": ADVERSE}).json()
    assert last["degraded"] is True
    assert last["category"] == "safety_compliance"
    assert "circuit open" in " ".join(s["detail"] for s in last["decision_path"])
    assert "switchboard_circuit_open 1.0" in served.client.get("/metrics").text


def _reject_with_429(d: dict[str, Any]) -> None:
    d["fallbacks"]["overload"] = {"mode": "reject", "status_code": 429, "retry_after_s": 2}


async def _while_model_busy(
    url: str, body: bytes, backend: FakeBackend
) -> tuple[list[httpx.Response], str]:
    """Two requests with ``body`` on one connection while one slow decision holds the model."""
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as busy,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        before = len(backend.calls)
        slow = asyncio.create_task(busy.post("/classify", json={"message": "where is my order"}))
        for _ in range(250):  # until the slow one is inside the model (it holds the only slot)
            if len(backend.calls) > before:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the slow decision never reached the model")
        refused = [
            await client.post(
                "/classify", content=body, headers={"content-type": "application/json"}
            )
            for _ in range(2)
        ]
        assert (await slow).status_code == 200
        return refused, (await client.get("/metrics")).text


def test_overload_refusal_comes_before_the_body_is_read(
    make_served: ServeFactory, edit_policy: Editor
) -> None:
    edit_policy("policy.yaml", _reject_with_429)
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9), latency_s=1.0)
    served = make_served(backend, model_concurrency=1, model_queue=0)
    # Malformed JSON: answered 429, not 400, so nothing parsed it; and the connection survives.
    refused, metrics = asyncio.run(_while_model_busy(served.url, b'{"message": ', backend))
    assert [r.status_code for r in refused] == [429, 429]
    assert all(r.headers["retry-after"] == "2" for r in refused)
    assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
    assert refused[0].json()["title"] == "Over capacity"
    assert 'switchboard_shed_total{action="rejected"} 2.0' in metrics
    # With the model free again the same body reaches the parser and gets its 400.
    after = served.client.post(
        "/classify", content=b'{"message": ', headers={"content-type": "application/json"}
    )
    assert after.status_code == 400


def test_degrade_policy_is_never_refused_early(make_served: ServeFactory) -> None:
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9), latency_s=1.0)
    served = make_served(backend, model_concurrency=1, model_queue=0)
    body = b'{"message": "I had a seizure after the second dose"}'
    answered, _ = asyncio.run(_while_model_busy(served.url, body, backend))
    assert [r.status_code for r in answered] == [200, 200]
    assert all(r.json()["degraded"] for r in answered)
    assert all(r.json()["category"] == "safety_compliance" for r in answered)
    assert "model queue full" in " ".join(s["detail"] for s in answered[0].json()["decision_path"])
