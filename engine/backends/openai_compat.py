"""The pool backend: any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp server).

One ``POST /completions`` (default) or ``/chat/completions`` per message, greedy, with
``logprobs``: the label probabilities come from the alternatives reported for the first
generated token, read by ``engine.backends.label_logprobs`` exactly as for Ollama (multi-token
labels and the renormalisation over the allowed labels included).

- ``api="completions"`` sends the prompt as ChatML text (the format of the Qwen2.5 models
  the project packages), byte-identical up to the message for every call of a policy revision,
  so vLLM's automatic prefix caching and llama.cpp server's ``cache_prompt`` reuse the static
  prefix. ChatML control markers inside message text are broken up (``<|`` → ``< |``) so a
  message cannot forge a turn (the embedded backend tokenizes contents without control tokens).
- ``api="chat"`` sends the turns and lets the server apply the model's chat template.

``score`` never raises: deadline → TIMEOUT; connection refused, HTTP errors and 5xx → ERROR
(after the other endpoints of the pool were tried, ``engine.backends.endpoints``); an answer
without logprobs or whose alternatives name no label → INVALID. The API key is sent as a bearer
token and appears in no message, log line or repr.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx

from engine.backends.base import ChatMessage, LabelChoice, LabelVerdict, RenderedPrompt
from engine.backends.endpoints import Endpoint, EndpointPool
from engine.backends.label_logprobs import (
    METHOD,
    TokenAlternative,
    answer_and_label_probabilities,
)
from engine.categories import VerdictStatus
from engine.errors import BackendConfigError, SwitchboardError

Api = Literal["completions", "chat"]
APIS: tuple[Api, ...] = ("completions", "chat")


class _EndpointError(SwitchboardError):
    """One endpoint did not give an answer (the next one may)."""

    def __init__(self, status: VerdictStatus, error: str, *, endpoint_fault: bool = True) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        # False for 4xx: the request itself is refused (bad model name, key, prompt too long);
        # every endpoint would refuse it alike, so nobody is ejected and nothing is retried.
        self.endpoint_fault = endpoint_fault


class OpenAICompatibleBackend:
    """Scores labels with a model behind one or more OpenAI-compatible endpoints."""

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str,
        *,
        api_key: str | None = None,
        api: Api = "completions",
        cache_prompt: bool = True,
        top_logprobs: int = 20,
        eject_s: float = 10.0,
        max_connections: int = 64,
        probe_timeout_s: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if api not in APIS:
            raise BackendConfigError(f"api must be one of {APIS}, not {api!r}")
        if not 1 <= top_logprobs <= 20:
            raise BackendConfigError(f"top_logprobs must be 1..20, not {top_logprobs}")
        if not model:
            raise BackendConfigError("set SWITCHBOARD_OPENAI_MODEL to the served model's name")
        self.pool = EndpointPool(base_urls, eject_s=eject_s)
        self._model = model
        self._api = api
        self._cache_prompt = cache_prompt
        self._top_logprobs = top_logprobs
        self._probe_timeout_s = probe_timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            timeout=httpx.Timeout(60.0, connect=2.0),
            transport=transport,
        )

    def __repr__(self) -> str:
        urls = [e.url for e in self.pool.endpoints]
        return f"OpenAICompatibleBackend({self._model!r}, endpoints={urls}, api={self._api!r})"

    @property
    def name(self) -> str:
        return "openai"

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def model_digest(self) -> str:
        # Servers report no weights digest; the served model name is what the pool pins.
        return f"openai:{self._model}"

    # ----- requests -----------------------------------------------------------------------

    def request_body(self, prompt: RenderedPrompt) -> tuple[str, dict[str, Any]]:
        """The path and JSON body for one prompt (public for tests and benchmarks)."""
        body: dict[str, Any] = {"model": self._model, "temperature": 0, "stream": False}
        if self._cache_prompt:
            body["cache_prompt"] = True  # llama.cpp server; vLLM caches prefixes by itself
        if self._api == "completions":
            body.update(prompt=chatml(prompt.messages), max_tokens=1, logprobs=self._top_logprobs)
            return "/completions", body
        body.update(
            messages=[{"role": m.role, "content": m.content} for m in prompt.messages],
            max_tokens=3,
            logprobs=True,
            top_logprobs=self._top_logprobs,
        )
        return "/chat/completions", body

    async def _post(self, endpoint: Endpoint, path: str, body: Mapping[str, Any]) -> Any:
        try:
            response = await self._client.post(endpoint.url + path, json=body)
        except httpx.TimeoutException as exc:
            raise _EndpointError(
                VerdictStatus.TIMEOUT, f"{endpoint.url} timed out ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise _EndpointError(
                VerdictStatus.ERROR,
                f"cannot reach {endpoint.url}: {type(exc).__name__}: {exc or 'no detail'}",
            ) from exc
        if response.status_code >= 400:
            detail = response.text[:200].replace("\n", " ")
            raise _EndpointError(
                VerdictStatus.ERROR,
                f"{endpoint.url}{path} answered HTTP {response.status_code}: {detail}",
                endpoint_fault=response.status_code >= 500 or response.status_code == 429,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise _EndpointError(
                VerdictStatus.ERROR, f"{endpoint.url}{path} answered non-JSON"
            ) from exc

    async def score(
        self, prompt: RenderedPrompt, choices: Sequence[LabelChoice], *, deadline_s: float
    ) -> LabelVerdict:
        start = time.perf_counter()
        path, body = self.request_body(prompt)
        failure = _EndpointError(VerdictStatus.ERROR, "no endpoint was tried")
        for endpoint in self.pool.attempts():
            remaining = deadline_s - (time.perf_counter() - start)
            if remaining <= 0:
                break
            try:
                answer = await asyncio.wait_for(self._post(endpoint, path, body), timeout=remaining)
            except (TimeoutError, asyncio.TimeoutError):
                failure = _EndpointError(
                    VerdictStatus.TIMEOUT,
                    f"{endpoint.url} did not answer within {deadline_s:.3g}s",
                )
                self.pool.failed(endpoint, failure.error)
                break  # the deadline is spent: no time for another endpoint
            except _EndpointError as exc:
                failure = exc
                if not exc.endpoint_fault:
                    break
                self.pool.failed(endpoint, exc.error)
                continue
            self.pool.succeeded(endpoint)
            return self._verdict(answer, choices, start)
        return LabelVerdict.failed(
            failure.status, failure.error, latency_ms=(time.perf_counter() - start) * 1000.0
        )

    def _verdict(self, answer: Any, choices: Sequence[LabelChoice], start: float) -> LabelVerdict:
        elapsed = (time.perf_counter() - start) * 1000.0
        try:
            choice = answer["choices"][0]
        except (KeyError, IndexError, TypeError):
            return LabelVerdict.failed(
                VerdictStatus.INVALID, "the server's answer has no choices", latency_ms=elapsed
            )
        try:
            text, positions = (
                _completion_positions(choice)
                if self._api == "completions"
                else _chat_positions(choice)
            )
            usage = answer.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            cached = _cached_tokens(answer)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            return LabelVerdict.failed(
                VerdictStatus.INVALID,
                f"the server's answer is malformed: {type(exc).__name__}",
                latency_ms=elapsed,
            )
        common: dict[str, Any] = {
            "raw_output": text,
            "prompt_tokens": max(prompt_tokens - cached, 0),
            "cached_tokens": cached,
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "latency_ms": elapsed,
        }
        if not positions:
            return LabelVerdict(
                status=VerdictStatus.INVALID,
                error="the server returned no logprobs: enable them (vLLM --max-logprobs >= "
                f"{self._top_logprobs}; llama-cpp-python logits_all)",
                method="none",
                **common,
            )
        found = answer_and_label_probabilities(positions, choices)
        if found is None:
            return LabelVerdict(
                status=VerdictStatus.INVALID,
                error="no top_logprobs token names a label",
                method=METHOD,
                **common,
            )
        answers, probabilities = found
        return LabelVerdict(
            status=VerdictStatus.OK,
            probabilities=probabilities,
            answers=answers,
            method=METHOD,
            **common,
        )

    # ----- health -------------------------------------------------------------------------

    async def probe(self) -> bool:
        """Ask every endpoint's ``/models``; eject the silent ones, restore the answering."""
        results = await asyncio.gather(*(self._probe_one(e) for e in self.pool.endpoints))
        return any(results)

    async def _probe_one(self, endpoint: Endpoint) -> bool:
        try:
            response = await self._client.get(
                endpoint.url + "/models", timeout=self._probe_timeout_s
            )
            ok = response.status_code == 200
            error = None if ok else f"/models answered HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, error = False, f"probe failed: {type(exc).__name__}"
        if ok:
            self.pool.up(endpoint)
        else:
            self.pool.down(endpoint, error or "probe failed")
        return ok

    def describe(self) -> list[dict[str, object]]:
        """Each endpoint as this replica sees it (for the readiness body)."""
        return self.pool.describe()

    async def aclose(self) -> None:
        await self._client.aclose()


def chatml(messages: Sequence[ChatMessage]) -> str:
    """The prompt as ChatML text, as the embedded backend tokenizes it, ending at the answer."""
    turns = [
        f"<|im_start|>{m.role}\n{m.content.replace('<|', '< |')}<|im_end|>\n" for m in messages
    ]
    return "".join(turns) + "<|im_start|>assistant\n"


def _completion_positions(choice: Any) -> tuple[str, list[TokenAlternative]]:
    """``/completions``: ``logprobs = {tokens, token_logprobs, top_logprobs: [{tok: lp}]}``."""
    text = str(choice.get("text") or "")
    logprobs = choice.get("logprobs") or {}
    tokens = logprobs.get("tokens") or []
    values = logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or []
    positions = []
    for i, token in enumerate(tokens):
        top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        alternatives = [TokenAlternative(str(t), float(lp)) for t, lp in top.items()]
        value = values[i] if i < len(values) and values[i] is not None else float("-inf")
        positions.append(TokenAlternative(str(token), float(value), alternatives or None))
    return text, positions


def _chat_positions(choice: Any) -> tuple[str, list[TokenAlternative]]:
    """``/chat/completions``: ``logprobs.content = [{token, logprob, top_logprobs: [...]}]``."""
    text = str((choice.get("message") or {}).get("content") or "")
    content = (choice.get("logprobs") or {}).get("content") or []
    positions = []
    for item in content:
        alternatives = [
            TokenAlternative(str(a["token"]), float(a["logprob"]))
            for a in item.get("top_logprobs") or []
        ]
        positions.append(
            TokenAlternative(str(item["token"]), float(item["logprob"]), alternatives or None)
        )
    return text, positions


def _cached_tokens(answer: Mapping[str, Any]) -> int:
    """Prompt tokens the server reused from its cache, when it says so (vLLM, llama.cpp)."""
    details = (answer.get("usage") or {}).get("prompt_tokens_details") or {}
    if details.get("cached_tokens") is not None:
        return int(details["cached_tokens"])
    timings = answer.get("timings") or {}
    return int(timings.get("cache_n") or 0)
