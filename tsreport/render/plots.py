"""Charts for the report: matplotlib figures as standalone SVG text.

Lazy: matplotlib is imported on first use so that analyses never pull it in.
Colours are the Okabe-Ito palette, which stays distinguishable for readers
with colour-vision deficiencies.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
INK = "#222222"
GRID = "#dddddd"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.hashsalt": "tsreport",  # stable element ids: same report, same bytes
            "svg.fonttype": "none",
            "font.family": "DejaVu Sans",
            "font.size": 9,
            "axes.edgecolor": "#888888",
            "axes.labelcolor": INK,
            "xtick.color": INK,
            "ytick.color": INK,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def _to_svg(figure: Any) -> str:
    plt = _pyplot()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "tsreport"})
    plt.close(figure)
    return buffer.getvalue()


def svg_data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def field_bars(
    names: Sequence[str],
    values: Sequence[float | None],
    *,
    xlabel: str,
    intervals: Sequence[Sequence[float | None]] | None = None,
    color: str = OKABE_ITO[0],
) -> str:
    """Horizontal bars, largest on top, with optional [low, high] error bars."""
    plt = _pyplot()
    order = sorted(range(len(names)), key=lambda i: values[i] or 0.0)
    labels = [names[i] for i in order]
    heights = [values[i] or 0.0 for i in order]
    figure, axis = plt.subplots(figsize=(6.4, 0.32 * len(names) + 0.9))
    xerr = None
    if intervals is not None:
        lows = [
            heights[k] - (intervals[i][0] if intervals[i][0] is not None else heights[k]) for k, i in enumerate(order)
        ]
        highs = [
            (intervals[i][1] if intervals[i][1] is not None else heights[k]) - heights[k] for k, i in enumerate(order)
        ]
        xerr = [[max(v, 0.0) for v in lows], [max(v, 0.0) for v in highs]]
    axis.barh(range(len(labels)), heights, color=color, xerr=xerr, error_kw={"ecolor": INK, "capsize": 3, "lw": 1})
    axis.set_yticks(range(len(labels)), labels)
    axis.axvline(0, color="#888888", lw=0.8)
    axis.set_xlabel(xlabel)
    axis.grid(axis="x", color=GRID, lw=0.6)
    axis.set_axisbelow(True)
    return _to_svg(figure)


def scatter_actual_predicted(actual: Sequence[float], predicted: Sequence[float], *, unit: str) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.2, 4.0))
    axis.scatter(actual, predicted, s=9, alpha=0.55, color=OKABE_ITO[0], edgecolors="none")
    low = min(min(actual), min(predicted))
    high = max(max(actual), max(predicted))
    axis.plot([low, high], [low, high], color=OKABE_ITO[3], lw=1, ls="--", label="perfect prediction")
    axis.set_xlabel(f"actual {unit}")
    axis.set_ylabel(f"predicted {unit}")
    axis.legend(frameon=False, loc="upper left")
    axis.grid(color=GRID, lw=0.6)
    axis.set_axisbelow(True)
    return _to_svg(figure)


def step_metric(values: Sequence[float | None], *, ylabel: str) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.6, 2.6))
    steps = list(range(1, len(values) + 1))
    axis.plot(steps, [v if v is not None else float("nan") for v in values], marker="o", color=OKABE_ITO[0])
    axis.set_xlabel("horizon step")
    axis.set_ylabel(ylabel)
    axis.set_xticks(steps)
    axis.grid(color=GRID, lw=0.6)
    return _to_svg(figure)


def confusion_matrix(counts: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    plt = _pyplot()
    size = max(3.0, 0.55 * len(classes) + 1.6)
    figure, axis = plt.subplots(figsize=(size, size * 0.9))
    image = axis.imshow(counts, cmap="Blues")
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("actual class")
    peak = max(max(row) for row in counts) or 1
    for row_index, row in enumerate(counts):
        for column_index, value in enumerate(row):
            shade = "white" if value > peak / 2 else INK
            axis.text(column_index, row_index, str(value), ha="center", va="center", color=shade, fontsize=8)
    figure.colorbar(image, ax=axis, shrink=0.8)
    return _to_svg(figure)


def _step_labels(window: int) -> list[int]:
    """Time steps relative to the window's last input step: -(T-1) .. 0."""
    return list(range(-(window - 1), 1))


def time_profile(values: Sequence[float | None], *, ylabel: str) -> str:
    plt = _pyplot()
    steps = _step_labels(len(values))
    figure, axis = plt.subplots(figsize=(6.4, 2.3))
    axis.bar(steps, [v or 0.0 for v in values], color=OKABE_ITO[0], width=0.85)
    axis.set_xlabel("time step (0 = the window's last input step)")
    axis.set_ylabel(ylabel)
    axis.grid(axis="y", color=GRID, lw=0.6)
    axis.set_axisbelow(True)
    return _to_svg(figure)


def heatmap(matrix: Sequence[Sequence[float | None]], fields: Sequence[str], *, label: str) -> str:
    """A time × field map drawn with fields as rows and time as columns (cividis: colour-blind safe)."""
    plt = _pyplot()
    import numpy as np

    values = np.array([[v if v is not None else np.nan for v in row] for row in matrix], dtype=float).T
    steps = _step_labels(values.shape[1])
    figure, axis = plt.subplots(figsize=(6.4, 0.3 * len(fields) + 1.2))
    image = axis.imshow(values, aspect="auto", cmap="cividis", interpolation="nearest",
                        extent=(steps[0] - 0.5, steps[-1] + 0.5, len(fields) - 0.5, -0.5))  # fmt: skip
    axis.set_yticks(range(len(fields)), fields)
    axis.set_xlabel("time step (0 = the window's last input step)")
    for spine in axis.spines.values():
        spine.set_visible(False)
    colorbar = figure.colorbar(image, ax=axis, pad=0.02, fraction=0.05)
    colorbar.set_label(label)
    return _to_svg(figure)


def signed_bars(names: Sequence[str], values: Sequence[float | None], *, xlabel: str) -> str:
    """Horizontal bars that may be negative (orange) or positive (blue), in the given order."""
    plt = _pyplot()
    heights = [v or 0.0 for v in values][::-1]
    labels = list(names)[::-1]
    colors = [OKABE_ITO[0] if h >= 0 else OKABE_ITO[1] for h in heights]
    figure, axis = plt.subplots(figsize=(6.4, 0.32 * len(names) + 0.9))
    axis.barh(range(len(labels)), heights, color=colors)
    axis.set_yticks(range(len(labels)), labels)
    axis.axvline(0, color="#888888", lw=0.8)
    axis.set_xlabel(xlabel)
    axis.grid(axis="x", color=GRID, lw=0.6)
    axis.set_axisbelow(True)
    return _to_svg(figure)
