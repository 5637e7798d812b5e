"""Second-phase policy validation: cross-references and domain rules the schema cannot express.

Each check needs only the sections it reads, so a policy with a schema error in one section still
gets every other problem reported in the same run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import phonenumbers

from engine.categories import CATEGORIES, Category, Channel
from engine.policy.fitting import ProbeHeadSpec
from engine.policy.labels import Labels, Thresholds
from engine.policy.model import ChannelAdjustment as _ChannelAdjustment
from engine.policy.model import Redaction
from engine.policy.prompt import PromptSpec
from engine.policy.rules import Condition, KeywordGroup, Rule
from engine.policy.workflows import StepAction, Workflow, Workflows

PathPart = str | int
Finding = tuple[tuple[PathPart, ...], str]


@dataclass(frozen=True)
class Sections:
    """The sections that passed schema validation (None where they did not)."""

    labels: Labels | None
    thresholds: Thresholds | None
    prompt: PromptSpec | None
    keyword_groups: dict[str, KeywordGroup] | None
    rules: list[Rule] | None
    workflows: Workflows | None
    channels: dict[Channel, _ChannelAdjustment] | None
    redaction: Redaction | None
    head: ProbeHeadSpec | None = None


def _answer_locations(labels: Labels) -> Iterator[tuple[Category, str, tuple[PathPart, ...]]]:
    for category in CATEGORIES:
        spec = labels.spec(category)
        if spec.sub_intents:
            for i, sub in enumerate(spec.sub_intents):
                yield category, sub.answer, ("labels", category.value, "sub_intents", i, "answer")
        elif spec.answer:
            yield category, spec.answer, ("labels", category.value, "answer")


def check_labels(s: Sections) -> Iterator[Finding]:
    """One answer or sub-intents per label; every answer of the policy distinct, and starting
    with its own letter: the backends give an answer the mass of every token that is a prefix
    of it ("s", "saf", "safety"), and every single letter is a token, so two answers that start
    alike would share tokens and one next-token step could not tell them apart."""
    if s.labels is None:
        return
    for category in CATEGORIES:
        spec = s.labels.spec(category)
        if (spec.answer is None) == (spec.sub_intents is None):
            yield (
                ("labels", category.value),
                "give either 'answer' (one word for the category) or 'sub_intents' (several "
                "answers with definitions), not "
                + ("both" if spec.answer is not None else "neither"),
            )
    seen: dict[str, tuple[Category, str]] = {}
    firsts: dict[str, tuple[Category, str]] = {}
    for category, answer, where in _answer_locations(s.labels):
        key = answer.casefold().strip()
        if key in seen:
            other, _ = seen[key]
            yield (where, f"answer {answer!r} is given twice (also for {other.value})")
            continue
        seen[key] = (category, answer)
        first = key[0]
        if first in firsts:
            other, other_answer = firsts[first]
            yield (
                where,
                f"answer {answer!r} must start with a different letter than {other.value}'s "
                f"answer {other_answer!r}: answers that start alike share their first token, so "
                "one token could not tell them apart",
            )
            continue
        firsts[first] = (category, answer)


def check_example_answers(s: Sections) -> Iterator[Finding]:
    """A few-shot example of a label with sub-intents names which one it shows."""
    if s.labels is None or s.prompt is None:
        return
    for i, example in enumerate(s.prompt.examples):
        spec = s.labels.spec(example.label)
        answers = spec.answers()
        where: tuple[PathPart, ...] = ("prompt", "examples", i)
        if example.answer is None:
            if spec.sub_intents:
                yield (
                    (*where, "label"),
                    f"{example.label.value} has sub-intents: name the one this example shows "
                    f"with 'answer:' (one of {list(answers)})",
                )
        elif example.answer.casefold() not in {a.casefold() for a in answers}:
            yield (
                (*where, "answer"),
                f"answer {example.answer!r} is not an answer of {example.label.value} "
                f"(one of {list(answers)})",
            )


def _threshold_order(
    accept: dict[Category, float], where: tuple[PathPart, ...]
) -> Iterator[Finding]:
    safety = accept[Category.SAFETY_COMPLIANCE]
    for other in (Category.INFORMATIONAL, Category.SERVICE_ACTION):
        if safety > accept[other]:
            yield (
                (*where, Category.SAFETY_COMPLIANCE.value),
                f"safety threshold {safety} is above the {other.value} threshold "
                f"{accept[other]}: routing to safety must never be harder than routing away",
            )


def check_thresholds(s: Sections) -> Iterator[Finding]:
    if s.thresholds is None:
        return
    yield from _thresholds(s.thresholds, s.channels, ("thresholds",))
    if s.head is not None and s.head.thresholds is not None:
        yield from _thresholds(s.head.thresholds, s.channels, ("head", "thresholds"))


def _thresholds(
    t: Thresholds,
    channels: dict[Channel, _ChannelAdjustment] | None,
    where: tuple[PathPart, ...],
) -> Iterator[Finding]:
    base = {c: t.accept(c) for c in CATEGORIES}
    yield from _threshold_order(base, where)
    if t.safety_escalation > t.safety_compliance:
        yield (
            (*where, "safety_escalation"),
            f"safety_escalation {t.safety_escalation} is above the safety acceptance threshold "
            f"{t.safety_compliance}; it must not be",
        )
    for channel, adjustment in (channels or {}).items():
        merged = {**base, **adjustment.thresholds}
        yield from _threshold_order(merged, ("channels", channel.value, "thresholds"))


def check_keyword_groups(s: Sections) -> Iterator[Finding]:
    for name, group in (s.keyword_groups or {}).items():
        if not group.keywords and not group.patterns:
            yield (("keyword_groups", name), "group has neither keywords nor patterns")
        for i, pattern in enumerate(group.patterns):
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                yield (("keyword_groups", name, "patterns", i), f"invalid regex {pattern!r}: {exc}")


def check_model_input(s: Sections) -> Iterator[Finding]:
    if s.prompt is None or s.prompt.model_input is None or s.keyword_groups is None:
        return
    for i, group in enumerate(s.prompt.model_input.withhold_clauses):
        if group not in s.keyword_groups:
            yield (
                ("prompt", "model_input", "withhold_clauses", i),
                f"unknown keyword group {group!r}",
            )


def _condition_groups(condition: Condition) -> Iterator[str]:
    for groups in (condition.keywords_any, condition.keywords_all, condition.keywords_none):
        yield from groups or ()
    for sub in condition.any or ():
        yield from _condition_groups(sub)


def _is_empty(condition: Condition) -> bool:
    return not any(value is not None for name, value in condition if name != "any") and not (
        condition.any and not all(_is_empty(c) for c in condition.any)
    )


def _is_text_only_safety_override(rule: Rule) -> bool:
    w = rule.when
    model_free = (
        w.llm_category is None
        and w.llm_status is None
        and w.confidence_below is None
        and w.confidence_at_least is None
        and w.probability_at_least is None
        and w.any is None
    )
    return (
        model_free
        and bool(w.keywords_any)
        and rule.then.category is Category.SAFETY_COMPLIANCE
        and rule.then.requires_human_review
    )


def check_rules(s: Sections) -> Iterator[Finding]:
    if s.rules is None:
        return
    ids: set[str] = set()
    for i, rule in enumerate(s.rules):
        where: tuple[PathPart, ...] = ("rules", i)
        if rule.id in ids:
            yield ((*where, "id"), f"rule id {rule.id!r} is used twice")
        ids.add(rule.id)
        if _is_empty(rule.when):
            yield ((*where, "when"), "condition has no predicates; it would fire on everything")
        if s.keyword_groups is not None:
            for group in _condition_groups(rule.when):
                if group not in s.keyword_groups:
                    yield ((*where, "when"), f"unknown keyword group {group!r}")
        if rule.then.category is None and not rule.then.requires_human_review:
            yield ((*where, "then"), "rule does nothing: set a category or requires_human_review")
    if not any(_is_text_only_safety_override(r) for r in s.rules):
        yield (
            ("rules",),
            "no safety keyword override: add a rule whose condition is only keywords_any and "
            "that routes to safety_compliance with human review, so the model can never be the "
            "only line of defence",
        )


def _walk(workflow: Workflow) -> tuple[set[str], bool]:
    """Reachable steps from start, and whether the graph has a cycle."""
    reachable: set[str] = set()
    on_stack: set[str] = set()
    cyclic = False

    def visit(name: str) -> None:
        nonlocal cyclic
        if name in on_stack:
            cyclic = True
            return
        if name in reachable or name not in workflow.steps:
            return
        reachable.add(name)
        on_stack.add(name)
        step = workflow.steps[name]
        for nxt in (step.next, step.next_if_review):
            if nxt:
                visit(nxt)
        on_stack.discard(name)

    visit(workflow.start)
    return reachable, cyclic


def check_workflows(s: Sections) -> Iterator[Finding]:
    if s.workflows is None:
        return
    for category in CATEGORIES:
        wf = s.workflows.for_category(category)
        base: tuple[PathPart, ...] = ("workflows", category.value)
        if wf.start not in wf.steps:
            yield ((*base, "start"), f"start step {wf.start!r} does not exist")
        for name, step in wf.steps.items():
            for edge in ("next", "next_if_review"):
                target = getattr(step, edge)
                if target is not None and target not in wf.steps:
                    yield ((*base, "steps", name, edge), f"edge to unknown step {target!r}")
            if step.action is StepAction.EXTERNAL and step.integration is None:
                yield ((*base, "steps", name), "external step needs an integration")
            if step.action is StepAction.QUEUE_HUMAN_REVIEW and step.queue is None:
                yield ((*base, "steps", name), "review step needs a queue")
        if wf.after_review is not None:
            review_exits = {
                step.next
                for step in wf.steps.values()
                if step.action is StepAction.QUEUE_HUMAN_REVIEW
            }
            if wf.after_review not in wf.steps:
                yield (
                    (*base, "after_review"),
                    f"after_review names unknown step {wf.after_review!r}",
                )
            elif wf.after_review not in review_exits:
                yield (
                    (*base, "after_review"),
                    f"after_review {wf.after_review!r} must be the step a review step leads to "
                    "(the 'next' of a queue_human_review step: "
                    f"{sorted(n for n in review_exits if n)})",
                )
        reachable, cyclic = _walk(wf)
        if cyclic:
            yield ((*base, "steps"), "workflow graph has a cycle")
        for name in sorted(set(wf.steps) - reachable):
            if wf.start in wf.steps:
                yield ((*base, "steps", name), f"step {name!r} is unreachable from the start")
        if category is Category.SAFETY_COMPLIANCE:
            if not any(wf.steps[n].action is StepAction.QUEUE_HUMAN_REVIEW for n in reachable):
                yield (base, "the safety workflow must reach a human review step")
            if wf.sla_hours is None:
                yield ((*base, "sla_hours"), "the safety workflow must declare sla_hours")
            if wf.after_review is None:
                yield (
                    (*base, "after_review"),
                    "the safety workflow must say which step follows the review (after_review), "
                    "or a confirmed case never reaches the safety database",
                )


def check_redaction(s: Sections) -> Iterator[Finding]:
    if s.redaction is None:
        return
    for i, region in enumerate(s.redaction.phone_regions):
        if region not in phonenumbers.SUPPORTED_REGIONS:
            yield (
                ("redaction", "phone_regions", i),
                f"{region!r} is not a region the phone number library knows "
                "(use ISO 3166 codes: GB, not UK)",
            )
    for entity, patterns in s.redaction.custom_patterns.items():
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                yield (
                    ("redaction", "custom_patterns", entity, i),
                    f"invalid regex {pattern!r}: {exc}",
                )


CROSS_CHECKS: tuple[Callable[[Sections], Iterator[Finding]], ...] = (
    check_labels,
    check_example_answers,
    check_thresholds,
    check_keyword_groups,
    check_model_input,
    check_rules,
    check_workflows,
    check_redaction,
)
