"""``switchboard keys``: create, list, revoke and rotate API keys, with no restart.

``create`` and ``rotate`` print the key alone on standard output (shown once; only its hash is
stored) so scripts can capture it; everything else goes to standard error. The store is the one
``serve`` reads, from the same ``SWITCHBOARD_*`` settings (``KEYS_DB``, else beside ``AUDIT_DB``).
"""

from __future__ import annotations

import argparse
import sys

from service.access.keys import KeyInfo, KeyStore
from service.access.principal import Role
from service.access.tenants import load_tenants


def _store() -> KeyStore:
    from service.settings import Settings

    return KeyStore(Settings().keys_url())


def _describe(info: KeyInfo) -> str:
    queues = ",".join(sorted(info.queues)) if info.queues is not None else "*"
    state = f"revoked {info.revoked_at}" if info.revoked_at else "active"
    return (
        f"{info.key_id}  tenant={info.tenant}  role={info.role.value}  queues={queues}  "
        f"name={info.name}  created={info.created_at}  {state}"
    )


def _create(args: argparse.Namespace) -> int:
    from service.settings import Settings

    settings = Settings()
    role = Role(args.role)
    if role is not Role.ADMIN:
        tenants = load_tenants(settings.tenants_dir())
        if tenants.get(args.tenant) is None:
            known = ", ".join(sorted(tenants.by_id)) or "none"
            print(
                f"error: unknown tenant {args.tenant!r} in {settings.tenants_dir()} "
                f"(declared: {known}); add tenants/{args.tenant}.yaml first",
                file=sys.stderr,
            )
            return 2
    queues = frozenset(q for q in args.queues.split(",") if q) if args.queues else None
    store = KeyStore(settings.keys_url())
    try:
        key, info = store.create(args.tenant, role, name=args.name or "", queues=queues)
    finally:
        store.close()
    print(f"created {_describe(info)}", file=sys.stderr)
    print("the key is shown once; only its hash is stored", file=sys.stderr)
    print(key)
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _store()
    try:
        for info in store.listing(args.tenant):
            print(_describe(info))
    finally:
        store.close()
    return 0


def _revoke(args: argparse.Namespace) -> int:
    store = _store()
    try:
        info = store.revoke(args.key_id)
    finally:
        store.close()
    print(f"revoked {_describe(info)}", file=sys.stderr)
    return 0


def _rotate(args: argparse.Namespace) -> int:
    store = _store()
    try:
        key, info = store.rotate(args.key_id, revoke_old=not args.keep_old)
    finally:
        store.close()
    kept = "still valid until revoked" if args.keep_old else "revoked"
    print(f"rotated {args.key_id} ({kept}) -> {_describe(info)}", file=sys.stderr)
    print(key)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="create, list, revoke and rotate API keys")
    actions = keys.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create", help="print a new key on stdout (shown once)")
    create.add_argument("--tenant", required=True, help="a tenant of tenants/*.yaml")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--queues", help="reviewer: comma-separated review queues (default all)")
    create.add_argument("--name", help="who holds it; a reviewer's name on its reviews")
    create.set_defaults(handler=_create)

    listing = actions.add_parser("list", help="every key's id, tenant, role and state")
    listing.add_argument("--tenant")
    listing.set_defaults(handler=_list)

    revoke = actions.add_parser("revoke", help="refuse the key from the next request on")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_revoke)

    rotate = actions.add_parser("rotate", help="a new key like the old; old one revoked")
    rotate.add_argument("key_id")
    rotate.add_argument(
        "--keep-old", action="store_true", help="leave the old key valid (revoke it later)"
    )
    rotate.set_defaults(handler=_rotate)
