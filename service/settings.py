"""Service settings from ``SWITCHBOARD_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine import Pricing, default_prompts_dir
from engine.backends.model_files import DEFAULT_MODEL
from engine.backends.registry import (
    OLLAMA_HOST,
    OLLAMA_MODEL,
    OPENAI_BASE_URLS,
    OPENAI_MODEL,
    BackendSettings,
    split_urls,
)
from service.delivery.dispatcher import DeliveryPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore")

    policies: Path = Field(default=Path("policies"), description="Directory of policy dirs.")
    prompts: Path | None = Field(default=None, description="Templates; default ../prompts.")
    default_policy: str | None = Field(default=None, description="Policy when none is asked.")
    candidate_roots: list[Path] = Field(
        default_factory=list,
        description="The workbench playground accepts candidate policy directories only under "
        "these (JSON list); default: the directory holding the policies directory.",
    )
    playground_data: Path | None = Field(
        default=None,
        description="Labelled CSV files the playground offers; default eval/data beside the "
        "policies directory (holdout files are never offered).",
    )
    backend: str = Field(default="embedded", description="embedded, ollama, openai or fake.")
    model: str = Field(
        default=DEFAULT_MODEL,
        description="Which packaged model the embedded backend loads (`switchboard model list`).",
    )
    model_dir: Path | None = Field(default=None, description="Where the embedded GGUF lives.")
    ollama_host: str = Field(default=OLLAMA_HOST, description="Ollama server (backend ollama).")
    ollama_model: str = Field(default=OLLAMA_MODEL, description="Ollama model tag.")
    openai_base_urls: str = Field(
        default=OPENAI_BASE_URLS,
        description="OpenAI-compatible endpoints (backend openai), comma-separated base URLs "
        "ending in /v1; several are balanced round-robin with ejection of failing ones.",
    )
    openai_model: str = Field(default=OPENAI_MODEL, description="Model name the servers serve.")
    openai_api: str = Field(
        default="completions",
        description="completions (ChatML prompt, prefix cached) or chat (server's template).",
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="Bearer token for the model servers; never logged."
    )
    openai_cache_prompt: bool = Field(
        default=True, description="Send cache_prompt: true (llama.cpp server); off for vLLM."
    )
    openai_eject_s: float = Field(
        default=10.0, gt=0, description="How long a failing endpoint is left out."
    )
    openai_max_connections: int = Field(
        default=64, ge=1, description="Pooled keep-alive connections to the model servers."
    )
    fake_latency_ms: float = Field(default=0.0, ge=0)
    audit_db: str = Field(
        default="switchboard-audit.db",
        description="Audit store: a SQLite path, sqlite:///path, or postgresql://...",
    )
    audit_dbs: dict[str, str] = Field(
        default_factory=dict,
        description="Audit store per region served here, as JSON {region: url}; "
        "default {REGION: AUDIT_DB}.",
    )
    region: str = Field(default="local", description="The region this replica serves.")
    tenants: Path | None = Field(default=None, description="Tenant files; default ../tenants.")
    keys_db: str | None = Field(
        default=None,
        description="API key store (SQLite path or postgresql://); default beside "
        "a SQLite audit store, or the PostgreSQL audit database.",
    )
    auth: Literal["on", "off"] = Field(
        default="on",
        description="off: every request is the dev tenant with every role; `serve` allows it "
        "only on a loopback address.",
    )
    oidc_issuer: str | None = Field(default=None, description="Accept JWTs from this issuer.")
    oidc_audience: str = Field(default="switchboard", description="The JWTs' required aud.")
    oidc_jwks: str | None = Field(default=None, description="JWKS URL (or JSON file path).")
    oidc_tenant_claim: str = Field(default="tenant")
    oidc_role_claim: str = Field(default="role")
    oidc_queues_claim: str = Field(default="queues", description="A reviewer's queues (a list).")
    admin_token: SecretStr | None = Field(
        default=None, description="Legacy bearer token, still accepted as an admin credential."
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_message_chars: int = Field(default=20_000, ge=100)
    model_concurrency: int = Field(default=1, ge=1, description="Model calls at once.")
    model_queue: int = Field(default=8, ge=0, description="Requests waiting for the model.")
    max_loop_lag_ms: float = Field(
        default=0.0,
        ge=0,
        description="Refuse new model work while the event loop lags more than this "
        "(moving average, ms); 0 turns it off.",
    )
    breaker_failures: int = Field(default=5, ge=1, description="Failures that open the circuit.")
    breaker_cooldown_s: float = Field(default=10.0, gt=0)
    probe_interval_s: float = Field(default=15.0, gt=0)
    warm_up: bool = Field(default=True, description="Cache the prompt prefix at each reload.")
    usd_per_1k_prompt_tokens: float = Field(default=Pricing.usd_per_1k_prompt_tokens, ge=0)
    usd_per_1k_output_tokens: float = Field(default=Pricing.usd_per_1k_output_tokens, ge=0)
    log_level: str = Field(default="INFO")
    broker_url: SecretStr | None = Field(
        default=None,
        description="RabbitMQ (amqp://user:password@host:5672/vhost) that hand-offs are delivered "
        "to; unset, each hand-off is a JSON log line instead (LoggingIntegrations).",
    )
    broker_exchange: str = Field(
        default="switchboard.handoffs", description="The durable topic exchange for hand-offs."
    )
    broker_queue_prefix: str = Field(
        default="switchboard", description="Queues declared as <prefix>.<routing key>."
    )
    broker_declare_queues: bool = Field(
        default=True, description="Declare and bind a durable queue per routing key used."
    )
    claim_ttl_s: float = Field(
        default=900.0,
        gt=0,
        description="How long a reviewer's claim on a case lasts without renewal (seconds); "
        "an expired claim can be taken by anyone.",
    )
    delivery_max_attempts: int = Field(
        default=5, ge=1, description="Attempts before a refused hand-off is a dead letter."
    )
    delivery_retry_wait_s: float = Field(
        default=0.5, gt=0, description="First backoff between attempts (doubles, capped)."
    )
    delivery_poll_s: float = Field(
        default=1.0, gt=0, description="Outbox poll interval when nothing was committed."
    )

    shadow_sample_rate: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Share of live decisions a shadow candidate decides with a model call of "
        "its own when its prompt renders differently (an identical prompt always reuses the "
        "live verdict: no call).",
    )
    shadow_queue: int = Field(
        default=1000,
        ge=1,
        description="Live decisions waiting for the shadow worker; beyond it they are dropped "
        "(switchboard_shadow_skipped{reason=queue_full}), never waited for.",
    )

    def tenants_dir(self) -> Path:
        return self.tenants or self.policies.parent / "tenants"

    def regional_stores(self) -> dict[str, str]:
        return dict(self.audit_dbs) or {self.region: self.audit_db}

    def keys_url(self) -> str:
        from service.access.keys import default_keys_db

        home = self.regional_stores().get(self.region, self.audit_db)
        return self.keys_db or default_keys_db(home)

    def prompts_dir(self) -> Path:
        return self.prompts or default_prompts_dir(self.policies, {})

    def backend_settings(self) -> BackendSettings:
        return BackendSettings(
            name=self.backend,
            model=self.model,
            model_dir=self.model_dir,
            ollama_host=self.ollama_host,
            ollama_model=self.ollama_model,
            fake_latency_ms=self.fake_latency_ms,
            openai_base_urls=split_urls(self.openai_base_urls),
            openai_model=self.openai_model,
            openai_api=self.openai_api,
            openai_cache_prompt=self.openai_cache_prompt,
            openai_eject_s=self.openai_eject_s,
            openai_max_connections=self.openai_max_connections,
            openai_api_key=(
                self.openai_api_key.get_secret_value() if self.openai_api_key else None
            ),
        )

    def delivery_policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(
            max_attempts=self.delivery_max_attempts,
            retry_wait_s=self.delivery_retry_wait_s,
            poll_s=self.delivery_poll_s,
        )

    def pricing(self) -> Pricing:
        return Pricing(self.usd_per_1k_prompt_tokens, self.usd_per_1k_output_tokens)
