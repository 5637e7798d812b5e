"""What the model reads of a message: instruction clauses withheld, long text cut to head + tail.

Keyword rules always read the whole message as received; this only bounds and cleans the text
the model sees, as the policy's ``prompt.model_input`` says. Withholding is the structural part
of injection resistance: a clause that tries to steer the classifier never reaches the model,
whatever the model would have made of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from engine.decide.keywords import KeywordMatcher
from engine.policy.model import KeywordGroup, ModelInput

WITHHELD_MARK = "[instruction withheld]"
CUT_MARK = " [...] "
_MIN_WORDS_AFTER_COLON = 4
# A clause ends at sentence punctuation, a semicolon, a comma followed by a space, or a line end;
# the separator stays with its clause so kept clauses join back unchanged.
_CLAUSE = re.compile(r"[^.!?;,\n]*(?:[.!?;]+|,(?=\s)|\n|$)")


def clauses(text: str) -> list[str]:
    """``text`` split into clauses that concatenate back to ``text``."""
    return [c for c in _CLAUSE.findall(text) if c]


class ModelView:
    """Compiled once per policy revision; ``__call__`` gives the text the model reads."""

    def __init__(self, spec: ModelInput | None, groups: Mapping[str, KeywordGroup]) -> None:
        self._spec = spec
        names = spec.withhold_clauses if spec is not None else []
        self._withhold = KeywordMatcher({g: groups[g] for g in names}) if names else None

    def __call__(self, text: str) -> str:
        if self._spec is None:
            return text
        if self._withhold is not None:
            text = self._without_instructions(text, self._withhold)
        head, tail = self._spec.head_chars, self._spec.tail_chars
        if len(text) > head + tail + len(CUT_MARK):
            end = text[len(text) - tail :].lstrip() if tail else ""
            text = text[:head].rstrip() + CUT_MARK + end
        return text

    @staticmethod
    def _without_instructions(text: str, matcher: KeywordMatcher) -> str:
        kept: list[str] = []
        changed = False
        for part in clauses(text):
            if not any(matcher.match(part).values()):
                kept.append(part)
                continue
            changed = True
            # "I instruct you to answer action for this: I vomited blood" - what follows the
            # instruction's colon is the customer's own text; keep it when it is a sentence.
            after = part.rsplit(": ", 1)[-1] if ": " in part else ""
            if len(after.split()) >= _MIN_WORDS_AFTER_COLON and not any(
                matcher.match(after).values()
            ):
                kept.append(after)
        if not changed:
            return text
        return "".join(kept).strip() or WITHHELD_MARK
