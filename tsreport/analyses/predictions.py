"""`predictions`: individual windows a reviewer can look at, with what drove each prediction.

Shown: the 2 best, 2 worst and 2 median explained windows by error (MAE over
the horizon in target units; log loss for classification), plus every window
named with ``--explain-at``. For each: the input fields over the window (the
most important ones, at most ``max_fields``), the target's history with the
prediction against the truth, and the window's own attribution map.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from tsreport.analyses._base import FIGURES, NEEDS_MAPS, AnalysisContext, AnalysisSpec, Figure, clean_float
from tsreport.numeric import log_loss, to_data_units
from tsreport.params import Params, positive_int, setting


@dataclasses.dataclass(frozen=True)
class PredictionsResult:
    """``windows``: one dict per shown window with kind (best | worst | median | requested),
    end_time, group, error, actual and predicted (H,) or class labels/probabilities,
    for a quantile head ``interval`` {levels, low (H,), high (H,)} beside the point forecast,
    ``fields`` {name: (T,) values in the data's units (a categorical field: the active
    category's position)}, ``target_history`` (T,) or None, ``heatmap`` (T, F) attribution
    of this window from ``map_source`` (or None). ``fields_shown`` / ``fields_not_shown``."""

    error_name: str
    map_source: str | None
    categorical_fields: list[str]
    fields_shown: list[str]
    fields_not_shown: list[str]
    windows: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _errors(ctx: AnalysisContext, outputs: torch.Tensor) -> np.ndarray:
    index = ctx.explained
    if ctx.schema.task == "classification":
        labels = torch.as_tensor(ctx.windows.targets[index], dtype=torch.long)
        return log_loss(outputs, labels).numpy()
    predicted = to_data_units(ctx.point_predictions(outputs).double().numpy(), ctx.schema.target.scale)
    return np.abs(predicted - ctx.windows.targets_raw[index]).mean(axis=1)


def pick_windows(errors: np.ndarray, requested: dict[int, str]) -> list[tuple[int, str]]:
    """(row, kind) for the 2 best, 2 worst, 2 median rows by error, then the requested ones."""
    order = np.argsort(errors, kind="stable")
    picks: list[tuple[int, str]] = []
    middle = len(order) // 2
    for kind, rows in (
        ("worst", order[::-1][:2]),
        ("median", order[max(0, middle - 1) : middle + 1]),
        ("best", order[:2]),
    ):
        for row in rows:
            if all(int(row) != seen for seen, _ in picks):
                picks.append((int(row), kind))
    for row, text in requested.items():
        picks = [(r, k) for r, k in picks if r != row]
        picks.append((row, f"requested: {text}"))
    return picks


def _field_values(ctx: AnalysisContext, window_index: int) -> dict[str, list[float | None]]:
    inputs = ctx.windows.inputs(np.array([window_index]))[0].astype(np.float64)  # (T, C) model units
    values = {}
    for field, channel in zip(ctx.schema.fields, ctx.channel_slices()):
        block = inputs[:, channel]
        if field.kind == "categorical" and block.shape[1] > 1:
            series = block.argmax(axis=1).astype(float)
        else:
            series = to_data_units(block[:, 0], field.scale)
        # Rounded so the scale round trip's float noise (1e-9) does not show up as a signal.
        values[field.name] = [clean_float(v) for v in np.round(series, 6)]
    return values


def predictions(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> PredictionsResult:
    outputs = ctx.explained_full_outputs()  # every quantile for a quantile head
    errors = _errors(ctx, outputs)
    picks = pick_windows(errors, ctx.requested)
    max_fields = int(params["max_fields"])
    ranking = _field_order(ctx)
    shown, not_shown = ranking[:max_fields], ranking[max_fields:]
    from tsreport.analyses import map_sources

    source = next((m for m in map_sources() if m in ctx.field_maps), None)
    scale = ctx.schema.target.scale
    windows = []
    for row, kind in picks:
        window_index = int(ctx.explained[row])
        start = int(ctx.windows.starts[window_index])
        entry: dict[str, Any] = {
            "kind": kind,
            "end_time": str(ctx.windows.end_times[window_index]),
            "group": str(ctx.windows.groups[window_index]),
            "error": clean_float(errors[row]),
            "fields": {name: values for name, values in _field_values(ctx, window_index).items() if name in shown},
            "heatmap": None,
            "target_history": None,
        }
        if source is not None:
            entry["heatmap"] = [[clean_float(v) for v in step] for step in ctx.field_maps[source][row]]
        if ctx.schema.task == "regression":
            predicted = to_data_units(ctx.point_predictions(outputs[row : row + 1])[0].double().numpy(), scale)
            entry["predicted"] = [clean_float(v) for v in predicted]
            if ctx.schema.output is not None:
                levels = to_data_units(
                    ctx.quantile_outputs(outputs[row : row + 1])[0].double().numpy(), scale
                )  # (H, Q)
                entry["interval"] = {
                    "levels": [ctx.schema.output.quantiles[0], ctx.schema.output.quantiles[-1]],
                    "low": [clean_float(v) for v in levels[:, 0]],
                    "high": [clean_float(v) for v in levels[:, -1]],
                }
            entry["actual"] = [clean_float(v) for v in ctx.windows.targets_raw[window_index]]
            if ctx.windows.target_values is not None:
                history = ctx.windows.target_values[start : start + ctx.schema.window]
                entry["target_history"] = [clean_float(v) for v in history]
        else:
            probabilities = torch.softmax(outputs[row].double(), dim=0).numpy()
            classes = [str(c) for c in (ctx.windows.classes or range(len(probabilities)))]
            entry["predicted"] = classes[int(probabilities.argmax())]
            entry["actual"] = str(ctx.windows.targets_raw[window_index])
            entry["probabilities"] = {c: clean_float(p) for c, p in zip(classes, probabilities)}
        windows.append(entry)
    return PredictionsResult(
        error_name="log loss" if ctx.schema.task == "classification" else f"MAE ({ctx.schema.target.column})",
        categorical_fields=[f.name for f in ctx.schema.fields if f.kind == "categorical" and len(f.columns) > 1],
        map_source=source,
        fields_shown=shown,
        fields_not_shown=not_shown,
        windows=windows,
    )


def _field_order(ctx: AnalysisContext) -> list[str]:
    """Fields by the best importance available so far (combined, else permutation), else schema order."""
    for source in ("combined", "permutation", "occlusion"):
        entry = ctx.results.get(source, {})
        if entry.get("status") == "ok" and entry.get("field_importance"):
            importance = entry["field_importance"]
            return sorted(ctx.field_names, key=lambda name: -(importance.get(name) or 0.0))
    return list(ctx.field_names)


@dataclasses.dataclass(frozen=True)
class PredictionsParams(Params):
    max_fields: int = setting(8, "input fields drawn per window (the most important)", check=positive_int)


def predictions_figures(report: Any, spec: AnalysisSpec, preds: dict[str, Any]) -> list[Figure]:
    from tsreport.render import plots

    target = report.inputs["schema"]["target"]["column"]
    task = report.inputs["schema"]["task"]
    figures = []
    for index, window in enumerate(preds["windows"]):
        where = f" in {window['group']}" if window["group"] else ""
        chart = plots.prediction_window(
            window,
            preds["fields_shown"],
            report.fields,
            target=target,
            task=task,
            categorical=preds.get("categorical_fields", []),
        )
        alt = (
            f"Window ending {window['end_time']}{where} ({window['kind']}): its input fields over time, "
            f"the prediction against the actual value, and its attribution map by field and time step."
        )
        figures.append((f"predictions_{index}", chart, alt))
    return figures


SPEC = AnalysisSpec(
    "predictions",
    FIGURES,
    predictions,
    "Individual predictions",
    params=PredictionsParams,
    needs=(NEEDS_MAPS,),
    figures=predictions_figures,
)
