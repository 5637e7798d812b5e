"""Who is calling: roles, the permissions each grants, and the principal a credential names.

The grant table below is the one place that says which role may do what; routes declare the one
permission they need (``service.access.guard.requires``) and never look at roles themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(str, Enum):
    CLIENT = "client"
    """A channel integration of one tenant: classify, read its tenant's decisions."""
    REVIEWER = "reviewer"
    """One tenant and a set of review queues: list and resolve reviews in those queues."""
    AUDITOR = "auditor"
    """Reads and exports one tenant's decisions and reviews."""
    AUTHOR = "author"
    """Compliance policy author: reads the policy pages, tries candidate policies in the
    playground. Changes nothing that serves; sees no records."""
    ADMIN = "admin"
    """Operations: reload, rollback, policy status. Sees no records."""


class Permission(str, Enum):
    PUBLIC = "public"  # probes and the API description: no credential
    CLASSIFY = "classify"
    READ_DECISIONS = "decisions:read"
    LIST_REVIEWS = "reviews:list"
    RESOLVE_REVIEWS = "reviews:resolve"
    EXPORT = "reviews:export"
    TRY_POLICIES = "policies:try"
    OPERATE = "admin:operate"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.CLIENT: frozenset({Permission.CLASSIFY, Permission.READ_DECISIONS}),
    Role.REVIEWER: frozenset(
        {Permission.LIST_REVIEWS, Permission.RESOLVE_REVIEWS, Permission.READ_DECISIONS}
    ),
    Role.AUDITOR: frozenset(
        {Permission.READ_DECISIONS, Permission.LIST_REVIEWS, Permission.EXPORT}
    ),
    Role.AUTHOR: frozenset({Permission.TRY_POLICIES}),
    Role.ADMIN: frozenset({Permission.OPERATE, Permission.TRY_POLICIES}),
}
SERVICE_WIDE: frozenset[Permission] = frozenset({Permission.OPERATE, Permission.TRY_POLICIES})
"""Permissions over the service's own configuration, not a tenant's data: granted without
placing the caller's tenant in a region (an admin has no tenant)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``queues`` limits a reviewer (None: every queue)."""

    subject: str
    tenant: str
    roles: frozenset[Role]
    via: str  # "key", "oidc", "admin-token" or "auth-off"
    queues: frozenset[str] | None = None

    def may(self, permission: Permission) -> bool:
        return permission is Permission.PUBLIC or any(
            permission in GRANTS[role] for role in self.roles
        )

    @property
    def role(self) -> str:
        """The roles as one string, for logs and the access audit."""
        return ",".join(sorted(r.value for r in self.roles))

    def reads_decisions_of(self, tenant: str) -> bool:
        """Whether this caller may read ``tenant``'s decision texts (a shadow report's
        examples): its own tenant, with the permission to read decisions. An admin may not."""
        return self.may(Permission.READ_DECISIONS) and self.tenant == tenant

    def sees_queue(self, queue: str | None) -> bool:
        """Whether a record in ``queue`` is visible: reviewers see their queues only."""
        visible = self.decision_queues()
        return visible is None or queue in visible

    def decision_queues(self) -> frozenset[str] | None:
        """The review queues whose decisions this caller may read (None: every decision), the
        rule ``sees_queue`` applies to one record, for a search to apply to many."""
        if self.roles & {Role.CLIENT, Role.AUDITOR} or self.queues is None:
            return None
        return self.queues

    def review_queues(self) -> frozenset[str] | None:
        """The queues whose pending reviews this caller may list (None: all)."""
        if Role.AUDITOR in self.roles or self.queues is None:
            return None
        return self.queues
