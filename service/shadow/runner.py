"""The shadow worker: a candidate revision decides what the live engines decided, off the path.

``/classify`` hands each recorded decision to ``Shadow.offer`` (no await, no I/O: a bounded queue
put; a full queue drops and counts). One background task takes what is queued and, per message:

- prepares it for the candidate (the live redaction is reused when both revisions redact alike);
- renders the candidate's prompt; identical to the live one, the live verdict is reused: no call;
- otherwise decides only a sampled share (``SWITCHBOARD_SHADOW_SAMPLE_RATE``), and only while a
  model slot is free (no live request waits for one);
- concludes, compares, counts, and stores the row in ``shadow_decisions`` of the tenant's store.

A shadow decision never reaches ``decisions``, the outbox or the review queue: it cannot act.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from engine import Engine
from engine.backends.base import LabelVerdict
from engine.categories import VerdictStatus
from engine.decide.request import Prepared, Traced
from engine.errors import PromptRenderError
from service.admission import ModelGuard
from service.audit import AuditStore, now_iso
from service.audit.shadow import ShadowRow, VerdictSource
from service.metrics import Metrics
from service.runtime import EngineSet
from service.shadow.compare import sampled, shadow_row

log = logging.getLogger("switchboard.shadow")


@dataclass
class ShadowRun:
    """One candidate in shadow: what was loaded, by whom, and what became of each offer."""

    run_id: str
    directory: str
    candidate: EngineSet
    started_by: str
    sample_rate: float
    started_at: str = field(default_factory=now_iso)
    stopped_at: str | None = None
    offered: int = 0
    decided: Counter[str] = field(default_factory=Counter)  # by verdict source
    skipped: Counter[str] = field(default_factory=Counter)  # by reason

    def describe(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "directory": self.directory,
            "candidate": self.candidate.describe(),
            "started_by": self.started_by,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "sample_rate": self.sample_rate,
            "offered": self.offered,
            "decided": dict(self.decided),
            "skipped": dict(self.skipped),
        }


@dataclass(frozen=True)
class _Offered:
    live: Engine
    traced: Traced
    tenant: str
    region: str
    store: AuditStore


class Shadow:
    """At most one candidate beside the live engines, and the task that decides for it."""

    def __init__(
        self, guard: ModelGuard, metrics: Metrics, *, queue_size: int, batch: int = 64
    ) -> None:
        self._guard = guard
        self._metrics = metrics
        self._queue_size = queue_size
        self._batch = batch
        self._queue: asyncio.Queue[_Offered] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None
        self.run: ShadowRun | None = None
        self.last: ShadowRun | None = None  # the run before, for its report after a stop

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def start(self, run: ShadowRun) -> None:
        """Run ``run`` (the caller stops any other first)."""
        assert self.run is None, "stop the running shadow first"
        self._queue = asyncio.Queue(self._queue_size)
        self.run = run
        self._worker = asyncio.create_task(self._work(run, self._queue))
        self._metrics.shadow_active.set(1)
        log.info("shadow started", extra={"fields": {"event": "shadow_started", **_brief(run)}})

    async def stop(self) -> ShadowRun | None:
        """Stop the running candidate; what is still queued is dropped (``stopped``)."""
        run, worker = self.run, self._worker
        if run is None:
            return None
        self.run, self._worker = None, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
            self._skip(run, "stopped")
        run.stopped_at = now_iso()
        self.last = run
        self._metrics.shadow_active.set(0)
        self._metrics.shadow_queue.set(0)
        log.info("shadow stopped", extra={"fields": {"event": "shadow_stopped", **_brief(run)}})
        return run

    async def drain(self) -> None:
        """Return once everything offered so far is decided or skipped (tests, reports)."""
        await self._queue.join()

    def offer(
        self, live: Engine, traced: Traced, *, tenant: str, region: str, store: AuditStore
    ) -> None:
        """Queue a recorded live decision for the candidate; never waits."""
        run = self.run
        if run is None:
            return
        run.offered += 1
        if live.loaded.id not in run.candidate.engines:
            self._skip(run, "no_candidate")
            return
        try:
            self._queue.put_nowait(_Offered(live, traced, tenant, region, store))
        except asyncio.QueueFull:
            self._skip(run, "queue_full")
            return
        self._metrics.shadow_queue.set(self._queue.qsize())

    def _skip(self, run: ShadowRun, reason: str) -> None:
        run.skipped[reason] += 1
        self._metrics.shadow_skipped.labels(reason).inc()

    async def _work(self, run: ShadowRun, queue: asyncio.Queue[_Offered]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self._batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._decide_batch(run, batch)
            finally:
                for _ in batch:
                    queue.task_done()
                self._metrics.shadow_queue.set(queue.qsize())

    async def _decide_batch(self, run: ShadowRun, batch: list[_Offered]) -> None:
        by_store: dict[int, tuple[AuditStore, list[ShadowRow]]] = {}
        for item in batch:
            # One message at a time between live requests: a batch decided in one go would hold
            # the event loop for tens of milliseconds.
            await asyncio.sleep(0)
            try:
                row = await self._decide(run, item)
            except Exception:  # a candidate failing on one message must not stop the shadow
                log.exception("shadow decision failed", extra={"fields": _brief(run)})
                self._skip(run, "failed")
                continue
            if row is not None:
                by_store.setdefault(id(item.store), (item.store, []))[1].append(row)
        for store, rows in by_store.values():
            try:
                # Its own transaction, through the store's group writer: never a live one's.
                await store.append_shadow(rows)
            except Exception:
                log.exception("shadow rows not stored", extra={"fields": _brief(run)})
                for _ in rows:
                    self._skip(run, "failed")
                continue
            for row in rows:
                run.decided[row.verdict.value] += 1
                self._metrics.shadow_decisions.labels(
                    row.tenant,
                    "agree" if row.agree else "disagree",
                    row.safety.value,
                    row.verdict.value,
                ).inc()

    async def _decide(self, run: ShadowRun, item: _Offered) -> ShadowRow | None:
        candidate = run.candidate.engines[item.live.loaded.id]
        traced = item.traced
        prepared = candidate.prepare_as(item.live, traced.prepared)
        if prepared is None:  # the candidate redacts or normalises differently: its own pass
            own = await asyncio.to_thread(candidate.prepare, traced.prepared.request)
            prepared = _same_message(own, traced.prepared)
        source = VerdictSource.SHARED
        if prepared.redaction == "failed":
            verdict = LabelVerdict.failed(VerdictStatus.SKIPPED, "redaction failed: not sent")
        elif traced.prompt is None:
            # The live decision sent nothing (overload, open circuit, redaction failed): the
            # candidate is judged on the same footing.
            verdict = traced.verdict
        else:
            try:
                prompt = candidate.prompts.render(
                    prepared.redacted, traced.prepared.request.channel
                )
            except PromptRenderError as exc:
                verdict = LabelVerdict.failed(VerdictStatus.ERROR, str(exc))
            else:
                if prompt == traced.prompt:
                    verdict = traced.verdict
                elif not sampled(prepared.decision_id, run.sample_rate):
                    self._skip(run, "not_sampled")
                    return None
                elif not self._guard.slot_free():
                    # Live requests hold every model slot or wait for one: they go first.
                    self._skip(run, "model_busy")
                    return None
                else:
                    verdict = await candidate.ask_model(prompt, deadline_s=candidate.deadline_s)
                    source = VerdictSource.MODEL
        record = candidate.conclude(prepared, verdict)
        return shadow_row(
            run.run_id,
            traced.record,
            record,
            tenant=item.tenant,
            region=item.region,
            verdict=source,
        )


def _same_message(own: Prepared, live: Prepared) -> Prepared:
    """The candidate's own preparation, under the live decision's id and receipt time."""
    return replace(own, decision_id=live.decision_id, received_at=live.received_at)


def _brief(run: ShadowRun) -> dict[str, Any]:
    return {"run_id": run.run_id, "directory": run.directory}
