"""What changed between two revisions of a policy, one line per change a reviewer should know.

Lines are Markdown (names in code spans): ``switchboard diff`` puts them in its report, and the
workbench's playground shows them above its comparison.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from engine.backends.readout import ReadoutError, readout_of
from engine.policy.loader import LoadedPolicy
from engine.policy.model import Policy


def policy_changes(base: LoadedPolicy, head: LoadedPolicy) -> list[str]:
    """One line per change a reviewer should know about, most specific where it matters."""
    b, h = base.policy, head.policy
    lines: list[str] = []
    if b.version != h.version:
        lines.append(f"`version`: {b.version} → {h.version}")
    elif base.revision != head.revision:
        lines.append(f"`version` is still {h.version}: bump it when behaviour changes")
    for name in ("informational", "service_action", "safety_compliance", "safety_escalation"):
        old, new = getattr(b.thresholds, name), getattr(h.thresholds, name)
        if old != new:
            lines.append(f"`thresholds.{name}`: {old} → {new}")
    lines += _head_changes(base, head)
    lines += _keyword_changes(b, h)
    lines += _rule_changes(b, h)
    sections = (
        "labels",
        "prompt",
        "fallbacks",
        "workflows",
        "channels",
        "redaction",
        "calibration",
    )
    for section in sections:
        if getattr(b, section) != getattr(h, section):
            lines.append(f"`{section}` changed")
    if (base.prompts_dir / b.prompt.template).read_bytes() != (
        head.prompts_dir / h.prompt.template
    ).read_bytes():
        lines.append(f"prompt template `{h.prompt.template}` changed")
    return lines


def _head_changes(base: LoadedPolicy, head: LoadedPolicy) -> list[str]:
    b, h = base.policy.head, head.policy.head
    if b is None or h is None:
        return [] if b is h else [f"probe head {'added' if b is None else 'removed'}"]
    lines = []
    for name in ("informational", "service_action", "safety_compliance", "safety_escalation"):
        old, new = getattr(b.thresholds, name, None), getattr(h.thresholds, name, None)
        if old != new:
            lines.append(f"`head.thresholds.{name}`: {old} → {new}")
    old_file = _read(base.directory / b.file)
    new_file = _read(head.directory / h.file)
    if old_file != new_file:
        try:
            fitted = json.loads(new_file)
            about = f" (now fitted on `{fitted['fitted_on']}`, n = {fitted['n']})"
        except (ValueError, KeyError, TypeError):
            about = ""
        lines.append(f"probe head `{h.file}` refitted{about}")
        old_reads, new_reads = _readout(old_file), _readout(new_file)
        if old_reads != new_reads:
            lines.append(f"probe head reads {', '.join(new_reads)} (was {', '.join(old_reads)})")
    return lines


def _readout(head_file: bytes) -> list[str]:
    """The hidden states a head file reads (``last:final`` for files without a readout)."""
    try:
        doc = json.loads(head_file)
        return readout_of(doc.get("readout")).names()
    except (ValueError, AttributeError, ReadoutError):
        return ["?"]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _keyword_changes(b: Policy, h: Policy) -> list[str]:
    lines = []
    for name in sorted(set(b.keyword_groups) | set(h.keyword_groups)):
        old, new = b.keyword_groups.get(name), h.keyword_groups.get(name)
        where = f"`keyword_groups.{name}`"
        if old is None or new is None:
            lines.append(f"{where} {'added' if old is None else 'removed'}")
            continue
        for kind in ("keywords", "patterns"):
            gone = [k for k in getattr(old, kind) if k not in getattr(new, kind)]
            added = [k for k in getattr(new, kind) if k not in getattr(old, kind)]
            if gone:
                lines.append(f"{where}: removed {kind} {_codes(gone)}")
            if added:
                lines.append(f"{where}: added {kind} {_codes(added)}")
    return lines


def _rule_changes(b: Policy, h: Policy) -> list[str]:
    old = {r.id: r for r in b.rules}
    new = {r.id: r for r in h.rules}
    lines = [f"rule `{i}` removed" for i in old if i not in new]
    lines += [f"rule `{i}` added" for i in new if i not in old]
    lines += [f"rule `{i}` changed" for i in new if i in old and old[i] != new[i]]
    return lines


def _codes(items: Sequence[str]) -> str:
    return ", ".join(f"`{i.replace('`', '')}`" for i in items)
