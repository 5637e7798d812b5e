"""Decides cases again with the model's recorded probabilities instead of calling the model.

Valid only while everything that shapes the model's input is unchanged (the prompt prefix, the
label answers, truncation, redaction and channel normalisation): ``verdict_key`` hashes those,
and a recorded run whose key differs is refused. Rules, keyword groups, thresholds, fallbacks and
calibration may change freely: that is what replay is for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace

from engine import DecisionRecord, DecisionRequest, Engine
from engine.backends.base import LabelVerdict
from engine.categories import Channel, VerdictStatus
from engine.errors import EvalDataError
from eval.dataset import LabelledCase
from eval.predictions import Prediction


def verdict_key(engine: Engine) -> str:
    """A hash of what the model sees apart from the message itself."""
    policy = engine.policy
    prefix = engine.prompts.render("", Channel.CHAT).prefix
    material = {
        "prefix": [[m.role, m.content] for m in prefix],
        "template": engine.prompts.template_hash,
        "max_chars": policy.prompt.max_message_chars,
        "redaction": policy.redaction.model_dump(mode="json"),
        "channels": {k.value: v.model_dump(mode="json") for k, v in policy.channels.items()},
        "model": engine.backend.model_digest,
    }
    blob = json.dumps(material, sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:16]


def recorded_verdict(row: Prediction) -> LabelVerdict:
    probs = row.probabilities
    if row.model_status is VerdictStatus.OK and probs:
        return LabelVerdict(
            status=VerdictStatus.OK,
            probabilities=probs,
            answers=row.answer_probabilities,
            prompt_tokens=row.prompt_tokens - row.cached_tokens,
            cached_tokens=row.cached_tokens,
            output_tokens=row.output_tokens,
            latency_ms=row.llm_ms,
            method="recorded",
        )
    return LabelVerdict.failed(row.model_status, "recorded failure", latency_ms=row.llm_ms)


def replay_row(engine: Engine, row: Prediction) -> DecisionRecord:
    """A recorded row decided again under ``engine``'s policy (keywords as recorded, no text)."""
    return engine.replay(
        DecisionRequest(row.input_redacted, row.channel, decision_id=row.id),
        recorded_verdict(row),
        keywords=[k for k in row.keywords_matched.split(";") if k],
    )


OUTAGE = LabelVerdict.failed(VerdictStatus.TIMEOUT, "outage: no model verdict")


def replay_outage(engine: Engine, cases: Sequence[LabelledCase]) -> list[Prediction]:
    """Each case decided as if the model never answered (its call timed out): what the policy's
    rules and fallbacks alone do with it during an outage. No model call."""
    return [
        Prediction.from_record(
            case,
            engine.replay(
                DecisionRequest(message=case.text, channel=case.channel, decision_id=case.case_id),
                OUTAGE,
            ),
        )
        for case in cases
    ]


def replay_rows(engine: Engine, rows: Sequence[Prediction]) -> list[Prediction]:
    """Re-decide recorded rows under ``engine``'s policy (keywords as recorded, no text)."""
    out: list[Prediction] = []
    for row in rows:
        case = LabelledCase(row.id, row.input_redacted, row.label, row.source, row.channel)
        record = replay_row(engine, row)
        fresh = Prediction.from_record(case, record)
        out.append(replace(fresh, latency_ms=row.latency_ms, llm_ms=row.llm_ms))
    return out


def replay_cases(
    engine: Engine, cases: Sequence[LabelledCase], recorded: Sequence[Prediction]
) -> list[Prediction]:
    """Re-decide cases from their text (keywords re-matched) with recorded model verdicts."""
    by_id = {r.id: r for r in recorded}
    missing = [c.case_id for c in cases if c.case_id not in by_id]
    if missing:
        raise EvalDataError(
            f"{len(missing)} case(s) have no recorded verdict (first: {missing[0]}); "
            "run without --reuse-verdicts"
        )
    out: list[Prediction] = []
    for case in cases:
        row = by_id[case.case_id]
        record = engine.replay(
            DecisionRequest(message=case.text, channel=case.channel, decision_id=case.case_id),
            recorded_verdict(row),
        )
        fresh = Prediction.from_record(case, record)
        out.append(replace(fresh, latency_ms=row.latency_ms, llm_ms=row.llm_ms))
    return out
