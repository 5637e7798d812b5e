"""Reload and rollback, as both the operations API and the workbench's policy page run them.

One place, so a button in the browser does exactly what ``POST /admin/reload`` does: tenants
checked first, the policies built and swapped, tenants re-read against them, the metric counted
and every failure recorded with who asked.
"""

from __future__ import annotations

from engine.errors import PolicyError
from service.state import AppState


async def reload_policies(state: AppState, *, by: str) -> None:
    """Activate the policy directory as it is now; a ``PolicyError`` leaves the old revision
    serving (except a tenants file that names a removed policy: see docs/security.md)."""
    holder = state.holder
    try:
        try:
            state.access.check_tenants()  # a broken tenant file: nothing is activated
        except PolicyError as exc:
            holder.note_failure(exc, by=by)
            raise
        await holder.reload(by=by)  # records its own failure
        active = holder.active
        try:
            state.access.reload_tenants(list(active.engines) if active else [])
        except PolicyError as exc:
            holder.note_failure(exc, by=by)
            raise
    except PolicyError:
        state.metrics.reloads.labels("failed").inc()
        raise
    state.metrics.reloads.labels("ok").inc()


async def rollback_policies(state: AppState, *, by: str) -> bool:
    """Return to the previous revision; False when there is none."""
    if await state.holder.rollback(by=by) is None:
        return False
    state.metrics.reloads.labels("rollback").inc()
    return True
