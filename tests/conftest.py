"""Shared fixtures: the repository's policies and prompts, and editable copies of them."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from engine.backends.model_files import QWEN25_CODER_05B
from engine.categories import CATEGORIES
from engine.decide.head import ProbeHead
from tests.llama_server import LlamaServer, start_llama_server

REPO = Path(__file__).resolve().parent.parent
# The live default policy, which compliance tunes: tests of its quality and validity use it.
POLICIES = REPO / "policies"
LIVE_PROMPTS = REPO / "prompts"
LIVE_POLICY = POLICIES / "contact-center"
# A frozen copy: tests of engine and service behaviour pin themselves to it.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROMPTS = FIXTURES / "prompts"
DEFAULT_POLICY = FIXTURES / "policies" / "contact-center"


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A writable copy of the default policy plus the prompts and tenants, laid out like the
    repo."""
    shutil.copytree(DEFAULT_POLICY, tmp_path / "policies" / "contact-center")
    shutil.copytree(PROMPTS, tmp_path / "prompts")
    shutil.copytree(REPO / "tenants", tmp_path / "tenants")
    return tmp_path / "policies" / "contact-center"


Editor = Callable[[str, Callable[[dict[str, Any]], None]], None]


@pytest.fixture
def edit_policy(policy_copy: Path) -> Editor:
    """Edit one YAML file of the policy copy through a function on its parsed content."""

    def edit(file: str, change: Callable[[dict[str, Any]], None]) -> None:
        path = policy_copy / file
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")

    return edit


def break_the_build(edit: Editor) -> None:
    """Two problems the schema cannot see, only building the engine can: a name entity that no
    offline recognizer finds, and a rule beyond durable-rules' 15 and/or groups per rule."""
    edit("policy.yaml", lambda d: d["redaction"]["entities"].insert(0, "PERSON"))
    branches = [
        {"channel": ["chat"], "confidence_below": round(0.1 + i / 100, 2)} for i in range(16)
    ]
    too_wide = {
        "id": "too-wide",
        "reason": "Sixteen alternatives: more and/or groups than durable-rules compiles.",
        "priority": 500,
        "when": {"any": branches},
        "then": {"requires_human_review": True},
    }
    edit("rules.yaml", lambda d: d["rules"].append(too_wide))


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The packaged model behind a real OpenAI-compatible server, once per test session."""
    from engine.backends.model_files import QWEN25_CODER_05B, assemble_model, default_model_dir

    model = assemble_model(QWEN25_CODER_05B, default_model_dir())
    server = start_llama_server(model, tmp_path_factory.mktemp("llama") / "server.log")
    try:
        yield server
    finally:
        server.kill()


def probe_head(dim: int, **changes: Any) -> ProbeHead:
    """A probe head with seeded random weights over ``dim`` features, fitted "for" the default
    model; ``changes`` replace any field."""
    rng = np.random.default_rng(7)
    fields: dict[str, Any] = {
        "classes": CATEGORIES,
        "weights": rng.normal(size=(3, dim)),
        "bias": np.array([0.1, -0.2, 0.0]),
        "mean": rng.normal(size=dim),
        "scale": rng.uniform(0.5, 2.0, size=dim),
        "temperature": 1.5,
        "model": QWEN25_CODER_05B.name,
        "model_digest": QWEN25_CODER_05B.digest,
        "template_hash": "sha256:t",
        "prefix_hash": "sha256:p",
        "fitted_on": "eval/data/dev.csv",
        "data_sha256": "sha256:d",
        "policy_revision": "r",
        "n": 10,
        "fitted_at": "2026-12-04",
    }
    return ProbeHead(**(fields | changes))
