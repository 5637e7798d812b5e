"""The facts a decision's rules are evaluated over: channel, the model's verdict, keyword matches.

Numeric fields are always present (durable-rules never matches a missing value), and when the
model gave no usable verdict its category is ``"none"`` with confidence and probabilities 0.0, so
``confidence_below`` rules fire on a failed model call too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.categories import CATEGORIES, Category, Channel, VerdictStatus
from engine.policy.ruleset import FACT_KIND

NO_CATEGORY = "none"


@dataclass(frozen=True)
class DecisionFacts:
    channel: Channel
    llm_status: VerdictStatus
    llm_category: Category | None
    confidence: float
    probabilities: Mapping[Category, float]
    keywords: Mapping[str, bool]

    def to_fact(self) -> dict[str, Any]:
        """The JSON-ready fact; every keyword group and every probability is present."""
        return self._fact({name: bool(v) for name, v in sorted(self.keywords.items())})

    def fact_for(self, groups: Sequence[str]) -> dict[str, Any]:
        """``to_fact()`` with exactly ``groups`` as keywords, in that order (a ruleset's layout);
        ``KeyError`` when one of them is missing. One dict, built once: this runs per decision."""
        return self._fact({name: bool(self.keywords[name]) for name in groups})

    def fact_json(self, groups: Sequence[str], sid: str) -> str:
        """``durable_json(fact_for(groups) | {"sid": sid})``, written directly: this runs per
        decision, and a general JSON encoder plus the exponent fix cost more than the fact.

        Every string here is an enum value, a validated keyword group name or a hex session
        id, so none needs escaping. ``KeyError`` when a group is missing, ``ValueError`` for a
        number JSON cannot hold, as the general route raises.
        """
        p = self.probabilities
        keywords = self.keywords
        return (
            f'{{"kind":"{FACT_KIND}","channel":"{self.channel.value}",'
            f'"llm":{{"status":"{self.llm_status.value}",'
            f'"category":"{self.llm_category.value if self.llm_category else NO_CATEGORY}",'
            f'"confidence":{_number(self.confidence)},"p":{{'
            + ",".join(f'"{c.value}":{_number(p.get(c, 0.0))}' for c in CATEGORIES)
            + '}},"keywords":{'
            + ",".join(f'"{g}":{"true" if keywords[g] else "false"}' for g in groups)
            + f'}},"sid":"{sid}"}}'
        )

    def _fact(self, keywords: dict[str, bool]) -> dict[str, Any]:
        p = self.probabilities
        return {
            "kind": FACT_KIND,
            "channel": self.channel.value,
            "llm": {
                "status": self.llm_status.value,
                "category": self.llm_category.value if self.llm_category else NO_CATEGORY,
                "confidence": float(self.confidence),
                "p": {c.value: float(p.get(c, 0.0)) for c in CATEGORIES},
            },
            "keywords": keywords,
        }


def _number(value: float) -> str:
    """A float as ``durable_json`` writes it: ``repr``, and ``1.0e-05`` for a bare ``1e-05``."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{number} is not a JSON number")
    text = repr(number)
    if "e" in text and "." not in text:
        at = text.index("e")
        text = text[:at] + ".0" + text[at:]
    return text
