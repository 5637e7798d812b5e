"""The group-commit writer outlives a caller that stops waiting: a cancelled unit is dropped and
the thread goes on committing for everyone else."""

from __future__ import annotations

import asyncio
import threading

from service.audit.group_commit import GroupCommitWriter, Work


async def test_a_cancelled_caller_does_not_stop_the_writer() -> None:
    committed: list[str] = []
    busy, release = threading.Event(), threading.Event()

    def commit(work: list[Work]) -> None:
        if not committed:
            busy.set()
            release.wait(10)  # hold the first batch so the next unit waits in the queue
        for statements, fut in work:
            committed.extend(sql for sql, _ in statements)
            fut.set_result(None)

    writer = GroupCommitWriter(commit, batch=8)
    first = asyncio.create_task(writer.submit(("first", ())))
    await asyncio.to_thread(busy.wait, 10)
    gone = asyncio.create_task(writer.submit(("cancelled", ())))
    await asyncio.sleep(0)  # queued
    gone.cancel()
    await asyncio.sleep(0)
    release.set()
    await first
    await asyncio.wait_for(writer.submit(("after", ())), 10)
    await writer.stop()
    assert committed == ["first", "after"]
