"""Group commit for the audit stores: one writer thread, and a caller that waits for COMMIT.

Both audit stores (SQLite and PostgreSQL) queue their writes here. A caller submits one *unit*:
the statements that must commit together (a decision and its outbox rows, a review outcome and
its follow-on hand-offs). One thread takes whatever is queued (up to ``batch`` units) and hands it
to the store's ``commit`` function as one transaction; each caller's ``submit`` resolves only when
its own unit is committed, or raises the error that stopped it. That is what lets the service
answer 200 only for a stored decision, and lets nothing be handed off that was not stored.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from engine.errors import AuditStoreError

Statement = tuple[str, tuple[Any, ...]]
"""SQL and its parameters."""
Work = tuple[tuple[Statement, ...], "Future[None]"]
"""One queued unit: statements that commit together or not at all, and its caller's future."""

_STOP = object()


def _settle_rest(work: list[Work], error: AuditStoreError) -> None:
    for _, fut in work:
        if not fut.done():
            fut.set_exception(error)


class GroupCommitWriter:
    """A daemon thread that commits queued statements in batches through ``commit``.

    ``commit`` must settle every future in the batch it is given (result or exception), and
    commit each unit whole or not at all. If it raises instead, or leaves a future unsettled,
    the units it left fail with ``AuditStoreError`` (their callers answer 503) and the thread
    goes on: a writer thread that ended would leave every later write waiting for ever.
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
            # A caller cancelled while waiting (a task stopped at shutdown) has cancelled its
            # future; that unit is dropped. The others become uncancellable here, so that
            # ``commit`` can always settle them: a cancelled future would make ``set_result``
            # raise and end this thread, and every later write would wait for ever.
            work = [w for w in work if w[1].set_running_or_notify_cancel()]
            if work:
                self._run(work)

    def _run(self, work: list[Work]) -> None:
        try:
            self._commit(work)
        except Exception as exc:
            failed = AuditStoreError(f"the audit writer could not commit: {exc!r}")
            failed.__cause__ = exc
            _settle_rest(work, failed)
        _settle_rest(work, AuditStoreError("the audit writer left a write unsettled"))

    async def submit(self, *statements: Statement) -> None:
        """Queue one unit and return once all of it is committed (or raise why it was not)."""
        fut: Future[None] = Future()
        self._queue.put((statements, fut))
        await asyncio.wrap_future(fut)

    async def stop(self, timeout_s: float = 10) -> None:
        """Commit what is queued, then end the thread."""
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join, timeout_s)
