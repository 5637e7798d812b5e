"""The long-lived objects one app instance owns, created in its lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from fastapi import Request

from service.access.control import AccessControl
from service.admission import Admission, ModelGuard
from service.audit import AuditStore
from service.delivery import Dispatcher
from service.metrics import Metrics
from service.playground import Playground
from service.runtime import EngineHolder
from service.settings import Settings
from service.shadow import Shadow


@dataclass
class AppState:
    settings: Settings
    holder: EngineHolder
    guard: ModelGuard
    admission: Admission
    store: AuditStore  # the home region's (``SWITCHBOARD_REGION``); routes use the caller's
    metrics: Metrics
    access: AccessControl
    shadow: Shadow  # a candidate revision deciding beside the active one, when one runs
    model_healthy: bool = False  # the last probe; a signal for alerts, not for readiness
    dispatcher: Dispatcher | None = None  # the home region's: /admin/outbox
    # One per regional store this replica serves (the home one included): every region that
    # can receive decisions has its outbox drained.
    dispatchers: dict[str, Dispatcher] = field(default_factory=dict)

    @cached_property
    def playground(self) -> Playground:
        """The workbench's playground: one per app, for its own cap on rule compiles."""
        return Playground(self.holder, self.settings)

    def dispatcher_for(self, store: AuditStore) -> Dispatcher | None:
        """The dispatcher draining ``store``'s outbox (the caller's region's)."""
        for each in self.dispatchers.values():
            if each.store is store:
                return each
        return self.dispatcher if self.dispatcher and self.dispatcher.store is store else None


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.switchboard
    return state
