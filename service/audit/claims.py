"""Review claims: who is working a case, so two reviewers do not work it at once.

One row per claimed decision. A claim is taken in one conditional upsert: it is written when
nobody holds the decision, when the holder's claim has expired, or when the holder renews it;
otherwise the statement changes nothing. Whoever holds the row afterwards won, so of two claims
at once exactly one wins, in SQLite (one writer) and in PostgreSQL (the row lock of
``ON CONFLICT``) alike. Unlike decisions and reviews, claims are working state, not a record:
a release or a review deletes the row (who claimed and released is in the access audit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

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
