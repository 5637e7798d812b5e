"""POST /classify: the channel integrations' one call.

Admission answers first (model, rules-only, or refuse); the engine decides; the record is encoded
once and those bytes are both the audit row and the response.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Request, Response

from engine import DecisionRequest
from engine.decide.record import encode_record
from service.access.control import Caller
from service.access.guard import requires
from service.access.principal import Permission
from service.admission import Refuse
from service.api import ClassifyRequest, ClassifyResponse
from service.logs import decision_fields
from service.problems import ProblemError, documented
from service.state import AppState, app_state

router = APIRouter(tags=["decisions"])
PERMISSION = Permission.CLASSIFY
MEDIA_TYPE = "application/json"
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
            401: "No, unknown or revoked credential",
            403: "The credential's role may not classify",
            421: "The tenant's data lives in another region",
            429: "Over the tenant's rate limit, or over capacity; see Retry-After",
            503: "Not ready, over capacity, or audit store down; see Retry-After",
        }
    ),
)
async def classify(
    body: ClassifyRequest,
    request: Request,
    caller: Annotated[Caller, requires(PERMISSION)],
) -> Response:
    return Response(await decide(app_state(request), body, caller), media_type=MEDIA_TYPE)


async def decide(state: AppState, body: ClassifyRequest, caller: Caller) -> bytes:
    """Everything ``/classify`` does for an authorized caller's valid request: the record's JSON.

    The FastAPI route and the fast path (``service.routes.classify_fast``) both call this.
    """
    tenant, store = caller.scoped()
    if len(body.message) > state.settings.max_message_chars:
        raise ProblemError(
            413, "Message too large", f"limit is {state.settings.max_message_chars} characters"
        )
    engines = state.holder.active
    if engines is None:
        raise ProblemError(503, "Not ready", "No policy is loaded.", headers={"Retry-After": "5"})
    # Held for the whole request: reloads do not affect it. A policy the tenant may not use
    # answers exactly like one that does not exist.
    engine = engines.for_tenant(tenant, body.policy)
    admitted = state.admission.admit(engine.policy.fallbacks.overload, tenant)
    if isinstance(admitted, Refuse):
        raise ProblemError(
            admitted.status,
            admitted.title,
            admitted.detail,
            headers={"Retry-After": str(admitted.retry_after_s)},
        )
    state.metrics.in_flight.inc()
    try:
        traced = await engine.decide_traced(
            DecisionRequest(
                message=body.message, channel=body.channel, metadata=body.metadata or {}
            ),
            skip_model=admitted.skip_model,
        )
        record = traced.record
        encoded = encode_record(record)
        # Let every decision made in this turn of the event loop reach the audit writer before it
        # wakes: they then share one commit (group commit) instead of taking one each.
        await asyncio.sleep(0)
        started = time.perf_counter()
        try:
            await store.append(record, encoded, tenant=tenant.id, region=tenant.region)
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
        dispatcher = state.dispatcher_for(store)  # the caller's region's outbox
        if dispatcher is not None:
            dispatcher.nudge()  # its hand-offs are committed: deliver them now
        # Recorded: a candidate in shadow may now decide it too, later, off this request's path.
        state.shadow.offer(engine, traced, tenant=tenant.id, region=tenant.region, store=store)
    finally:
        state.admission.release(admitted)
        state.metrics.in_flight.dec()
    state.metrics.observe(record, store_seconds)
    log.info("decision", extra={"fields": decision_fields(record)})
    return encoded
