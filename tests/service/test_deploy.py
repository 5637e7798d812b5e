"""The Kubernetes manifests in deploy/ agree with the service they deploy.

Schema validation against the Kubernetes API is a separate tool (``kubernetes-validate
--strict``, see docs/capacity.md); these checks catch drift that a schema cannot see: a setting
the service does not know, a probe on a route that does not exist, a policy directory with no
ConfigMap, a reload job that does not reload.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.policy.loader import load_catalog
from service.app import create_app
from service.settings import Settings
from tests.conftest import REPO
from tests.service.conftest import TOKEN, ServeFactory

DEPLOY = REPO / "deploy"


def _script(name: str) -> Any:
    """deploy/ holds scripts, not a package: load one by path."""
    spec = importlib.util.spec_from_file_location(name, DEPLOY / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_configmaps = _script("render_configmaps")


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            if doc is not None:
                out.append((path.name, doc))
    return out


def _kind(kind: str, name: str) -> dict[str, Any]:
    for _, doc in _docs():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} in deploy/")


def _pod(kind: str, name: str) -> dict[str, Any]:
    doc = _kind(kind, name)
    spec = doc["spec"]
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def test_every_manifest_is_namespaced_and_listed_in_the_kustomization() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text("utf-8"))
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    for name, doc in _docs():
        if doc["kind"] in ("Kustomization", "Namespace"):
            continue
        assert doc["metadata"]["namespace"] == "switchboard", name


def test_service_env_names_are_settings_the_service_reads() -> None:
    known = {f"SWITCHBOARD_{f.upper()}" for f in Settings.model_fields}
    for kind, name in (("Deployment", "switchboard"), ("CronJob", "switchboard-policy-reload")):
        for container in _pod(kind, name)["containers"]:
            names = {e["name"] for e in container.get("env", [])}
            unknown = {n for n in names if n.startswith("SWITCHBOARD_")} - known
            assert not unknown, f"{kind} {name}: {unknown}"


def test_probes_hit_routes_the_app_has() -> None:
    routes = set(create_app(Settings()).openapi()["paths"])
    container = _pod("Deployment", "switchboard")["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in routes


def test_every_policy_directory_is_rendered_and_mounted() -> None:
    ids = render_configmaps.policy_ids(REPO / "policies")
    assert ids
    rendered = {
        m["metadata"]["name"] for m in render_configmaps.render(REPO / "policies", REPO / "prompts")
    }
    for kind, name in (("Deployment", "switchboard"), ("CronJob", "switchboard-policy-reload")):
        pod = _pod(kind, name)
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        for pid in ids:
            volume = volumes[mounts[f"/app/policies/{pid}"]]
            assert volume["configMap"]["name"] == f"switchboard-policy-{pid}" in rendered
        assert volumes[mounts["/app/prompts"]]["configMap"]["name"] in rendered
        assert all("subPath" not in m for m in pod["containers"][0]["volumeMounts"]), (
            "a subPath mount never sees ConfigMap updates: hot reload would reload old files"
        )


def test_rendered_configmaps_hold_the_same_policy_revisions(tmp_path: Path) -> None:
    maps = render_configmaps.render(REPO / "policies", REPO / "prompts")
    for cm in maps:
        name = cm["metadata"]["name"]
        if name.startswith("switchboard-policy-"):
            target = tmp_path / "policies" / name.removeprefix("switchboard-policy-")
        elif name == "switchboard-prompts":
            target = tmp_path / "prompts"
        else:
            continue
        target.mkdir(parents=True)
        for file, text in cm["data"].items():
            (target / file).write_text(text, "utf-8")
    mounted = load_catalog(tmp_path / "policies", tmp_path / "prompts")
    repo = load_catalog(REPO / "policies", REPO / "prompts")
    assert {k: v.revision for k, v in mounted.items()} == {k: v.revision for k, v in repo.items()}


def _reload_job(url: str, policies: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SWITCHBOARD_POLICIES": str(policies.parent),
        "SWITCHBOARD_PROMPTS": str(policies.parent.parent / "prompts"),
        "SWITCHBOARD_ADMIN_TOKEN": TOKEN,
        "RELOAD_TARGET": "127.0.0.1",
        "RELOAD_PORT": url.rsplit(":", 1)[1],
        "RELOAD_TIMEOUT_S": "5",
        "RELOAD_RETRY_S": "0.2",
    }
    return subprocess.run(
        [sys.executable, str(DEPLOY / "reload_all.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def test_the_reload_job_brings_every_replica_to_the_new_revision(
    make_served: ServeFactory, policy_copy: Path
) -> None:
    served = make_served()
    before = served.client.get("/admin/policies", headers=served.admin()).json()["active"]
    threshold = policy_copy / "policy.yaml"
    threshold.write_text(
        threshold.read_text("utf-8").replace("service_action: 0.55", "service_action: 0.57"),
        "utf-8",
    )
    job = _reload_job(served.url, policy_copy)
    assert job.returncode == 0, job.stdout + job.stderr
    after = served.client.get("/admin/policies", headers=served.admin()).json()["active"]
    assert after[0]["revision"] != before[0]["revision"]
    assert after[0]["revision"] in job.stdout


def test_the_reload_job_fails_on_an_invalid_policy_and_nothing_changes(
    make_served: ServeFactory, policy_copy: Path
) -> None:
    served = make_served()
    before = served.client.get("/admin/policies", headers=served.admin()).json()["active"]
    (policy_copy / "policy.yaml").write_text("id: [broken\n", "utf-8")
    job = _reload_job(served.url, policy_copy)
    assert job.returncode != 0
    after = served.client.get("/admin/policies", headers=served.admin()).json()["active"]
    assert after == before


@pytest.mark.parametrize("name", ["deployment.yaml", "ollama.yaml"])
def test_containers_declare_resources_and_probes(name: str) -> None:
    for doc in yaml.safe_load_all((DEPLOY / name).read_text("utf-8")):
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            assert container["resources"]["requests"]["cpu"]
            assert container["resources"]["limits"]["memory"]
            assert "readinessProbe" in container
            assert "livenessProbe" in container


def _vllm_docs() -> list[dict[str, Any]]:
    out = []
    for path in sorted((REPO / "deploy-vllm").glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d is not None]
    return out


def test_the_vllm_pool_overlay_points_the_service_at_a_prefix_cached_gpu_pool() -> None:
    docs = _vllm_docs()
    kustomization = next(d for d in docs if d["kind"] == "Kustomization")
    assert "vllm.yaml" in kustomization["resources"]
    pool = next(d for d in docs if d["kind"] == "StatefulSet")
    pod = pool["spec"]["template"]["spec"]
    assert pod["nodeSelector"]
    (container,) = pod["containers"]
    assert "--enable-prefix-caching" in container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {v["name"] for v in pod["volumes"]} >= {"models"}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    served = next(a for a in container["args"] if a.startswith("--served-model-name="))
    patch = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e for e in patch["spec"]["template"]["spec"]["containers"][0]["env"]}
    known = {f"SWITCHBOARD_{f.upper()}" for f in Settings.model_fields}
    assert set(env) <= known
    assert env["SWITCHBOARD_BACKEND"]["value"] == "openai"
    assert env["SWITCHBOARD_OPENAI_MODEL"]["value"] == served.split("=", 1)[1]
    values = {k.removeprefix("SWITCHBOARD_").lower(): e.get("value") for k, e in env.items()}
    settings = Settings(**{k: v for k, v in values.items() if v is not None})
    urls = settings.backend_settings().openai_base_urls
    assert len(urls) == pool["spec"]["replicas"]
    for i, url in enumerate(urls):
        name = pool["metadata"]["name"]
        assert url.startswith(f"http://{name}-{i}.{pool['spec']['serviceName']}.")


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="needs kubectl (its built-in kustomize)"
)
def test_the_vllm_overlay_builds_without_the_ollama_pool() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "deploy-vllm")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d is not None]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("StatefulSet", "switchboard-vllm") in names
    assert not {n for n in names if n[1] == "switchboard-ollama"}
    service = next(d for d in docs if d["kind"] == "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in service["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["SWITCHBOARD_BACKEND"] == "openai"
    assert not {k for k in env if k.startswith("SWITCHBOARD_OLLAMA")}
