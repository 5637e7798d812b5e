"""POST /classify: the channel integrations' one call."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request

from engine.engine import DecisionRequest
from engine.policy.model import OverloadMode
from engine.record import DecisionRecord
from service.api import ClassifyRequest, ClassifyResponse
from service.logs import decision_fields
from service.problems import ProblemError, documented
from service.shedding import OVER_CAPACITY
from service.state import app_state

router = APIRouter(tags=["decisions"])
log = logging.getLogger("switchboard.decisions")


def to_response(record: DecisionRecord) -> ClassifyResponse:
    data: dict[str, Any] = record.model_dump(mode="json")
    return ClassifyResponse(
        decision_id=record.decision_id,
        category=record.category,
        confidence=record.confidence,
        requires_human_review=record.requires_human_review,
        degraded=record.degraded,
        next_step=record.next_step,
        decision_path=data["decision_path"],
        policy=data["policy"],
        timings=data["timings"],
        workflow=data["workflow"],
        rules_fired=data["rules_fired"],
        llm={k: data["llm"][k] for k in ("status", "label", "probabilities", "method", "error")},
        model=data["model"],
    )


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    summary="Decide one customer message",
    responses=documented(
        {
            400: "Malformed JSON or not UTF-8",
            404: "Unknown policy",
            413: "Body or message too large",
            422: "Invalid request",
            429: "Over capacity (policy says reject); see Retry-After",
            503: "Not ready, over capacity, or audit store down; see Retry-After",
        }
    ),
)
async def classify(body: ClassifyRequest, request: Request) -> ClassifyResponse:
    state = app_state(request)
    if len(body.message) > state.settings.max_message_chars:
        raise ProblemError(
            413, "Message too large", f"limit is {state.settings.max_message_chars} characters"
        )
    engines = state.holder.active
    if engines is None:
        raise ProblemError(503, "Not ready", "No policy is loaded.", headers={"Retry-After": "5"})
    engine = engines.get(body.policy)  # held for the whole request: reloads do not affect it
    model_allowed, reason = True, ""
    if not state.guard.has_capacity():
        overload = engine.policy.fallbacks.overload
        if overload.mode is OverloadMode.REJECT:
            state.metrics.shed.labels("rejected").inc()
            raise ProblemError(
                overload.status_code,
                *OVER_CAPACITY,
                headers={"Retry-After": str(overload.retry_after_s)},
            )
        state.metrics.shed.labels("degraded").inc()
        model_allowed, reason = False, state.guard.overload_reason()
    state.metrics.in_flight.inc()
    try:
        record = await engine.decide(
            DecisionRequest(
                message=body.message, channel=body.channel, metadata=body.metadata or {}
            ),
            model_allowed=model_allowed,
            skip_reason=reason,
        )
        started = time.perf_counter()
        try:
            await state.store.append(record)
        except Exception as exc:
            log.exception(
                "audit write failed",
                extra={
                    "fields": {"event": "audit_write_failed", "decision_id": record.decision_id}
                },
            )
            raise ProblemError(
                503,
                "Audit store unavailable",
                "The decision was not recorded; retry.",
                headers={"Retry-After": "1"},
            ) from exc
        store_seconds = time.perf_counter() - started
    finally:
        state.metrics.in_flight.dec()
    state.metrics.observe(record, store_seconds)
    log.info("decision", extra={"fields": decision_fields(record)})
    return to_response(record)
