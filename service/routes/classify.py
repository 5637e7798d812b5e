"""POST /classify: the channel integrations' one call.

Admission answers first (model, rules-only, or refuse); the engine decides; the record is encoded
once and those bytes are both the audit row and the response.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Request, Response

from engine import DecisionRequest
from engine.decide.record import encode_record
from service.admission import OVER_CAPACITY, Refuse
from service.api import ClassifyRequest, ClassifyResponse
from service.logs import decision_fields
from service.problems import ProblemError, documented
from service.state import app_state

router = APIRouter(tags=["decisions"])
log = logging.getLogger("switchboard.decisions")


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
async def classify(body: ClassifyRequest, request: Request) -> Response:
    state = app_state(request)
    if len(body.message) > state.settings.max_message_chars:
        raise ProblemError(
            413, "Message too large", f"limit is {state.settings.max_message_chars} characters"
        )
    engines = state.holder.active
    if engines is None:
        raise ProblemError(503, "Not ready", "No policy is loaded.", headers={"Retry-After": "5"})
    engine = engines.get(body.policy)  # held for the whole request: reloads do not affect it
    admitted = state.admission.admit(engine.policy.fallbacks.overload)
    if isinstance(admitted, Refuse):
        raise ProblemError(
            admitted.status,
            *OVER_CAPACITY,
            headers={"Retry-After": str(admitted.retry_after_s)},
        )
    state.metrics.in_flight.inc()
    try:
        record = await engine.decide(
            DecisionRequest(
                message=body.message, channel=body.channel, metadata=body.metadata or {}
            ),
            skip_model=admitted.skip_model,
        )
        encoded = encode_record(record)
        # Let every decision made in this turn of the event loop reach the audit writer before it
        # wakes: they then share one commit (group commit) instead of taking one each.
        await asyncio.sleep(0)
        started = time.perf_counter()
        try:
            await state.store.append(record, encoded)
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
        if state.dispatcher is not None:
            state.dispatcher.nudge()  # its hand-offs are committed: deliver them now
    finally:
        state.metrics.in_flight.dec()
    state.metrics.observe(record, store_seconds)
    log.info("decision", extra={"fields": decision_fields(record)})
    return Response(encoded, media_type="application/json")
