"""Browser tests: a real ``switchboard serve`` on loopback, driven by Debian's Chromium.

``workbench`` starts the service once per session in a subprocess (the real embedded model,
Presidio, a SQLite audit store in a temporary directory, authentication on) with tenant ``acme``
and an API key for each role. ``page_as(role)`` is a Playwright page already logged in with that
role's key; ``shot(page, name)`` saves ``tests/browser/artifacts/<name>.png``; ``axe(page)`` runs
the vendored axe-core and fails on any WCAG 2.1 A/AA violation.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (``apt-get install
chromium``). Without it the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from service.access.keys import KeyStore
from service.access.principal import Role
from tests.conftest import REPO
from tests.service.conftest import free_port

# Debian's Chromium; SWITCHBOARD_TEST_CHROMIUM points at another build already on the machine
# (the GitHub runner has Google Chrome, not Debian's package).
CHROMIUM = Path(os.environ.get("SWITCHBOARD_TEST_CHROMIUM", "/usr/bin/chromium"))
HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
AXE = HERE / "vendor" / "axe.min.js"
AXE_URL = "/__tests__/axe.min.js"  # answered by the browser context, never by the service
TENANT = "acme"
# The service starts Presidio and warms the model's prompt prefix: seconds on an idle machine,
# longer when the 2 cores are shared.
START_TIMEOUT_S = 600
VIEWPORT = {"width": 1280, "height": 800}  # a laptop screen
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


@dataclass
class Workbench:
    """The served workbench: its URL, a key per role, where its data and log are."""

    url: str
    keys: dict[Role, str]
    root: Path
    log: Path
    keys_db: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def audit_db(self) -> Path:
        return self.root / "audit.db"

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def new_key(self, role: Role, name: str, queues: frozenset[str] | None = None) -> str:
        """Another person's key in tenant acme (two reviewers, say)."""
        store = KeyStore(str(self.keys_db))
        try:
            key, _ = store.create(TENANT, role, name=name, queues=queues)
        finally:
            store.close()
        return key

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120)


def _write_tenant(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tenant = {
        "id": TENANT,
        "region": "local",
        "policies": ["*"],
        "rate_per_s": 1000,
        "burst": 1000,
    }
    (directory / f"{TENANT}.yaml").write_text(yaml.safe_dump(tenant), encoding="utf-8")


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"switchboard serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"switchboard serve not ready after {START_TIMEOUT_S}s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def workbench(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Workbench]:
    # ``chromium`` first: without it the tests skip (or fail in CI) before a server starts.
    root = tmp_path_factory.mktemp("workbench")
    tenants = root / "tenants"
    _write_tenant(tenants)
    keys_db = root / "keys.db"
    store = KeyStore(str(keys_db))
    try:
        keys = {role: store.create(TENANT, role, name=f"{TENANT}-{role.value}")[0] for role in Role}
    finally:
        store.close()
    env = {
        "SWITCHBOARD_TENANTS": str(tenants),
        "SWITCHBOARD_KEYS_DB": str(keys_db),
        "SWITCHBOARD_BACKEND": "embedded",
        "SWITCHBOARD_AUTH": "on",
        "SWITCHBOARD_MODEL_QUEUE": "32",
        "SWITCHBOARD_BREAKER_FAILURES": "1000",
        "SWITCHBOARD_DELIVERY_POLL_S": "0.2",
    }
    with serving(root, env) as url:
        yield Workbench(url, keys, root, root / "serve.log", keys_db)


@contextmanager
def serving(root: Path, env: dict[str, str], *args: str) -> Iterator[str]:
    """``switchboard serve`` on a free loopback port with the repository's policies, its audit
    store in ``root``; stopped when the block ends."""
    port = free_port()
    full = {
        **os.environ,
        "SWITCHBOARD_POLICIES": str(REPO / "policies"),
        "SWITCHBOARD_PROMPTS": str(REPO / "prompts"),
        "SWITCHBOARD_AUDIT_DB": str(root / "audit.db"),
        "SWITCHBOARD_REGION": "local",
        **env,
    }
    log = root / "serve.log"
    command = [sys.executable, "-m", "engine", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, *args], env=full, stdout=out, stderr=subprocess.STDOUT, cwd=root
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def dev_workbench(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[str]:
    """What ``make run`` starts (``--no-auth``: the development login), with the repository's
    tenants; the scripted backend, since these tests only log in and look around."""
    root = tmp_path_factory.mktemp("make-run")
    env = {"SWITCHBOARD_TENANTS": str(REPO / "tenants"), "SWITCHBOARD_BACKEND": "fake"}
    with serving(root, {**env, "SWITCHBOARD_WARM_UP": "false"}, "--no-auth") as url:
        yield url


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The browser binary; missing, the browser tests skip, or fail under ``CI=true``."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (or SWITCHBOARD_TEST_CHROMIUM)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI must run the browser tests")
        pytest.skip(message)
    return CHROMIUM


# Module scope, not session: sync Playwright keeps its asyncio loop running in this thread while
# it is started, and every pytest-asyncio test after it would fail ("Runner.run() cannot be
# called from a running event loop"). Stopped after each module, it is gone before other tests.
@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


PageAs = Callable[..., Any]


@pytest.fixture
def page_as(workbench: Workbench, browser: Any) -> Iterator[PageAs]:
    """``page_as(Role.REVIEWER)`` (or ``"reviewer"``): a page logged in with that role's key, at
    the home page; ``page_as(role, key=...)`` logs in with another key. The test fails if a page
    asked for anything from another host or broke the Content-Security-Policy."""
    contexts: list[Any] = []
    refused: list[str] = []

    def open_as(role: Role | str, *, key: str | None = None) -> Any:
        context = new_context(browser, workbench.url, refused)
        contexts.append(context)
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("API key").fill(key or workbench.keys[Role(role)])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{workbench.url}/")
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert refused == [], refused


def new_context(browser: Any, url: str, refused: list[str]) -> Any:
    """A fresh browser profile (no cookies) on the served ``url``, axe-core ready to inject.

    ``refused`` collects what must never happen: a request to another host (the page would be
    broken on an air-gapped network) and anything the pages' Content-Security-Policy refused
    (an inline script or an outside resource works nowhere). Assert it empty at the end.
    """
    context = browser.new_context(base_url=url, viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    # axe-core is test-only: the browser gets it as if from the workbench's own origin (the
    # Content-Security-Policy allows 'self'), without the service ever serving it.
    context.route(
        f"{url}{AXE_URL}",
        lambda route: route.fulfill(path=str(AXE), content_type="text/javascript"),
    )

    def on_request(request: Any) -> None:
        host = urlsplit(request.url).hostname
        if request.url.startswith(("http:", "https:")) and host not in LOOPBACK:
            refused.append(f"request to another host: {request.url}")

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    context.on("request", on_request)
    context.on("console", on_console)
    return context


@pytest.fixture
def shot() -> Callable[[Any, str], Path]:
    def save(page: Any, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.fixture
def axe() -> Callable[[Any], None]:
    def check(page: Any) -> None:
        page.add_script_tag(url=AXE_URL)
        result = page.evaluate(
            """async () => await axe.run(document, {
                runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
                resultTypes: ['violations'],
            })"""
        )
        violations = result["violations"]
        lines = [
            f"{v['id']} ({v['impact']}): {v['help']} -> "
            + "; ".join(str(n["target"]) for n in v["nodes"][:5])
            for v in violations
        ]
        assert not violations, f"axe-core on {page.url}:\n" + "\n".join(lines)

    return check
