"""How a candidate's decision compares with the live one: agreement and the safety line.

Pure functions of two records; the shadow worker stores their answer and counts it.
"""

from __future__ import annotations

import hashlib

from engine import Category, DecisionRecord
from engine.decide.record import encode_record
from service.audit.shadow import SafetyMove, ShadowRow, VerdictSource

SAFETY = Category.SAFETY_COMPLIANCE


def safety_move(live: Category, candidate: Category) -> SafetyMove:
    if live is SAFETY and candidate is not SAFETY:
        return SafetyMove.LEAVE
    if candidate is SAFETY and live is not SAFETY:
        return SafetyMove.ENTER
    return SafetyMove.SAME


def agrees(live: DecisionRecord, candidate: DecisionRecord) -> bool:
    """Same category and the same need for a human: what acts on the message is the same."""
    return (
        live.category is candidate.category
        and live.requires_human_review == candidate.requires_human_review
    )


def sampled(decision_id: str, rate: float) -> bool:
    """Whether a decision is in the sample: by a hash of its id, so the choice is reproducible
    and needs no random source."""
    if rate >= 1:
        return True
    digest = hashlib.sha256(decision_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def shadow_row(
    run_id: str,
    live: DecisionRecord,
    candidate: DecisionRecord,
    *,
    tenant: str,
    region: str,
    verdict: VerdictSource,
) -> ShadowRow:
    return ShadowRow(
        run_id=run_id,
        decision_id=live.decision_id,
        created_at=live.created_at,
        tenant=tenant,
        region=region,
        policy_id=live.policy.id,
        live_revision=live.policy.revision,
        candidate_revision=candidate.policy.revision,
        live_category=live.category.value,
        shadow_category=candidate.category.value,
        live_review=live.requires_human_review,
        shadow_review=candidate.requires_human_review,
        agree=agrees(live, candidate),
        safety=safety_move(live.category, candidate.category),
        verdict=verdict,
        record=encode_record(candidate).decode(),
    )
