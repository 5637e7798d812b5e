"""Access control: from the ``Authorization`` header to a caller allowed to do one thing.

``AccessControl.authorize`` is the one place that authenticates (API key, OIDC token, the legacy
admin token, or auth switched off on a loopback bind), checks the permission the route declares
against the role's grants, and places the tenant in a region this replica serves. Its answers:
401 (no or bad credential), 403 (the role may not), 421 (the tenant's data lives in another
region: nothing is read or stored here). Keys are never logged; a refused credential is logged
by its kind only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from service.access.keys import PREFIX, KeyStore
from service.access.oidc import OidcVerifier, TokenRefusedError
from service.access.principal import Permission, Principal, Role
from service.access.residency import Residency
from service.access.tenants import Tenant, Tenants, load_tenants
from service.audit import AuditStore
from service.problems import ProblemError

log = logging.getLogger("switchboard.access")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
DEV_TENANT = "dev"
ANONYMOUS = Principal("anonymous", "", frozenset(), "none")


@dataclass(frozen=True)
class Caller:
    """An authorized request: who, for which tenant, and the audit store of its region."""

    principal: Principal
    tenant: Tenant | None = None  # None for operations routes and public ones
    store: AuditStore | None = None

    def scoped(self) -> tuple[Tenant, AuditStore]:
        # Only tenant-bound permissions reach a route that calls this.
        assert self.tenant is not None
        assert self.store is not None
        return self.tenant, self.store


@dataclass
class AccessControl:
    tenants: Tenants
    tenants_dir: Path
    keys: KeyStore
    residency: Residency
    admin_token: SecretStr | None = None
    oidc: OidcVerifier | None = None
    auth_off: bool = False

    def check_tenants(self) -> None:
        """Validate the tenants directory's files (not yet which policies exist): a reload calls
        this first, so a broken tenant file fails it before a new policy is activated."""
        load_tenants(self.tenants_dir)

    def reload_tenants(self, known_policies: list[str]) -> None:
        """Re-read the tenants directory; a broken one raises and the old one stays."""
        self.tenants = load_tenants(self.tenants_dir, known_policies)

    async def authorize(self, authorization: str | None, permission: Permission) -> Caller:
        if permission is Permission.PUBLIC:
            return Caller(ANONYMOUS)
        return self.admit(await self.authenticate(authorization), permission)

    def admit(self, principal: Principal, permission: Permission) -> Caller:
        """The authorization half: ``principal`` (already authenticated) for ``permission``.

        The workbench calls it for a development login's principal (auth off, one role picked);
        everything else goes through ``authorize``.
        """
        if permission is Permission.PUBLIC:
            return Caller(ANONYMOUS)
        if not principal.may(permission):
            raise ProblemError(
                403,
                "Forbidden",
                f"role {principal.role} may not {permission.value}",
            )
        if permission is Permission.OPERATE:
            return Caller(principal)
        tenant = self.tenants.get(principal.tenant)
        if tenant is None:
            raise ProblemError(403, "Forbidden", f"unknown tenant {principal.tenant!r}")
        return Caller(principal, tenant, self.residency.store_for(tenant))

    async def authenticate(self, authorization: str | None) -> Principal:
        """Who ``authorization`` names (401 when nobody): the workbench's login checks a key."""
        if self.auth_off:
            return Principal("dev", DEV_TENANT, frozenset(Role), "auth-off")
        if not authorization:
            raise ProblemError(
                401,
                "Unauthorized",
                "Send Authorization: Bearer <key or token>.",
                headers=_CHALLENGE,
            )
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and credential:
            principal = await self._principal(credential)
            if principal is not None:
                return principal
        # The kind only: never the credential, nor the scheme (a key sent without "Bearer ").
        if scheme.lower() != "bearer":
            kind = "not_bearer"
        else:
            kind = "api_key" if credential.startswith(PREFIX) else "token"
        log.info(
            "credential refused", extra={"fields": {"event": "credential_refused", "kind": kind}}
        )
        raise ProblemError(
            401, "Unauthorized", "Unknown, revoked or malformed credential.", headers=_CHALLENGE
        )

    async def _principal(self, credential: str) -> Principal | None:
        if credential.startswith(PREFIX):
            info = await asyncio.to_thread(self.keys.verify, credential)
            return info.principal() if info is not None else None
        token = self.admin_token
        if token is not None and hmac.compare_digest(
            credential.encode(), token.get_secret_value().encode()
        ):
            return Principal("admin-token", "", frozenset({Role.ADMIN}), "admin-token")
        if self.oidc is not None and credential.count(".") == 2:
            try:  # in a thread: a JWKS URL is fetched (and re-fetched when its cache expires)
                return await asyncio.to_thread(self.oidc.verify, credential)
            except TokenRefusedError as exc:
                log.info(
                    "token refused", extra={"fields": {"event": "token_refused", "why": str(exc)}}
                )
        return None

    async def close(self) -> None:
        await asyncio.to_thread(self.keys.close)
        await self.residency.close()
