"""The production backend: an Ollama server, read through the official ``ollama`` client.

One ``/api/chat`` call per message with ``logprobs=True, top_logprobs=N``, greedy decoding
and at most three generated tokens. The label probabilities come from the alternatives the
server reports for the first generated (non-whitespace) token: each alternative whose text,
left-stripped and casefolded, is a prefix of exactly one allowed answer (or has that answer
as its prefix) adds its probability to that answer. Labels that got no mass share a floor
well below the smallest reported alternative, then everything is renormalised over the
allowed labels (``method="top_logprobs"``).

Servers older than Ollama 0.12.11 ignore ``logprobs`` and send none. Then the generated
text is parsed and, if it names one answer, that label gets the declared, uncalibrated
``FALLBACK_CONFIDENCE`` and the others share the rest evenly
(``method="generated_text_uncalibrated"``): the number says which label was generated,
not how sure the model was, so thresholds tuned on calibrated probabilities do not apply.

``score`` never raises: deadline → TIMEOUT, unreachable server or HTTP errors → ERROR,
output that names no label → INVALID. Caller cancellation still propagates.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Protocol

import httpx
import ollama

from engine.backends.base import LabelChoice, LabelVerdict, RenderedPrompt, renormalise
from engine.categories import Category, VerdictStatus
from engine.errors import BackendConfigError

FALLBACK_CONFIDENCE = 0.6
"""Probability given to the parsed label when the server returns no logprobs (declared, not
measured)."""
_FLOOR_GAP = math.log(10.0)
_PUNCTUATION = "\"'`*_.,:;!?()[]{}<>"


class _TokenLogprob(Protocol):
    """One token and its log-probability, as ``ollama``'s ``TokenLogprob``/``Logprob``."""

    @property
    def token(self) -> str: ...
    @property
    def logprob(self) -> float: ...


class _Position(_TokenLogprob, Protocol):
    @property
    def top_logprobs(self) -> Sequence[_TokenLogprob] | None: ...


class OllamaBackend:
    """Scores labels with a model served by Ollama (``name == "ollama"``)."""

    def __init__(
        self,
        model: str,
        host: str,
        *,
        top_logprobs: int = 20,
        keep_alive: float | str | None = None,
        request_timeout_s: float = 60.0,
        probe_timeout_s: float = 2.0,
    ) -> None:
        if not 1 <= top_logprobs <= 20:
            raise BackendConfigError(
                f"top_logprobs must be 1..20 (Ollama's limit), not {top_logprobs}"
            )
        self._model = model
        self._host = host
        self._top_logprobs = top_logprobs
        self._keep_alive = keep_alive
        self._probe_timeout_s = probe_timeout_s
        self._client = ollama.AsyncClient(host=self._host, timeout=request_timeout_s)

    @property
    def name(self) -> str:
        return "ollama"

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def model_digest(self) -> str:
        # The server's digest needs an extra call (``show``/``list``); the tag is what we pin.
        return f"ollama:{self._model}"

    @property
    def host(self) -> str:
        return self._host

    async def score(
        self, prompt: RenderedPrompt, choices: Sequence[LabelChoice], *, deadline_s: float
    ) -> LabelVerdict:
        start = time.perf_counter()

        def failed(status: VerdictStatus, error: str) -> LabelVerdict:
            return LabelVerdict.failed(
                status, error, latency_ms=(time.perf_counter() - start) * 1000.0
            )

        try:
            response = await asyncio.wait_for(self._chat(prompt), timeout=deadline_s)
        except (TimeoutError, httpx.TimeoutException):
            return failed(
                VerdictStatus.TIMEOUT,
                f"Ollama at {self._host} did not answer within {deadline_s:.3g}s",
            )
        except (ConnectionError, httpx.ConnectError):
            return failed(
                VerdictStatus.ERROR,
                f"cannot reach Ollama at {self._host}: is `ollama serve` running?",
            )
        except ollama.ResponseError as exc:
            hint = f" (try `ollama pull {self._model}`)" if exc.status_code == 404 else ""
            return failed(
                VerdictStatus.ERROR,
                f"Ollama at {self._host} answered HTTP {exc.status_code}: {exc.error}{hint}",
            )
        except httpx.HTTPError as exc:
            return failed(
                VerdictStatus.ERROR,
                f"connection to Ollama at {self._host} failed: {type(exc).__name__}: {exc}",
            )
        except Exception as exc:
            return failed(
                VerdictStatus.ERROR,
                f"Ollama call to {self._host} failed: {type(exc).__name__}: {exc}",
            )
        text = response.message.content or ""
        status, probabilities, error = VerdictStatus.OK, {}, None
        if response.logprobs:
            method = "top_logprobs"
            scores = _label_logprobs(response.logprobs, choices)
            if scores is None:
                status, error = VerdictStatus.INVALID, "no top_logprobs token names a label"
            else:
                probabilities = renormalise(scores)
        else:
            method = "generated_text_uncalibrated"
            parsed = _parse_label(text, choices)
            if parsed is None:
                status, error = VerdictStatus.INVALID, "no logprobs; the text names no label"
            else:
                probabilities = _uncalibrated(parsed, choices)
        return LabelVerdict(
            status=status,
            probabilities=probabilities,
            raw_output=text,
            error=error,
            prompt_tokens=response.prompt_eval_count or 0,
            output_tokens=response.eval_count or 0,
            latency_ms=(time.perf_counter() - start) * 1000.0,
            method=method,
        )

    async def _chat(self, prompt: RenderedPrompt) -> ollama.ChatResponse:
        return await self._client.chat(
            model=self._model,
            messages=[{"role": m.role, "content": m.content} for m in prompt.messages],
            stream=False,
            logprobs=True,
            top_logprobs=self._top_logprobs,
            options={"temperature": 0, "num_predict": 3},
            keep_alive=self._keep_alive,
        )

    async def probe(self) -> bool:
        """True when the server answers ``/api/tags`` quickly and lists this model."""
        try:
            listed = await asyncio.wait_for(self._client.list(), timeout=self._probe_timeout_s)
        except Exception:
            return False
        wanted = _with_tag(self._model)
        return any(_with_tag(m.model or "") == wanted for m in listed.models)

    async def aclose(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]


def _with_tag(model: str) -> str:
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def _match(text: str, choices: Sequence[LabelChoice]) -> Category | None:
    """The one choice whose answer starts with ``text`` or is a prefix of it, else None."""
    if not text:
        return None
    hits = {
        c.category
        for c in choices
        if (answer := c.answer.casefold()).startswith(text) or text.startswith(answer)
    }
    return hits.pop() if len(hits) == 1 else None


def _label_logprobs(
    logprobs: Sequence[_Position], choices: Sequence[LabelChoice]
) -> dict[Category, float] | None:
    """Per-label log-probability mass from the first non-whitespace position's alternatives."""
    first = next((lp for lp in logprobs if lp.token.strip()), logprobs[0])
    alternatives: Sequence[_TokenLogprob] = first.top_logprobs or [first]
    mass: dict[Category, float] = {}
    for alt in alternatives:
        category = _match(alt.token.lstrip().casefold(), choices)
        if category is None:
            continue
        seen = mass.get(category)
        mass[category] = alt.logprob if seen is None else _logaddexp(seen, alt.logprob)
    if not mass:
        return None
    floor = min(alt.logprob for alt in alternatives) - _FLOOR_GAP
    return {c.category: mass.get(c.category, floor) for c in choices}


def _logaddexp(a: float, b: float) -> float:
    top = max(a, b)
    return top + math.log(math.exp(a - top) + math.exp(b - top))


def _parse_label(text: str, choices: Sequence[LabelChoice]) -> Category | None:
    """The label named by the first word of the generated text (possibly cut short)."""
    words = text.casefold().strip().lstrip(_PUNCTUATION).split()
    return _match(words[0].rstrip(_PUNCTUATION), choices) if words else None


def _uncalibrated(label: Category, choices: Sequence[LabelChoice]) -> dict[Category, float]:
    others = [c.category for c in choices if c.category is not label]
    share = (1.0 - FALLBACK_CONFIDENCE) / len(others) if others else 0.0
    probabilities = dict.fromkeys(others, share)
    probabilities[label] = FALLBACK_CONFIDENCE if others else 1.0
    return probabilities
