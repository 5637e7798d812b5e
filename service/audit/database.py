"""The database-neutral core of a SQL audit store: statement text, reads and the group writer.

Statements are written once with ``{p}`` for the driver's placeholder (``?`` for SQLite, ``%s``
for psycopg) and ``{json}`` for a JSON cast. A database module supplies ``_placeholder``,
``_read`` and a group-commit writer (``_group``); the query classes beside each table
(``claims.py``, ``outbox.py``, ``shadow.py``, ``search.py``) and ``rows.py`` build on this one.
"""

from __future__ import annotations

import abc
import asyncio
import json
from collections.abc import Sequence
from typing import Any

from engine import AuditStoreError
from service.audit.group_commit import GroupCommitWriter

# Reads take the caller's tenant: ``{t}`` is empty (every tenant: the operator's own tools) or
# ``AND d.tenant = {p}``, so a tenant's query can never see another's rows.
TENANT = " AND d.tenant = {p}"


def stored_record(value: Any) -> dict[str, Any]:
    """A stored record as data: SQLite gives JSON text, PostgreSQL's JSONB gives a dict."""
    data: dict[str, Any] = json.loads(value) if isinstance(value, str | bytes) else value
    return data


class SqlStoreCore(abc.ABC):
    """What every query of a SQL audit store runs through: ``_read`` and the group writer."""

    _placeholder: str
    _dialect: str  # "sqlite" or "postgres": picks the search statement's dialect-specific part
    _json_cast = ""  # PostgreSQL: "::jsonb"
    _group: GroupCommitWriter | None
    _name: str

    @abc.abstractmethod
    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read statement on a connection of the database module's own."""

    def _writable(self) -> GroupCommitWriter:
        if self._group is None:
            raise AuditStoreError(f"{self._name} was opened read-only")
        return self._group

    def _sql(self, statement: str) -> str:
        return statement.format(p=self._placeholder, json=self._json_cast)

    async def _query(self, statement: str, *params: Any, tenant: str | None = None) -> list[Any]:
        where = "" if tenant is None else TENANT.format(p=self._placeholder)
        text = statement.format(p=self._placeholder, json=self._json_cast, t=where, q="")
        args = params if tenant is None else (*params[:-1], tenant, params[-1])
        return await asyncio.to_thread(self._read, text, args)
