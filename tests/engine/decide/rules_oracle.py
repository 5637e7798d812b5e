"""A plain-Python evaluator of policy rules: the oracle the durable-rules wrapper is tested against.

It reads the same fact dict the wrapper sends to durable-rules (``DecisionFacts.to_fact()``) and
implements the documented rule semantics directly, with no knowledge of how they are compiled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.policy.rules import Condition, Rule


def condition_holds(cond: Condition, fact: Mapping[str, Any]) -> bool:
    """Every predicate given holds; ``any`` holds when at least one sub-condition does."""
    llm = fact["llm"]
    keywords = fact["keywords"]
    checks: list[bool] = []
    if cond.keywords_any is not None:
        checks.append(any(keywords[g] for g in cond.keywords_any))
    if cond.keywords_all is not None:
        checks.append(all(keywords[g] for g in cond.keywords_all))
    if cond.keywords_none is not None:
        checks.append(not any(keywords[g] for g in cond.keywords_none))
    if cond.llm_category is not None:
        checks.append(llm["category"] in {c.value for c in cond.llm_category})
    if cond.llm_status is not None:
        checks.append(llm["status"] in {s.value for s in cond.llm_status})
    if cond.channel is not None:
        checks.append(fact["channel"] in {c.value for c in cond.channel})
    if cond.confidence_below is not None:
        checks.append(llm["confidence"] < cond.confidence_below)
    if cond.confidence_at_least is not None:
        checks.append(llm["confidence"] >= cond.confidence_at_least)
    if cond.probability_at_least is not None:
        checks.append(all(llm["p"][c.value] >= x for c, x in cond.probability_at_least.items()))
    if cond.any is not None:
        checks.append(any(condition_holds(sub, fact) for sub in cond.any))
    if not checks:
        raise ValueError("a condition without predicates is rejected at compile time")
    return all(checks)


def fired(rules: Sequence[Rule], fact: Mapping[str, Any]) -> tuple[str, ...]:
    """Ids of the rules whose condition holds, ordered by (priority, position), de-duplicated."""
    hits = sorted((r.priority, i) for i, r in enumerate(rules) if condition_holds(r.when, fact))
    return tuple(dict.fromkeys(rules[i].id for _, i in hits))
