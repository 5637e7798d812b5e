"""Schemathesis over the OpenAPI description, once per role: requests generated from the schema,
sent with each role's credential of tenant acme, must never meet a server error and must be
answered as documented (status, content type, body schema). Not checked: how a method the schema
does not declare is answered (405 and its ``Allow`` header: Starlette's, outside the access
model). Six examples per operation keep it to a few seconds."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import allow_header_conformance, unsupported_method

from service.access.principal import Role
from service.app import create_app
from service.settings import Settings
from tests.service.access.conftest import World

SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@SCHEMA.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_role_gets_documented_answers(case: Case[Any], world: World) -> None:
    for role in Role:
        response = case.call(base_url=world.url, headers=world.auth("acme", role))
        case.validate_response(
            response, excluded_checks=[unsupported_method, allow_header_conformance]
        )
