"""Event-loop lag: how late a short sleep wakes up, the one signal of a CPU-saturated process.

The model guard counts requests waiting for the model; it cannot see a process whose event loop
is so busy (parsing, redacting, answering refusals) that every await queues behind thousands of
others. ``LoopLagMonitor`` sleeps ``interval_s`` in a task and keeps an exponentially weighted
average of how much later than asked it woke up. The guard refuses new model work while that
average is above the configured limit (``SWITCHBOARD_MAX_LOOP_LAG_MS``; 0 turns it off).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


class LoopLagMonitor:
    def __init__(
        self,
        *,
        interval_s: float = 0.01,
        alpha: float = 0.3,
        clock: Callable[[], float] = time.perf_counter,
        on_sample: Callable[[float], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.alpha = alpha
        self._clock = clock
        self._on_sample = on_sample
        self.lag_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    def observe(self, late_s: float) -> None:
        """Fold one wake-up's lateness (seconds) into the average."""
        self.lag_ms += self.alpha * (max(late_s, 0.0) * 1000 - self.lag_ms)
        if self._on_sample is not None:
            self._on_sample(self.lag_ms / 1000)

    async def _run(self) -> None:
        while True:
            asked = self._clock()
            await asyncio.sleep(self.interval_s)
            self.observe(self._clock() - asked - self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
