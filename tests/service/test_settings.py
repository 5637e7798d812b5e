"""Service settings: what the environment chooses reaches the backend it builds."""

from __future__ import annotations

import pytest

from engine.backends.model_files import DEFAULT_MODEL, QWEN25_CODER_15B
from service.settings import Settings


def test_the_embedded_model_is_chosen_by_switchboard_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_MODEL", raising=False)
    assert Settings().backend_settings().model == DEFAULT_MODEL
    monkeypatch.setenv("SWITCHBOARD_MODEL", QWEN25_CODER_15B.name)
    assert Settings().backend_settings().model == QWEN25_CODER_15B.name
