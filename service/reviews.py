"""Working a review: claim a case, release it, resolve it. One path for the API and the workbench.

``POST /reviews/{id}`` and the workbench's case page both call ``resolve``: the reviewer's
outcome continues the reviewed category's workflow from its ``after_review`` step
(``Engine.after_review``), and the outcome, the hand-offs it implies and the end of the claim are
committed in one transaction, then delivered like any other hand-off. A resolve takes the claim
first (atomically), so it is refused with 409 while someone else holds a live claim; with nobody
holding one, resolving needs no separate claim (API callers that never claim keep working).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine import Category, HandOff
from engine.errors import PolicyNotFoundError
from service.access.control import Caller
from service.audit import AccessRecord, Claim, ReviewOutcome, now_iso
from service.problems import ProblemError
from service.state import AppState


@dataclass(frozen=True)
class Resolved:
    outcome: ReviewOutcome
    handoffs: tuple[HandOff, ...]


async def visible(caller: Caller, decision_id: str) -> dict[str, Any]:
    """The caller's tenant's record, if its queue is the caller's too; 404 exactly as missing."""
    tenant, store = caller.scoped()
    record = await store.get(decision_id, tenant=tenant.id)
    queue = ((record or {}).get("workflow") or {}).get("queue")
    if record is None or not caller.principal.sees_queue(queue):
        raise ProblemError(404, "No such decision", decision_id)
    return record


async def audit_access(caller: Caller, action: str, ids: list[str]) -> None:
    """Record who read (or claimed) which decisions, durably, in the tenant's own region."""
    tenant, store = caller.scoped()
    await store.record_access(
        AccessRecord(
            now_iso(),
            caller.principal.subject,
            tenant.id,
            caller.principal.role,
            action,
            tuple(ids),
        )
    )


class ClaimHeldError(ProblemError):
    """Another reviewer holds a live claim on the case (409)."""

    def __init__(self, claim: Claim) -> None:
        super().__init__(
            409,
            "Claimed by another reviewer",
            f"{claim.holder} is working this case (claim until {claim.expires_at}); "
            "pick another case, or wait until they release it or the claim expires.",
        )
        self.claim = claim


def _held(claim: Claim) -> ClaimHeldError:
    return ClaimHeldError(claim)


async def claim(state: AppState, caller: Caller, decision_id: str) -> Claim:
    """Claim (or renew) the case for the caller; 409 while another reviewer holds it."""
    _, store = caller.scoped()
    await visible(caller, decision_id)
    holder = caller.principal.subject
    held = await store.claim(decision_id, holder, ttl_s=state.settings.claim_ttl_s)
    if held is None or held.holder != holder:
        raise _held(held) if held is not None else ProblemError(409, "Claim lost", decision_id)
    await audit_access(caller, "claim_review", [decision_id])
    return held


async def release(caller: Caller, decision_id: str) -> None:
    """End the caller's claim; 409 when another reviewer holds it (nothing to do when nobody)."""
    _, store = caller.scoped()
    await visible(caller, decision_id)
    held = await store.claim_of(decision_id)
    if held is not None and held.holder != caller.principal.subject:
        raise _held(held)
    await store.release(decision_id, caller.principal.subject)
    await audit_access(caller, "release_claim", [decision_id])


async def resolve(
    state: AppState, caller: Caller, decision_id: str, category: Category, note: str
) -> Resolved:
    """Record the caller's outcome and continue the workflow (both the API and the workbench)."""
    _, store = caller.scoped()
    record = await visible(caller, decision_id)
    engines = state.holder.active
    if engines is None:
        raise ProblemError(503, "Not ready", "No policy is loaded.", headers={"Retry-After": "5"})
    try:
        engine = engines.get(str(record["policy"]["id"]))
    except PolicyNotFoundError as exc:
        raise ProblemError(
            409,
            "Policy no longer loaded",
            f"{exc}; the decision's workflow cannot continue until it is loaded again",
        ) from exc
    reviewer = caller.principal.subject
    # Taking the claim is the atomic check: a case someone else is working cannot be resolved.
    held = await store.claim(decision_id, reviewer, ttl_s=state.settings.claim_ttl_s)
    if held is not None and held.holder != reviewer:
        raise _held(held)
    handoffs = engine.after_review(record, category, reviewer=reviewer)
    outcome = ReviewOutcome(
        decision_id=decision_id,
        category=category.value,
        note=note,
        reviewer=reviewer,
        created_at=now_iso(),
    )
    await store.add_review(outcome, handoffs)  # with its hand-offs, in the tenant's region
    dispatcher = state.dispatcher_for(store)
    if dispatcher is not None:
        dispatcher.nudge()
    return Resolved(outcome, handoffs)
