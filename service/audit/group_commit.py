"""Group commit for the audit stores: one writer thread, and a caller that waits for COMMIT.

Both audit stores (SQLite and PostgreSQL) queue their inserts here. One thread takes whatever
is queued (up to ``batch`` items) and hands it to the store's ``commit`` function as one
transaction; each caller's ``submit`` resolves only when its own row is committed, or raises the
error that stopped it. That is what lets the service answer 200 only for a stored decision.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

Work = tuple[str, tuple[Any, ...], "Future[None]"]
"""One queued statement: SQL, its parameters, and the future its caller waits on."""

_STOP = object()


class GroupCommitWriter:
    """A daemon thread that commits queued statements in batches through ``commit``.

    ``commit`` must settle every future in the batch it is given (result or exception).
    """

    def __init__(
        self, commit: Callable[[list[Work]], None], *, batch: int, name: str = "audit-writer"
    ) -> None:
        self._commit = commit
        self._batch = batch
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            work = [item]
            while len(work) < self._batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._queue.put(_STOP)  # finish this batch, then stop
                    break
                work.append(nxt)
            self._commit(work)

    async def submit(self, statement: str, params: tuple[Any, ...]) -> None:
        """Queue one statement and return once it is committed (or raise why it was not)."""
        fut: Future[None] = Future()
        self._queue.put((statement, params, fut))
        await asyncio.wrap_future(fut)

    async def stop(self, timeout_s: float = 10) -> None:
        """Commit what is queued, then end the thread."""
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join, timeout_s)
