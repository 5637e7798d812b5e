"""Two tenants in one region, keys for every role of each, and a served app with auth on."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from service.access.keys import KeyStore
from service.access.principal import Role
from service.app import create_app
from service.settings import Settings
from tests.conftest import DEFAULT_POLICY, PROMPTS
from tests.service.conftest import TOKEN, serve

UNSURE = {
    Category.INFORMATIONAL: 0.35,
    Category.SERVICE_ACTION: 0.5,
    Category.SAFETY_COMPLIANCE: 0.15,
}  # below the 0.55 threshold: the decision waits for review in the service_desk queue


def write_tenant(directory: Path, tenant_id: str, **fields: Any) -> None:
    data = {
        "id": tenant_id,
        "region": "local",
        "policies": ["contact-center"],
        "rate_per_s": 1000,
        "burst": 1000,
        **fields,
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{tenant_id}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


def policy_tree(root: Path) -> Path:
    """contact-center plus a copy with id globex-center (only globex may use it)."""
    policies = root / "policies"
    shutil.copytree(DEFAULT_POLICY, policies / "contact-center")
    shutil.copytree(DEFAULT_POLICY, policies / "globex-center")
    own = policies / "globex-center" / "policy.yaml"
    own.write_text(
        own.read_text(encoding="utf-8").replace("id: contact-center", "id: globex-center", 1),
        encoding="utf-8",
    )
    shutil.copytree(PROMPTS, root / "prompts")
    return policies


@dataclass
class World:
    """A served app and what the matrix needs to address both tenants' data."""

    url: str
    client: httpx.Client
    keys: dict[tuple[str, Role], str]
    decisions: dict[str, str]  # tenant -> a decision of its own awaiting review (reviewed once)
    pending: dict[str, str]  # tenant -> a decision still waiting for review
    store: KeyStore
    settings: Settings

    def auth(self, tenant: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[(tenant, role)]}"}


def build_world(root: Path, backend: FakeBackend) -> Iterator[World]:
    policies = policy_tree(root)
    tenants = root / "tenants"
    write_tenant(tenants, "acme")
    write_tenant(tenants, "globex", policies=["contact-center", "globex-center"])
    settings = Settings(
        policies=policies,
        tenants=tenants,
        audit_db=str(root / "audit.db"),
        keys_db=str(root / "keys.db"),
        default_policy="contact-center",
        admin_token=TOKEN,
        backend="fake",
        warm_up=False,
        auth="on",
    )
    store = KeyStore(settings.keys_url())
    keys = {
        (tenant, role): store.create(tenant, role, name=f"{tenant}-{role.value}")[0]
        for tenant in ("acme", "globex")
        for role in Role
    }
    app = create_app(settings, backend=backend, redactor_factory=None)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        world = World(url, client, keys, {}, {}, store, settings)
        for tenant in ("acme", "globex"):
            ids = []
            for _ in range(2):
                backend.enqueue(Scripted(UNSURE))
                r = client.post(
                    "/classify",
                    json={"message": f"my {tenant} thing is odd"},
                    headers=world.auth(tenant, Role.CLIENT),
                )
                assert r.status_code == 200, r.text
                ids.append(r.json()["decision_id"])
            world.decisions[tenant], world.pending[tenant] = ids
            r = client.post(
                f"/reviews/{ids[0]}",
                json={"category": "informational"},
                headers=world.auth(tenant, Role.REVIEWER),
            )
            assert r.status_code == 201, r.text
        yield world
    store.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.95))
    yield from build_world(tmp_path_factory.mktemp("access"), backend)
