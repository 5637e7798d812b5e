"""Tenants: declared by operations in ``tenants/*.yaml`` (one file per tenant), validated at load.

A tenant has an id, the region its data lives in, the policies it may use and its default, its
request rate and burst, and its share of model capacity. Every problem in every file is reported
at once with its file and field (``switchboard check`` and start-up both call ``load_tenants``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import PolicyError, PolicyProblem

ANY_POLICY = "*"
_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class TenantConfigError(PolicyError):
    """The tenants directory has problems; carries every one of them, located.

    A ``PolicyError`` (configuration that fails validation): ``/admin/reload`` answers 422 with
    every problem, and ``switchboard`` prints them.
    """

    def __init__(self, directory: str, problems: list[PolicyProblem]) -> None:
        super().__init__(directory, problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        self.args = (f"tenants at {directory} have {len(problems)} problem(s):\n{lines}",)


class Tenant(BaseModel):
    """One tenant, as operations declare it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = Field(default=1, description="Format version of this file.")
    id: Annotated[str, Field(pattern=_ID, description="Tenant id; the file is named <id>.yaml.")]
    region: Annotated[
        str, Field(pattern=_ID, description="Where its records live (an audit store per region).")
    ]
    policies: list[str] = Field(
        min_length=1, description="Policy ids it may use; '*' for every loaded policy."
    )
    default_policy: str | None = Field(
        default=None, description="Policy when a request names none (default: the service's)."
    )
    rate_per_s: Annotated[float, Field(gt=0, description="Sustained requests per second.")]
    burst: Annotated[int, Field(ge=1, description="Requests allowed at once above the rate.")]
    model_share: Annotated[
        float,
        Field(gt=0, le=1, description="Largest share of model slots it may hold at once."),
    ] = 1.0

    def allows(self, policy_id: str) -> bool:
        return ANY_POLICY in self.policies or policy_id in self.policies


@dataclass(frozen=True)
class Tenants:
    """Every declared tenant by id."""

    by_id: Mapping[str, Tenant]

    def get(self, tenant_id: str) -> Tenant | None:
        return self.by_id.get(tenant_id)

    def in_region(self, region: str) -> list[Tenant]:
        return [t for t in self.by_id.values() if t.region == region]


def load_tenants(directory: Path, known_policies: Iterable[str] | None = None) -> Tenants:
    """Read and validate ``directory/*.yaml``; with ``known_policies``, check the references."""
    problems: list[PolicyProblem] = []
    tenants: dict[str, Tenant] = {}
    if not directory.is_dir():
        raise TenantConfigError(
            str(directory),
            [PolicyProblem(str(directory), "", "no such directory; set SWITCHBOARD_TENANTS")],
        )
    known = set(known_policies) if known_policies is not None else None
    for path in sorted(directory.glob("*.yaml")):
        tenant = _load_one(path, problems)
        if tenant is None:
            continue
        if tenant.id != path.stem:
            problems.append(PolicyProblem(str(path), "id", f"must match the file name {path.stem}"))
        if tenant.id in tenants:
            problems.append(PolicyProblem(str(path), "id", f"tenant {tenant.id} declared twice"))
        problems.extend(_references(path, tenant, known))
        tenants[tenant.id] = tenant
    if problems:
        raise TenantConfigError(str(directory), problems)
    return Tenants(tenants)


def _load_one(path: Path, problems: list[PolicyProblem]) -> Tenant | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.append(PolicyProblem(str(path), "", f"cannot be read as YAML: {exc}"))
        return None
    if not isinstance(data, dict):
        problems.append(PolicyProblem(str(path), "", "must be a mapping (id, region, ...)"))
        return None
    try:
        return Tenant.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            problems.append(PolicyProblem(str(path), where, err["msg"]))
        return None


def _references(path: Path, tenant: Tenant, known: set[str] | None) -> list[PolicyProblem]:
    out = []
    if tenant.default_policy is not None and not tenant.allows(tenant.default_policy):
        out.append(PolicyProblem(str(path), "default_policy", "is not in its policies"))
    if known is None:
        return out
    for i, policy in enumerate(tenant.policies):
        if policy != ANY_POLICY and policy not in known:
            out.append(PolicyProblem(str(path), f"policies.{i}", f"unknown policy {policy!r}"))
    if tenant.default_policy is not None and tenant.default_policy not in known:
        out.append(PolicyProblem(str(path), "default_policy", "unknown policy"))
    return out


def check(policies_dir: Path, policy_ids: list[str]) -> list[PolicyProblem]:
    """``switchboard check``: validate ``$SWITCHBOARD_TENANTS`` or ``tenants/`` beside
    ``policies_dir`` (a policy directory without tenants beside it has nothing to check)."""
    configured = os.environ.get("SWITCHBOARD_TENANTS")
    directory = Path(configured) if configured else policies_dir.resolve().parent / "tenants"
    if not configured and not directory.is_dir():
        return []
    try:
        load_tenants(directory, policy_ids)
    except TenantConfigError as exc:
        return list(exc.problems)
    return []
