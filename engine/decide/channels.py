"""Per-channel normalisation of a message before rules and model see it.

Email: quoted replies ('>' lines, 'On … wrote:' headers and everything after them, forwarded
history) and signatures (after a '-- ' line or a sign-off) are dropped. Voice: disfluencies
('um', 'uh', 'you know') and stuttered repeats are dropped. Chat passes through.
"""

from __future__ import annotations

import re

from engine.categories import Channel
from engine.policy.model import ChannelAdjustment

_REPLY_HEADER = re.compile(
    r"^\s*(on\s.{0,200}\swrote:|-{2,}\s*original message\s*-{2,}|from:\s.+|"
    r"-{2,}\s*forwarded message\s*-{2,})\s*$",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^(--\s?|__+|sent from my \w+.*)$", re.IGNORECASE)
_SIGN_OFF = re.compile(r"^(best|regards|kind regards|thanks|thank you|cheers|sincerely),?$", re.I)
_FILLER = re.compile(r"\b(?:u+m+|u+h+|e+r+m*|hmm+|you know|i mean)\b[,.]?\s*", re.IGNORECASE)
_REPEAT = re.compile(r"\b(\w+)(?:[\s,]+\1\b)+", re.IGNORECASE)
_SPACES = re.compile(r"[ \t]{2,}")
# After a sign-off ("Thanks"), a signature is a name or a title, not a sentence: a line of more
# words than this means the writer was thanking someone and then went on with the message.
_SIGNATURE_WORDS = 6


def _signs_off(lines: list[str], at: int) -> bool:
    """A sign-off line ends the message only when the next text line is short (a name)."""
    following = next((line.strip() for line in lines[at + 1 :] if line.strip()), "")
    return not following or len(following.split()) <= _SIGNATURE_WORDS


def _strip_email(text: str, *, quotes: bool, signature: bool) -> str:
    kept: list[str] = []
    lines = text.splitlines()
    for at, line in enumerate(lines):
        stripped = line.strip()
        if quotes and _REPLY_HEADER.match(stripped):
            break
        if signature and kept and _SIGNATURE.match(stripped):
            break
        if signature and kept and _SIGN_OFF.match(stripped) and _signs_off(lines, at):
            break
        if quotes and stripped.startswith(">"):
            continue
        kept.append(line)
    result = "\n".join(kept).strip()
    return result or text.strip()  # never normalise a message into nothing


def _strip_disfluencies(text: str) -> str:
    text = _FILLER.sub("", text)
    text = _REPEAT.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip() or text


def normalise(text: str, channel: Channel, adjustment: ChannelAdjustment) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if channel is Channel.EMAIL and (adjustment.strip_quoted_replies or adjustment.strip_signature):
        text = _strip_email(
            text, quotes=adjustment.strip_quoted_replies, signature=adjustment.strip_signature
        )
    if channel is Channel.VOICE and adjustment.drop_disfluencies:
        text = _strip_disfluencies(text)
    return text
