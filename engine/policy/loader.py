"""Loads and validates policies: YAML, then the JSON Schema, then cross-references.

Every problem is collected and reported at once (``PolicyError.problems``). A loaded policy carries
a ``revision``: a content hash of its files and its prompt template, so a decision names exactly
what produced it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import TypeAdapter, ValidationError

from engine.categories import Channel
from engine.errors import PolicyError, PolicyProblem
from engine.policy.checks import CROSS_CHECKS, Sections
from engine.policy.fitting import ProbeHeadSpec
from engine.policy.labels import Labels, Thresholds
from engine.policy.model import ChannelAdjustment, Policy, Redaction
from engine.policy.prompt import PromptSpec
from engine.policy.rules import KeywordGroup, Rule
from engine.policy.templates import check_template
from engine.policy.workflows import Workflows
from engine.policy.yaml_source import PolicySource, read_policy_dir

SCHEMA_FILE = "policy.schema.json"

_SECTION_TYPES: dict[str, Any] = {
    "labels": Labels,
    "thresholds": Thresholds,
    "prompt": PromptSpec,
    "keyword_groups": dict[str, KeywordGroup],
    "rules": list[Rule],
    "workflows": Workflows,
    "channels": dict[Channel, ChannelAdjustment],
    "redaction": Redaction,
    "head": ProbeHeadSpec,
}


def generate_schema() -> dict[str, Any]:
    """The JSON Schema of a policy document, generated from the pydantic models."""
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://switchboard.example/policy.schema.json"
    return schema


def schema_text() -> str:
    return json.dumps(generate_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@cache
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy, what identifies it, and where each of its keys was written."""

    policy: Policy
    revision: str
    directory: Path
    prompts_dir: Path
    source: PolicySource | None = field(default=None, compare=False, repr=False)

    def problem(self, path: Sequence[str | int], message: str) -> PolicyProblem:
        """A problem found after loading (when the engine is built), located like load's."""
        if self.source is None:
            return PolicyProblem(str(self.directory), ".".join(map(str, path)), message)
        return self.source.problem(path, message)

    @property
    def id(self) -> str:
        return self.policy.id

    @property
    def version(self) -> str:
        return self.policy.version


def _schema_problems(
    source: PolicySource, schema_json: str
) -> tuple[list[PolicyProblem], set[str]]:
    problems: list[PolicyProblem] = []
    broken_sections: set[str] = set()
    errors = sorted(_validator(schema_json).iter_errors(source.document), key=lambda e: e.path)
    for error in errors:
        path = list(error.absolute_path)
        if path:
            broken_sections.add(str(path[0]))
        else:
            broken_sections.add("*")
        problems.append(source.problem(path, _explain(error)))
    return problems, broken_sections


def _explain(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"{error.message} (check the spelling against the policy guide)"
    return error.message


def _section(source: PolicySource, name: str, broken: set[str]) -> Any:
    if name in broken or "*" in broken:
        return None
    if name not in source.document:
        return None if name not in ("channels", "keyword_groups", "rules") else _empty(name)
    try:
        return TypeAdapter(_SECTION_TYPES[name]).validate_python(source.document[name])
    except ValidationError:
        return None  # the schema already reported it, or Policy validation below will


def _empty(name: str) -> Any:
    return {"channels": {}, "keyword_groups": {}, "rules": []}[name]


def _revision(
    source: PolicySource, template_path: Path | None, head_path: Path | None = None
) -> str:
    digest = hashlib.sha256()
    for name in sorted(source.files):
        digest.update(Path(name).name.encode())
        digest.update(b"\0")
        digest.update(source.files[name])
        digest.update(b"\0")
    if template_path is not None and template_path.is_file():
        digest.update(template_path.read_bytes())
    if head_path is not None and head_path.is_file():  # a refitted head is a new revision
        digest.update(b"\0head\0")
        digest.update(head_path.read_bytes())
    return digest.hexdigest()[:16]


def load_policy(
    directory: Path, prompts_dir: Path, *, schema_json: str | None = None
) -> LoadedPolicy:
    """Load one policy directory; raise ``PolicyError`` listing every problem found."""
    schema_json = schema_json if schema_json is not None else schema_text()
    source, problems = read_policy_dir(directory)
    if problems and not source.document:
        raise PolicyError(str(directory), problems)
    schema_problems, broken = _schema_problems(source, schema_json)
    problems.extend(schema_problems)

    sections = Sections(**{name: _section(source, name, broken) for name in _SECTION_TYPES})
    for check in CROSS_CHECKS:
        for path, message in check(sections):
            problems.append(source.problem(path, message))
    prompt = sections.prompt
    template_path = None
    if prompt is not None:
        template_path = prompts_dir / prompt.template
        for message in check_template(prompts_dir, prompt.template):
            problems.append(source.problem(["prompt", "template"], message))

    policy: Policy | None = None
    if not problems:
        try:
            policy = Policy.model_validate(source.document)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(source, exc))
    if problems or policy is None:
        raise PolicyError(str(directory), problems)
    return LoadedPolicy(
        policy=policy,
        revision=_revision(
            source, template_path, directory / policy.head.file if policy.head else None
        ),
        directory=directory,
        prompts_dir=prompts_dir,
        source=source,
    )


def _pydantic_problems(source: PolicySource, exc: ValidationError) -> list[PolicyProblem]:
    return [source.problem(list(err["loc"]), err["msg"]) for err in exc.errors()]


def policy_dirs(policies_dir: Path) -> list[Path]:
    """Every policy directory below ``policies_dir`` (a directory holding YAML files)."""
    if any(policies_dir.glob("*.yaml")) or any(policies_dir.glob("*.yml")):
        return [policies_dir]
    return sorted(
        d
        for d in policies_dir.iterdir()
        if d.is_dir() and (any(d.glob("*.yaml")) or any(d.glob("*.yml")))
    )


def load_catalog(policies_dir: Path, prompts_dir: Path) -> dict[str, LoadedPolicy]:
    """Load every policy below ``policies_dir``; raise one ``PolicyError`` with all problems."""
    problems: list[PolicyProblem] = []
    catalog: dict[str, LoadedPolicy] = {}
    schema_json = schema_text()
    dirs = policy_dirs(policies_dir) if policies_dir.is_dir() else []
    if not dirs:
        raise PolicyError(
            str(policies_dir), [PolicyProblem(str(policies_dir), "", "no policy directories found")]
        )
    for directory in dirs:
        try:
            loaded = load_policy(directory, prompts_dir, schema_json=schema_json)
        except PolicyError as exc:
            problems.extend(exc.problems)
            continue
        if loaded.id in catalog:
            problems.append(
                PolicyProblem(str(directory), "id", f"policy id {loaded.id!r} is used twice")
            )
        catalog[loaded.id] = loaded
    if problems:
        raise PolicyError(str(policies_dir), problems)
    return catalog


def default_policies_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``SWITCHBOARD_POLICIES`` when set, else ``policies``."""
    return Path(environ.get("SWITCHBOARD_POLICIES", "policies"))


def default_prompts_dir(policies_dir: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """``SWITCHBOARD_PROMPTS`` when set, else ``prompts/`` beside the policies directory.

    The one rule for where templates live: the service, ``check``, ``classify``, ``eval`` and
    ``diff`` all ask here.
    """
    env = environ.get("SWITCHBOARD_PROMPTS")
    return Path(env) if env else policies_dir.resolve().parent / "prompts"
