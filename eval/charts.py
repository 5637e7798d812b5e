"""PNG charts for the report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from engine.categories import CATEGORIES
from eval.metrics import ReliabilityBin

SHORT = {"informational": "info", "service_action": "service", "safety_compliance": "safety"}


def confusion_chart(confusion: Mapping[str, Mapping[str, int]], title: str, path: Path) -> Path:
    rows = [c.value for c in CATEGORIES]
    cols = list(next(iter(confusion.values())).keys())
    grid = [[confusion[r][c] for c in cols] for r in rows]
    fig, ax = plt.subplots(figsize=(4.6, 3.8), dpi=100)
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(cols)), [SHORT.get(c, c) for c in cols])
    ax.set_yticks(range(len(rows)), [SHORT[r] for r in rows])
    ax.set_xlabel("decided")
    ax.set_ylabel("true")
    peak = max((v for row in grid for v in row), default=0)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            colour = "white" if peak and value > peak / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=colour)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def reliability_chart(
    curves: Mapping[str, Sequence[ReliabilityBin]], title: str, path: Path
) -> Path:
    """One line per probability set (e.g. raw and calibrated) against the diagonal."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=100)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    for name, bins in curves.items():
        used = [b for b in bins if b.count]
        ax.plot(
            [b.confidence for b in used],
            [b.accuracy for b in used],
            marker="o",
            label=name,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the top label")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confidence_histograms(
    by_category: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: Path
) -> Path:
    """Per true category: the decision's confidence of correct and of wrong decisions."""
    fig, axes = plt.subplots(1, len(by_category), figsize=(4 * len(by_category), 3.2), dpi=100)
    axes_list = list(axes) if len(by_category) > 1 else [axes]
    for ax, (name, (right, wrong)) in zip(axes_list, by_category.items(), strict=True):
        bins = [i / 20 for i in range(21)]
        ax.hist([list(right), list(wrong)], bins=bins, stacked=True, label=["right", "wrong"])
        ax.set_title(f"true {SHORT.get(name, name)}")
        ax.set_xlabel("model confidence (top label)")
    axes_list[0].set_ylabel("messages")
    axes_list[0].legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def outbox_depth_chart(
    samples: Sequence[tuple[float, float]],
    outage: tuple[float, float],
    drained_at: float | None,
    path: Path,
) -> Path:
    """Outbox depth over time, the broker outage shaded, the moment it drained marked."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.axvspan(*outage, color="#f4c7c3", label="broker unreachable")
    ax.plot([t for t, _ in samples], [p for _, p in samples], color="#1f4e79", label="pending")
    if drained_at is not None:
        ax.axvline(drained_at, color="#38761d", linestyle="--", label="drained")
    ax.set_xlabel("seconds")
    ax.set_ylabel("hand-offs pending (outbox depth)")
    ax.set_title("Outbox depth during a broker outage (/classify kept answering)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


TradeoffPoint = tuple[float, float, float]  # (escalation threshold, safety recall, automation)


def tradeoff_chart(
    curves: Mapping[str, Sequence[TradeoffPoint]],
    chosen: TradeoffPoint,
    title: str,
    path: Path,
) -> Path:
    """``tradeoff_figure`` written to ``path`` as a PNG."""
    fig = tradeoff_figure(curves, chosen, title)
    fig.savefig(path)
    plt.close(fig)
    return path


def tradeoff_figure(
    curves: Mapping[str, Sequence[TradeoffPoint]], chosen: TradeoffPoint, title: str
) -> Figure:
    """Automation rate against safety recall, one line per curve, each point an escalation value.

    Each line is labelled in the legend and each point with its escalation threshold, so the
    chart reads without telling colours apart; the chosen setting is a ringed point and named.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    markers = ("o", "s", "^", "D")
    for i, (name, points) in enumerate(curves.items()):
        ordered = sorted(points)
        ax.plot(
            [p[1] for p in ordered],
            [p[2] for p in ordered],
            marker=markers[i % len(markers)],
            label=name,
        )
        for esc, recall, automation in ordered[:: max(1, len(ordered) // 6)]:
            ax.annotate(
                f"{esc:.2f}",
                (recall, automation),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.scatter(
        [chosen[1]],
        [chosen[2]],
        s=180,
        facecolors="none",
        edgecolors="black",
        linewidths=1.6,
        label=f"chosen (escalation {chosen[0]:.2f})",
        zorder=3,
    )
    ax.axvline(0.99, color="grey", linestyle="--", linewidth=1)
    ax.text(
        0.99, 0.02, " recall 0.99", color="grey", fontsize=8, transform=ax.get_xaxis_transform()
    )
    ax.set_xlabel("safety recall")
    ax.set_ylabel("automation rate (non-safety decided right, no review)")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig
