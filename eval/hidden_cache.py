"""Model verdicts with their hidden state, kept on disk by model, template and rendered prompt.

A probe head reads the last prompt token's hidden state, which no decision record holds. Fitting
a head (``eval fit-head``) and showing what a head moves (``switchboard diff``) both need it for
every message; this cache lets the second run, and every later one, cost no model time. The key
is the model digest, the template hash, the rendered messages and the readout, so a changed
prompt, model or readout never reads a stale state.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from engine.backends.base import LabelVerdict, RenderedPrompt
from engine.categories import CATEGORIES, VerdictStatus
from engine.replay import CACHED


def cache_key(model_digest: str, prompt: RenderedPrompt) -> str:
    key: list[object] = [
        model_digest,
        prompt.template_hash,
        [[m.role, m.content] for m in prompt.messages],
    ]
    if not prompt.readout.is_default:  # the default's keys predate readouts
        key.append(prompt.readout.names())
    blob = json.dumps(key, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


class HiddenStateCache:
    """``directory/<key>.npz``: the label probabilities, token counts and hidden state."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.hits = 0

    def path(self, model_digest: str, prompt: RenderedPrompt) -> Path:
        return self.directory / f"{cache_key(model_digest, prompt)}.npz"

    def get(self, model_digest: str, prompt: RenderedPrompt) -> LabelVerdict | None:
        try:
            with np.load(self.path(model_digest, prompt), allow_pickle=False) as f:
                probs = f["probabilities"]
                verdict = LabelVerdict(
                    status=VerdictStatus.OK,
                    probabilities={c: float(p) for c, p in zip(CATEGORIES, probs, strict=True)},
                    prompt_tokens=int(f["prompt_tokens"]),
                    cached_tokens=int(f["cached_tokens"]),
                    output_tokens=1,
                    method=CACHED,
                    hidden_state=f["hidden"].astype(np.float32),
                )
        except (OSError, KeyError, ValueError):
            return None
        self.hits += 1
        return verdict

    def put(self, model_digest: str, prompt: RenderedPrompt, verdict: LabelVerdict) -> None:
        """Keep an answered verdict that has a hidden state; anything else is not cached."""
        if verdict.status is not VerdictStatus.OK or verdict.hidden_state is None:
            return
        path = self.path(model_digest, prompt)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            hidden=verdict.hidden_state,
            probabilities=np.array([verdict.probabilities[c] for c in CATEGORIES]),
            prompt_tokens=verdict.prompt_tokens,
            cached_tokens=verdict.cached_tokens,
        )
        tmp.replace(path)
