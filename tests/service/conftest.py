"""Serve the real app with uvicorn on a free loopback port and talk to it over HTTP."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from service.app import create_app
from service.settings import Settings
from tests.conftest import REPO

TOKEN = "test-admin-token"  # noqa: S105 - a test fixture, not a secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    url: str
    backend: FakeBackend
    settings: Settings
    client: httpx.Client

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def serve(app: Any, *, start_timeout_s: float = 30) -> Iterator[str]:
    """Run ``app`` until the block ends; start-up includes the lifespan (and any warm-up)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


ServeFactory = Callable[..., Served]


@pytest.fixture
def make_served(policy_copy: Path, tmp_path: Path) -> Iterator[ServeFactory]:
    stack: list[Any] = []

    def factory(
        backend: FakeBackend | None = None,
        redactor_factory: Any = None,
        **overrides: Any,
    ) -> Served:
        fake = backend or FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
        tenants = policy_copy.parent.parent / "tenants"
        if not tenants.exists():
            shutil.copytree(REPO / "tenants", tenants)
        values: dict[str, Any] = {
            "policies": policy_copy.parent,
            # Authorization has its own tests (tests/service/access/); the others act as the dev
            # tenant with every role, as `make run` does.
            "auth": "off",
            "audit_db": str(tmp_path / "audit.db"),
            "admin_token": TOKEN,
            "backend": "fake",
            "warm_up": False,  # the scripted backend has no prefix to cache
            **overrides,
        }
        settings = Settings(**values)
        app = create_app(settings, backend=fake, redactor_factory=redactor_factory)
        cm = serve(app)
        url = cm.__enter__()
        client = httpx.Client(base_url=url, timeout=30)
        stack.append((cm, client))
        return Served(url, fake, settings, client)

    yield factory
    for cm, client in reversed(stack):
        client.close()
        cm.__exit__(None, None, None)


@pytest.fixture
def served(make_served: ServeFactory) -> Served:
    return make_served()
