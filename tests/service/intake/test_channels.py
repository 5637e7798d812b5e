"""Email threads and voice transcripts through intake: the channel's normalisation runs before
rules and model, as for /classify. The model reads an email's new text only; disfluencies and
speaker labels do not hide what a caller reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from service.intake.batch import run_batch
from service.intake.runtime import intake_runtime
from service.settings import Settings

EMAIL_THREAD = """Hi,

Could you change the delivery address on order 4471 to my office? Thanks for sorting it.

Best,
Dana Whitfield
Operations Lead | Northwind Clinic

On Tue, 3 Dec 2026 at 09:14, Support <support@example.com> wrote:
> Thank you for your message. Earlier you wrote that your father was hospitalised after a severe
> allergic reaction to the tablets.
> Kind regards, the support team

---------- Forwarded message ---------
From: Dana Whitfield <dana@example.org>
My father was hospitalised after a severe allergic reaction to the tablets.
"""

VOICE_TRANSCRIPT = (
    "Agent: Thanks for calling, how can I help? "
    "Caller: Yeah um so I I started the the new tablets on Monday and uh you know since then "
    "I've had a rash all over my arms and my my face is swollen. "
    "Agent: I'm sorry to hear that. Caller: I mean I just want to know if that's normal."
)


async def _decide(policy_copy: Path, tmp_path: Path, lines: list[dict[str, Any]]) -> list[Any]:
    settings = Settings(
        policies=policy_copy.parent,
        audit_db=str(tmp_path / "audit.db"),
        backend="fake",
        warm_up=False,
    )
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
    async with intake_runtime(settings, backend=backend) as runtime:
        await run_batch(runtime.intake, export, out, max_chars=20_000, progress=False)
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


async def test_an_email_thread_shows_the_model_its_new_text_and_keeps_the_safety_history(
    policy_copy: Path, tmp_path: Path
) -> None:
    [record] = await _decide(
        policy_copy,
        tmp_path,
        [{"message_id": "mail-1", "message": EMAIL_THREAD, "channel": "email"}],
    )
    assert record["channel"] == "email"
    # What the model read (and what is stored): the new text, without history or signature.
    assert "hospitalised" not in record["input_redacted"]
    assert "Operations Lead" not in record["input_redacted"]
    assert "delivery address" in record["input_redacted"]
    # The keyword rules also read the message as received: a forwarded adverse event is still a
    # pharmacovigilance case (engine/decide/engine.py, "a hit stays a hit").
    assert "severe_event" in record["keywords_matched"]
    assert record["category"] == "safety_compliance"
    assert [h["routing_key"] for h in record["handoffs"]] == ["review.pharmacovigilance"]


async def test_a_voice_transcript_reporting_a_reaction_is_a_safety_case(
    policy_copy: Path, tmp_path: Path
) -> None:
    [record] = await _decide(
        policy_copy,
        tmp_path,
        [{"message_id": "call-1", "message": VOICE_TRANSCRIPT, "channel": "voice"}],
    )
    assert record["channel"] == "voice"
    assert " um " not in f" {record['input_redacted']} "
    assert "the the" not in record["input_redacted"]
    assert record["category"] == "safety_compliance"
    assert record["requires_human_review"]
    assert [h["routing_key"] for h in record["handoffs"]] == ["review.pharmacovigilance"]
