"""The durable-rules wrapper: compiles a policy revision's rules and evaluates decision facts.

The only module that talks to durable-rules, through the raw C API of ``durable_rules_engine``
(a ``Host``'s timer threads steal results across threads). It works around the sharp edges in
/work/shared/design/durable-rules-notes.md: a ``kind`` discriminator in every rule; a
lowest-priority catch-all rule and a warm-up so every evaluation starts an action (deleting a
session without one crashes); a fresh session per evaluation, deleted after, under a lock per
ruleset; de-duplicated results (``$or`` fires once per branch); ``ensure_ascii=False`` JSON
whose numbers never read ``1e-05`` (the C parser rejects a bare exponent, error 204). The
translation and its limits live with the policy (``engine.policy.ruleset``), so a policy that
would not compile is refused when it is loaded.

Every engine failure raises ``RulesEngineError``; callers fail closed on it.

A rule reads a fact only through its predicates (a channel, a status or a category is one of
some values, a keyword group matched or not, the confidence or a probability is on one side of a
threshold), so two facts that agree on every predicate any rule names fire the same rules.
``CompiledRules`` keeps durable-rules' answer for each such combination it has evaluated
(``Situation``) and answers a fact in an evaluated situation from it: most messages share a few
situations, and one durable-rules session costs tens of microseconds.
"""

from __future__ import annotations

import itertools
import math
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence

import durable_rules_engine

from engine.categories import Category, Channel, VerdictStatus
from engine.decide.facts import DecisionFacts
from engine.errors import RulesEngineError
from engine.policy.rules import Condition, Rule
from engine.policy.ruleset import CATCH_ALL, durable_json, ruleset_definition

DEFAULT_MAX_REVISIONS = 500
DEFAULT_MAX_SITUATIONS = 4096  # per revision; beyond it, new situations are evaluated uncached
_MAX_ACTIONS = 1_000_000  # guard against an engine that never stops returning actions


class CompiledRules:
    """One policy revision's rules compiled into a durable-rules ruleset."""

    def __init__(
        self,
        handle: int,
        rules: Sequence[Rule],
        groups: Sequence[str],
        revision: str,
        *,
        max_situations: int = DEFAULT_MAX_SITUATIONS,
    ) -> None:
        self._handle = handle
        self._ids = tuple(rule.id for rule in rules)
        self._order = {f"r{i}": (rule.priority, i) for i, rule in enumerate(rules)}
        self._names = {*self._order, CATCH_ALL}
        self._groups = tuple(groups)
        self._lock = threading.Lock()
        # Session ids: unique within this ruleset for the life of the process (a leaked session
        # keeps its id), which is all durable-rules needs; no syscall for random bytes per fact.
        # next() on itertools.count is atomic under the GIL.
        self._sessions = itertools.count()
        self._situation = Situation(rules)
        self._answers: dict[tuple[object, ...], tuple[str, ...]] = {}
        self._max_situations = max_situations
        self.revision = revision

    @classmethod
    def compile(
        cls,
        rules: Sequence[Rule],
        keyword_groups: Iterable[str],
        *,
        revision: str,
        max_situations: int = DEFAULT_MAX_SITUATIONS,
    ) -> CompiledRules:
        """Translate and check the rules, create the ruleset and warm it up.

        durable-rules never forgets a ruleset name, so each compile gets a fresh one (a random
        UUID); its memory is never freed, hence ``RulesCache``. ``max_situations`` caps the
        answers kept (0: every fact goes to durable-rules).
        """
        groups = list(dict.fromkeys(keyword_groups))
        definition = ruleset_definition(rules, groups)
        name = f"switchboard-{uuid.uuid4().hex}"
        try:
            handle = int(durable_rules_engine.create_ruleset(name, durable_json(definition)))
        except Exception as exc:
            raise RulesEngineError(f"durable-rules rejected revision {revision!r}: {exc}") from exc
        compiled = cls(handle, rules, groups, revision, max_situations=max_situations)
        # Warm-up: the first delete_state of a new ruleset must follow an action.
        compiled._evaluate(
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
        try:
            situation = self._situation.of(facts, self._groups)
        except KeyError:
            situation = None  # durable-rules' path reports it
        if situation is None:
            return self._evaluate(facts)
        found = self._answers.get(situation)
        if found is None:
            found = self._evaluate(facts)
            if len(self._answers) < self._max_situations:
                self._answers[situation] = found
        return found

    def _evaluate(self, facts: DecisionFacts) -> tuple[str, ...]:
        sid = format(next(self._sessions), "032x")
        try:
            text = facts.fact_json(self._groups, sid)
        except KeyError:
            missing = [g for g in self._groups if g not in facts.keywords]
            raise RulesEngineError(
                f"facts lack keyword groups {missing}; matcher and rules differ"
            ) from None
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


class Situation:
    """What a policy's rules can tell apart in a fact: the value of every predicate they name."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        below: set[float] = set()
        at_least: set[tuple[Category, float]] = set()
        for rule in rules:
            for condition in _conditions(rule.when):
                for threshold in (condition.confidence_below, condition.confidence_at_least):
                    if threshold is not None:
                        below.add(float(threshold))
                for category, value in (condition.probability_at_least or {}).items():
                    at_least.add((category, float(value)))
        self._below = tuple(sorted(below))
        self._at_least = tuple(sorted(at_least))

    def of(self, facts: DecisionFacts, groups: Sequence[str]) -> tuple[object, ...] | None:
        """The fact's situation; None for a number durable-rules would refuse (not finite).

        ``KeyError`` when a keyword group is missing. Each comparison is the one durable-rules
        makes on the same float (the fact's JSON holds ``repr``, which reads back exactly).
        ``confidence_at_least`` is the negation of ``confidence_below`` at the same threshold.
        """
        confidence = float(facts.confidence)
        p = facts.probabilities
        if not math.isfinite(confidence) or not all(math.isfinite(float(v)) for v in p.values()):
            return None
        keywords = facts.keywords
        return (
            facts.channel,
            facts.llm_status,
            facts.llm_category,
            tuple(confidence < t for t in self._below),
            tuple(float(p.get(c, 0.0)) >= t for c, t in self._at_least),
            tuple(bool(keywords[g]) for g in groups),
        )


def _conditions(condition: Condition) -> Iterator[Condition]:
    yield condition
    for sub in condition.any or ():
        yield from _conditions(sub)


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
