"""The durable-rules wrapper: compiles a policy revision's rules and evaluates decision facts.

The only module that talks to durable-rules, through the raw C API of ``durable_rules_engine``
(a ``Host``'s timer threads steal results across threads). It works around the sharp edges in
/work/shared/design/durable-rules-notes.md: a ``kind`` discriminator in every rule; a
lowest-priority catch-all rule and a warm-up so every evaluation starts an action (deleting a
session without one crashes); a fresh session per evaluation, deleted after, under a lock per
ruleset; de-duplicated results (``$or`` fires once per branch); ``ensure_ascii=False`` JSON
whose numbers never read ``1e-05`` (the C parser rejects a bare exponent, error 204). Load-time
limits, checked on a model of durable's alpha network (``_Node``), keep it away from silent
overflows and crashes: at most 500 rules, 15 ``$and``/``$or`` per rule, 200 rules ending on one
node, and a traversal stack that stays within 64 entries for every possible fact (error 303
otherwise, and deleting that session can abort the process).

Every engine failure raises ``RulesEngineError``; callers fail closed on it.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import durable_rules_engine

from engine.categories import CATEGORIES, Channel, VerdictStatus
from engine.errors import RulesEngineError
from engine.facts import FACT_KIND, DecisionFacts
from engine.policy.model import Condition, Rule

MAX_RULES = 500
MAX_KEYWORD_GROUPS = 200  # a durable fact holds at most 254 properties
MAX_GROUPS_PER_RULE = 15  # each $and/$or takes 2 of a rule's 31 expression slots
MAX_SIMULTANEOUS = 64  # durable's alpha traversal stack (MAX_STACK_SIZE, error 303)
MAX_IDENTICAL_RULES = 200  # rules ending on one alpha node (BETA_LIST_LENGTH 256)
MAX_CHILDREN = 500  # children of one alpha node (its hash table of 512 hangs when full)
DEFAULT_MAX_REVISIONS = 500
CATCH_ALL = "catchall"
CATCH_ALL_PRIORITY = 10_001  # below every policy rule (Rule.priority <= 10_000)
_MAX_ACTIONS = 1_000_000  # guard against an engine that never stops returning actions
_GROUP_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# Names durable's C code hashes (FNV-1, 32 bits) and treats specially; no path may collide.
_RESERVED = ["id", "sid", "$s", "m", "$m", "name", "all", "any", "pri", "count", "cap", "dist"]
_RESERVED += ["$forward", "$l", "$r", "$add", "$sub", "$mul", "$div", "$and", "$or", "$eq"]
_RESERVED += ["$neq", "$lt", "$lte", "$gt", "$gte", "$ex", "$nex", "$mt", "$imt", "$iall", "$iany"]

Term = dict[str, Any]
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_BARE_EXPONENT = re.compile(r"((?:^|[:,\[])-?\d+)(?=e)")
_MEMBERSHIP = {"channel": "channel", "llm_status": "llm.status", "llm_category": "llm.category"}


def _dumps(value: object) -> str:
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
    subs = list({_dumps(sub): sub for term in terms for sub in term.get(op, [term])}.values())
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
            return self.children.setdefault((path, key, _dumps(operand)), _Node())
        return self.children.setdefault((key, "$eq", _dumps(value)), _Node())

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
            "rules with channel, llm_status or llm_category"
        )


class CompiledRules:
    """One policy revision's rules compiled into a durable-rules ruleset."""

    def __init__(
        self, handle: int, rules: Sequence[Rule], groups: Sequence[str], revision: str
    ) -> None:
        self._handle = handle
        self._ids = tuple(rule.id for rule in rules)
        self._order = {f"r{i}": (rule.priority, i) for i, rule in enumerate(rules)}
        self._names = {*self._order, CATCH_ALL}
        self._groups = tuple(groups)
        self._lock = threading.Lock()
        self.revision = revision

    @classmethod
    def compile(
        cls,
        rules: Sequence[Rule],
        keyword_groups: Iterable[str],
        *,
        revision: str,
    ) -> CompiledRules:
        """Translate and check the rules, create the ruleset and warm it up.

        durable-rules never forgets a ruleset name, so each compile gets a fresh one (a random
        UUID); its memory is never freed, hence ``RulesCache``.
        """
        groups = list(dict.fromkeys(keyword_groups))
        if len(rules) > MAX_RULES or len(groups) > MAX_KEYWORD_GROUPS:
            raise RulesEngineError(
                f"revision {revision!r} has {len(rules)} rules and {len(groups)} keyword "
                f"groups; at most {MAX_RULES} and {MAX_KEYWORD_GROUPS} are supported"
            )
        if bad := [g for g in groups if not _GROUP_NAME.fullmatch(g)]:
            raise RulesEngineError(f"keyword group names must match {_GROUP_NAME.pattern}: {bad}")
        paths = ["kind", "channel", "llm", "llm.status", "llm.category", "llm.confidence"]
        paths += ["llm.p", *(f"llm.p.{c.value}" for c in CATEGORIES), "keywords"]
        paths += [f"keywords.{g}" for g in groups]
        if len({_fnv1(p) for p in paths + _RESERVED}) != len(paths) + len(_RESERVED):
            raise RulesEngineError("a keyword group name collides with durable-rules' hashes")
        known = frozenset(groups)
        conditions: list[Term] = []
        definition: dict[str, Term] = {}
        for i, rule in enumerate(rules):
            where = f"rule {rule.id!r}"
            condition = _join("$and", [{"kind": FACT_KIND}, _translate(rule.when, where, known)])
            if (count := _count_groups(condition)) > MAX_GROUPS_PER_RULE:
                raise RulesEngineError(
                    f"{where} needs {count} and/or groups; durable-rules allows "
                    f"{MAX_GROUPS_PER_RULE} per rule: simplify its 'any' or split the rule"
                )
            conditions.append(condition)
            definition[f"r{i}"] = {"pri": rule.priority, "all": [{"m": condition}]}
        conditions.append({"kind": FACT_KIND})
        definition[CATCH_ALL] = {"pri": CATCH_ALL_PRIORITY, "all": [{"m": {"kind": FACT_KIND}}]}
        _check_network(conditions, rules)
        name = f"switchboard-{uuid.uuid4().hex}"
        try:
            handle = int(durable_rules_engine.create_ruleset(name, _dumps(definition)))
        except Exception as exc:
            raise RulesEngineError(f"durable-rules rejected revision {revision!r}: {exc}") from exc
        compiled = cls(handle, rules, groups, revision)
        compiled.evaluate(  # warm-up: the first delete_state of a new ruleset must follow an action
            DecisionFacts(
                Channel.CHAT, VerdictStatus.SKIPPED, None, 0.0, {}, dict.fromkeys(groups, False)
            )
        )
        return compiled

    @property
    def rule_count(self) -> int:
        return len(self._ids)

    def evaluate(self, facts: DecisionFacts) -> tuple[str, ...]:
        """Ids of the rules that fire, de-duplicated, ordered by (priority, position in policy)."""
        fact = facts.to_fact()
        keywords = fact["keywords"]
        if missing := [g for g in self._groups if g not in keywords]:
            raise RulesEngineError(f"facts lack keyword groups {missing}; matcher and rules differ")
        fact["keywords"] = {g: keywords[g] for g in self._groups}
        sid = uuid.uuid4().hex
        fact["sid"] = sid
        try:
            text = _dumps(fact)
        except ValueError as exc:
            raise RulesEngineError(f"facts are not valid JSON numbers: {exc}") from exc
        with self._lock:
            fired = self._run(text, sid)
        ranked = sorted(fired - {CATCH_ALL}, key=self._order.__getitem__)
        return tuple(dict.fromkeys(self._ids[self._order[name][1]] for name in ranked))

    def _run(self, text: str, sid: str) -> set[str]:
        engine = durable_rules_engine
        fired: set[str] = set()
        started = ok = False
        try:
            code, offset = engine.assert_fact(self._handle, text)
            if code != 0:
                raise RulesEngineError(f"durable-rules answered code {code} to a decision fact")
            action = engine.start_action_for_state(self._handle, offset)
            started = action is not None
            message: str | None = action[1] if action is not None else None
            for _ in range(_MAX_ACTIONS):
                if message is None:
                    break
                name = message[2 : message.find('"', 2)] if message.startswith('{"') else ""
                if name not in self._names:
                    raise RulesEngineError(f"durable-rules fired an unknown action: {message}")
                fired.add(name)
                message = engine.complete_and_start_action(self._handle, offset)
            if CATCH_ALL not in fired or message is not None:
                raise RulesEngineError("durable-rules did not finish the catch-all rule's action")
            ok = True
        except RulesEngineError:
            raise
        except Exception as exc:
            raise RulesEngineError(f"durable-rules failed to evaluate a decision: {exc}") from exc
        finally:
            # delete_state of a session that never started an action (or that an assertion
            # failed on) crashes the process: leak that session instead.
            if started:
                try:
                    engine.delete_state(self._handle, sid)
                except Exception as exc:
                    if ok:
                        raise RulesEngineError(f"durable-rules kept a session: {exc}") from exc
        return fired


class RulesCache:
    """Compiled rulesets by revision: compile once per revision, reuse after.

    durable-rules never frees a compiled ruleset's memory, so the cache caps how many distinct
    revisions a process may compile (default 500). ``revision`` must identify the rules'
    content (e.g. a hash of the policy): the cache never compares the rules themselves.
    """

    def __init__(self, max_revisions: int = DEFAULT_MAX_REVISIONS) -> None:
        self._max = max_revisions
        self._compiled: dict[str, CompiledRules] = {}
        self._lock = threading.Lock()

    def get(
        self, rules: Sequence[Rule], keyword_groups: Iterable[str], *, revision: str
    ) -> CompiledRules:
        with self._lock:
            if (found := self._compiled.get(revision)) is not None:
                return found
            if len(self._compiled) >= self._max:
                raise RulesEngineError(
                    f"not compiling revision {revision!r}: this process already compiled "
                    f"{len(self._compiled)} rule revisions, its cap; durable-rules never frees "
                    "a compiled ruleset, so restart the process to load more"
                )
            compiled = CompiledRules.compile(rules, keyword_groups, revision=revision)
            self._compiled[revision] = compiled
            return compiled

    @property
    def compiled_count(self) -> int:
        return len(self._compiled)
