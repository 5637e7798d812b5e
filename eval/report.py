"""Writes an evaluation's outputs: metrics.json, predictions.csv, report.md and PNG charts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.categories import CATEGORIES, Category
from engine.policy.fitting import Calibration
from eval import charts
from eval.metrics import SAFETY, reliability
from eval.predictions import SEP, Prediction, write_predictions
from eval.summary import summarise, top_confidence

WORST = 15


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _severity(row: Prediction) -> tuple[int, float]:
    """Missed safety first, then false escalations, then other errors; confident ones first."""
    conf = max(row.probabilities.values(), default=0.0)
    if row.label is SAFETY:
        return 0, -conf
    if row.category is SAFETY:
        return 1, -conf
    return 2, -conf


def worst_errors(rows: Sequence[Prediction], limit: int = WORST) -> list[Prediction]:
    return sorted((r for r in rows if r.category is not r.label), key=_severity)[:limit]


def _summary_table(doc: dict[str, Any]) -> list[str]:
    m = doc["model_only"]
    return [
        "| metric | model only | final decision |",
        "|---|---|---|",
        f"| accuracy | {_fmt(m['accuracy'])} | {_fmt(doc['accuracy'])} |",
        f"| macro-F1 | {_fmt(m['macro_f1'])} | {_fmt(doc['macro_f1'])} |",
        f"| safety recall | {_fmt(m['safety_recall'])} | {_fmt(doc['safety_recall'])} |",
        f"| safety false-escalation rate | {_fmt(m['safety_false_escalation_rate'])} | "
        f"{_fmt(doc['safety_false_escalation_rate'])} |",
        f"| ECE (raw / as used) | {_fmt(m['ece'])} | {_fmt(doc['ece'])} |",
        f"| review rate | - | {_fmt(doc['review_rate'])} |",
        f"| degraded rate | {_fmt(m['failure_rate'])} | {_fmt(doc['degraded_rate'])} |",
    ]


def _per_category(doc: dict[str, Any]) -> list[str]:
    lines = [
        "| category | support | P model | R model | F1 model | P final | R final | F1 final |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in CATEGORIES:
        m = doc["model_only"]["per_category"][c.value]
        f = doc["per_category"][c.value]
        lines.append(
            f"| {c.value} | {f['support']} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | "
            f"{_fmt(m['f1'])} | {_fmt(f['precision'])} | {_fmt(f['recall'])} | {_fmt(f['f1'])} |"
        )
    return lines


def _confusion(confusion: dict[str, dict[str, int]]) -> list[str]:
    cols = list(next(iter(confusion.values())).keys())
    lines = ["| true \\ decided | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for t, row in confusion.items():
        lines.append(f"| {t} | " + " | ".join(str(row[c]) for c in cols) + " |")
    return lines


def _per_source(doc: dict[str, Any]) -> list[str]:
    lines = [
        "| source | n | acc model | acc final | macro-F1 final | safety recall model | "
        "safety recall final | false esc. final | review rate | ECE | p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in doc["per_source"].items():
        m = s["model_only"]
        lines.append(
            f"| {name} | {s['n']} | {_fmt(m['accuracy'])} | {_fmt(s['accuracy'])} | "
            f"{_fmt(s['macro_f1'])} | {_fmt(m['safety_recall'])} | {_fmt(s['safety_recall'])} | "
            f"{_fmt(s['safety_false_escalation_rate'])} | {_fmt(s['review_rate'])} | "
            f"{_fmt(s['ece'])} | {_fmt(s['latency_ms'].get('p50'), 0)} |"
        )
    return lines


def _rules_section(rows: Sequence[Prediction]) -> list[str]:
    fixed = sum(1 for r in rows if r.model_label is not r.label and r.category is r.label)
    broke = sum(1 for r in rows if r.model_label is r.label and r.category is not r.label)
    fired = Counter(rule for r in rows for rule in r.rules_fired.split(SEP) if rule)
    lines = [
        f"Rules and thresholds changed the model's label on "
        f"{sum(1 for r in rows if r.category is not r.model_label)} of {len(rows)} messages: "
        f"**{fixed} fixed** a wrong model label, **{broke} broke** a right one.",
        "",
        "| rule | fired |",
        "|---|---|",
    ]
    lines += [f"| {rule} | {count} |" for rule, count in fired.most_common()]
    return lines


def _escalation_causes(doc: dict[str, Any]) -> list[str]:
    causes: dict[str, int] = doc.get("false_escalation_causes") or {}
    if not causes:
        return ["No non-safety message was decided safety."]
    lines = [
        "Non-safety messages decided safety, by the first step that routed them there "
        "(`model:label`: the model's own label; `threshold:safety_escalation`: p(safety) at or "
        "above the escalation threshold; `rule:<id>`: a rule):",
        "",
        "| routed by | messages |",
        "|---|---|",
    ]
    return lines + [f"| {cause} | {count} |" for cause, count in causes.items()]


def _errors(rows: Sequence[Prediction]) -> list[str]:
    lines: list[str] = []
    for r in worst_errors(rows):
        probs = ", ".join(f"{c.value[:4]}={p:.2f}" for c, p in r.probabilities.items())
        text = r.input_redacted.replace("\n", " ")[:220]
        lines += [
            f"- **{r.id}** ({r.source}, {r.channel.value}): true **{r.label.value}**, "
            f"decided **{r.category.value}**"
            + (" (human review)" if r.requires_human_review else "")
            + f"; model {r.model_status.value} [{probs}]",
            f"  - text: {text}",
            f"  - path: {r.decision_path}",
        ]
    return lines or ["No errors."]


def _charts(
    rows: Sequence[Prediction], doc: dict[str, Any], calibration: Calibration | None, out: Path
) -> list[str]:
    made = [
        charts.confusion_chart(doc["confusion_matrix"], "final decision", out / "confusion.png"),
        charts.confusion_chart(
            doc["model_only"]["confusion_matrix"], "model only", out / "confusion_model.png"
        ),
    ]
    curves = {}
    for name, cal in (("raw", None), ("calibrated", calibration)):
        if name == "calibrated" and calibration is None:
            continue
        pairs = [(top_confidence(r, cal), r.model_label is r.label) for r in rows]
        kept = [(c, h) for c, h in pairs if c is not None]
        curves[name] = reliability([c for c, _ in kept], [h for _, h in kept])
    made.append(charts.reliability_chart(curves, "reliability", out / "reliability.png"))
    hist: dict[str, tuple[list[float], list[float]]] = {}
    for c in CATEGORIES:
        right: list[float] = []
        wrong: list[float] = []
        for r in rows:
            conf = top_confidence(r, calibration)
            if r.label is c and conf is not None:
                (right if r.model_label is r.label else wrong).append(conf)
        hist[c.value] = (right, wrong)
    made.append(charts.confidence_histograms(hist, out / "confidence.png"))
    return [f"![{p.stem}]({p.name})" for p in made]


def _outage_line(doc: dict[str, Any]) -> list[str]:
    o = doc.get("outage")
    if not o:
        return []
    return [
        "- during an outage (the same messages, every model call timing out, rules and fallbacks "
        f"only): safety messages reaching the safety queue {_fmt(o['safety_queue_recall'])}, "
        f"other messages there {_fmt(o['false_escalation_rate'])}, silent misses "
        f"{o['silent_safety_misses']}, review rate {_fmt(o['review_rate'])}"
    ]


def render_markdown(
    rows: Sequence[Prediction], doc: dict[str, Any], chart_links: Sequence[str]
) -> str:
    meta = doc["meta"]
    lat = doc["latency_ms"]
    parts = [
        f"# Evaluation: {meta.get('data', '?')}",
        "",
        f"- messages: {doc['n']} ({', '.join(f'{k} {v}' for k, v in meta['labels'].items())})",
        f"- model: {meta['model']} (backend {meta['backend']})",
        f"- policy: {meta['policy_id']} {meta['policy_version']} revision {meta['policy_revision']}"
        f"; calibration: {meta['calibration'] or 'none'}",
        f"- date: {meta['date']}; command: `{meta['command']}`",
        "",
        "## Model only versus final decision",
        "",
        *_summary_table(doc),
        "",
        "## Per category",
        "",
        *_per_category(doc),
        "",
        "## Confusion matrices",
        "",
        "Final decision:",
        "",
        *_confusion(doc["confusion_matrix"]),
        "",
        "Model only:",
        "",
        *_confusion(doc["model_only"]["confusion_matrix"]),
        "",
        "## What the rules did",
        "",
        *_rules_section(rows),
        "",
        *_escalation_causes(doc),
        "",
        "## Operations",
        "",
        f"- latency per decision (ms): p50 {_fmt(lat.get('p50'), 0)}, "
        f"p95 {_fmt(lat.get('p95'), 0)}, p99 {_fmt(lat.get('p99'), 0)}",
        f"- tokens per decision: prompt {_fmt(doc['mean_prompt_tokens'], 1)} "
        f"(of which not cached {_fmt(doc['mean_uncached_prompt_tokens'], 1)}), "
        f"output {_fmt(doc['mean_output_tokens'], 1)}",
        f"- cost per decision: ${_fmt(doc['cost_per_decision_usd'], 7)} "
        f"(at ${meta['usd_per_1k_prompt']}/1k prompt and ${meta['usd_per_1k_output']}/1k "
        "output tokens)",
        f"- review rate {_fmt(doc['review_rate'])}, degraded rate {_fmt(doc['degraded_rate'])}",
        *_outage_line(doc),
        "",
        "## Per source",
        "",
        *_per_source(doc),
        "",
        "## Worst errors",
        "",
        *_errors(rows),
        "",
        "## Charts",
        "",
        *chart_links,
        "",
    ]
    return "\n".join(parts)


def write_outputs(
    out: Path,
    rows: Sequence[Prediction],
    meta: dict[str, Any],
    calibration: Calibration | None,
    outage: Sequence[Prediction] = (),
) -> dict[str, Any]:
    """Write the three outputs (and the charts) to ``out``; return the metrics document."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "labels": {c.value: sum(r.label is c for r in rows) for c in Category}}
    doc = summarise(rows, calibration, meta, outage)
    (out / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    write_predictions(out / "predictions.csv", list(rows))
    links = _charts(rows, doc, calibration, out)
    (out / "report.md").write_text(render_markdown(rows, doc, links), encoding="utf-8")
    return doc
