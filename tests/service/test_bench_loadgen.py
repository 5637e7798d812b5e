"""The benchmarks' own machinery: the open-loop client, outcome counting, recovery, queue sizing.

The benchmarks themselves run with ``make bench``; these keep their arithmetic honest.
"""

from __future__ import annotations

import asyncio
import json

from eval.bench import openloop, spike
from eval.bench.openloop import Result
from tests.service.conftest import ServeFactory


def test_open_loop_offers_the_rate_and_sees_every_response(make_served: ServeFactory) -> None:
    served = make_served()
    client = openloop.OpenLoop(served.url, timeout_s=5, max_requests=30)
    run = asyncio.run(client.run(lambda _t: 50, 2))
    assert len(run.results) == 30  # bounded by count before time ran out
    assert {r.status for r in run.results} == {200}
    ids = {json.loads(r.body)["decision_id"] for r in run.results}
    assert len(ids) == 30
    assert all(served.client.get(f"/decisions/{i}").status_code == 200 for i in ids)
    assert run.elapsed_s < 10


def test_a_request_past_its_deadline_is_a_timeout() -> None:
    async def main() -> openloop.Run:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.read()  # never answers; returns when the client hangs up
            finally:
                writer.close()

        server = await asyncio.start_server(silent, openloop.HOST, 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            client = openloop.OpenLoop(f"http://{openloop.HOST}:{port}", timeout_s=0.2)
            return await client.run(lambda _t: 20, 0.2)

    run = asyncio.run(main())
    assert run.results
    assert {r.status for r in run.results} == {0}


def test_outcomes_and_recovery() -> None:
    ok = Result(0.0, 0.05, 200, b'{"degraded":false}')
    degraded = Result(0.0, 0.05, 200, b'{"degraded":true}')
    assert [spike.outcome(r) for r in (ok, degraded)] == ["200", "200_degraded"]
    assert spike.outcome(Result(0.0, 0.0, 429, retry_after="1")) == "429"
    assert spike.outcome(Result(0.0, 0.0, 500)) == "5xx"
    assert spike.outcome(Result(0.0, 5.0, 0)) == "timeout"
    # Spike ends at t=10; slow and shed answers until 11.2, then fast 200s again.
    results = [Result(10 + i * 0.1, 0.4, 429 if i % 2 else 200) for i in range(12)]
    results += [Result(11.2 + i * 0.1, 0.06, 200) for i in range(30)]
    assert spike.recovery_s(results, 10.0, 100.0, 14.2) == 2.0
    assert spike.recovery_s(results[:12], 10.0, 100.0, 11.2) == float("inf")


def test_the_queue_leaves_room_in_the_budget() -> None:
    assert spike.queue_for_budget(4, 50, 250) == 4  # one model latency of waiting
    assert spike.queue_for_budget(8, 20, 250) == 32
    assert spike.queue_for_budget(4, 200, 250) == 0  # a slow model: no waiting at all
