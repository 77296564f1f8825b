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


ATTENTION_LAYERS_PLOTTED = 12


def attention_last_step(layers: Sequence[dict[str, Any]]) -> str:
    """One row per attention layer: bars of what the last position attends to, over positions
    relative to the last one (0), with uniform attention dashed; beside them the layer's mean
    query × key map (rasterised, cividis from 0 to the map's largest weight, so near-uniform attention
    looks uniform). Layers past ATTENTION_LAYERS_PLOTTED are left out."""
    plt = _pyplot()
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    shown = list(layers)[:ATTENTION_LAYERS_PLOTTED]
    one_length = len({layer["key_length"] for layer in shown}) == 1
    figure, axes = plt.subplots(
        len(shown), 2, figsize=(6.4, 1.25 * len(shown) + 0.8), squeeze=False,
        gridspec_kw={"width_ratios": [3.4, 1], "hspace": 0.7, "wspace": 0.25},
        sharex="col" if one_length else False,
    )  # fmt: skip
    for row, layer in enumerate(shown):
        bars, grid = axes[row]
        values = [v or 0.0 for v in layer["last_step"]]
        steps = _step_labels(len(values))
        bars.bar(steps, values, color=OKABE_ITO[0], width=0.85)
        if values:
            bars.axhline(1.0 / len(values), color=OKABE_ITO[3], lw=0.9, ls="--", label="uniform")
        bars.set_title(f"{layer['name']} ({layer['heads']} heads)", loc="left", fontsize=8)
        bars.set_ylabel("weight", fontsize=8)
        bars.grid(axis="y", color=GRID, lw=0.6)
        bars.set_axisbelow(True)
        bars.xaxis.set_major_locator(MaxNLocator(integer=True))
        if row == 0:
            bars.legend(frameon=False, fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0))
        matrix = np.array([[v if v is not None else np.nan for v in r] for r in layer["map"]], dtype=float)
        keys, queries = layer["key_length"], layer["query_length"]
        peak = float(np.nanmax(matrix)) if np.isfinite(matrix).any() else 1.0
        grid.imshow(matrix, aspect="auto", cmap="cividis", interpolation="nearest", rasterized=True, vmin=0.0,
                    vmax=peak or 1.0, extent=(-(keys - 1) - 0.5, 0.5, 0.5, -(queries - 1) - 0.5))  # fmt: skip
        grid.xaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
        grid.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
        grid.tick_params(labelsize=7)
        grid.set_ylabel("query", fontsize=7)
        for spine in grid.spines.values():
            spine.set_visible(False)
    tokens = any(layer["time_axis"] == "token" for layer in shown)
    axes[-1][0].set_xlabel("token (0 = the last token)" if tokens else "time step (0 = the window's last input step)")
    axes[-1][1].set_xlabel("key", fontsize=8)
    return _to_svg(figure)


def shap_beeswarm(
    names: Sequence[str],
    phi: Sequence[Sequence[float | None]],
    field_values: Sequence[Sequence[float | None]],
    *,
    xlabel: str,
) -> str:
    """One row of points per field (largest mean |φ| on top): each point a window's φ, coloured by the field's value.

    Points are stacked vertically where they crowd (a beeswarm); the colour
    (cividis, colour-blind safe) runs from the field's 5th to its 95th
    percentile; the points are rasterised so the SVG stays small.
    """
    plt = _pyplot()
    import numpy as np
    from matplotlib.colors import Normalize

    values = np.array([[np.nan if v is None else v for v in row] for row in phi], dtype=float)
    values = values.reshape(-1, len(names))
    colours = np.array([[np.nan if v is None else v for v in row] for row in field_values], dtype=float)
    colours = colours.reshape(values.shape)
    order = sorted(range(len(names)), key=lambda j: np.nanmean(np.abs(values[:, j])) if len(values) else 0.0)
    figure, axis = plt.subplots(figsize=(6.4, 0.38 * len(names) + 1.0))
    finite = values[np.isfinite(values)]
    span = float(finite.max() - finite.min()) if finite.size else 0.0
    bin_width = span / 80 if span > 0 else 1.0
    for row, j in enumerate(order):
        x = values[:, j]
        keep = np.isfinite(x)
        x, shade = x[keep], colours[keep, j]
        if not x.size:
            continue
        bins = np.floor((x - x.min()) / bin_width).astype(int)
        offsets = np.zeros(x.size)
        for b in np.unique(bins):
            members = np.nonzero(bins == b)[0]
            rank = np.arange(members.size)
            offsets[members] = (rank + 1) // 2 * np.where(rank % 2 == 0, 1.0, -1.0)
        peak = np.abs(offsets).max()
        if peak > 0:
            offsets *= min(0.4 / peak, 0.06)
        known = np.isfinite(shade)
        low, high = np.percentile(shade[known], [5, 95]) if known.any() else (0.0, 1.0)
        scale = Normalize(vmin=low, vmax=high if high > low else low + 1.0, clip=True)
        axis.scatter(x[~known], row + offsets[~known], s=7, color="#999999", edgecolors="none", rasterized=True)
        axis.scatter(x[known], row + offsets[known], s=7, c=scale(shade[known]), cmap="cividis", vmin=0, vmax=1,
                     edgecolors="none", rasterized=True)  # fmt: skip
    axis.set_yticks(range(len(order)), [names[j] for j in order])
    axis.set_ylim(-0.6, len(order) - 0.4)
    axis.axvline(0, color="#888888", lw=0.8)
    axis.set_xlabel(xlabel)
    axis.grid(axis="x", color=GRID, lw=0.6)
    axis.set_axisbelow(True)
    mappable = plt.cm.ScalarMappable(norm=Normalize(0, 1), cmap="cividis")
    colorbar = figure.colorbar(mappable, ax=axis, pad=0.02, fraction=0.04, ticks=[0, 1])
    colorbar.ax.set_yticklabels(["low", "high"])
    colorbar.set_label("field value (mean over the window)")
    return _to_svg(figure)


def deletion_curves(fractions: Sequence[float], curves: dict[str, Sequence[float | None]], *, ylabel: str) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 3.2))
    percent = [100 * f for f in fractions]
    for index, (name, curve) in enumerate(curves.items()):
        values = [v if v is not None else float("nan") for v in curve]
        if name == "random":
            axis.plot(percent, values, color="#888888", ls="--", lw=1.5, label="random order")
        else:
            axis.plot(percent, values, color=OKABE_ITO[index % len(OKABE_ITO)], marker="o", ms=3, lw=1.4,
                      label=name.replace("_", " "))  # fmt: skip
    axis.set_xlabel("most-attributed cells set to the baseline (%)")
    axis.set_ylabel(ylabel)
    axis.legend(frameon=False, fontsize=8)
    axis.grid(color=GRID, lw=0.6)
    return _to_svg(figure)


def agreement_matrix(methods: Sequence[str], tau: Sequence[Sequence[float | None]]) -> str:
    plt = _pyplot()
    import numpy as np

    values = np.array([[v if v is not None else np.nan for v in row] for row in tau], dtype=float)
    labels = [m.replace("_", " ") for m in methods]
    size = 0.55 * len(methods) + 2.2
    figure, axis = plt.subplots(figsize=(size + 1.0, size))
    image = axis.imshow(values, cmap="cividis", vmin=-1, vmax=1)
    axis.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    for i in range(len(methods)):
        for j in range(len(methods)):
            if np.isfinite(values[i, j]):
                axis.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                          color="black" if values[i, j] > 0.2 else "white")  # fmt: skip
    for spine in axis.spines.values():
        spine.set_visible(False)
    figure.colorbar(image, ax=axis, shrink=0.8, label="Kendall's tau")
    return _to_svg(figure)


def randomisation_cascade(curves: dict[str, Sequence[dict]], measure: str, *, ylabel: str) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 3.0))
    for index, (name, rows) in enumerate(curves.items()):
        xs = [0] + [row["layers_randomised"] for row in rows]
        ys = [1.0] + [row[measure] if row[measure] is not None else float("nan") for row in rows]
        axis.plot(xs, ys, marker="o", ms=3, color=OKABE_ITO[index % len(OKABE_ITO)], label=name.replace("_", " "))
    axis.set_xlabel("layers randomised, from the output back (0 = trained model)")
    axis.set_ylabel(ylabel)
    axis.set_ylim(-1.05, 1.05)
    axis.axhline(0, color="#888888", lw=0.8)
    axis.legend(frameon=False, fontsize=8)
    axis.grid(color=GRID, lw=0.6)
    return _to_svg(figure)


def prediction_window(
    window: dict,
    fields: Sequence[str],
    all_fields: Sequence[str],
    *,
    target: str,
    task: str,
    categorical: Sequence[str] = (),
) -> str:
    """One window: small multiples of its fields, the target with prediction vs truth, its attribution map.

    All panels share the time axis (0 = the window's last input step; horizon steps are 1..H).
    """
    plt = _pyplot()
    import numpy as np

    shown = [f for f in fields if f in window["fields"]]
    heatmap_rows = len(all_fields) if window.get("heatmap") else 0
    ratios = (
        [0.55] * len(shown)
        + ([1.5] if task == "regression" else [])
        + ([0.22 * heatmap_rows + 0.4] if heatmap_rows else [])
    )
    figure = plt.figure(figsize=(6.6, sum(ratios) + 0.8))
    grid = figure.add_gridspec(len(ratios), 1, height_ratios=ratios, hspace=0.35)
    window_length = len(next(iter(window["fields"].values()))) if window["fields"] else 0
    steps = np.arange(-(window_length - 1), 1)
    horizon = len(window["actual"]) if task == "regression" else 0
    right = horizon + 0.5 if task == "regression" else 0.5
    axes = []
    for row, name in enumerate(shown):
        axis = figure.add_subplot(grid[row])
        values = [v if v is not None else np.nan for v in window["fields"][name]]
        style = {"drawstyle": "steps-mid"} if name in categorical else {}
        axis.plot(steps, values, color=OKABE_ITO[row % len(OKABE_ITO)], lw=1.2, **style)
        axis.ticklabel_format(axis="y", useOffset=False, style="plain")
        axis.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        axis.tick_params(labelsize=7, labelbottom=False)
        axis.set_xlim(steps[0] - 0.5, right)
        axis.grid(color=GRID, lw=0.5)
        axes.append(axis)
    row = len(shown)
    if task == "regression":
        axis = figure.add_subplot(grid[row])
        if window.get("target_history"):
            axis.plot(
                steps,
                [v if v is not None else np.nan for v in window["target_history"]],
                color=INK,
                lw=1.3,
                label=f"{target} (history)",
            )
        future = np.arange(1, horizon + 1)
        axis.plot(future, window["actual"], "o-", color=OKABE_ITO[2], ms=4, label="actual")
        interval = window.get("interval")
        if interval:
            low = [v if v is not None else np.nan for v in interval["low"]]
            high = [v if v is not None else np.nan for v in interval["high"]]
            span = f"{interval['levels'][0]:g}–{interval['levels'][1]:g} quantiles"
            if horizon > 1:
                axis.fill_between(future, low, high, color=OKABE_ITO[3], alpha=0.18, lw=0, label=span)
            else:
                axis.errorbar(future, window["predicted"], yerr=[[window["predicted"][0] - low[0]], [high[0] - window["predicted"][0]]],
                              fmt="none", ecolor=OKABE_ITO[3], alpha=0.6, capsize=3, label=span)  # fmt: skip
        axis.plot(future, window["predicted"], "s--", color=OKABE_ITO[3], ms=4, label="predicted")
        axis.axvline(0.5, color="#888888", lw=0.8, ls=":")
        axis.set_xlim(steps[0] - 0.5, right)
        axis.set_ylabel(target, rotation=0, ha="right", va="center", fontsize=8)
        axis.tick_params(labelsize=7, labelbottom=not heatmap_rows)
        axis.legend(frameon=False, fontsize=7, loc="upper left", ncol=3)
        axis.grid(color=GRID, lw=0.5)
        row += 1
    if heatmap_rows:
        axis = figure.add_subplot(grid[row])
        values = np.array([[v if v is not None else np.nan for v in step] for step in window["heatmap"]], dtype=float).T
        axis.imshow(values, aspect="auto", cmap="cividis", interpolation="nearest",
                    extent=(steps[0] - 0.5, steps[-1] + 0.5, len(all_fields) - 0.5, -0.5))  # fmt: skip
        axis.set_xlim(steps[0] - 0.5, right)
        axis.set_yticks(range(len(all_fields)), all_fields, fontsize=7)
        axis.tick_params(labelsize=7)
        axis.set_xlabel("time step (0 = the window's last input step)", fontsize=8)
        for spine in axis.spines.values():
            spine.set_visible(False)
    return _to_svg(figure)
