"""The dispatcher: delivers committed hand-offs from the outbox, at least once, after the commit.

It reads pending outbox rows in commit order, delivers each through ``Integrations`` and records
the result in the delivery-state table (never in the outbox, which is append-only). Retries use
tenacity:

- a hand-off the broker refuses (``HandOffRejectedError``) is retried with exponential backoff up
  to ``max_attempts``, then settled as ``dead`` with the reason (``GET /admin/outbox``, the
  ``switchboard_outbox_dead`` gauge) until an operator replays it;
- a broker that cannot be reached (``BrokerUnavailableError``) is nothing the hand-off did: the
  batch stays pending, no attempt is counted, and the dispatcher backs off (capped) and tries
  again, so an outage fills the outbox and its end drains it.

A hand-off is marked delivered only after the broker's confirm. A crash between the confirm and
that mark delivers it again on restart, under the same idempotency key: consumers drop keys they
have seen (``docs/delivery.md``).

Only rows above a *floor* (every row at or below it is settled) are read, so polling costs what
is pending, not the whole outbox; the floor goes back to 0 every ``full_scan_s`` so a row that
committed late with a lower id (several PostgreSQL writers) is still found.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
)

from engine.errors import AuditStoreError, BrokerUnavailableError, HandOffRejectedError
from service.audit import AuditStore, now_iso
from service.audit.outbox import OutboxEntry, Settlement
from service.delivery.integrations import Integrations
from service.delivery.metrics import DeliveryMetrics

log = logging.getLogger("switchboard.delivery")


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard and how fast the dispatcher tries (``SWITCHBOARD_DELIVERY_*`` settings)."""

    max_attempts: int = 5
    retry_wait_s: float = 0.5
    retry_wait_max_s: float = 10.0
    broker_wait_max_s: float = 5.0
    batch: int = 100
    poll_s: float = 1.0
    full_scan_s: float = 30.0
    depth_every_s: float = 1.0


class Dispatcher:
    """One per process: a delivery task and an outbox-depth task, started and stopped by the app."""

    def __init__(
        self,
        store: AuditStore,
        integrations: Integrations,
        metrics: DeliveryMetrics,
        *,
        policy: DeliveryPolicy | None = None,
        clock: Callable[[], str] = now_iso,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.integrations = integrations
        self.metrics = metrics
        self.policy = policy or DeliveryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._floor = 0
        self._next_full_scan = time.monotonic() + self.policy.full_scan_s
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._deliver_forever(), name="outbox-dispatcher"),
            asyncio.create_task(self._measure_forever(), name="outbox-depth"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.integrations.close()

    def nudge(self) -> None:
        """Something was committed: look now rather than at the next poll."""
        self._wake.set()

    # -- delivery ----------------------------------------------------------------------------

    async def _deliver_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                settled = await self.deliver_pending()
            except asyncio.CancelledError as exc:
                # aiormq fails every pending call with CancelledError when its heartbeat gives up
                # on a broker that stopped answering: that is not this task being stopped.
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                self._logged(exc)
                settled = 0
            except Exception as exc:  # a bug must not stop delivery for good; it is logged
                self._logged(exc)
                settled = 0
            if settled < self.policy.batch:
                await self._idle(self.policy.poll_s)

    @staticmethod
    def _logged(exc: BaseException) -> None:
        log.error(
            "dispatcher error",
            extra={"fields": {"event": "dispatcher_error", "error": type(exc).__name__}},
        )

    async def _idle(self, seconds: float) -> None:
        """Wait for a nudge, at most ``seconds``.

        Not ``asyncio.wait_for``: on Python 3.11 it returns the wake-up and swallows a cancel
        that arrives in the same loop turn (a last commit's nudge, then shutdown), and ``stop``
        then waited for ever (``switchboard batch`` hung at exit). ``asyncio.wait`` lets the
        cancel through.
        """
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waiter}, timeout=seconds)
        finally:
            waiter.cancel()

    async def deliver_pending(self) -> int:
        """Deliver one batch, backing off while the broker or the store is unavailable."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((BrokerUnavailableError, AuditStoreError)),
            wait=wait_exponential(multiplier=0.1, max=self.policy.broker_wait_max_s),
            stop=stop_never,
            before_sleep=self._unavailable,
            sleep=self._sleep,
        )
        async for attempt in retrying:
            with attempt:
                return await self.deliver_batch()
        raise AssertionError("unreachable: stop_never")  # pragma: no cover

    def _unavailable(self, state: RetryCallState) -> None:
        self.metrics.broker_up.set(0)
        self.metrics.failures.labels("broker").inc()
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "delivery paused",
            extra={
                "fields": {
                    "event": "delivery_paused",
                    "error": str(exc)[:300],
                    "attempt": state.attempt_number,
                }
            },
        )

    async def deliver_batch(self) -> int:
        """Read up to ``batch`` pending hand-offs, deliver them, settle what was decided."""
        if time.monotonic() >= self._next_full_scan:
            self._floor, self._next_full_scan = 0, time.monotonic() + self.policy.full_scan_s
        entries = await self.store.pending_handoffs(self._floor, self.policy.batch)
        if not entries:
            return 0
        outcomes = await asyncio.gather(
            *(self._deliver(e) for e in entries), return_exceptions=True
        )
        settled = [o for o in outcomes if isinstance(o, Settlement)]
        await self._settle(settled)
        for entry, outcome in zip(entries, outcomes, strict=True):
            if not isinstance(outcome, Settlement):
                break
            self._floor = entry.id
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            raise next((e for e in errors if isinstance(e, BrokerUnavailableError)), errors[0])
        self.metrics.broker_up.set(1)
        return len(settled)

    async def _deliver(self, entry: OutboxEntry) -> Settlement:
        # A plain loop, not tenacity: nearly every hand-off is delivered at the first attempt,
        # and tenacity's machinery per attempt cost 4% of a served decision (py-spy).
        attempts = 0
        while True:
            attempts += 1
            try:
                await self.integrations.deliver(entry.message)
                break
            except HandOffRejectedError as exc:
                self.metrics.failures.labels("rejected").inc()
                if attempts < self.policy.max_attempts:
                    await self._sleep(self._backoff(attempts))
                    continue
                self.metrics.dead_lettered.labels(entry.routing_key).inc()
                log.warning(
                    "dead letter",
                    extra={
                        "fields": {
                            "event": "handoff_dead_lettered",
                            "idempotency_key": entry.idempotency_key,
                            "attempts": attempts,
                            "reason": str(exc)[:300],
                        }
                    },
                )
                return Settlement(entry.id, "dead", attempts, str(exc)[:1000], self._clock())
        self.metrics.delivered.labels(entry.routing_key).inc()
        return Settlement(entry.id, "delivered", attempts, None, self._clock())

    def _backoff(self, attempts: int) -> float:
        """The wait after ``attempts`` refusals: doubling from ``retry_wait_s``, capped."""
        return float(
            min(self.policy.retry_wait_s * 2 ** (attempts - 1), self.policy.retry_wait_max_s)
        )

    async def _settle(self, settlements: Sequence[Settlement]) -> None:
        try:
            await self.store.settle(settlements)
        except AuditStoreError:
            raise
        except Exception as exc:  # sqlite3 / psycopg errors from the writer
            raise AuditStoreError(f"cannot record delivery states: {exc}") from exc

    # -- dead letters ------------------------------------------------------------------------

    async def replay(self, outbox_ids: Sequence[int]) -> int:
        """Send dead letters back to pending; returns how many were dead."""
        dead = {d.outbox_id for d in await self.store.dead_letters(limit=100_000)}
        chosen = sorted(dead & set(outbox_ids)) if outbox_ids else sorted(dead)
        if chosen:
            now = self._clock()
            await self.store.settle([Settlement(i, "replay", 0, None, now) for i in chosen])
            self._floor = min(self._floor, chosen[0] - 1)
            self.nudge()
        return len(chosen)

    # -- depth -------------------------------------------------------------------------------

    async def measure(self) -> tuple[int, int]:
        """Pending and dead hand-offs, as the gauges show them."""
        pending, _ = await self.store.outbox_depth(self._floor)
        dead = await self.store.dead_letter_count()
        self.metrics.pending.set(pending)
        self.metrics.dead.set(dead)
        return pending, dead

    async def _measure_forever(self) -> None:
        while True:
            with contextlib.suppress(AuditStoreError):
                await self.measure()
            await asyncio.sleep(self.policy.depth_every_s)
