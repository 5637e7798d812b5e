"""Switchboard's decision engine: policies in, decisions out. No HTTP here.

The request path lives in ``engine.decide`` and reads in order (normalise, redact, keywords,
prompt, model, calibrate, facts, rules, combine, workflow, record); policies in
``engine.policy``, model backends in ``engine.backends``, PII redaction in ``engine.pii``.
Callers outside the engine import from here.
"""

from engine.categories import CATEGORIES, Category, Channel, VerdictStatus
from engine.decide.engine import REPLAY_CLOCK, Engine, Pricing
from engine.decide.record import DecisionRecord, HandOff, PathStep
from engine.decide.request import DecisionRequest
from engine.decide.rules import RulesCache
from engine.errors import (
    AuditStoreError,
    BackendConfigError,
    EvalDataError,
    MessageRejectedError,
    ModelFileError,
    PolicyError,
    PolicyNotFoundError,
    PolicyProblem,
    PromptRenderError,
    RedactionConfigError,
    RedactionFailedError,
    ReplayError,
    RulesEngineError,
    SwitchboardError,
)
from engine.policy.loader import LoadedPolicy, default_prompts_dir, load_catalog, load_policy

__all__ = [
    "CATEGORIES",
    "REPLAY_CLOCK",
    "AuditStoreError",
    "BackendConfigError",
    "Category",
    "Channel",
    "DecisionRecord",
    "DecisionRequest",
    "Engine",
    "EvalDataError",
    "HandOff",
    "LoadedPolicy",
    "MessageRejectedError",
    "ModelFileError",
    "PathStep",
    "PolicyError",
    "PolicyNotFoundError",
    "PolicyProblem",
    "Pricing",
    "PromptRenderError",
    "RedactionConfigError",
    "RedactionFailedError",
    "ReplayError",
    "RulesCache",
    "RulesEngineError",
    "SwitchboardError",
    "VerdictStatus",
    "default_prompts_dir",
    "load_catalog",
    "load_policy",
]
