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
