"""The shadow worker on its own: a full queue drops instead of waiting, a busy model is left to
live requests, and the comparison's safety line."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import Category, DecisionRequest, Engine
from engine.backends.base import LabelChoice, LabelVerdict, RenderedPrompt
from engine.backends.fake import FakeBackend, Scripted
from service.admission import CircuitBreaker, ModelGuard
from service.audit import SQLiteAuditStore
from service.audit.shadow import SafetyMove
from service.metrics import Metrics
from service.runtime import EngineHolder, EngineSet
from service.settings import Settings
from service.shadow import Shadow, ShadowRun
from service.shadow.compare import safety_move, sampled


class HeldBackend(FakeBackend):
    """Every call waits until ``release`` is set: a live request holding the model."""

    def __init__(self) -> None:
        super().__init__(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def score(
        self, prompt: RenderedPrompt, choices: Sequence[LabelChoice], *, deadline_s: float
    ) -> LabelVerdict:
        self.holding.set()
        await self.release.wait()
        return await super().score(prompt, choices, deadline_s=deadline_s)


@dataclass
class Rig:
    backend: HeldBackend
    guard: ModelGuard
    live: Engine
    candidate: EngineSet
    shadow: Shadow
    store: SQLiteAuditStore

    def start(self, *, sample_rate: float = 1.0) -> ShadowRun:
        run = ShadowRun("run-1", "candidate", self.candidate, "test", sample_rate)
        self.shadow.start(run)
        return run


def _new_example(policy: dict[str, Any]) -> None:
    policy["prompt"]["examples"].append({"message": "Open on Sunday?", "label": "informational"})


@pytest.fixture
async def rig(policy_copy: Path, tmp_path: Path) -> AsyncIterator[Rig]:
    candidate_dir = tmp_path / "candidate" / policy_copy.name
    shutil.copytree(policy_copy, candidate_dir)
    path = candidate_dir / "policy.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    _new_example(data)  # the candidate's prompt differs: it needs calls of its own
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    backend = HeldBackend()
    guard = ModelGuard(backend, concurrency=1, queue=8, breaker=CircuitBreaker(5, 10))
    settings = Settings(policies=policy_copy.parent, warm_up=False, backend="fake")
    holder = EngineHolder(settings, guard, redactor_factory=None)
    live = holder.build().get(None)
    store = SQLiteAuditStore(tmp_path / "audit.db")
    shadow = Shadow(guard, Metrics(), queue_size=1)
    yield Rig(backend, guard, live, holder.build(candidate_dir), shadow, store)
    await shadow.stop()
    await store.close()


async def test_a_full_queue_drops_instead_of_waiting(rig: Rig) -> None:
    rig.backend.release.set()
    run = rig.start()
    traced = await rig.live.decide_traced(DecisionRequest("where is my parcel?"))
    for _ in range(3):  # no await in between: the worker has not taken the first one yet
        rig.shadow.offer(rig.live, traced, tenant="acme", region="eu", store=rig.store)
    assert run.skipped == {"queue_full": 2}
    await rig.shadow.drain()
    assert run.decided == {"model": 1}


async def test_a_busy_model_is_left_to_the_live_request(rig: Rig) -> None:
    rig.backend.release.set()
    first = await rig.live.decide_traced(DecisionRequest("where is my parcel?"))
    rig.backend.release.clear()
    rig.backend.holding.clear()
    run = rig.start()
    live = asyncio.create_task(rig.live.decide_traced(DecisionRequest("cancel order 4471")))
    await rig.backend.holding.wait()  # a live request is inside the model now
    calls = len(rig.backend.calls)
    rig.shadow.offer(rig.live, first, tenant="acme", region="eu", store=rig.store)
    await rig.shadow.drain()
    assert run.skipped == {"model_busy": 1}
    assert len(rig.backend.calls) == calls
    rig.backend.release.set()
    await live


def test_the_safety_line() -> None:
    safety, action = Category.SAFETY_COMPLIANCE, Category.SERVICE_ACTION
    assert safety_move(safety, action) is SafetyMove.LEAVE
    assert safety_move(action, safety) is SafetyMove.ENTER
    assert safety_move(safety, safety) is SafetyMove.SAME
    assert safety_move(action, Category.INFORMATIONAL) is SafetyMove.SAME


def test_sampling_is_reproducible_and_near_its_rate() -> None:
    ids = [f"{i:032x}" for i in range(2000)]
    chosen = [i for i in ids if sampled(i, 0.1)]
    assert chosen == [i for i in ids if sampled(i, 0.1)]
    assert 120 < len(chosen) < 280
    assert all(sampled(i, 1.0) for i in ids[:10])
    assert not any(sampled(i, 0.0) for i in ids[:10])
