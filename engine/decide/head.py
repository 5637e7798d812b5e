"""The probe head: category probabilities read from the model's hidden state, not its next word.

A multinomial logistic regression over hidden states of the decode (standardised; which ones, the
head's ``readout``: by default the last prompt token's final state),
plus, when ``label_weight`` is not 0, that weight times the log of the label probabilities the same
decode gave (the prompt's own answer, fused with the probe's: it carries what the prompt knows
about kinds of message the fitting data lacked), with a temperature, fitted offline by
``switchboard eval fit-head`` and stored beside the policy as a JSON file. The file records what it
is only valid for (the model file's digest, the prompt template's hash and the rendered prompt
prefix's hash); ``Engine.build`` refuses a head that does not match, so a changed model or prompt
is a located ``check`` problem, never a silent fallback.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.backends.base import ChatMessage
from engine.backends.readout import DEFAULT_READOUT, Readout, ReadoutError, readout_of
from engine.categories import Category
from engine.errors import SwitchboardError

HEAD_FORMAT = "switchboard-probe-head/1"
METHOD = "probe_head"
LABEL_FLOOR = 1e-6  # label probabilities below it read as it: log(0) would decide alone
Array = npt.NDArray[np.float64]


class HeadFileError(SwitchboardError):
    """A head file is missing, malformed or inconsistent; the message says how to fix it."""


def log_labels(label_probabilities: npt.ArrayLike) -> Array:
    """Log label probabilities as a head adds them, floored at ``LABEL_FLOOR``."""
    out: Array = np.log(
        np.clip(np.asarray(label_probabilities, dtype=np.float64), LABEL_FLOOR, None)
    )
    return out


def prefix_hash(prefix: Sequence[ChatMessage]) -> str:
    """What the model reads before the message (system turn and few-shot turns), hashed."""
    blob = json.dumps([[m.role, m.content] for m in prefix], ensure_ascii=False).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class ProbeHead:
    """``softmax((W @ ((h - mean) / scale) + b + label_weight * log p) / temperature)``.

    Over ``classes``; ``p`` are the label probabilities of the same decode, floored at
    ``LABEL_FLOOR``.
    """

    classes: tuple[Category, ...]
    weights: Array  # (classes, dim)
    bias: Array  # (classes,)
    mean: Array  # (dim,)
    scale: Array  # (dim,)
    temperature: float
    model: str
    model_digest: str
    template_hash: str
    prefix_hash: str
    fitted_on: str
    data_sha256: str
    policy_revision: str
    n: int
    fitted_at: str
    report: Mapping[str, Any] = field(default_factory=dict)
    label_weight: float = 0.0
    readout: Readout = DEFAULT_READOUT  # which hidden states ``weights`` reads, concatenated

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1])

    def logits(self, hidden: npt.NDArray[np.floating[Any]]) -> Array:
        """Unscaled logits for one state (``(dim,)``) or a batch (``(n, dim)``)."""
        z = (np.asarray(hidden, dtype=np.float64) - self.mean) / self.scale
        out: Array = z @ self.weights.T + self.bias
        return out

    def fused(self, logits: Array, label_probabilities: Array) -> Array:
        """``logits`` plus ``label_weight`` times the log label probabilities (same shape)."""
        if self.label_weight == 0.0:
            return logits
        out: Array = logits + self.label_weight * log_labels(label_probabilities)
        return out

    def reads(self, label_probabilities: Mapping[Category, float]) -> bool:
        """Whether a verdict's label probabilities are all this head needs of them."""
        return self.label_weight == 0.0 or all(c in label_probabilities for c in self.classes)

    def probabilities(
        self,
        hidden: npt.NDArray[np.floating[Any]],
        label_probabilities: Mapping[Category, float],
    ) -> dict[Category, float]:
        """The categories' probabilities for one state and the same decode's label probabilities.

        A head with a ``label_weight`` needs every class in ``label_probabilities`` (``reads``).
        """
        logits = self.logits(hidden)
        if self.label_weight != 0.0:
            if not self.reads(label_probabilities):
                raise HeadFileError(
                    "the head fuses label probabilities, and this verdict lacks some"
                )
            p = np.array([label_probabilities[c] for c in self.classes], dtype=np.float64)
            logits = self.fused(logits, p)
        scaled = logits / self.temperature
        exp = np.exp(scaled - scaled.max())
        p = exp / exp.sum()
        return {c: float(v) for c, v in zip(self.classes, p, strict=True)}

    # ----- the file -----------------------------------------------------------------------

    def to_json(self) -> str:
        def floats(a: Array) -> Any:
            return np.round(a, 7).tolist()

        doc = {
            "format": HEAD_FORMAT,
            "method": "multinomial logistic regression on the model's hidden states",
            "readout": self.readout.names(),
            "model": self.model,
            "model_digest": self.model_digest,
            "template_hash": self.template_hash,
            "prefix_hash": self.prefix_hash,
            "fitted_on": self.fitted_on,
            "data_sha256": self.data_sha256,
            "policy_revision": self.policy_revision,
            "n": self.n,
            "fitted_at": self.fitted_at,
            "classes": [c.value for c in self.classes],
            "temperature": self.temperature,
            "label_weight": self.label_weight,
            "report": dict(self.report),
            "bias": floats(self.bias),
            "mean": floats(self.mean),
            "scale": floats(self.scale),
            "weights": floats(self.weights),
        }
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str = "head") -> ProbeHead:
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("format") != HEAD_FORMAT:
                raise HeadFileError(f"{where}: not a {HEAD_FORMAT} file")
            classes = tuple(Category(c) for c in doc["classes"])
            weights = np.asarray(doc["weights"], dtype=np.float64)
            bias = np.asarray(doc["bias"], dtype=np.float64)
            mean = np.asarray(doc["mean"], dtype=np.float64)
            scale = np.asarray(doc["scale"], dtype=np.float64)
            head = cls(
                classes=classes,
                weights=weights,
                bias=bias,
                mean=mean,
                scale=scale,
                temperature=float(doc["temperature"]),
                model=str(doc["model"]),
                model_digest=str(doc["model_digest"]),
                template_hash=str(doc["template_hash"]),
                prefix_hash=str(doc["prefix_hash"]),
                fitted_on=str(doc["fitted_on"]),
                data_sha256=str(doc["data_sha256"]),
                policy_revision=str(doc["policy_revision"]),
                n=int(doc["n"]),
                fitted_at=str(doc["fitted_at"]),
                report=dict(doc.get("report") or {}),
                label_weight=float(doc.get("label_weight", 0.0)),
                readout=readout_of(doc.get("readout")),
            )
        except HeadFileError:
            raise
        except ReadoutError as exc:
            raise HeadFileError(f"{where}: readout: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise HeadFileError(
                f"{where}: malformed head file ({type(exc).__name__}: {exc}); "
                "rewrite it with `switchboard eval fit-head`"
            ) from exc
        head.validate(where)
        return head

    @classmethod
    def from_file(cls, path: Path) -> ProbeHead:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise HeadFileError(
                f"cannot read {path}: {exc.strerror or exc}; write it with "
                "`switchboard eval fit-head --out <policy dir>/<file>` or remove `head`"
            ) from exc
        return cls.from_json(text, where=str(path))

    def validate(self, where: str) -> None:
        k = len(self.classes)
        if sorted(c.value for c in self.classes) != sorted(c.value for c in Category):
            raise HeadFileError(f"{where}: classes must be the three categories once each")
        dim = self.mean.shape[0] if self.mean.ndim == 1 else -1
        shapes_ok = (
            self.weights.shape == (k, dim)
            and self.bias.shape == (k,)
            and self.scale.shape == (dim,)
            and dim > 0
        )
        if not shapes_ok:
            raise HeadFileError(
                f"{where}: weights {self.weights.shape}, bias {self.bias.shape}, mean "
                f"{self.mean.shape} and scale {self.scale.shape} do not fit together"
            )
        arrays = (self.weights, self.bias, self.mean, self.scale)
        if not all(np.isfinite(a).all() for a in arrays) or (self.scale <= 0).any():
            raise HeadFileError(f"{where}: non-finite weights or a non-positive scale")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise HeadFileError(f"{where}: temperature must be positive")
        if not (math.isfinite(self.label_weight) and self.label_weight >= 0):
            raise HeadFileError(f"{where}: label_weight must be a number >= 0")


def head_mismatches(
    head: ProbeHead,
    *,
    model_digest: str,
    hidden_size: int | None,
    template_hash: str,
    prompt_prefix_hash: str,
    layer_count: int | None = None,
) -> list[str]:
    """Why ``head`` cannot read this engine's hidden states (empty when it can).

    ``hidden_size`` is one hidden state's width (the head reads one per read of its readout).
    """
    refit = "refit it: `switchboard eval fit-head --data eval/data/dev.csv --out <policy dir>/…`"
    problems: list[str] = []
    if head.model_digest != model_digest:
        problems.append(
            f"the head was fitted for model {head.model} ({head.model_digest[:19]}…), but the "
            f"embedded model is {model_digest[:19]}…; {refit}"
        )
    if layer_count is not None:
        problems += [f"{p}; {refit}" for p in head.readout.problems(layer_count)]
    if hidden_size is not None and head.readout.size(hidden_size) != head.dim:
        problems.append(
            f"the head reads {head.dim} floats, the model's hidden state has {hidden_size} "
            f"(times {len(head.readout.reads)} for readout {head.readout.names()}); {refit}"
        )
    if head.template_hash != template_hash:
        problems.append(
            f"the head was fitted under prompt template {head.template_hash[:19]}…, the policy's "
            f"template is {template_hash[:19]}…; {refit}"
        )
    elif head.prefix_hash != prompt_prefix_hash:
        problems.append(
            "the head was fitted under another prompt prefix (label definitions or few-shot "
            f"examples changed since policy revision {head.policy_revision}); {refit}"
        )
    return problems
