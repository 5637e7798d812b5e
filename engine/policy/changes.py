"""What changed between two revisions of a policy, one line per change a reviewer should know.

Lines are Markdown (names in code spans): ``switchboard diff`` puts them in its report, and the
workbench's playground shows them above its comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    lines += _keyword_changes(b, h)
    lines += _rule_changes(b, h)
    for section in ("labels", "prompt", "fallbacks", "workflows", "channels", "redaction"):
        if getattr(b, section) != getattr(h, section):
            lines.append(f"`{section}` changed")
    if (base.prompts_dir / b.prompt.template).read_bytes() != (
        head.prompts_dir / h.prompt.template
    ).read_bytes():
        lines.append(f"prompt template `{h.prompt.template}` changed")
    return lines


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
