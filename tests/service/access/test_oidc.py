"""OIDC bearer tokens from a local issuer whose keys the test generates."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from service.access.oidc import OidcConfig, OidcVerifier, TokenRefusedError
from service.access.principal import Role
from service.app import create_app
from service.settings import Settings
from tests.service.access.conftest import policy_tree, write_tenant
from tests.service.conftest import serve

ISSUER = "https://sso.example.test"
AUDIENCE = "switchboard"


@pytest.fixture(scope="module")
def keys() -> tuple[Any, Any]:
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return good, other


@pytest.fixture(scope="module")
def jwks(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Any, Any]) -> Path:
    public = json.loads(RSAAlgorithm.to_jwk(keys[0].public_key()))
    path = tmp_path_factory.mktemp("issuer") / "jwks.json"
    path.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig"}]}))
    return path


def _token(key: Any, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice@acme",
        "iat": now,
        "exp": now + 300,
        "tenant": "acme",
        "role": "auditor",
        **overrides,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def _verifier(jwks: Path) -> OidcVerifier:
    return OidcVerifier(OidcConfig(ISSUER, AUDIENCE, str(jwks)))


def test_a_valid_token_names_tenant_role_and_subject(jwks: Path, keys: tuple[Any, Any]) -> None:
    principal = _verifier(jwks).verify(_token(keys[0]))
    assert (principal.subject, principal.tenant, principal.roles) == (
        "alice@acme",
        "acme",
        frozenset({Role.AUDITOR}),
    )


def _alg_none() -> str:
    return jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "x",
            "exp": int(time.time()) + 60,
            "tenant": "acme",
            "role": "admin",
        },
        key="",  # PyJWT's "none" takes no key
        algorithm="none",
        headers={"kid": "k1"},
    )


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda k: _token(k[1]), id="wrong-signature"),
        pytest.param(lambda k: _token(k[0], aud="someone-else"), id="wrong-audience"),
        pytest.param(lambda k: _token(k[0], exp=int(time.time()) - 60), id="expired"),
        pytest.param(lambda k: _token(k[0], iss="https://evil.test"), id="wrong-issuer"),
        pytest.param(lambda _: _alg_none(), id="alg-none"),
        pytest.param(lambda k: _token(k[0], role="superuser"), id="unknown-role"),
    ],
)
def test_defective_tokens_are_refused(jwks: Path, keys: tuple[Any, Any], make: Any) -> None:
    with pytest.raises(TokenRefusedError):
        _verifier(jwks).verify(make(keys))


@pytest.fixture(scope="module")
def oidc_url(tmp_path_factory: pytest.TempPathFactory, jwks: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("oidc-app")
    policies = policy_tree(root)
    write_tenant(root / "tenants", "acme")
    settings = Settings(
        policies=policies,
        tenants=root / "tenants",
        audit_db=str(root / "audit.db"),
        backend="fake",
        warm_up=False,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks=str(jwks),
    )
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.95))
    with serve(create_app(settings, backend=backend, redactor_factory=None)) as url:
        yield url


def test_the_service_accepts_good_tokens_and_refuses_bad_ones(
    oidc_url: str, keys: tuple[Any, Any]
) -> None:
    def status(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(oidc_url + "/reviews/export", headers=headers, timeout=30).status_code

    assert status(_token(keys[0])) == 200
    assert status(_token(keys[0], role="client")) == 403
    assert status(_token(keys[1])) == 401
    assert status(_token(keys[0], aud="other")) == 401
    assert status(_token(keys[0], exp=int(time.time()) - 60)) == 401
    assert status(_alg_none()) == 401


def test_a_reviewers_queues_come_from_the_token(jwks: Path, keys: tuple[Any, Any]) -> None:
    token = _token(keys[0], role="reviewer", queues=["pharmacovigilance"])
    principal = _verifier(jwks).verify(token)
    assert principal.queues == frozenset({"pharmacovigilance"})
    assert principal.sees_queue("pharmacovigilance")
    assert not principal.sees_queue("service_desk")
