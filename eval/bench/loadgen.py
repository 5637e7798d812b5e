"""The servers under load for the service benchmarks, and ``wrk`` to load them.

Starts ``switchboard serve`` (fake backend at a set latency) or the bare FastAPI ceiling as real
processes on loopback, waits for them to be ready, samples a process's RSS, file descriptors and
threads, and reads a metric from ``/metrics``. ``wrk`` (Debian's package) gives raw throughput:
closed loop, fixed connections, a Lua script that POSTs JSON and prints its latency percentiles
as one JSON line. The asyncio client for runs that must see every response is in ``openloop``.

Only loopback addresses are ever targeted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from eval.bench.messages import BODIES
from eval.bench.openloop import HOST

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "bench-admin-token"  # noqa: S105 - a loopback benchmark's throwaway token


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def edit_policy(
    policies: Path, change: Callable[[dict[str, Any]], None], *, policy: str = "contact-center"
) -> None:
    """Apply ``change`` to a policy copy's ``policy.yaml`` (comments are not kept)."""
    path = policies / policy / "policy.yaml"
    data = yaml.safe_load(path.read_text("utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")


def policy_workdir(root: Path) -> Path:
    """A writable copy of policies/ and prompts/ laid out like the repo; returns the policies."""
    shutil.copytree(REPO / "policies", root / "policies")
    shutil.copytree(REPO / "prompts", root / "prompts")
    shutil.copytree(REPO / "tenants", root / "tenants")
    return root / "policies"


# -- server processes ------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def _wait_ready(server: Server, path: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {server.log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready after {timeout_s}s")


@contextlib.contextmanager
def run_server(
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    ready_path: str,
    logdir: Path,
    *,
    ready_timeout_s: float = 90,
) -> Iterator[Server]:
    port = free_port()
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--host", HOST, "--port", str(port)],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    server = Server(name, f"http://{HOST}:{port}", proc, log)
    try:
        _wait_ready(server, ready_path, ready_timeout_s)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def service_env(
    workdir: Path, *, latency_ms: float, concurrency: int, queue: int, **extra: str
) -> dict[str, str]:
    return {
        "SWITCHBOARD_POLICIES": str(workdir / "policies"),
        "SWITCHBOARD_AUDIT_DB": str(workdir / "audit.db"),
        "SWITCHBOARD_BACKEND": "fake",
        "SWITCHBOARD_FAKE_LATENCY_MS": str(latency_ms),
        "SWITCHBOARD_MODEL_CONCURRENCY": str(concurrency),
        "SWITCHBOARD_MODEL_QUEUE": str(queue),
        "SWITCHBOARD_ADMIN_TOKEN": ADMIN_TOKEN,
        "SWITCHBOARD_AUTH": "off",  # loopback; the fairness benchmark turns it on
        "SWITCHBOARD_PROBE_INTERVAL_S": "60",
        **extra,
    }


@contextlib.contextmanager
def service(
    workdir: Path, *, latency_ms: float, concurrency: int = 64, queue: int = 256, **extra: str
) -> Iterator[Server]:
    """``switchboard serve --backend fake`` as its own process (Presidio redaction included)."""
    env = service_env(workdir, latency_ms=latency_ms, concurrency=concurrency, queue=queue, **extra)
    argv = [sys.executable, "-m", "engine", "serve", "--backend", "fake"]
    with run_server(f"service-{latency_ms:g}ms", argv, env, "/readyz", workdir) as server:
        yield server


@contextlib.contextmanager
def bare(logdir: Path) -> Iterator[Server]:
    """The ceiling: a FastAPI endpoint that returns a constant, under the same uvicorn."""
    argv = [sys.executable, "-m", "uvicorn", "eval.bench.bare_app:app", "--log-level", "warning"]
    with run_server("bare", argv, {}, "/healthz", logdir) as server:
        yield server


@contextlib.contextmanager
def busy(cores: int) -> Iterator[None]:
    """``cores`` processes that spin until the block ends: noisy neighbours on a shared machine."""
    spin = "import time\nwhile True: time.perf_counter()"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cores)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)


# -- process sampling ------------------------------------------------------------------------


def process_sample(pid: int) -> dict[str, float]:
    """RSS (MiB), open file descriptors and threads of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mib": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its threads so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def metric_value(url: str, name: str) -> float | None:
    text = httpx.get(url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


# -- wrk -------------------------------------------------------------------------------------

_WRK_LUA = """
local bodies = {%s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  return wrk.format(nil, "/classify", nil, bodies[(i %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local s = summary
  io.write(string.format(
    '{"requests":%%d,"duration_us":%%d,"non2xx":%%d,"errors_connect":%%d,"errors_read":%%d,' ..
    '"errors_write":%%d,"errors_timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"max_us":%%d}\\n',
    s.requests, s.duration, s.errors.status, s.errors.connect, s.errors.read,
    s.errors.write, s.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk(url: str, *, seconds: int, connections: int, threads: int = 1) -> dict[str, float]:
    """Closed-loop load with wrk; rps and latency percentiles in ms."""
    lua_bodies = ", ".join("[[" + b.decode() + "]]" for b in BODIES)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_LUA % lua_bodies)
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "5s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(x for x in out.splitlines() if x.startswith("{"))
    raw = json.loads(line)
    errors = sum(raw[k] for k in raw if k.startswith("errors_"))
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "requests": raw["requests"],
        "non_2xx": raw["non2xx"],
        "socket_errors": errors,
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
    }
