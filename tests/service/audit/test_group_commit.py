"""The group-commit writer outlives what goes wrong around it: a caller that stops waiting (its
unit is dropped), a commit that raises or forgets a unit (those units fail); the thread goes on
committing for everyone else."""

from __future__ import annotations

import asyncio
import threading

import pytest

from engine.errors import AuditStoreError
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


async def test_a_commit_that_raises_fails_its_units_and_the_writer_goes_on() -> None:
    """Not only database errors: anything ``commit`` lets escape (a parameter the driver cannot
    bind, a bug) fails that batch's callers with AuditStoreError, and later units commit."""
    committed: list[str] = []

    def commit(work: list[Work]) -> None:
        for statements, _ in work:
            if any(sql == "unbindable" for sql, _ in statements):
                raise OverflowError("Python int too large to convert to SQLite INTEGER")
        for statements, fut in work:
            committed.extend(sql for sql, _ in statements)
            fut.set_result(None)

    writer = GroupCommitWriter(commit, batch=8)
    with pytest.raises(AuditStoreError, match="could not commit") as raised:
        await asyncio.wait_for(writer.submit(("unbindable", ())), 10)
    assert isinstance(raised.value.__cause__, OverflowError)
    await asyncio.wait_for(writer.submit(("after", ())), 10)
    await writer.stop()
    assert committed == ["after"]


async def test_a_unit_that_commit_leaves_unsettled_fails_instead_of_waiting() -> None:
    def commit(work: list[Work]) -> None:
        for statements, fut in work:
            if statements[0][0] != "forgotten":
                fut.set_result(None)

    writer = GroupCommitWriter(commit, batch=8)
    with pytest.raises(AuditStoreError, match="unsettled"):
        await asyncio.wait_for(writer.submit(("forgotten", ())), 10)
    await asyncio.wait_for(writer.submit(("kept", ())), 10)
    await writer.stop()
