"""An asyncio HTTP/1.1 keep-alive load client for the service benchmarks, no library in the way.

``OpenLoop`` offers load at a set rate whatever the server does (a spike is an open-loop event:
callers do not slow down because the service is slow) and keeps every response (status,
``Retry-After``, body) for the runs that must inspect them. ``closed_loop`` is the classic fixed
number of callers. Every request has a deadline; a request not answered by it counts as a
timeout. Runs are bounded in time and in count, and only loopback addresses are targeted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from eval.bench.messages import BODIES, unique_body

HOST = "127.0.0.1"
IDLE_S = 3.0  # uvicorn closes keep-alive connections idle for 5 s; never reuse one that old


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
        return post_bytes(self.port, self.path, unique_body(i))

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
