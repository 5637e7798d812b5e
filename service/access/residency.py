"""Data residency: one audit store per region, and a replica that serves only its own regions.

A tenant's decisions, reviews and access records are written to and read from its region's
store only. A tenant whose region this replica does not serve is refused with 421 (Misdirected
Request) before anything is decided, read or stored: the ingress sent it to the wrong region.
"""

from __future__ import annotations

from collections.abc import Mapping

from service.access.tenants import Tenant
from service.audit import AuditStore
from service.problems import ProblemError


class Residency:
    def __init__(self, stores: Mapping[str, AuditStore]) -> None:
        self.stores = dict(stores)

    @property
    def regions(self) -> list[str]:
        return sorted(self.stores)

    def serving(self, tenant: Tenant) -> AuditStore | None:
        """The tenant's region's store, if this process serves that region."""
        return self.stores.get(tenant.region)

    def store_for(self, tenant: Tenant) -> AuditStore:
        store = self.serving(tenant)
        if store is None:
            raise ProblemError(
                421,
                "Wrong region",
                f"tenant {tenant.id} lives in region {tenant.region}; this replica serves "
                f"{', '.join(self.regions)}. Send it to the {tenant.region} endpoint.",
            )
        return store

    async def close(self) -> None:
        for store in self.stores.values():
            await store.close()
