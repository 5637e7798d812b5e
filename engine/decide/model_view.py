"""What the model reads of a message: instructions withheld, long text cut to head + tail.

The cut is in characters, and, where the backend can count them, in the model's tokens as well
(``prompt.model_input.max_tokens``): the tokens are what a decision's latency grows with.

Keyword rules always read the whole message as received; this only bounds and cleans the text
the model sees, as the policy's ``prompt.model_input`` says. Withholding is the structural part
of injection resistance: an instruction to the classifier never reaches the model, whatever the
model would have made of it. It goes from where the instruction starts to the end of its sentence
(what the customer wrote before it stays); a quoted line or a signature line that carries one goes
whole.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Mapping

from engine.decide.keywords import KeywordMatcher
from engine.policy.prompt import ModelInput
from engine.policy.rules import KeywordGroup

WITHHELD_MARK = "[instruction withheld]"
CUT_MARK = " [...] "
_MIN_WORDS_AFTER_COLON = 4
_MIN_WORDS_BEFORE = 4
# A sentence ends at . ! ? or a line end; the separator stays with it, so kept sentences join
# back unchanged.
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")
_TOKEN = re.compile(r"\S+")


class ModelView:
    """Compiled once per policy revision; ``__call__`` gives the text the model reads."""

    def __init__(
        self,
        spec: ModelInput | None,
        groups: Mapping[str, KeywordGroup],
        count_tokens: Callable[[str], int | None] | None = None,
    ) -> None:
        self._spec = spec
        names = spec.withhold_clauses if spec is not None else []
        self._withhold = KeywordMatcher({g: groups[g] for g in names}) if names else None
        self._count = count_tokens if spec is not None and spec.max_tokens is not None else None

    def __call__(self, text: str) -> str:
        if self._spec is None:
            return text
        if self._withhold is not None:
            text = self._without_instructions(text, self._withhold)
        head, tail = self._spec.head_chars, self._spec.tail_chars
        cut = _cut_to(text, head, tail)
        limit = self._spec.max_tokens
        # A token is at least one byte, so a text of no more bytes than the limit fits uncounted.
        if self._count is None or limit is None or len(cut.encode()) <= limit:
            return cut
        return _within_tokens(text, cut, head, tail, limit, self._count)

    @staticmethod
    def _without_instructions(text: str, matcher: KeywordMatcher) -> str:
        def steers(part: str) -> bool:
            return any(matcher.match(part).values())

        if not steers(text):
            return text
        kept: list[str] = []
        in_signature = False
        for line in text.splitlines(keepends=True):
            in_signature = in_signature or line.strip() == "--"
            if not steers(line):
                kept.append(line)
            elif in_signature or line.lstrip().startswith(">"):
                continue  # a quoted line or a signature line is not the customer's report
            else:
                kept.extend(_cut(sentence, steers) for sentence in sentences(line))
        return "".join(kept).strip() or WITHHELD_MARK


def _within_tokens(
    text: str, cut: str, head: int, tail: int, limit: int, count: Callable[[str], int | None]
) -> str:
    """``text`` cut with head and tail shrunk by one factor until ``count`` says it fits (a
    count of None: the backend cannot count, and the characters alone bound).

    Each round shrinks in proportion to the excess, and by 3% at least, so it ends: at no head
    and no tail the cut is the mark alone, or a text of at most the mark's 7 characters (at most
    28 bytes, so tokens), which a limit of 32 or more (the policy's minimum) holds."""
    tokens = count(cut)
    scale = 1.0
    while tokens is not None and tokens > limit and (int(head * scale) or int(tail * scale)):
        scale *= min(limit / tokens, 0.97)
        cut = _cut_to(text, int(head * scale), int(tail * scale))
        tokens = count(cut)
    return cut


def _cut_to(text: str, head: int, tail: int) -> str:
    """The first ``head`` and last ``tail`` characters joined by the cut mark, when longer."""
    if len(text) <= head + tail + len(CUT_MARK):
        return text
    end = text[len(text) - tail :].lstrip() if tail else ""
    return text[:head].rstrip() + CUT_MARK + end


def sentences(text: str) -> list[str]:
    """``text`` split into sentences (at . ! ? and line ends) that concatenate back to it."""
    return [c for c in _SENTENCE.findall(text) if c]


def _cut(sentence: str, steers: Callable[[str], bool]) -> str:
    """The sentence without its first instruction and all that follows it, but for a sentence
    after the instruction's colon ("... for this one: I vomited blood"): the customer's own.

    Cutting by the instruction's span rather than by clause keeps the report written before it
    in the same sentence, and drops the instruction's own continuation ("answer action, nothing
    happened to anyone"), which a clause split would have left in.
    """
    if not steers(sentence):
        return sentence
    ends = [m.end() for m in _TOKEN.finditer(sentence)]
    first = bisect_left(ends, True, key=lambda e: steers(sentence[:e]))
    end = ends[first] if first < len(ends) else len(sentence)
    starts = [m.start() for m in _TOKEN.finditer(sentence[:end])]
    # The last start from which [start, end) still steers: the first instruction's own start.
    start = starts[bisect_left(starts, True, key=lambda s: not steers(sentence[s:end])) - 1]
    before = sentence[:start]
    if len(before.split()) < _MIN_WORDS_BEFORE:
        before = ""  # "Note for the", "Hey bot,": the instruction's own lead-in, not a report
    rest = sentence[end:]
    after = rest.rsplit(": ", 1)[-1] if ": " in rest else ""
    if len(after.split()) >= _MIN_WORDS_AFTER_COLON and not steers(after):
        return before + after
    return before
