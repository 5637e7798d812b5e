"""Who changed what serves, and when: the reload provenance of one replica.

Every start, reload, rollback and failed reload is an ``Activation``; the replica keeps the last
few in memory (``ActivationLog``) so ``/admin/policies`` and the workbench's policy page can say
who activated the running revision, when, what it replaced, and why the last reload failed.
Nothing is persisted: each replica answers for itself, and a restart starts a new history.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from engine.decide.engine import Engine

Action = Literal["start", "reload", "rollback", "reload failed"]
HISTORY = 20
STARTUP = "start-up"
"""The subject of the activation a process makes when it starts (nobody asked for it)."""


@dataclass(frozen=True)
class PolicyRevision:
    """One policy's revision, as a reviewer names it."""

    id: str
    version: str
    revision: str

    @classmethod
    def of(cls, engine: Engine) -> PolicyRevision:
        loaded = engine.loaded
        return cls(loaded.id, loaded.version, loaded.revision)

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "version": self.version, "revision": self.revision}


@dataclass(frozen=True)
class Activation:
    """One attempt to change what serves: what was active afterwards, by whom, when.

    ``revisions`` are the policies serving after it (unchanged for a failed reload);
    ``problems`` say, file:line first, why a reload failed.
    """

    action: Action
    by: str
    at: str
    revisions: tuple[PolicyRevision, ...]
    problems: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.action == "reload failed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "by": self.by,
            "at": self.at,
            "revisions": [r.as_dict() for r in self.revisions],
            "problems": list(self.problems),
        }


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


class ActivationLog:
    """The last ``HISTORY`` activations of this replica, newest last."""

    def __init__(self, size: int = HISTORY) -> None:
        self._items: deque[Activation] = deque(maxlen=size)

    def add(
        self,
        action: Action,
        by: str,
        engines: Iterable[Engine],
        problems: Iterable[str] = (),
    ) -> Activation:
        item = Activation(
            action, by, now(), tuple(PolicyRevision.of(e) for e in engines), tuple(problems)
        )
        self._items.append(item)
        return item

    def items(self) -> list[Activation]:
        """Newest first."""
        return list(reversed(self._items))

    def current(self) -> Activation | None:
        """The activation that put the serving revisions in place (failed ones change nothing)."""
        return next((a for a in reversed(self._items) if not a.failed), None)

    def last_failure(self) -> Activation | None:
        return next((a for a in reversed(self._items) if a.failed), None)
