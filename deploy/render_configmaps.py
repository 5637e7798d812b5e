"""Print the ConfigMaps the Deployment mounts, from the repository's policies/ and prompts/.

    python deploy/render_configmaps.py | kubectl apply -f -
    kubectl -n switchboard create job "policy-reload-$(date +%s)" \
        --from=cronjob/switchboard-policy-reload

One ConfigMap per policy directory (``switchboard-policy-<id>``, mounted at
``/app/policies/<id>``), one for the prompt templates (``switchboard-prompts``) and one holding
``deploy/reload_all.py`` for the reload Job. Kubelet updates mounted ConfigMaps in place and
all files of one at once, so a replica never reloads half a policy. Validate first: the
pull request's CI has run ``switchboard check policies/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "switchboard"
LABELS = {"app.kubernetes.io/part-of": "switchboard"}


def _configmap(name: str, files: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "data": files,
    }


def _files(directory: Path) -> dict[str, str]:
    return {
        p.name: p.read_text("utf-8")
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def policy_ids(policies: Path) -> list[str]:
    return sorted(d.name for d in policies.iterdir() if d.is_dir() and any(d.glob("*.y*ml")))


def render(policies: Path, prompts: Path) -> list[dict[str, Any]]:
    maps = [
        _configmap(f"switchboard-policy-{pid}", _files(policies / pid))
        for pid in policy_ids(policies)
    ]
    maps.append(_configmap("switchboard-prompts", _files(prompts)))
    script = Path(__file__).resolve().parent / "reload_all.py"
    maps.append(_configmap("switchboard-reload-script", {"reload_all.py": script.read_text()}))
    return maps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", type=Path, default=REPO / "policies")
    parser.add_argument("--prompts", type=Path, default=REPO / "prompts")
    args = parser.parse_args(argv)
    yaml.safe_dump_all(
        render(args.policies, args.prompts), sys.stdout, sort_keys=False, allow_unicode=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
