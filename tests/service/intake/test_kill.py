"""SIGKILL ``switchboard batch`` and ``switchboard consume`` part-way, run them again: every input
ends with exactly one record, nothing is decided twice, and nothing is left undecided.

Both run as real processes (``python -m engine``) on the fake backend, so the kill lands wherever
it lands: between a commit and the output line, between the result and the ack, mid-write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aio_pika
import pytest

from service.intake.message import decision_id_for
from tests.service.delivery.rabbit import RABBIT_URL, Names, clean_up, rabbit_or_skip

pytestmark = pytest.mark.slow
POLICY = "contact-center"
HANDOFF_KEYS = (
    "dispatch.ticketing",
    "dispatch.knowledge_base",
    "dispatch.pharmacovigilance_db",
    "review.pharmacovigilance",
    "review.service_desk",
    "review.agent_review",
)


def _env(policy_copy: Path, db: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SWITCHBOARD_POLICIES": str(policy_copy.parent),
        "SWITCHBOARD_AUDIT_DB": str(db),
        "SWITCHBOARD_BACKEND": "fake",
        "SWITCHBOARD_FAKE_LATENCY_MS": "3",  # slow enough for the kill to land mid-run
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
        **extra,
    }


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str) -> None:
    """SIGKILL ``proc`` once ``ready()``; it is killed whatever happens, failures included."""
    try:
        deadline = time.monotonic() + 90
        while not ready():
            assert proc.poll() is None, f"{what} ended before the kill"
            assert time.monotonic() < deadline, f"{what} made no progress"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def _recorded(db: Path) -> list[str]:
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return [row[0] for row in conn.execute("SELECT decision_id FROM decisions")]
        except sqlite3.OperationalError:  # the process has not created its tables yet
            return []


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_batch_killed_mid_file_and_rerun_decides_every_line_once(
    policy_copy: Path, tmp_path: Path
) -> None:
    n = 400
    export, out, db = tmp_path / "export.jsonl", tmp_path / "out.jsonl", tmp_path / "audit.db"
    export.write_text(
        "".join(
            json.dumps({"message_id": f"m-{i}", "message": f"where is my order {i}?"}) + "\n"
            for i in range(n)
        ),
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "engine", "batch", str(export), "--out", str(out)]
    command.append("--no-progress")
    env = _env(policy_copy, db)
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(first, lambda: _lines(out) >= n // 4, "batch")
    recorded_at_kill = len(_recorded(db))
    written_at_kill = _lines(out)
    assert written_at_kill < n, "the kill came too late to test a resume"

    rerun = subprocess.run(command, env=env, capture_output=True, timeout=180, check=True)
    summary = json.loads(rerun.stdout)
    print(
        "batch kill:",
        json.dumps(
            {
                "lines": n,
                "recorded_at_kill": recorded_at_kill,
                "written_at_kill": written_at_kill,
                **{k: summary[k] for k in ("decided_now", "skipped_already_in_output")},
                "taken_from_audit_store": summary["taken_from_audit_store"],
            }
        ),
    )
    assert summary["decided_now"] == n - recorded_at_kill, "a recorded line was decided again"
    assert summary["skipped_already_in_output"] + summary["taken_from_audit_store"] == (
        recorded_at_kill
    )
    ids = [json.loads(line)["metadata"]["message_id"] for line in out.read_text().splitlines()]
    # Before the dispatcher's idle wait stopped using asyncio.wait_for, this rerun never exited
    # (a cancel swallowed at shutdown; see Dispatcher._idle).
    assert sorted(ids) == sorted(f"m-{i}" for i in range(n)), "each line once in the output"
    recorded = _recorded(db)
    assert sorted(recorded) == sorted(decision_id_for("dev", POLICY, f"m-{i}") for i in range(n))


async def _publish(queue: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect(RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue,
            )


async def _results(exchange: str, queue: str) -> None:
    connection = await aio_pika.connect(RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        x = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        q = await channel.declare_queue(queue, durable=True)
        await q.bind(x, "result.#")


async def _drain(queue: str) -> list[tuple[str | None, str | None]]:
    """(correlation id, message id) of every result waiting in ``queue``."""
    out: list[tuple[str | None, str | None]] = []
    connection = await aio_pika.connect(RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        q = await channel.declare_queue(queue, durable=True)
        while (message := await q.get(fail=False, timeout=5)) is not None:
            out.append((message.correlation_id, message.message_id))
            await message.ack()
    return out


async def _delete(queues: list[str], exchange: str) -> None:
    connection = await aio_pika.connect(RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)


@pytest.mark.rabbitmq
def test_consume_killed_mid_stream_ends_with_one_record_per_message(
    policy_copy: Path, tmp_path: Path
) -> None:
    rabbit_or_skip()
    n = 300
    names = Names()
    base = names.exchange
    intake, dead, results_x, results = (
        f"{base}.intake",
        f"{base}.intake.dead",
        f"{base}.results",
        f"{base}.results.all",
    )
    db = tmp_path / "audit.db"
    env = _env(
        policy_copy,
        db,
        SWITCHBOARD_BROKER_URL=RABBIT_URL,
        SWITCHBOARD_BROKER_EXCHANGE=names.exchange,
        SWITCHBOARD_BROKER_QUEUE_PREFIX=names.queue_prefix,
    )
    command = [
        *(sys.executable, "-m", "engine", "consume", "--queue", intake),
        *("--dead-letter-queue", dead, "--results-exchange", results_x),
    ]
    try:
        asyncio.run(_results(results_x, results))
        asyncio.run(
            _publish(
                intake,
                [
                    json.dumps({"message_id": f"c-{i}", "message": f"cancel order {i}"}).encode()
                    for i in range(n)
                ],
            )
        )
        first = subprocess.Popen(
            [*command, "--idle-s", "30"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _kill_when(first, lambda: len(_recorded(db)) >= n // 4, "consume")
        recorded_at_kill = len(_recorded(db))
        assert recorded_at_kill < n, "the kill came too late"
        rerun = subprocess.run(
            [*command, "--idle-s", "3"], env=env, capture_output=True, timeout=180, check=True
        )
        counts = json.loads(rerun.stderr.splitlines()[-1])
        got = asyncio.run(_drain(results))
        leftover = asyncio.run(_drain(intake))
    finally:
        asyncio.run(_delete([intake, dead, results], results_x))
        asyncio.run(clean_up(RABBIT_URL, names, HANDOFF_KEYS))
    recorded = _recorded(db)
    per_message = Counter(correlation for correlation, _ in got)
    decisions = dict(got)
    print(
        "consume kill:",
        json.dumps(
            {
                "messages": n,
                "recorded_at_kill": recorded_at_kill,
                "recorded": len(recorded),
                "decided_after_restart": counts["decided"],
                "already_decided_after_restart": counts["already_decided"],
                "result_messages": len(got),
                "distinct_results": len(per_message),
                "results_published_twice": sum(c - 1 for c in per_message.values()),
            }
        ),
    )
    assert leftover == []
    assert sorted(recorded) == sorted(decision_id_for("dev", POLICY, f"c-{i}") for i in range(n))
    assert counts["decided"] == n - recorded_at_kill, "a recorded message was decided again"
    assert set(per_message) == {f"c-{i}" for i in range(n)}, "every message has a result"
    assert all(decisions[f"c-{i}"] == decision_id_for("dev", POLICY, f"c-{i}") for i in range(n))
    # A result published but not acknowledged at the kill is published again (same decision id,
    # header already_decided): at most the messages in flight (prefetch 8).
    assert sum(c - 1 for c in per_message.values()) <= 8
