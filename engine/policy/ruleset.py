"""Policy rules as a durable-rules ruleset, checked against every limit of durable's C engine.

Pure Python, run by ``engine.decide.rules`` before it hands the ruleset to durable-rules, when an
engine is built (``switchboard check`` builds too, so it reports a rule that would not compile,
with its file and line).
Limits are checked on a model of durable's alpha network (``_Node``), which keeps it away from
silent overflows and crashes: at most 500 rules, 15 ``$and``/``$or`` per rule, 200 rules ending
on one node, and a traversal stack that stays within 64 entries for every possible fact (error
303 otherwise, and deleting that session can abort the process). See
/work/shared/design/durable-rules-notes.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from engine.categories import CATEGORIES
from engine.errors import RulesEngineError
from engine.policy.rules import Condition, Rule

MAX_RULES = 500
MAX_KEYWORD_GROUPS = 200  # a durable fact holds at most 254 properties
MAX_GROUPS_PER_RULE = 15  # each $and/$or takes 2 of a rule's 31 expression slots
MAX_SIMULTANEOUS = 64  # durable's alpha traversal stack (MAX_STACK_SIZE, error 303)
MAX_IDENTICAL_RULES = 200  # rules ending on one alpha node (BETA_LIST_LENGTH 256)
MAX_CHILDREN = 500  # children of one alpha node (its hash table of 512 hangs when full)
CATCH_ALL = "catchall"
CATCH_ALL_PRIORITY = 10_001  # below every policy rule (Rule.priority <= 10_000)
_GROUP_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# Names durable's C code hashes (FNV-1, 32 bits) and treats specially; no path may collide.
_RESERVED = ["id", "sid", "$s", "m", "$m", "name", "all", "any", "pri", "count", "cap", "dist"]
_RESERVED += ["$forward", "$l", "$r", "$add", "$sub", "$mul", "$div", "$and", "$or", "$eq"]
_RESERVED += ["$neq", "$lt", "$lte", "$gt", "$gte", "$ex", "$nex", "$mt", "$imt", "$iall", "$iany"]

Term = dict[str, Any]
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_BARE_EXPONENT = re.compile(r"((?:^|[:,\[])-?\d+)(?=e)")
_MEMBERSHIP = {"channel": "channel", "llm_status": "llm.status", "llm_category": "llm.category"}
FACT_KIND = "decision"  # discriminator present in every fact and every compiled rule


def durable_json(value: object) -> str:
    """JSON durable's C parser reads back exactly: ``ensure_ascii=False``, no bare ``1e-05``.

    Only numbers can follow ``:``, ``,`` or ``[`` directly: no string here holds those
    characters (names are validated identifiers, values are enum members).
    """
    text = _ENCODE(value)  # ValueError on nan and infinities
    return _BARE_EXPONENT.sub(r"\1.0", text) if "e-" in text or "e+" in text else text


def _fnv1(name: str) -> int:
    value = 0x811C9DC5
    for byte in name.encode():
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return value


def _join(op: str, terms: Iterable[Term]) -> Term:
    """``{op: terms}`` flattened and without duplicates, or the only term itself."""
    subs = list({durable_json(sub): sub for term in terms for sub in term.get(op, [term])}.values())
    return subs[0] if len(subs) == 1 else {op: subs}


def _translate(cond: Condition, where: str, groups: Collection[str]) -> Term:
    """``cond`` as one durable term (the caller adds the discriminator)."""
    given: dict[str, Any] = {field: value for field, value in cond if value is not None}
    if not given:
        raise RulesEngineError(f"{where}: the condition has no predicates; give at least one")
    for field, value in given.items():
        if isinstance(value, list | dict) and not value:
            raise RulesEngineError(f"{where}: '{field}' is empty; remove it or give a value")
        for name in value if field.startswith("keywords_") else ():
            if name not in groups:
                raise RulesEngineError(
                    f"{where}: keyword group {name!r} in '{field}' is not defined in the "
                    f"policy's keyword_groups ({', '.join(sorted(groups)) or 'none'})"
                )
    terms: list[Term] = []
    for field, path in _MEMBERSHIP.items():
        if field in given:
            terms.append(_join("$or", ({path: v.value} for v in given[field])))
    if "keywords_any" in given:
        terms.append(_join("$or", ({f"keywords.{g}": True} for g in given["keywords_any"])))
    terms += [{f"keywords.{g}": True} for g in given.get("keywords_all", ())]
    terms += [{f"keywords.{g}": False} for g in given.get("keywords_none", ())]
    for field, op in (("confidence_below", "$lt"), ("confidence_at_least", "$gte")):
        if field in given:
            terms.append({op: {"llm.confidence": float(given[field])}})
    for category, value in given.get("probability_at_least", {}).items():
        terms.append({"$gte": {f"llm.p.{category.value}": float(value)}})
    if "any" in given:
        subs = enumerate(given["any"])
        terms.append(_join("$or", (_translate(c, f"{where}.any[{i}]", groups) for i, c in subs)))
    return _join("$and", terms)


def _count_groups(term: Term) -> int:
    ((key, value),) = term.items()
    return 1 + sum(map(_count_groups, value)) if key in ("$and", "$or") else 0


class _Node:
    """An alpha node as durable's createAlpha/findAlpha build them from the same JSON."""

    __slots__ = ("betas", "children", "forwards")

    def __init__(self) -> None:
        self.children: dict[tuple[str, str, str], _Node] = {}  # (path, operator, value)
        self.forwards: list[_Node] = []  # $or join nodes: always pushed when this node is
        self.betas = 0  # rules that end here

    def link(self, term: Term) -> _Node:
        """Add ``term`` below this node; return the node where it ends."""
        ((key, value),) = term.items()
        if key == "$and":
            node = self
            for sub in value:
                node = node.link(sub)
            return node
        if key == "$or":
            forward = _Node()
            for sub in value:
                self.link(sub).forwards.append(forward)
            return forward
        if key.startswith("$"):
            ((path, operand),) = value.items()
            return self.children.setdefault((path, key, durable_json(operand)), _Node())
        return self.children.setdefault((key, "$eq", durable_json(value)), _Node())

    def peak(self, memo: dict[int, int]) -> int:
        """Upper bound of durable's traversal stack below this node, over every possible fact.

        Popping a node pushes each matching child and every forward node. Equality children on
        one path can't match together; every other child is assumed to match. Also refuses
        nodes that would overflow durable's beta list or child table.
        """
        if self.betas > MAX_IDENTICAL_RULES or len(self.children) > MAX_CHILDREN:
            raise RulesEngineError(
                f"more than {MAX_IDENTICAL_RULES} rules share one condition, or more than "
                f"{MAX_CHILDREN} rules diverge at one point; durable-rules can't hold that"
            )
        if id(self) not in memo:
            equal = {path for path, op, _ in self.children if op == "$eq"}
            pushed = len(equal) + len(self.forwards)
            pushed += sum(op != "$eq" for _, op, _ in self.children)
            below = [n.peak(memo) for n in (*self.children.values(), *self.forwards)]
            memo[id(self)] = max(pushed, pushed - 1 + max(below)) if below else 0
        return memo[id(self)]


def _network(conditions: Sequence[Term]) -> _Node:
    root = _Node()
    for condition in conditions:
        root.link(condition).betas += 1
    return root


def _check_network(conditions: list[Term], rules: Sequence[Rule]) -> None:
    """Refuse rulesets that could overflow durable's fixed-size structures."""
    peak = _network(conditions).peak({})
    if peak > MAX_SIMULTANEOUS:
        # Adding rules never lowers the bound: find the first rule that pushes it over.
        low, high = 0, len(rules)
        while low < high:
            mid = (low + high) // 2
            if _network(conditions[: mid + 1]).peak({}) > MAX_SIMULTANEOUS:
                high = mid
            else:
                low = mid + 1
        raise RulesEngineError(
            f"up to {peak} conditions could match one message at once (durable-rules fails "
            f"beyond {MAX_SIMULTANEOUS}); rule {rules[low].id!r} is the first to exceed it: "
            "merge rules on different keyword groups into one with keywords_any, or start "
            "rules with channel, llm_status or llm_category",
            path=("rules", low),
        )


def ruleset_definition(rules: Sequence[Rule], keyword_groups: Iterable[str]) -> dict[str, Term]:
    """The durable-rules ruleset for a policy's rules, checked against every limit.

    Raises ``RulesEngineError`` whose ``path`` locates the problem in the policy (a rule, the
    rule list or a keyword group), so ``switchboard check`` reports it where it is written.
    """
    groups = list(dict.fromkeys(keyword_groups))
    if len(rules) > MAX_RULES:
        raise RulesEngineError(
            f"{len(rules)} rules; at most {MAX_RULES} are supported: merge rules that route "
            "alike (keywords_any) or split the policy",
            path=("rules",),
        )
    if len(groups) > MAX_KEYWORD_GROUPS:
        raise RulesEngineError(
            f"{len(groups)} keyword groups; at most {MAX_KEYWORD_GROUPS} are supported: merge "
            "groups that rules always use together",
            path=("keyword_groups",),
        )
    for g in groups:
        if not _GROUP_NAME.fullmatch(g):
            raise RulesEngineError(
                f"keyword group name {g!r} must match {_GROUP_NAME.pattern}; rename it",
                path=("keyword_groups", g),
            )
    paths = ["kind", "channel", "llm", "llm.status", "llm.category", "llm.confidence"]
    paths += ["llm.p", *(f"llm.p.{c.value}" for c in CATEGORIES), "keywords"]
    paths += [f"keywords.{g}" for g in groups]
    if len({_fnv1(p) for p in paths + _RESERVED}) != len(paths) + len(_RESERVED):
        raise RulesEngineError(
            "a keyword group name collides with durable-rules' hashes; rename the newest group",
            path=("keyword_groups",),
        )
    known = frozenset(groups)
    conditions: list[Term] = []
    definition: dict[str, Term] = {}
    for i, rule in enumerate(rules):
        where = f"rule {rule.id!r}"
        try:
            term = _translate(rule.when, where, known)
        except RulesEngineError as exc:
            raise RulesEngineError(str(exc), path=("rules", i, "when")) from exc
        condition = _join("$and", [{"kind": FACT_KIND}, term])
        if (count := _count_groups(condition)) > MAX_GROUPS_PER_RULE:
            raise RulesEngineError(
                f"{where} needs {count} and/or groups; durable-rules allows "
                f"{MAX_GROUPS_PER_RULE} per rule: simplify its 'any' or split the rule",
                path=("rules", i, "when"),
            )
        conditions.append(condition)
        definition[f"r{i}"] = {"pri": rule.priority, "all": [{"m": condition}]}
    conditions.append({"kind": FACT_KIND})
    definition[CATCH_ALL] = {"pri": CATCH_ALL_PRIORITY, "all": [{"m": {"kind": FACT_KIND}}]}
    _check_network(conditions, rules)
    return definition
