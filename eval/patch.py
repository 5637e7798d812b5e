"""Proposed policy changes as files a compliance reviewer can read and apply in a pull request.

Each proposal is written twice: a YAML fragment (the section as it should read) and a unified
diff against the policy file (``git apply`` it, or copy the fragment in by hand).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from engine.policy.fitting import Calibration
from engine.policy.labels import Thresholds

_TOP_LEVEL = re.compile(r"^[A-Za-z_][\w-]*:")
_THRESHOLD_LINE = re.compile(
    r"^(\s+)(informational|service_action|safety_compliance|safety_escalation)(:\s*)[0-9.]+(.*)$"
)


def _block(lines: list[str], key: str) -> tuple[int, int] | None:
    """[start, end) of a top-level ``key:`` block, or None."""
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{key}:")), None)
    if start is None:
        return None
    end = start + 1
    while end < len(lines) and not _TOP_LEVEL.match(lines[end]):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return start, end


def with_thresholds(text: str, thresholds: Thresholds) -> str:
    lines = text.splitlines(keepends=True)
    span = _block(lines, "thresholds")
    if span is None:
        raise ValueError("the policy file has no top-level 'thresholds:' block")
    _set_values(lines, range(span[0] + 1, span[1]), thresholds)
    return "".join(lines)


def _set_values(lines: list[str], rows: range, thresholds: Thresholds) -> None:
    """Each threshold line among ``lines[rows]`` given its value from ``thresholds``."""
    values = thresholds.model_dump()
    for i in rows:
        m = _THRESHOLD_LINE.match(lines[i].rstrip("\n"))
        if m:
            indent, key, colon, rest = m.groups()
            lines[i] = f"{indent}{key}{colon}{values[key]:g}{rest}\n"


def with_head_thresholds(text: str, thresholds: Thresholds) -> str:
    """``with_thresholds`` for the ``thresholds:`` mapping inside the top-level ``head:`` block."""
    lines = text.splitlines(keepends=True)
    span = _block(lines, "head")
    inner = None
    if span is not None:
        inner = next(
            (i for i in range(span[0] + 1, span[1]) if lines[i].strip() == "thresholds:"), None
        )
    if span is None or inner is None:
        raise ValueError("the policy file has no 'thresholds:' inside a top-level 'head:' block")
    end = inner + 1  # the mapping's lines: blank, or indented deeper than its key
    while end < span[1] and (not lines[end].strip() or _indent(lines[end]) > _indent(lines[inner])):
        end += 1
    _set_values(lines, range(inner + 1, end), thresholds)
    return "".join(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def with_calibration(text: str, calibration: Calibration) -> str:
    body = yaml.safe_dump(
        {"calibration": calibration.model_dump(mode="json", exclude_none=True)},
        sort_keys=False,
        allow_unicode=True,
    )
    lines = text.splitlines(keepends=True)
    span = _block(lines, "calibration")
    if span is None:
        sep = "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return text + sep + body
    return "".join(lines[: span[0]]) + body + "".join(lines[span[1] :])


def unified_diff(path: Path, before: str, after: str, repo_root: Path | None = None) -> str:
    shown = path
    if repo_root is not None:
        try:
            shown = path.resolve().relative_to(repo_root.resolve())
        except ValueError:
            shown = path
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{shown}",
            tofile=f"b/{shown}",
        )
    )


def policy_file(directory: Path) -> Path:
    """The YAML file of a policy directory that holds its top-level settings."""
    for name in ("policy.yaml", "policy.yml"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"no policy.yaml in {directory}")


def write_proposal(
    out: Path,
    name: str,
    header: str,
    fragment: dict[str, Any],
    policy_path: Path,
    before: str,
    after: str,
) -> None:
    """Write ``<name>.patch.yaml`` and ``<name>.diff`` into ``out`` and say how to apply them."""
    out.mkdir(parents=True, exist_ok=True)
    fragment_path = out / f"{name}.patch.yaml"
    fragment_path.write_text(
        header + yaml.safe_dump(fragment, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    diff_path = out / f"{name}.diff"
    diff_path.write_text(unified_diff(policy_path, before, after, Path.cwd()), encoding="utf-8")
    print(f"wrote {fragment_path} and {diff_path} (apply with: git apply {diff_path})")
