"""The service on the OpenAI-compatible backend against real llama.cpp servers.

Readiness means "this replica can give a decision": with its model endpoint killed the replica
stays ready and answers degraded (rules-only, reviewed) with 200. With one of two endpoints
killed mid-run, no request fails and the traffic moves to the live one; the circuit stays
closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.backends.model_files import QWEN25_CODER_05B, assemble_model, default_model_dir
from engine.backends.openai_compat import OpenAICompatibleBackend
from service.app import create_app
from service.settings import Settings
from tests.conftest import REPO
from tests.llama_server import MODEL_ALIAS, LlamaServer, start_llama_server
from tests.service.conftest import serve
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.model

ADVERSE = "I experienced a severe headache and nausea right after taking the medication."
ORDINARY = "Please change the delivery address of my order to my office."


@contextmanager
def service(
    policy_copy: Path, tmp_path: Path, *urls: str, probe_s: float = 0.2
) -> Iterator[httpx.Client]:
    # CPU inference of one model call at a time on a shared machine: decisions queue for
    # seconds, which the 3 s production deadline would turn into timeouts.
    policy = policy_copy / "policy.yaml"
    text = policy.read_text("utf-8")
    policy.write_text(text.replace("model_deadline_ms: 3000", "model_deadline_ms: 60000"), "utf-8")
    settings = Settings(
        policies=policy_copy.parent,
        audit_db=str(tmp_path / "audit.db"),
        backend="openai",
        probe_interval_s=probe_s,
        breaker_failures=2,
        breaker_cooldown_s=60,
        model_queue=32,
        tenants=REPO / "tenants",
        auth="off",  # the dev tenant, as `make run`
    )
    backend = OpenAICompatibleBackend(urls, MODEL_ALIAS, eject_s=60, probe_timeout_s=1)
    app = create_app(settings, backend=backend, redactor_factory=None)
    with serve(app, start_timeout_s=600) as url, httpx.Client(base_url=url, timeout=600) as c:
        yield c


def _model_seen_down(model: dict[str, Any]) -> bool:
    return model["healthy"] is False and model["endpoints"][0]["healthy"] is False


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
            # Both signals, not the first: a probe that timed out while the model was busy with
            # the call above can leave ``healthy`` False from before the kill, and that call's
            # success then put the endpoint back until the next probe (seen once in CI).
            _wait_for(lambda: _model_seen_down(client.get("/readyz").json()["model"]))

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


def _calls(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {e["url"]: e for e in client.get("/readyz").json()["model"]["endpoints"]}


def test_one_of_two_endpoints_dead_no_5xx_and_traffic_moves(
    policy_copy: Path, tmp_path: Path, llama_server: LlamaServer
) -> None:
    # Two endpoints, one model process: the second is a TCP forwarder to the same server, so
    # both take traffic until the forwarder is killed mid-run (resets, then refused connects).
    port = int(llama_server.url.split(":")[2].split("/")[0])
    proxy = TcpProxy(port)
    doomed = f"http://127.0.0.1:{proxy.port}/v1"
    try:
        # No background probe during the test: only the calls themselves find the dead one.
        with service(policy_copy, tmp_path, doomed, llama_server.url, probe_s=3600) as client:
            for _ in range(4):
                assert client.post("/classify", json={"message": ORDINARY}).status_code == 200
            before = _calls(client)
            assert before[doomed]["calls"] >= 2  # round-robin: both endpoints served
            assert before[llama_server.url]["calls"] >= 2

            proxy.kill()
            responses = asyncio.run(_burst(str(client.base_url), 8))
            assert [r.status_code for r in responses] == [200] * 8
            assert [r.json()["llm"]["status"] for r in responses] == ["ok"] * 8
            after = _calls(client)
            assert after[doomed]["healthy"] is False
            failed = after[doomed]["failures"] - before[doomed]["failures"]
            assert failed >= 1  # a call found it dead and moved on to the live one
            assert after[doomed]["calls"] - before[doomed]["calls"] == failed
            moved = after[llama_server.url]["calls"] - before[llama_server.url]["calls"]
            assert moved == 8  # every decision of the burst was answered by the live one
            ready = client.get("/readyz").json()
            assert ready["model"]["circuit"] == "closed"
    finally:
        proxy.kill()
