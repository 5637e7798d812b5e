"""The production backend: an Ollama server, read through the official ``ollama`` client.

One ``/api/chat`` call per message with ``logprobs=True, top_logprobs=N``, greedy decoding
and at most three generated tokens. The label probabilities come from the alternatives the
server reports for the first generated (non-whitespace) token, read and renormalised over the
allowed labels by ``engine.backends.label_logprobs`` (``method="top_logprobs"``), the code the
OpenAI-compatible backend shares.

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
import time
from collections.abc import Sequence

import httpx
import ollama

from engine.backends.base import LabelChoice, LabelVerdict, RenderedPrompt
from engine.backends.label_logprobs import (
    FALLBACK_CONFIDENCE,
    METHOD,
    answer_and_label_probabilities,
    parse_label,
    uncalibrated,
)
from engine.categories import Category, VerdictStatus
from engine.errors import BackendConfigError

__all__ = ["FALLBACK_CONFIDENCE", "OllamaBackend"]


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
        status, error = VerdictStatus.OK, None
        probabilities: dict[Category, float] = {}
        answers: dict[str, float] = {}
        if response.logprobs:
            method = METHOD
            found = answer_and_label_probabilities(response.logprobs, choices)
            if found is None:
                status, error = VerdictStatus.INVALID, "no top_logprobs token names a label"
            else:
                answers, probabilities = found
        else:
            method = "generated_text_uncalibrated"
            parsed = parse_label(text, choices)
            if parsed is None:
                status, error = VerdictStatus.INVALID, "no logprobs; the text names no label"
            else:
                probabilities = uncalibrated(parsed, choices)
        return LabelVerdict(
            status=status,
            probabilities=probabilities,
            answers=answers,
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
