"""Load for the service benchmarks: a real server process on loopback, and two generators.

- ``wrk`` (Debian's package) for raw throughput: closed loop, fixed connections, a Lua script
  that POSTs JSON and prints its latency percentiles as one JSON line.
- ``OpenLoop``: an asyncio HTTP/1.1 keep-alive client with no library in the way, for the runs
  that must see every response (status, ``Retry-After``, decision id, policy revision) and must
  offer load at a set rate whatever the server does (a spike is an open-loop event: callers do
  not slow down because the service is slow). Every request has a deadline; a request not
  answered by it counts as a timeout. Runs are bounded in time and in count.

Only loopback addresses are ever targeted.
"""

from __future__ import annotations

import asyncio
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
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
MESSAGES = [
    "What is your refund policy for prescription products?",
    "I need to open a ticket because my order never arrived.",
    "I experienced a severe headache and nausea right after taking the medication.",
    "can u change the address on order 5521 pls",
    "My mother fainted after her second dose, what should we do?",
    "Does ibuprofen interact with lisinopril? Asking before I buy.",
]
BODIES = [json.dumps({"message": m, "channel": "chat"}).encode() for m in MESSAGES]
IDLE_S = 3.0  # uvicorn closes keep-alive connections idle for 5 s; never reuse one that old
ADMIN_TOKEN = "bench-admin-token"  # noqa: S105 - a loopback benchmark's throwaway token


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def policy_workdir(root: Path) -> Path:
    """A writable copy of policies/ and prompts/ laid out like the repo; returns the policies."""
    shutil.copytree(REPO / "policies", root / "policies")
    shutil.copytree(REPO / "prompts", root / "prompts")
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
    name: str, argv: list[str], env: Mapping[str, str], ready_path: str, logdir: Path
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
        _wait_ready(server, ready_path)
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


# -- the asyncio open-loop client ------------------------------------------------------------


@dataclass
class Result:
    sent_at: float  # seconds since the run started
    latency_s: float
    status: int  # 0: timeout, -1: connection error, -2: not sent (client saturated)
    body: bytes = b""
    retry_after: str | None = None


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    started: float = 0.0
    elapsed_s: float = 0.0

    def json_bodies(self, status: int = 200) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.results if r.status == status]


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.last_used = time.monotonic()

    @classmethod
    async def open(cls, port: int) -> _Conn:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes, str | None]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, retry_after, close = 0, None, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            if key == "content-length":
                length = int(value)
            elif key == "retry-after":
                retry_after = value.strip()
            elif key == "connection" and value.strip().lower() == "close":
                close = True
        body = await self.reader.readexactly(length) if length else b""
        self.last_used = time.monotonic()
        if close:
            self.close()
        return status, body, retry_after

    @property
    def usable(self) -> bool:
        return not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


def post_bytes(port: int, path: str, body: bytes, headers: Mapping[str, str] = {}) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


class OpenLoop:
    """Offers ``rate(t)`` requests per second for ``seconds``; every request has a deadline.

    Connections are kept alive and reused; a new one opens when all are busy, up to
    ``max_connections`` (a request that finds none is counted as not sent, status -2, so the
    client's own limit is visible instead of hidden). ``max_requests`` bounds the run.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_connections: int = 2048,
        max_requests: int = 2_000_000,
        path: str = "/classify",
        keep_bodies: bool = True,
        unique: bool = False,
    ) -> None:
        self.port = int(url.rsplit(":", 1)[1])
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.max_requests = max_requests
        self.path = path
        self.keep_bodies = keep_bodies
        self.unique = unique
        self._idle: list[_Conn] = []
        self._every: set[_Conn] = set()  # closed at the end of a run, whatever happened
        self._open = 0
        self._raw = [post_bytes(self.port, path, b) for b in BODIES]

    def _request(self, i: int) -> bytes:
        if not self.unique:
            return self._raw[i % len(self._raw)]
        # Real traffic: order numbers, names, typos never seen before (what grows a tokenizer's
        # vocabulary); three new tokens per message.
        message = f"{MESSAGES[i % len(MESSAGES)]} Order Q{i}X, ref zq{i * 7}k, agent Vb{i * 13}."
        body = json.dumps({"message": message, "channel": "chat"}).encode()
        return post_bytes(self.port, self.path, body)

    async def _one(self, run: Run, i: int) -> None:
        sent_at = time.perf_counter() - run.started
        conn: _Conn | None = None
        if self._idle:
            conn = self._idle.pop()  # its slot is this request's now
            if time.monotonic() - conn.last_used > IDLE_S:
                conn.close()  # the server may be closing it: a fresh one takes its slot
                conn = None
        elif self._open < self.max_connections:
            self._open += 1
        else:
            run.results.append(Result(sent_at, 0.0, -2))
            return
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = await asyncio.wait_for(_Conn.open(self.port), self.timeout_s)
                self._every.add(conn)
            remaining = self.timeout_s - (time.perf_counter() - t0)
            status, body, retry_after = await asyncio.wait_for(
                conn.request(self._request(i)), max(remaining, 0.001)
            )
        except asyncio.TimeoutError:
            run.results.append(Result(sent_at, time.perf_counter() - t0, 0))
            self._drop(conn)
            return
        except (OSError, asyncio.IncompleteReadError, ValueError):
            run.results.append(Result(sent_at, time.perf_counter() - t0, -1))
            self._drop(conn)
            return
        kept = body if status == 200 and self.keep_bodies else b""
        run.results.append(Result(sent_at, time.perf_counter() - t0, status, kept, retry_after))
        if conn.usable:
            self._idle.append(conn)
        else:
            self._open -= 1

    def _drop(self, conn: _Conn | None) -> None:
        self._open -= 1
        if conn is not None:
            conn.close()

    async def run(
        self,
        rate: Callable[[float], float],
        seconds: float,
        on_tick: Callable[[float], None] | None = None,
    ) -> Run:
        run = Run(started=time.perf_counter())
        tasks: set[asyncio.Task[None]] = set()
        sent = 0
        owed = 0.0
        last = 0.0
        tick = 0.002
        while True:
            now = time.perf_counter() - run.started
            if now >= seconds or sent >= self.max_requests:
                break
            owed += rate(now) * (now - last)
            last = now
            while owed >= 1 and sent < self.max_requests:
                owed -= 1
                task = asyncio.create_task(self._one(run, sent))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if on_tick is not None:
                on_tick(now)
            await asyncio.sleep(tick)
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout_s + 5)
        run.elapsed_s = time.perf_counter() - run.started
        await self.aclose(tasks)
        return run

    async def aclose(self, tasks: Collection[asyncio.Task[None]] = ()) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in self._every:
            conn.close()
        await asyncio.sleep(0)  # let the transports finish closing inside the loop
        self._every.clear()
        self._idle.clear()
        self._open = 0


def closed_loop(url: str, *, connections: int, seconds: float) -> Run:
    """``connections`` callers, each sending its next request when the last is answered."""

    async def main() -> Run:
        client = OpenLoop(url, max_connections=connections)
        run = Run(started=time.perf_counter())
        end = run.started + seconds

        async def caller(k: int) -> None:
            i = k
            while time.perf_counter() < end:
                await client._one(run, i)
                i += connections

        await asyncio.gather(*(caller(k) for k in range(connections)))
        run.elapsed_s = time.perf_counter() - run.started
        await client.aclose()
        return run

    return asyncio.run(main())
