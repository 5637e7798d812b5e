"""A policy as a compliance author reads it: thresholds, keyword groups and rules in words.

Pure functions from the loaded policy to what the policy page shows; each rule and keyword group
says where it is written (file and line), so the page and the YAML point at the same place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.policy.labels import Thresholds
from engine.policy.loader import LoadedPolicy
from engine.policy.rules import Condition, KeywordGroup, Rule, RuleAction


@dataclass(frozen=True)
class ThresholdRow:
    name: str
    value: float
    meaning: str


@dataclass(frozen=True)
class KeywordGroupView:
    name: str
    description: str
    keywords: tuple[str, ...]
    patterns: tuple[str, ...]
    where: str


@dataclass(frozen=True)
class RuleView:
    id: str
    priority: int
    reason: str
    when: tuple[str, ...]
    then: str
    where: str


@dataclass(frozen=True)
class PolicyView:
    id: str
    version: str
    revision: str
    description: str
    thresholds: tuple[ThresholdRow, ...]
    head_thresholds: tuple[ThresholdRow, ...]
    keyword_groups: tuple[KeywordGroupView, ...]
    rules: tuple[RuleView, ...]


def view(loaded: LoadedPolicy) -> PolicyView:
    policy = loaded.policy
    head = policy.head.thresholds if policy.head is not None else None
    return PolicyView(
        id=loaded.id,
        version=loaded.version,
        revision=loaded.revision,
        description=policy.description,
        thresholds=threshold_rows(policy.thresholds),
        head_thresholds=threshold_rows(head) if head is not None else (),
        keyword_groups=tuple(
            _group(name, group, where(loaded, ("keyword_groups", name)))
            for name, group in policy.keyword_groups.items()
        ),
        rules=tuple(
            _rule(rule, where(loaded, ("rules", i)))
            for i, rule in sorted(enumerate(policy.rules), key=lambda p: (p[1].priority, p[0]))
        ),
    )


def threshold_rows(thresholds: Thresholds) -> tuple[ThresholdRow, ...]:
    fields = type(thresholds).model_fields
    return tuple(
        ThresholdRow(name, float(getattr(thresholds, name)), fields[name].description or "")
        for name in fields
    )


def where(loaded: LoadedPolicy, path: tuple[str | int, ...]) -> str:
    """``rules.yaml:373`` for a key of the policy (the directory when its file is unknown)."""
    source = loaded.source
    if source is None:
        return str(loaded.directory.name)
    location = source.locate(path)
    line = location.split(" ", 1)[0]
    name = Path(source.file_of(path)).name
    return f"{name}:{line}" if line.isdigit() else name


def _group(name: str, group: KeywordGroup, at: str) -> KeywordGroupView:
    keywords, patterns = tuple(group.keywords), tuple(group.patterns)
    return KeywordGroupView(name, group.description, keywords, patterns, at)


def _rule(rule: Rule, at: str) -> RuleView:
    return RuleView(rule.id, rule.priority, rule.reason, describe(rule.when), action(rule.then), at)


def _names(items: list[str]) -> str:
    return ", ".join(items)


def describe(condition: Condition) -> tuple[str, ...]:
    """Every predicate of ``condition`` as a sentence; all of them must hold."""
    c = condition
    out: list[str] = []
    if c.keywords_any:
        out.append(f"a keyword of any of these groups matched: {_names(c.keywords_any)}")
    if c.keywords_all:
        out.append(f"a keyword of every one of these groups matched: {_names(c.keywords_all)}")
    if c.keywords_none:
        out.append(f"no keyword of these groups matched: {_names(c.keywords_none)}")
    if c.llm_category:
        out.append(f"the model's label is {' or '.join(x.value for x in c.llm_category)}")
    if c.llm_status:
        out.append(f"the model call ended {' or '.join(x.value for x in c.llm_status)}")
    if c.channel:
        out.append(f"the channel is {' or '.join(x.value for x in c.channel)}")
    if c.confidence_below is not None:
        out.append(f"the model's confidence is below {c.confidence_below}")
    if c.confidence_at_least is not None:
        out.append(f"the model's confidence is at least {c.confidence_at_least}")
    for category, p in (c.probability_at_least or {}).items():
        out.append(f"the model's probability of {category.value} is at least {p}")
    if c.any:
        options = ["; ".join(describe(sub)) for sub in c.any]
        out.append("at least one of: " + " | ".join(f"({o})" for o in options))
    return tuple(out)


def action(then: RuleAction) -> str:
    parts = []
    if then.category is not None:
        parts.append(f"decide {then.category.value}")
    parts.append("send to human review" if then.requires_human_review else "no review required")
    return "; ".join(parts)
