"""Channel normalisation: email quotes and signatures, voice disfluencies, chat untouched."""

from __future__ import annotations

from engine.categories import Channel
from engine.decide.channels import normalise
from engine.policy.model import ChannelAdjustment

EMAIL = ChannelAdjustment(strip_quoted_replies=True, strip_signature=True)
VOICE = ChannelAdjustment(drop_disfluencies=True)


def test_email_drops_quoted_history_and_signature() -> None:
    text = (
        "Hi,\nMy mother got a rash after the new pills.\n\nThanks\nAnna\n\n"
        "On Mon, 3 Mar 2025 at 10:00, Support <help@shop.example> wrote:\n> How can we help?\n"
    )
    assert normalise(text, Channel.EMAIL, EMAIL) == "Hi,\nMy mother got a rash after the new pills."


def test_email_drops_inline_quotes_and_dash_signature() -> None:
    text = "> old text\nPlease cancel order 12.\n-- \nBob\n555-0100"
    assert normalise(text, Channel.EMAIL, EMAIL) == "Please cancel order 12."


def test_email_never_normalises_to_nothing() -> None:
    assert normalise("> only a quote", Channel.EMAIL, EMAIL) == "> only a quote"


def test_voice_drops_fillers_and_repeats() -> None:
    text = "um so uh I I I took the the pills and uh you know I got dizzy"
    assert normalise(text, Channel.VOICE, VOICE) == "so I took the pills and I got dizzy"


def test_chat_is_left_alone_apart_from_line_endings() -> None:
    assert normalise(" um hi\r\nthere ", Channel.CHAT, VOICE) == "um hi\nthere"


def test_a_thank_you_line_followed_by_a_sentence_is_not_a_signature() -> None:
    # Cutting here would drop an adverse-event report before rules and model see it.
    text = "Hello,\nThank you\nthe cream gave my daughter a rash on both arms.\n\nRegards\nAnn"
    assert normalise(text, Channel.EMAIL, EMAIL) == (
        "Hello,\nThank you\nthe cream gave my daughter a rash on both arms."
    )


def test_a_sign_off_followed_by_a_name_and_title_is_a_signature() -> None:
    text = "Hi,\nWhere is order 7?\n\nKind regards,\nMark Olsen\nSenior Accountant | ACME Ltd"
    assert normalise(text, Channel.EMAIL, EMAIL) == "Hi,\nWhere is order 7?"
