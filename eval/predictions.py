"""One row per decided message: what the model said, what the engine decided, what it cost.

``predictions.csv`` is the harness's ground truth for everything after the model call: metrics,
charts, threshold fitting and calibration all read these rows, so none of them needs the model.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from engine.categories import CATEGORIES, Category, Channel, VerdictStatus
from engine.decide.record import DecisionRecord, PathStep
from engine.errors import EvalDataError
from eval.dataset import LabelledCase

SEP = ";"
PATH_SEP = " > "
SAFETY = Category.SAFETY_COMPLIANCE


@dataclass(frozen=True)
class Prediction:
    """A labelled case and the decision the engine made for it."""

    id: str
    source: str
    channel: Channel
    label: Category
    model_status: VerdictStatus
    model_label: Category | None
    p_informational: float | None
    p_service_action: float | None
    p_safety_compliance: float | None
    category: Category
    confidence: float | None
    requires_human_review: bool
    degraded: bool
    keywords_matched: str
    rules_fired: str
    decision_path: str
    latency_ms: float
    llm_ms: float
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_usd: float
    input_redacted: str
    # The probe head's probabilities when it decided (``llm.method`` probe_head); the p_* columns
    # stay the label probabilities, which is what a replay without hidden states can reuse.
    h_informational: float | None = None
    h_service_action: float | None = None
    h_safety_compliance: float | None = None
    # Each sub-intent answer's probability ("question=0.12;reaction=0.6"), when the policy gives
    # a category several answers; empty otherwise.
    answers: str = ""
    # What first put the decision in safety (``safety_route``); empty when it is not safety.
    safety_route: str = ""

    @property
    def probabilities(self) -> dict[Category, float]:
        """The model's raw label probabilities (empty when the model gave none)."""
        values = {
            Category.INFORMATIONAL: self.p_informational,
            Category.SERVICE_ACTION: self.p_service_action,
            Category.SAFETY_COMPLIANCE: self.p_safety_compliance,
        }
        return {c: p for c, p in values.items() if p is not None}

    @property
    def head_probabilities(self) -> dict[Category, float]:
        """The probe head's probabilities (empty when the head did not decide)."""
        values = {
            Category.INFORMATIONAL: self.h_informational,
            Category.SERVICE_ACTION: self.h_service_action,
            Category.SAFETY_COMPLIANCE: self.h_safety_compliance,
        }
        return {c: p for c, p in values.items() if p is not None}

    def answered(self, probabilities: Sequence[float]) -> Prediction:
        """This row as if the model had answered ``probabilities`` (in ``CATEGORIES`` order),
        which a replay then reads as the verdict: the head's out-of-fold or recorded ones."""
        p = [float(v) for v in probabilities]
        return replace(
            self,
            model_status=VerdictStatus.OK,
            model_label=CATEGORIES[max(range(len(p)), key=p.__getitem__)],
            p_informational=p[0],
            p_service_action=p[1],
            p_safety_compliance=p[2],
        )

    @property
    def answer_probabilities(self) -> dict[str, float]:
        """Each sub-intent answer's probability (empty for one answer per category)."""
        pairs = (item.rsplit("=", 1) for item in self.answers.split(SEP) if item)
        return {answer: float(p) for answer, p in pairs}

    @property
    def family(self) -> str:
        return self.source.split("/", 1)[0]

    @classmethod
    def from_record(cls, case: LabelledCase, record: DecisionRecord) -> Prediction:
        probs = record.llm.probabilities
        head = (record.llm.calibrated or {}) if record.llm.method == "probe_head" else {}
        return cls(
            id=case.case_id,
            source=case.source,
            channel=case.channel,
            label=case.label,
            model_status=record.llm.status,
            model_label=record.llm.label,
            p_informational=_round(probs.get(Category.INFORMATIONAL)),
            p_service_action=_round(probs.get(Category.SERVICE_ACTION)),
            p_safety_compliance=_round(probs.get(Category.SAFETY_COMPLIANCE)),
            category=record.category,
            confidence=record.confidence,
            requires_human_review=record.requires_human_review,
            degraded=record.degraded,
            keywords_matched=SEP.join(record.keywords_matched),
            rules_fired=SEP.join(r.id for r in record.rules_fired),
            decision_path=PATH_SEP.join(
                f"{s.stage}:{s.code}" + (f" ({s.detail})" if s.detail else "")
                for s in record.decision_path
            ),
            latency_ms=round(record.timings.total_ms, 3),
            llm_ms=round(record.timings.llm_ms, 3),
            prompt_tokens=record.tokens.prompt + record.tokens.cached,
            cached_tokens=record.tokens.cached,
            output_tokens=record.tokens.output,
            cost_usd=record.cost_usd,
            input_redacted=record.input_redacted,
            h_informational=_round(head.get(Category.INFORMATIONAL)),
            h_service_action=_round(head.get(Category.SERVICE_ACTION)),
            h_safety_compliance=_round(head.get(Category.SAFETY_COMPLIANCE)),
            answers=SEP.join(f"{a}={_round(p)}" for a, p in (record.llm.answers or {}).items()),
            safety_route=safety_route(record.decision_path) if record.category is SAFETY else "",
        )


def safety_route(path: Sequence[PathStep]) -> str:
    """The first step of a decision path that made the category safety, as ``stage:code``.

    ``model:label`` (the model's own label, accepted or kept below its threshold),
    ``threshold:safety_escalation``, ``rule:<id>`` (a rule that routed to safety), a
    ``fallback:<kind>`` or ``combine:fail_closed``; empty when nothing in the path did.
    """
    previous: PathStep | None = None
    model_safety = False
    for step in path:
        where = f"{step.stage}:{step.code}"
        if step.stage == "model" and step.code == "label":
            model_safety = step.detail.startswith(SAFETY.value)
        elif where in {"threshold:safety_escalation", "combine:fail_closed"}:
            return where
        elif step.stage == "threshold" and model_safety:
            if step.code == "accepted" or f": {SAFETY.value}" in step.detail:
                return "model:label"
        elif step.stage == "fallback" and f"rules-only: {SAFETY.value}" in step.detail:
            return where
        elif where == "rule:routed" and step.detail.endswith(f"-> {SAFETY.value}"):
            return f"rule:{previous.code}" if previous is not None else where
        previous = step
    return ""


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 8)


COLUMNS = tuple(f.name for f in fields(Prediction))
OPTIONAL_COLUMNS = (
    "h_informational",
    "h_service_action",
    "h_safety_compliance",
    "answers",
    "safety_route",
)


def write_predictions(path: Path, rows: list[Prediction]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in asdict(row).items()})


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, Category | Channel | VerdictStatus):
        return value.value
    return value


def _opt_float(text: str) -> float | None:
    return float(text) if text else None


def read_predictions(path: Path) -> list[Prediction]:
    """Read a predictions.csv written by ``switchboard eval``."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = set(COLUMNS) - set(OPTIONAL_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise EvalDataError(f"{path}: not a predictions file; missing {sorted(missing)}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EvalDataError(f"cannot read {path}: {exc}") from exc
    out: list[Prediction] = []
    for line, r in enumerate(rows, start=2):
        try:
            out.append(
                Prediction(
                    id=r["id"],
                    source=r["source"],
                    channel=Channel(r["channel"]),
                    label=Category(r["label"]),
                    model_status=VerdictStatus(r["model_status"]),
                    model_label=Category(r["model_label"]) if r["model_label"] else None,
                    p_informational=_opt_float(r["p_informational"]),
                    p_service_action=_opt_float(r["p_service_action"]),
                    p_safety_compliance=_opt_float(r["p_safety_compliance"]),
                    category=Category(r["category"]),
                    confidence=_opt_float(r["confidence"]),
                    requires_human_review=r["requires_human_review"] == "True",
                    degraded=r["degraded"] == "True",
                    keywords_matched=r["keywords_matched"],
                    rules_fired=r["rules_fired"],
                    decision_path=r["decision_path"],
                    latency_ms=float(r["latency_ms"]),
                    llm_ms=float(r["llm_ms"]),
                    prompt_tokens=int(r["prompt_tokens"]),
                    cached_tokens=int(r["cached_tokens"]),
                    output_tokens=int(r["output_tokens"]),
                    cost_usd=float(r["cost_usd"]),
                    input_redacted=r["input_redacted"],
                    h_informational=_opt_float(r.get("h_informational") or ""),
                    h_service_action=_opt_float(r.get("h_service_action") or ""),
                    h_safety_compliance=_opt_float(r.get("h_safety_compliance") or ""),
                    answers=r.get("answers") or "",
                    safety_route=r.get("safety_route") or "",
                )
            )
        except (KeyError, ValueError) as exc:
            raise EvalDataError(f"{path}:{line}: {exc}") from exc
    return out


def as_head_rows(rows: Sequence[Prediction]) -> tuple[list[Prediction], int]:
    """Rows whose recorded head probabilities stand in for the model's, for a replay through the
    policy without its head (``eval.fit_head.plain_engine``); and how many rows had none (the
    model failed or timed out: they stay as recorded)."""
    out: list[Prediction] = []
    without = 0
    for row in rows:
        head = row.head_probabilities
        if len(head) == len(CATEGORIES):
            out.append(row.answered([head[c] for c in CATEGORIES]))
        else:
            out.append(row)
            without += 1
    return out, without
