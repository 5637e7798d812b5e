"""Reading stored decisions for a caller: the scope they may see, and the access audit.

Every route or page that shows stored decisions goes through here, so the tenant and queue
scope and the record of who read what are decided once (API and workbench alike).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.access.control import Caller
from service.audit import AccessRecord, now_iso
from service.problems import ProblemError


async def audit_access(caller: Caller, action: str, ids: Iterable[str]) -> None:
    """Record who read which decisions, durably, in the tenant's own region."""
    tenant, store = caller.scoped()
    await store.record_access(
        AccessRecord(
            now_iso(),
            caller.principal.subject,
            tenant.id,
            caller.principal.role,
            action,
            tuple(ids),
        )
    )


async def visible_record(caller: Caller, decision_id: str) -> dict[str, Any]:
    """The caller's tenant's record, if its queue is the caller's too; 404 exactly as missing."""
    tenant, store = caller.scoped()
    record = await store.get(decision_id, tenant=tenant.id)
    queue = ((record or {}).get("workflow") or {}).get("queue")
    if record is None or not caller.principal.sees_queue(queue):
        raise ProblemError(404, "No such decision", decision_id)
    return record
