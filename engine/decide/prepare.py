"""The first stage of a decision: give the message its id and receipt time, normalise it for its
channel, redact it, and match the policy's keyword groups (``Prepared``).

Keywords are matched on the text as received as well as normalised, never on the redacted text:
normalising can shorten what the model reads and redaction can blank it, but neither can blind the
safety rules.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

from engine.categories import Channel
from engine.decide.channels import normalise
from engine.decide.keywords import KeywordMatcher
from engine.decide.request import DecisionRequest, Prepared
from engine.errors import MessageRejectedError, RedactionFailedError
from engine.pii.base import Redactor
from engine.policy.model import Policy

WITHHELD = "[message withheld: redaction failed]"
OFFLOAD_CHARS = 300
"""Messages longer than this are redacted in a worker thread by ``prepare_async``."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


_CLEAR_VERSION = ~((0xC000 << 48) | (0xF000 << 64))
_VERSION_4 = (0x8000 << 48) | (4 << 76)


class DecisionIds:
    """Random (version 4) UUIDs as 32 hex digits, as ``uuid.uuid4().hex`` makes them, with the
    random bytes read from ``os.urandom`` for 256 ids at a time.

    One system call per decision is not free in a busy process: it releases the GIL, and taking
    it back waits for whichever thread grabbed it. A forked child draws a fresh pool, so no two
    processes share ids.
    """

    _BATCH = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0
        self._pid = os.getpid()

    def __call__(self) -> str:
        with self._lock:
            if self._at >= len(self._pool) or self._pid != os.getpid():
                self._pool, self._at, self._pid = os.urandom(16 * self._BATCH), 0, os.getpid()
            value = int.from_bytes(self._pool[self._at : self._at + 16], "big")
            self._at += 16
        # What uuid.UUID(bytes=..., version=4) sets: the variant (RFC 4122) and the version.
        return format(value & _CLEAR_VERSION | _VERSION_4, "032x")


class Preparer:
    """Prepares messages for one policy revision. Immutable after construction; safe to share."""

    def __init__(
        self,
        policy: Policy,
        *,
        redactor: Redactor | None = None,
        clock: Callable[[], datetime] = utc_now,
        ids: Callable[[], str] | None = None,
    ) -> None:
        self.redactor = redactor
        self.keywords = KeywordMatcher(policy.keyword_groups)
        self._clock = clock
        self._ids = ids or DecisionIds()
        self._adjustments = {c: policy.channel_adjustment(c) for c in Channel}

    def prepare(self, request: DecisionRequest) -> Prepared:
        started, received_at, text = self._intake(request)
        redaction_started = time.perf_counter()
        redacted, redaction = self._redact(text)
        redaction_ms = (time.perf_counter() - redaction_started) * 1000
        return self._prepared(
            request, started, received_at, text, redacted, redaction, redaction_ms
        )

    async def prepare_async(self, request: DecisionRequest) -> Prepared:
        """``prepare``, with a long message's redaction in a worker thread (a long message full of
        PII takes tens of ms to redact): normalising and keywords stay on the event loop.

        Redaction time is what the loop waited for, the hand-offs to and from the thread
        included: that wait exists only to redact, so ``engine_ms`` leaves it out.
        """
        if self.redactor is None or len(request.message) <= OFFLOAD_CHARS:
            return self.prepare(request)
        started, received_at, text = self._intake(request)
        redaction_started = time.perf_counter()
        redacted, redaction = await asyncio.to_thread(self._redact, text)
        redaction_ms = (time.perf_counter() - redaction_started) * 1000
        return self._prepared(
            request, started, received_at, text, redacted, redaction, redaction_ms
        )

    def prepare_as(self, other: Preparer, prepared: Prepared) -> Prepared | None:
        """This preparer's ``Prepared`` for a message ``other`` prepared, reusing its redaction
        (None when this one would redact or normalise differently: then ``prepare`` it).

        Same decision id and receipt time, this preparer's keyword groups (matched again: cheap)."""
        request = prepared.request
        if self.redactor is not other.redactor or (
            self._adjustments[request.channel] != other._adjustments[request.channel]
        ):
            return None
        started, _, text = self._intake(request)
        return replace(
            self._prepared(
                request,
                started,
                prepared.received_at,
                text,
                prepared.redacted,
                prepared.redaction,
                0.0,
            ),
            decision_id=prepared.decision_id,
        )

    def _intake(self, request: DecisionRequest) -> tuple[float, datetime, str]:
        started = time.perf_counter()
        if not request.message or not request.message.strip():
            raise MessageRejectedError("message is empty")
        received_at = self._clock()
        adjustment = self._adjustments[request.channel]
        return started, received_at, normalise(request.message, request.channel, adjustment)

    def _redact(self, text: str) -> tuple[str, str]:
        """The text the model and the record may see, and ``'none'``/``'applied'``/``'failed'``."""
        if self.redactor is None:
            return text, "none"
        try:
            return self.redactor.redact(text).text, "applied"
        except RedactionFailedError:
            return WITHHELD, "failed"

    def _prepared(
        self,
        request: DecisionRequest,
        started: float,
        received_at: datetime,
        text: str,
        redacted: str,
        redaction: str,
        redaction_ms: float,
    ) -> Prepared:
        keywords = self.keywords.match(text)
        if text != request.message.strip():
            # Only the groups the normalised text missed: a hit stays a hit either way.
            missed = [group for group, hit in keywords.items() if not hit]
            keywords.update(self.keywords.match(request.message, missed))
        return Prepared(
            request=request,
            decision_id=request.decision_id or self._ids(),
            received_at=received_at,
            redacted=redacted,
            redaction=redaction,
            keywords=keywords,
            redaction_ms=redaction_ms,
            started=started,
        )
