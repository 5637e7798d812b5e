"""SIGKILL in the middle of a burst: every decision answered with 200 is in the audit store."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.service.conftest import free_port

pytestmark = pytest.mark.slow


async def _burst(url: str, answered: list[str], stop_after: float) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:

        async def one(i: int) -> None:
            try:
                r = await client.post("/classify", json={"message": f"where is order {i}?"})
            except httpx.HTTPError:
                return
            if r.status_code == 200:
                answered.append(r.json()["decision_id"])

        end = time.monotonic() + stop_after
        i = 0
        while time.monotonic() < end:
            await asyncio.gather(*(one(i + k) for k in range(16)))
            i += 16


def test_sigkill_loses_no_answered_decision(policy_copy: Path, tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "audit.db"
    env = {
        **os.environ,
        "SWITCHBOARD_POLICIES": str(policy_copy.parent),
        "SWITCHBOARD_AUDIT_DB": str(db),
        "SWITCHBOARD_TENANTS": str(REPO / "tenants"),
        "SWITCHBOARD_AUTH": "off",  # the dev tenant, on the default loopback bind
        "SWITCHBOARD_BACKEND": "fake",
        "SWITCHBOARD_FAKE_LATENCY_MS": "5",
        "SWITCHBOARD_MODEL_QUEUE": "64",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        answered: list[str] = []

        async def run() -> None:
            burst = asyncio.create_task(_burst(url, answered, stop_after=10))
            await asyncio.sleep(1.5)
            proc.send_signal(signal.SIGKILL)
            await burst

        asyncio.run(run())
    finally:
        proc.kill()
        proc.wait(10)
    assert len(answered) > 50, "the burst did not get going before the kill"
    with sqlite3.connect(db) as conn:  # opening it recovers the WAL, as a restart would
        stored = {row[0] for row in conn.execute("SELECT decision_id FROM decisions")}
    missing = set(answered) - stored
    assert not missing, f"{len(missing)} of {len(answered)} answered decisions were lost"
