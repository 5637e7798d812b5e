"""``switchboard serve``: run the service with uvicorn."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.backends.registry import BACKENDS


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
    settings = Settings(**overrides)  # type: ignore[arg-type]
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--policies", help="policy directory (default: $SWITCHBOARD_POLICIES)")
    serve.add_argument("--backend", choices=BACKENDS, help="default: $SWITCHBOARD_BACKEND")
    serve.set_defaults(handler=_serve)
