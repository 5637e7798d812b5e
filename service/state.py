"""The long-lived objects one app instance owns, created in its lifespan."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request

from service.admission import Admission, ModelGuard
from service.audit import AuditStore
from service.delivery import Dispatcher
from service.metrics import Metrics
from service.problems import ProblemError
from service.runtime import EngineHolder
from service.settings import Settings


@dataclass
class AppState:
    settings: Settings
    holder: EngineHolder
    guard: ModelGuard
    admission: Admission
    store: AuditStore
    metrics: Metrics
    model_healthy: bool = False  # the last probe; a signal for alerts, not for readiness
    dispatcher: Dispatcher | None = None


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.switchboard
    return state


def require_admin(request: Request) -> None:
    """Bearer-token check in constant time; admin routes are off without a configured token."""
    token = app_state(request).settings.admin_token
    if token is None:
        raise ProblemError(404, "Admin routes are off", "Set SWITCHBOARD_ADMIN_TOKEN to use them.")
    header = request.headers.get("authorization", "")
    scheme, _, supplied = header.partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.encode(), expected):
        raise ProblemError(
            401,
            "Unauthorized",
            "Send Authorization: Bearer <token>.",
            headers={"WWW-Authenticate": "Bearer"},
        )
