"""Reload every Switchboard replica after a policy change, and check that each one took it.

Runs as a Job (deploy/base/reload-job.yaml) with the service's image and the same policy ConfigMaps
mounted as the Deployment. A new pod mounts the ConfigMaps as they are now, so the Job's own
copy is the new policy: it computes the revisions every replica must end up serving, then POSTs
``/admin/reload`` to each replica (every address behind the headless Service) until that replica
reports exactly those revisions. Kubelet takes up to a minute or two to refresh a mounted
ConfigMap in running pods, so a replica that still reloads the old files is retried every
``RELOAD_RETRY_S``. A 422 (the new policy is invalid) fails the Job at once: the replicas keep
serving the old revision, which is what a bad policy must never change.

Environment: SWITCHBOARD_POLICIES, SWITCHBOARD_PROMPTS, SWITCHBOARD_ADMIN_TOKEN, RELOAD_TARGET
(host of the headless Service), RELOAD_PORT (8000), RELOAD_TIMEOUT_S (300), RELOAD_RETRY_S (10).
Exit status 0 when every replica serves the new revisions.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def expected_revisions() -> dict[str, str]:
    from engine.policy.loader import load_catalog

    catalog = load_catalog(
        Path(os.environ["SWITCHBOARD_POLICIES"]), Path(os.environ["SWITCHBOARD_PROMPTS"])
    )
    return {policy_id: loaded.revision for policy_id, loaded in catalog.items()}


def replicas(host: str, port: int) -> set[str]:
    return {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}


def reload_one(address: str, port: int, token: str) -> dict[str, str] | str:
    """The revisions the replica serves after the reload, or what went wrong."""
    host = f"[{address}]" if ":" in address else address
    request = urllib.request.Request(
        f"http://{host}:{port}/admin/reload",
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - http://pod
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}: {exc.read()[:800].decode('utf-8', 'replace')}"
    except OSError as exc:
        return f"unreachable: {exc}"
    return {p["id"]: p["revision"] for p in body["active"]}


def main() -> int:
    from engine.errors import PolicyError

    try:
        want = expected_revisions()
    except PolicyError as exc:  # the replicas would refuse it too (422): reload none of them
        print(f"the new policy is invalid, no replica reloaded: {exc}", flush=True)
        return 2
    token = os.environ["SWITCHBOARD_ADMIN_TOKEN"]
    target = os.environ.get("RELOAD_TARGET", "switchboard-pods")
    port = int(os.environ.get("RELOAD_PORT", "8000"))
    deadline = time.monotonic() + float(os.environ.get("RELOAD_TIMEOUT_S", "300"))
    retry_s = float(os.environ.get("RELOAD_RETRY_S", "10"))
    print(f"want {json.dumps(want, sort_keys=True)}", flush=True)
    pending = replicas(target, port)
    while True:
        pending &= replicas(target, port)  # replicas gone meanwhile need nothing
        for address in sorted(pending):
            got = reload_one(address, port, token)
            if got == want:
                print(f"{address}: serving {json.dumps(got, sort_keys=True)}", flush=True)
                pending.discard(address)
            elif isinstance(got, str) and got.startswith("HTTP 422"):
                print(f"{address}: the new policy is invalid, nothing changed: {got}", flush=True)
                return 2
            else:
                print(f"{address}: not yet ({got})", flush=True)
        if not pending:
            return 0
        if time.monotonic() > deadline:
            print(f"gave up; still on an old revision: {sorted(pending)}", flush=True)
            return 1
        time.sleep(retry_s)


if __name__ == "__main__":
    sys.exit(main())
