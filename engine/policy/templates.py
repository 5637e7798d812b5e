"""Prompt templates as a policy sees them: the sandboxed Jinja2 environment and its load checks.

``engine.decide.prompts`` renders with the same environment; the policy loader checks a template
here (exists, parses, has the ``system`` and ``user`` blocks, uses only known variables).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

REQUIRED_BLOCKS = ("system", "user")
KNOWN_VARIABLES = frozenset({"labels", "message", "channel", "policy_id"})


def template_environment(prompts_dir: Path) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(prompts_dir)),
        undefined=StrictUndefined,
        autoescape=False,  # prompts are plain text for a model, never HTML
        keep_trailing_newline=False,
    )


def check_template(prompts_dir: Path, name: str) -> Iterator[str]:
    """Problems with a template: missing, unparsable, missing blocks, unknown variables."""
    path = prompts_dir / name
    if not path.is_file():
        yield f"template {name!r} not found in {prompts_dir}"
        return
    env = template_environment(prompts_dir)
    source = path.read_text(encoding="utf-8")
    try:
        ast = env.parse(source)
        template = env.from_string(source)
    except TemplateError as exc:
        yield f"template {name!r} does not parse: {exc}"
        return
    for block in REQUIRED_BLOCKS:
        if block not in template.blocks:
            yield f"template {name!r} lacks the {{% block {block} %}}"
    unknown = meta.find_undeclared_variables(ast) - KNOWN_VARIABLES
    if unknown:
        yield (
            f"template {name!r} uses unknown variables {sorted(unknown)}; "
            f"known: {sorted(KNOWN_VARIABLES)}"
        )
