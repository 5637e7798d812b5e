"""What an operator does with a shadow run: start one, stop it, read it, promote the candidate.

The API routes (``service.routes.shadow``) and the workbench pages both call these, so a shadow
started from either behaves the same. The candidate is built exactly as a reload builds
(``EngineHolder.build``): what fails a reload fails here, with the same problems list.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from engine.policy.loader import policy_dirs
from service.access.control import Caller
from service.audit import AuditStore
from service.operations import reload_policies
from service.problems import ProblemError
from service.runtime import EngineSet
from service.shadow.report import ShadowReport, build_report
from service.shadow.runner import ShadowRun
from service.state import AppState


async def start_shadow(
    state: AppState, directory: Path, *, by: str, sample_rate: float | None = None
) -> ShadowRun:
    """Build the candidate in ``directory`` and run it in shadow (409 while one runs)."""
    if state.shadow.run is not None:
        raise ProblemError(
            409,
            "A shadow run is active",
            f"Stop run {state.shadow.run.run_id} (DELETE /admin/shadow) before starting another.",
        )
    if not await asyncio.to_thread(_holds_policies, directory):
        raise ProblemError(
            404,
            "No policy directory",
            f"{directory} holds no policy (a directory of YAML files, or of such directories) "
            "on this server.",
        )
    candidate = await asyncio.to_thread(state.holder.build, directory)
    if state.shadow.run is not None:  # another start won while this one built
        raise ProblemError(409, "A shadow run is active", "Another start won; stop it first.")
    run = ShadowRun(
        run_id=uuid.uuid4().hex,
        directory=str(directory),
        candidate=candidate,
        started_by=by,
        sample_rate=state.settings.shadow_sample_rate if sample_rate is None else sample_rate,
    )
    state.shadow.start(run)
    return run


def _holds_policies(directory: Path) -> bool:
    try:
        return directory.is_absolute() and directory.is_dir() and bool(policy_dirs(directory))
    except OSError:
        return False


async def stop_shadow(state: AppState) -> ShadowRun:
    run = await state.shadow.stop()
    if run is None:
        raise ProblemError(409, "No shadow run is active", "Start one with POST /admin/shadow.")
    return run


async def shadow_report(
    state: AppState, caller: Caller, *, with_own_examples: bool = False
) -> ShadowReport | None:
    """The running (else the last) run's report as ``caller`` may see it; None: never ran.

    A caller acting for a tenant gets that tenant's counts and examples. An operator gets every
    tenant's counts; with ``with_own_examples`` (the workbench), also the examples of its own
    tenant when its roles may read that tenant's decisions (an admin key alone may not)."""
    run = state.shadow.run or state.shadow.last
    if run is None:
        return None
    examples_from: AuditStore | None
    if caller.store is not None:
        stores, examples_from = [caller.store], caller.store
    else:
        stores = list(state.access.residency.stores.values())
        examples_from = _own_store(state, caller) if with_own_examples else None
    return await build_report(
        run,
        caller,
        stores,
        active=run is state.shadow.run,
        queued=state.shadow.queued if run is state.shadow.run else 0,
        examples_from=examples_from,
    )


def _own_store(state: AppState, caller: Caller) -> AuditStore | None:
    tenant = state.access.tenants.get(caller.principal.tenant)
    if tenant is None or not caller.principal.reads_decisions_of(tenant.id):
        return None
    return state.access.residency.serving(tenant)  # None: its region is served elsewhere


async def promote_shadow(state: AppState, *, by: str) -> EngineSet:
    """Promote the running candidate: a reload of its directory (``by`` asked), then the shadow
    stops.

    A reload like any other (``service.operations``: validated, swapped atomically, the old
    revision kept for rollback, recorded with who asked); from then on reloads read the
    candidate's directory.
    """
    run = state.shadow.run
    if run is None:
        raise ProblemError(409, "No shadow run is active", "Only a running candidate is promoted.")
    fresh = await reload_policies(state, by=by, directory=Path(run.directory))
    await state.shadow.stop()
    return fresh
