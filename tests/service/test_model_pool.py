"""The service on the OpenAI-compatible backend against real llama.cpp servers.

Readiness means "this replica can give a decision": with its model endpoint killed the replica
stays ready and answers degraded (rules-only, reviewed) with 200. With one of two endpoints
dead, no request fails and the traffic goes to the live one; the circuit stays closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from engine.backends.model_files import QWEN25_CODER_05B, assemble_model, default_model_dir
from engine.backends.openai_compat import OpenAICompatibleBackend
from service.app import create_app
from service.settings import Settings
from tests.llama_server import MODEL_ALIAS, LlamaServer, free_port, start_llama_server
from tests.service.conftest import serve

pytestmark = pytest.mark.model

ADVERSE = "I experienced a severe headache and nausea right after taking the medication."
ORDINARY = "Please change the delivery address of my order to my office."


@contextmanager
def service(policy_copy: Path, tmp_path: Path, *urls: str) -> Iterator[httpx.Client]:
    # CPU inference of one model call at a time on a shared machine: decisions queue for
    # seconds, which the 3 s production deadline would turn into timeouts.
    policy = policy_copy / "policy.yaml"
    text = policy.read_text("utf-8")
    policy.write_text(text.replace("model_deadline_ms: 3000", "model_deadline_ms: 60000"), "utf-8")
    settings = Settings(
        policies=policy_copy.parent,
        audit_db=str(tmp_path / "audit.db"),
        backend="openai",
        probe_interval_s=0.2,
        breaker_failures=2,
        breaker_cooldown_s=60,
        model_queue=32,
    )
    backend = OpenAICompatibleBackend(urls, MODEL_ALIAS, eject_s=60, probe_timeout_s=1)
    app = create_app(settings, backend=backend, redactor_factory=None)
    with serve(app, start_timeout_s=600) as url, httpx.Client(base_url=url, timeout=600) as c:
        yield c


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_replica_stays_ready_and_degrades_when_its_model_dies(
    policy_copy: Path, tmp_path: Path
) -> None:
    victim = start_llama_server(
        assemble_model(QWEN25_CODER_05B, default_model_dir()), tmp_path / "victim.log"
    )
    try:
        with service(policy_copy, tmp_path, victim.url) as client:
            ready = client.get("/readyz").json()
            assert ready["model"]["healthy"] is True
            before = client.post("/classify", json={"message": ORDINARY}).json()
            assert before["llm"]["status"] == "ok"
            assert before["llm"]["method"] == "top_logprobs"

            victim.kill()
            _wait_for(lambda: client.get("/readyz").json()["model"]["healthy"] is False)

            readiness = client.get("/readyz")
            assert readiness.status_code == 200
            assert readiness.json()["model"]["endpoints"][0]["healthy"] is False
            for message in (ORDINARY, ORDINARY, ORDINARY, ADVERSE):
                r = client.post("/classify", json={"message": message})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["degraded"] or body["llm"]["status"] != "ok"
                assert body["requires_human_review"] is True
            assert body["category"] == "safety_compliance"  # the keyword rules still decide
            metrics = client.get("/metrics").text
            assert "switchboard_model_up 0.0" in metrics
            assert "switchboard_circuit_open 1.0" in metrics
            assert client.get("/readyz").json()["model"]["circuit"] == "open"
    finally:
        victim.kill()


async def _burst(url: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        return await asyncio.gather(
            *(client.post("/classify", json={"message": ORDINARY}) for _ in range(n))
        )


def test_one_of_two_endpoints_dead_no_5xx_and_traffic_moves(
    policy_copy: Path, tmp_path: Path, llama_server: LlamaServer
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # a killed server: nothing listens there
    with service(policy_copy, tmp_path, dead, llama_server.url) as client:
        responses = asyncio.run(_burst(str(client.base_url), 8))
        assert [r.status_code for r in responses] == [200] * 8
        assert all(r.json()["llm"]["status"] == "ok" for r in responses)
        ready = client.get("/readyz").json()
        endpoints = {e["url"]: e for e in ready["model"]["endpoints"]}
        assert endpoints[dead]["healthy"] is False
        # start-up warm-up + 8 decisions all reached the live endpoint
        assert endpoints[llama_server.url]["calls"] >= 8
        assert endpoints[dead]["calls"] == 1  # the warm-up's call found it dead; then left out
        assert ready["model"]["circuit"] == "closed"
        assert ready["model"]["healthy"] is True
