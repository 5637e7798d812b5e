"""OIDC bearer tokens: a JWT signed by the company's identity provider, verified against its JWKS.

Only asymmetric algorithms are accepted (RS256, ES256 and kin), so ``alg: none`` and an HMAC
signed with the public key are refused before any claim is read. The issuer, audience, expiry and
signature must all hold; the tenant, role and review queues come from configured claims.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from engine.errors import SwitchboardError
from service.access.principal import Principal, Role

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class TokenRefusedError(SwitchboardError):
    """The bearer token is not a valid token from the configured issuer."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks: str  # https://… (fetched and cached) or a JSON file path
    tenant_claim: str = "tenant"
    role_claim: str = "role"
    queues_claim: str = "queues"


class OidcVerifier:
    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        if config.jwks.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(config.jwks, cache_keys=True, lifespan=300)
        else:
            self._keys = jwt.PyJWKSet.from_dict(json.loads(Path(config.jwks).read_text()))

    def _key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._keys.keys:
            if key.key_id == kid:
                return key.key
        raise TokenRefusedError("token signed by a key not in the issuer's JWKS")

    def verify(self, token: str) -> Principal:
        """The principal the token names; ``TokenRefusedError`` for any defect."""
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=ALGORITHMS,
                audience=self.config.audience,
                issuer=self.config.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise TokenRefusedError(f"token refused: {type(exc).__name__}") from exc
        tenant = claims.get(self.config.tenant_claim)
        role = claims.get(self.config.role_claim)
        queues = claims.get(self.config.queues_claim)
        if not isinstance(tenant, str) or role not in {r.value for r in Role}:
            raise TokenRefusedError("token lacks a tenant or a known role claim")
        return Principal(
            str(claims["sub"]),
            tenant,
            frozenset({Role(role)}),
            "oidc",
            frozenset(str(q) for q in queues) if isinstance(queues, list) else None,
        )
