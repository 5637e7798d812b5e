"""The policy diff report: Markdown for a pull-request comment, loudest news first.

Order: the counts, what changed in the policy files, every message that leaves safety with both
decision paths side by side, then messages that enter safety, then every other change.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.decide.record import DecisionRecord
from engine.policy.changes import policy_changes
from engine.policy.loader import LoadedPolicy
from engine.replay import SAFETY, Comparison, aligned

MESSAGE_CHARS = 300
_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")


@dataclass
class PolicyDiff:
    """The replay of one policy under the base and the head revision."""

    base: LoadedPolicy
    head: LoadedPolicy
    comparisons: list[Comparison]
    skipped: int = 0
    model_calls: int = 0
    sources: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.changed]

    def count(self, attribute: str) -> int:
        return sum(bool(getattr(c, attribute)) for c in self.comparisons)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def headline(diff: PolicyDiff) -> str:
    """``N messages change category, M leave safety, K change review status, J change workflow``."""
    n = diff.count
    return ", ".join(
        (
            _plural(n("category_changed"), "message changes category", "messages change category"),
            _plural(n("leaves_safety"), "leaves safety", "leave safety"),
            _plural(n("review_changed"), "changes review status", "change review status"),
            _plural(n("workflow_changed"), "changes workflow", "change workflow"),
        )
    )


# -- rendering -------------------------------------------------------------------------------------


def _text(value: str, limit: int = MESSAGE_CHARS) -> str:
    """Customer text made inert in Markdown: no markup, no mentions, one line."""
    flat = " ".join(value.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    escaped = flat.replace("&", "&amp;").replace("<", "&lt;")
    return _MARKDOWN.sub(r"\\\1", escaped).replace("@", "@\u200b")


def _code(value: str, limit: int = 160) -> str:
    """Engine text (paths, rule reasons) as an inert code span inside a table cell."""
    flat = " ".join(value.split()).replace("`", "'")
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return f"`{flat}`".replace("|", "\\|")


def _review(record: DecisionRecord) -> str:
    return "yes" if record.requires_human_review else "no"


def _workflow(record: DecisionRecord) -> str:
    w = record.workflow
    where = f" in `{w.queue}`" if w.queue else ""
    nxt = f", next `{w.next_step}`" if w.next_step else ""
    return f"{w.status}{where}{nxt}"


def _path(record: DecisionRecord) -> list[str]:
    return [_code(f"{s.stage} {s.code}: {s.detail}") for s in record.decision_path]


def _names(items: Sequence[str]) -> str:
    return ", ".join(f"`{i}`" for i in items) or "—"


def _case_heading(c: Comparison) -> str:
    bits = [f"`{_text(c.case.case_id, 80)}`", c.case.channel.value, c.case.source]
    if c.case.label is not None:
        bits.append(f"labelled {c.case.label.value}")
    bits.append(f"verdict: {c.verdict_source}")
    return " · ".join(bits)


def _side_by_side(c: Comparison, base_name: str, head_name: str) -> list[str]:
    b, h = c.base, c.head
    rows = [
        f"| | base: {base_name} | head: {head_name} |",
        "|---|---|---|",
        f"| category | **{b.category.value}** | **{h.category.value}** |",
        f"| human review | {_review(b)} | {_review(h)} |",
        f"| workflow | {_workflow(b)} | {_workflow(h)} |",
        f"| keyword groups | {_names(b.keywords_matched)} | {_names(h.keywords_matched)} |",
        f"| rules fired | {_names([r.id for r in b.rules_fired])} | "
        f"{_names([r.id for r in h.rules_fired])} |",
        "",
        "| # | base decision path | head decision path |",
        "|---|---|---|",
    ]
    for i, (left, right) in enumerate(aligned(_path(b), _path(h)), start=1):
        mark = "" if left == right else " ≠"
        rows.append(f"| {i}{mark} | {left or ''} | {right or ''} |")
    return rows


def _case(c: Comparison, base_name: str, head_name: str, *, collapsed: bool) -> list[str]:
    lines = [f"#### {_case_heading(c)}", "", f"> {_text(c.case.message)}", ""]
    table = _side_by_side(c, base_name, head_name)
    if collapsed:
        summary = (
            f"{c.base.category.value} → {c.head.category.value}, review "
            f"{_review(c.base)} → {_review(c.head)}"
        )
        return [*lines, f"<details><summary>{summary}</summary>", "", *table, "", "</details>", ""]
    return [*lines, *table, ""]


def _quality(diff: PolicyDiff) -> list[str]:
    labelled = [c for c in diff.comparisons if c.case.label is not None]
    if not labelled:
        return []
    base_ok = sum(c.base.category is c.case.label for c in labelled)
    head_ok = sum(c.head.category is c.case.label for c in labelled)
    safety = [c for c in labelled if c.case.label is SAFETY]
    n = len(labelled)
    line = f"Agreement with the labels: base {base_ok}/{n} → head {head_ok}/{n}"
    if safety:
        base_safe = sum(c.base.category is SAFETY for c in safety)
        head_safe = sum(c.head.category is SAFETY for c in safety)
        line += f"; safety recall: base {base_safe}/{len(safety)} → head {head_safe}/{len(safety)}"
    return [line + ".", ""]


def _verdicts(diff: PolicyDiff) -> str:
    by_source = Counter(c.verdict_source for c in diff.comparisons)
    parts = []
    if by_source["recorded"]:
        parts.append(f"{by_source['recorded']} recorded in the audit store, reused for both sides")
    if by_source["cached"]:
        parts.append(
            f"{by_source['cached']} with their hidden state from the cache (no model call), "
            "reused for both sides"
        )
    if by_source["model"]:
        parts.append(f"{by_source['model']} from one model call reused for both sides")
    if by_source["model x2"]:
        parts.append(
            f"{by_source['model x2']} asked of the model under each revision (the prompt or the "
            "hidden states a head reads changed; calls answered from the hidden-state cache "
            "are not counted)"
        )
    calls = _plural(diff.model_calls, "model call", "model calls")
    return f"Model verdicts: {'; '.join(parts) or 'none'} ({calls})."


def render_policy(diff: PolicyDiff, base_name: str, head_name: str, max_listed: int) -> str:
    b, h = diff.base, diff.head
    leaving = [c for c in diff.comparisons if c.leaves_safety]
    entering = [c for c in diff.comparisons if c.enters_safety]
    others = [c for c in diff.changed if not c.leaves_safety and not c.enters_safety]
    sources = ", ".join(f"{name} {count}" for name, count in sorted(diff.sources.items()))
    out = [
        f"## `{h.id}` {b.version} (revision `{b.revision}`) → "
        f"{h.version} (revision `{h.revision}`)",
        "",
        f"**{headline(diff)}** — of {len(diff.comparisons)} messages replayed"
        f" ({sources or 'none'}){f', {diff.skipped} skipped' if diff.skipped else ''};"
        f" {_plural(len(entering), 'message enters', 'messages enter')} safety.",
        "",
    ]
    if leaving:
        out += [
            f"> [!CAUTION]\n> **⚠ {_plural(len(leaving), 'message LEAVES', 'messages LEAVE')} "
            "SAFETY.** Under the base policy they reach the pharmacovigilance queue; under this "
            "change they do not. Each one needs a compliance reviewer's explicit sign-off.",
            "",
        ]
    changes = policy_changes(b, h)
    out += ["What changed in the policy:", ""]
    out += [f"- {line}" for line in changes] or ["- nothing (the files are identical)"]
    out += ["", _verdicts(diff), "", *_quality(diff)]
    if leaving:
        out += [f"### ⚠ LEAVES SAFETY ({len(leaving)})", ""]
        for c in leaving:
            out += _case(c, base_name, head_name, collapsed=False)
    if entering:
        out += [f"### Enters safety ({len(entering)})", ""]
        for c in entering[:max_listed]:
            out += _case(c, base_name, head_name, collapsed=True)
        out += _more(len(entering), max_listed)
    if others:
        out += [f"### Other changes ({len(others)})", ""]
        for c in others[:max_listed]:
            out += _case(c, base_name, head_name, collapsed=True)
        out += _more(len(others), max_listed)
    return "\n".join(out).rstrip() + "\n"


def _more(total: int, shown: int) -> list[str]:
    if total <= shown:
        return []
    return [f"…and {total - shown} more (raise `--max-listed` to see them).", ""]


def render_report(
    diffs: Sequence[PolicyDiff],
    *,
    base_name: str,
    head_name: str,
    notes: Sequence[str] = (),
    max_listed: int = 50,
) -> str:
    leaving = sum(d.count("leaves_safety") for d in diffs)
    title = f"# Policy diff: {base_name} → {head_name}"
    out: list[str] = [title, ""]
    if leaving:
        out += [f"**⚠ {_plural(leaving, 'message leaves', 'messages leave')} safety.**", ""]
    out += [f"- {n}" for n in notes]
    if notes:
        out.append("")
    body = "\n".join(out)
    sections = [render_policy(d, base_name, head_name, max_listed) for d in diffs]
    return body + "\n" + "\n".join(sections)
