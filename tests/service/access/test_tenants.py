"""Tenant files: every problem located, checked by `switchboard check`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.access.tenants import TenantConfigError, load_tenants
from tests.conftest import REPO, Editor
from tests.service.access.conftest import write_tenant
from tests.service.conftest import Served, ServeFactory


def test_the_repository_has_a_dev_tenant() -> None:
    dev = load_tenants(REPO / "tenants", ["contact-center"]).get("dev")
    assert dev is not None
    assert dev.allows("contact-center")


def test_every_problem_is_reported_with_its_file_and_field(tmp_path: Path) -> None:
    write_tenant(tmp_path, "acme", rate_per_s=0)
    write_tenant(tmp_path, "delta", policies=["nope"])
    write_tenant(tmp_path, "beta", id="gamma", model_share=2)
    (tmp_path / "broken.yaml").write_text("id: [unclosed", encoding="utf-8")
    with pytest.raises(TenantConfigError) as caught:
        load_tenants(tmp_path, ["contact-center"])
    found = [str(p) for p in caught.value.problems]
    assert any("acme.yaml:rate_per_s" in p for p in found)
    assert any("delta.yaml:policies.0: unknown policy 'nope'" in p for p in found)
    assert any("beta.yaml:model_share" in p for p in found)
    assert any("broken.yaml: cannot be read as YAML" in p for p in found)


def test_switchboard_check_validates_the_tenants(tmp_path: Path) -> None:
    write_tenant(tmp_path, "acme", default_policy="missing")
    env = {**os.environ, "SWITCHBOARD_TENANTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "engine", "check", str(REPO / "policies")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "acme.yaml:default_policy" in done.stderr


def _revision(served: Served) -> str:
    revision: str = served.client.get("/admin/policies", headers=served.admin()).json()["active"][
        0
    ]["revision"]
    return revision


def test_a_broken_tenant_file_fails_the_reload_and_the_old_tenants_stay(
    make_served: ServeFactory, edit_policy: Editor
) -> None:
    served = make_served()
    before = _revision(served)
    edit_policy("policy.yaml", lambda d: d["thresholds"].update(service_action=0.7))
    broken = served.settings.tenants_dir() / "broken.yaml"
    broken.write_text("id: broken\nregion: local\npolicies: [nope]\nburst: 1\n", encoding="utf-8")
    r = served.client.post("/admin/reload", headers=served.admin())
    assert r.status_code == 422
    assert "broken.yaml" in r.text
    assert "rate_per_s" in r.text
    assert _revision(served) == before  # the edited policy was not activated either
    order = {"message": "where is my order?"}
    assert served.client.post("/classify", json=order).status_code == 200  # dev is still there
    broken.unlink()
    assert served.client.post("/admin/reload", headers=served.admin()).status_code == 200
