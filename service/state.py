"""The long-lived objects one app instance owns, created in its lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from service.access.control import AccessControl
from service.admission import Admission, ModelGuard
from service.audit import AuditStore
from service.metrics import Metrics
from service.runtime import EngineHolder
from service.settings import Settings


@dataclass
class AppState:
    settings: Settings
    holder: EngineHolder
    guard: ModelGuard
    admission: Admission
    store: AuditStore  # the home region's (``SWITCHBOARD_REGION``); routes use the caller's
    metrics: Metrics
    access: AccessControl
    backend_ready: bool = False


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.switchboard
    return state
