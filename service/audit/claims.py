"""Review claims: who is working a case, so two reviewers do not work it at once.

One row per claimed decision. A claim is taken in one conditional upsert: it is written when
nobody holds the decision, when the holder's claim has expired, or when the holder renews it;
otherwise the statement changes nothing. Whoever holds the row afterwards won, so of two claims
at once exactly one wins, in SQLite (one writer) and in PostgreSQL (the row lock of
``ON CONFLICT``) alike. Unlike decisions and reviews, claims are working state, not a record:
a release or a review deletes the row (who claimed and released is in the access audit).
``ClaimQueries`` is the store's side: the statements run through the database module.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from service.audit.database import SqlStoreCore

SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS claims (
    decision_id TEXT PRIMARY KEY REFERENCES decisions (decision_id),
    holder TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
"""
POSTGRES_DDL = [
    """CREATE TABLE IF NOT EXISTS claims (
        decision_id TEXT PRIMARY KEY REFERENCES decisions (decision_id),
        holder TEXT NOT NULL,
        claimed_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )""",
]

CLAIM = (
    "INSERT INTO claims (decision_id, holder, claimed_at, expires_at) "
    "VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (decision_id) DO UPDATE SET "
    "holder = excluded.holder, claimed_at = excluded.claimed_at, "
    "expires_at = excluded.expires_at "
    "WHERE claims.holder = excluded.holder OR claims.expires_at <= excluded.claimed_at"
)
RELEASE = "DELETE FROM claims WHERE decision_id = {p} AND holder = {p}"
DROP = "DELETE FROM claims WHERE decision_id = {p}"  # a review ends the case's claim
LIVE = (
    "SELECT c.decision_id, c.holder, c.claimed_at, c.expires_at FROM claims c "
    "JOIN decisions d ON d.decision_id = c.decision_id WHERE c.expires_at > {p}"
)
ONE = " AND c.decision_id = {p}"
OF_TENANT = " AND d.tenant = {p}"


@dataclass(frozen=True)
class Claim:
    """A live claim: who holds the decision and until when (ISO 8601, UTC)."""

    decision_id: str
    holder: str
    claimed_at: str
    expires_at: str


def stamp(at: datetime) -> str:
    """UTC with microseconds always written, so stored times compare as text."""
    return at.astimezone(timezone.utc).isoformat(timespec="microseconds")


class ClaimQueries(SqlStoreCore):
    """Claims in a SQL audit store: take, renew, release and read them."""

    async def claim(
        self, decision_id: str, holder: str, *, ttl_s: float, now: datetime | None = None
    ) -> Claim | None:
        at = now or datetime.now(timezone.utc)
        row = (decision_id, holder, stamp(at), stamp(at + timedelta(seconds=ttl_s)))
        await self._writable().submit((self._sql(CLAIM), row))
        return await self.claim_of(decision_id, now=at)

    async def release(self, decision_id: str, holder: str) -> None:
        await self._writable().submit((self._sql(RELEASE), (decision_id, holder)))

    async def claim_of(self, decision_id: str, *, now: datetime | None = None) -> Claim | None:
        at = stamp(now or datetime.now(timezone.utc))
        rows = await asyncio.to_thread(self._read, self._sql(LIVE + ONE), (at, decision_id))
        return Claim(*rows[0]) if rows else None

    async def live_claims(
        self, *, tenant: str | None = None, now: datetime | None = None
    ) -> dict[str, Claim]:
        at = stamp(now or datetime.now(timezone.utc))
        statement, args = LIVE, [at]
        if tenant is not None:
            statement, args = statement + OF_TENANT, [at, tenant]
        rows = await asyncio.to_thread(self._read, self._sql(statement), tuple(args))
        return {row[0]: Claim(*row) for row in rows}
