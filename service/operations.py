"""Reload and rollback, as the operations API, the workbench's policy page and a shadow
promotion all run them.

One place, so a button in the browser does exactly what ``POST /admin/reload`` does: tenants
checked first, the policies built and swapped, tenants re-read against them, the metric counted
and every failure recorded with who asked.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import PolicyError
from service.runtime import EngineSet
from service.state import AppState


async def reload_policies(state: AppState, *, by: str, directory: Path | None = None) -> EngineSet:
    """Activate the policy directory as it is now (or ``directory``: a promoted shadow
    candidate); a ``PolicyError`` leaves the old revision serving (except a tenants file that
    names a removed policy: see docs/security.md)."""
    holder = state.holder
    try:
        try:
            state.access.check_tenants()  # a broken tenant file: nothing is activated
        except PolicyError as exc:
            holder.note_failure(exc, by=by)
            raise
        fresh = await holder.reload(directory, by=by)  # records its own failure
        try:
            state.access.reload_tenants(list(fresh.engines))
        except PolicyError as exc:
            holder.note_failure(exc, by=by)
            raise
    except PolicyError:
        state.metrics.reloads.labels("failed").inc()
        raise
    state.metrics.reloads.labels("ok").inc()
    return fresh


async def rollback_policies(state: AppState, *, by: str) -> bool:
    """Return to the previous revision; False when there is none."""
    if await state.holder.rollback(by=by) is None:
        return False
    state.metrics.reloads.labels("rollback").inc()
    return True
