"""Decide an intake message once: the stored decision if its id was decided before, otherwise
decide, record (with its hand-offs, one transaction) and nudge delivery."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from engine import DecisionRequest
from engine.decide.record import encode_record
from engine.errors import PolicyNotFoundError
from service.audit import AuditStore
from service.intake.message import IntakeMessage, PoisonMessageError, decision_id_for
from service.runtime import EngineHolder


@dataclass(frozen=True)
class Decided:
    decision_id: str
    record: bytes  # the record's JSON, as stored
    category: str
    requires_human_review: bool
    degraded: bool
    already: bool  # decided before: nothing new was recorded


class Intake:
    def __init__(
        self, holder: EngineHolder, store: AuditStore, *, on_commit: Callable[[], None]
    ) -> None:
        self.holder = holder
        self.store = store
        self._on_commit = on_commit

    async def decide(self, message: IntakeMessage) -> Decided:
        engines = self.holder.active
        assert engines is not None  # loaded before intake starts
        try:
            engine = engines.get(message.policy)
        except PolicyNotFoundError as exc:
            raise PoisonMessageError("unknown_policy", str(exc)) from exc
        decision_id = decision_id_for(engine.loaded.id, message.message_id)
        stored = await self.store.get(decision_id)
        if stored is not None:
            return _from_stored(stored, already=True)
        record = await engine.decide(
            DecisionRequest(
                message=message.message,
                channel=message.channel,
                metadata={**message.metadata, "message_id": message.message_id},
                decision_id=decision_id,
            )
        )
        encoded = encode_record(record)
        try:
            await self.store.append(record, encoded)
        except Exception:
            # Decided by someone else in the meantime (a redelivery to another consumer)?
            stored = await self.store.get(decision_id)
            if stored is None:
                raise
            return _from_stored(stored, already=True)
        self._on_commit()
        return Decided(
            decision_id,
            encoded,
            record.category.value,
            record.requires_human_review,
            record.degraded,
            already=False,
        )


def _from_stored(stored: dict[str, object], *, already: bool) -> Decided:
    return Decided(
        str(stored["decision_id"]),
        json.dumps(stored, separators=(",", ":"), ensure_ascii=False).encode(),
        str(stored["category"]),
        bool(stored["requires_human_review"]),
        bool(stored["degraded"]),
        already=already,
    )
