"""``switchboard serve``: run the service with uvicorn."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import sys
from pathlib import Path

from engine.backends.registry import BACKENDS

# The cyclic GC's first threshold (Python's default is 700 allocations net of deallocations).
# Under concurrent load, objects of in-flight requests survive young collections and are promoted
# until a full collection runs over every long-lived object (spaCy, Presidio, pydantic, FastAPI:
# ~160,000 of them, ~100 ms per full collection, every few hundred requests at 64 in flight).
# Most request objects die by reference counting, so at 10,000 the young collections, and the
# promotions with them, nearly stop: measured GC time per request fell from ~190 us to ~3 us.
GC_GEN0_THRESHOLD = 10_000


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app
    from service.logs import configure_logging
    from service.settings import Settings

    overrides: dict[str, object] = {}
    if args.policies:
        overrides["policies"] = Path(args.policies)
    if args.backend:
        overrides["backend"] = args.backend
    if args.no_auth:
        overrides["auth"] = "off"
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if settings.auth == "off" and not _loopback(args.host):
        print(
            f"error: authentication is off (SWITCHBOARD_AUTH=off or --no-auth) and --host "
            f"{args.host} is not a loopback address; refusing to start. Bind 127.0.0.1, or "
            "turn authentication on and create keys with `switchboard keys create`.",
            file=sys.stderr,
        )
        return 2
    if settings.auth == "off":
        print(
            "warning: authentication is OFF (development): every request acts as tenant dev "
            "with every role",
            file=sys.stderr,
        )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"the workbench: http://{shown}:{args.port}/  (API reference: /docs)", file=sys.stderr)
    configure_logging(settings.log_level)
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, older, oldest)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_config=None,
        # uvicorn.access has no handler here (log_config=None) and its lines were dropped;
        # off, it does not build them for every request either.
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--policies", help="policy directory (default: $SWITCHBOARD_POLICIES)")
    serve.add_argument("--backend", choices=BACKENDS, help="default: $SWITCHBOARD_BACKEND")
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="development only: every request is the dev tenant with every role; "
        "refused unless --host is a loopback address",
    )
    serve.set_defaults(handler=_serve)
