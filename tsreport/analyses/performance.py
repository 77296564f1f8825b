"""`performance`: how well the model predicts, in the target's own units."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from tsreport.analyses._base import FIGURES, AnalysisContext, AnalysisSpec, Figure, clean_float
from tsreport.numeric import log_loss, to_data_units

MAX_SCATTER_POINTS = 600


@dataclasses.dataclass(frozen=True)
class PerformanceResult:
    """Metrics over every window (not only the explained ones).

    Regression: ``overall`` {mae, rmse, r2}; ``per_step`` H such dicts;
    ``per_group`` group -> dict with ``windows``; ``persistence`` the same
    metrics for the naive forecast "the target stays at its last input value"
    when the target is also an input field; ``scatter`` a seeded sample of
    (actual, predicted) pairs at the first horizon step.
    Quantile heads: the point metrics are those of the quantile nearest the median, and
    ``quantiles`` holds ``levels``, ``pinball`` {level: mean pinball loss}, ``mean_pinball``,
    ``interval`` [low, high] levels, ``coverage`` (share of truths inside the interval) beside
    ``nominal`` (high - low), ``mean_width``, ``crossing`` (share of predictions whose quantiles
    are out of order), and ``per_step`` H dicts {mean_pinball, coverage}; all in target units.
    Classification: ``overall`` {accuracy, log_loss, majority_accuracy};
    ``confusion`` K x K counts (rows actual, columns predicted); ``classes``.
    """

    task: str
    windows: int
    overall: dict[str, float | None]
    per_step: list[dict[str, float | None]] = dataclasses.field(default_factory=list)
    per_group: dict[str, dict[str, float | None]] = dataclasses.field(default_factory=dict)
    persistence: dict[str, float | None] | None = None
    scatter: dict[str, list[float]] | None = None
    confusion: list[list[int]] | None = None
    classes: list[str] | None = None
    quantiles: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()  # for the report's warnings (not part of the entry)

    def to_dict(self) -> dict[str, Any]:
        entry = dataclasses.asdict(self)
        del entry["warnings"]
        return entry


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """MAE, RMSE and R² over all elements (float64)."""
    error = predicted - actual
    mse = float(np.mean(error**2))
    variance = float(np.mean((actual - actual.mean()) ** 2))
    r2 = 1.0 - mse / variance if variance > 0 else float("nan")
    return {
        "mae": clean_float(np.mean(np.abs(error))),
        "rmse": clean_float(np.sqrt(mse)),
        "r2": clean_float(r2),
    }


def to_target_units(ctx: AnalysisContext, outputs: torch.Tensor) -> np.ndarray:
    """Regression outputs in the target's units (undo the target's scale)."""
    return to_data_units(outputs.double().numpy(), ctx.schema.target.scale)


def pinball_loss(actual: np.ndarray, predicted: np.ndarray, level: float) -> np.ndarray:
    """Elementwise pinball (quantile) loss of ``predicted`` as the ``level`` quantile of ``actual``.

    References
    ----------
    Koenker, R., Bassett, G. (1978). Regression quantiles. Econometrica 46(1), 33-50.
    """
    error = actual - predicted
    return np.maximum(level * error, (level - 1.0) * error)


def quantile_metrics(actual: np.ndarray, predicted: np.ndarray, levels: tuple[float, ...]) -> dict[str, Any]:
    """Pinball loss per level and interval coverage; ``actual`` (N, H), ``predicted`` (N, H, Q) in target units."""
    losses = np.stack([pinball_loss(actual, predicted[:, :, q], level) for q, level in enumerate(levels)], axis=2)
    low, high = predicted[:, :, 0], predicted[:, :, -1]
    inside = (actual >= low) & (actual <= high)
    crossing = np.any(np.diff(predicted, axis=2) < 0, axis=2)
    return {
        "levels": list(levels),
        "pinball": {f"{level:g}": clean_float(losses[:, :, q].mean()) for q, level in enumerate(levels)},
        "mean_pinball": clean_float(losses.mean()),
        "interval": [levels[0], levels[-1]],
        "coverage": clean_float(inside.mean()),
        "nominal": round(levels[-1] - levels[0], 10),
        "mean_width": clean_float((high - low).mean()),
        "crossing": clean_float(crossing.mean()),
        "per_step": [
            {"mean_pinball": clean_float(losses[:, h].mean()), "coverage": clean_float(inside[:, h].mean())}
            for h in range(actual.shape[1])
        ],
    }


def performance(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> PerformanceResult:
    predictions = ctx.all_predictions()
    if ctx.schema.task == "classification":
        return _classification(ctx, predictions)
    if ctx.schema.output is None:
        return _regression(ctx, to_target_units(ctx, predictions), rng)
    full = to_target_units(ctx, ctx.quantile_outputs(predictions))  # (N, H, Q)
    result = _regression(ctx, full[:, :, ctx.schema.output.point_index], rng)
    metrics = quantile_metrics(ctx.windows.targets_raw.astype(np.float64), full, ctx.schema.output.quantiles)
    warnings = ()
    if metrics["crossing"]:
        warnings = (
            f"The model's quantiles are out of order (a lower level above a higher one) in "
            f"{100 * metrics['crossing']:.1f}% of its predictions; intervals and pinball losses are those of the raw outputs.",
        )
    return dataclasses.replace(result, quantiles=metrics, warnings=warnings)


def _regression(ctx: AnalysisContext, predicted: np.ndarray, rng: np.random.Generator) -> PerformanceResult:
    windows = ctx.windows
    actual = windows.targets_raw.astype(np.float64)
    per_step = [regression_metrics(actual[:, h], predicted[:, h]) for h in range(actual.shape[1])]
    per_group: dict[str, dict[str, float | None]] = {}
    if ctx.schema.group:
        for name in windows.group_names:
            mask = windows.groups == name
            if mask.any():
                per_group[name] = {"windows": int(mask.sum()), **regression_metrics(actual[mask], predicted[mask])}
    persistence = None
    target = ctx.schema.target.column
    for field in ctx.schema.fields:
        if field.columns == (target,):
            channel = ctx.field_channels()[field.name].start
            last = windows.values[windows.starts + windows.window - 1, channel].astype(np.float64)
            last = to_data_units(last, field.scale)
            persistence = regression_metrics(actual, np.repeat(last[:, None], actual.shape[1], axis=1))
    count = actual.shape[0]
    chosen = np.sort(rng.choice(count, size=min(count, MAX_SCATTER_POINTS), replace=False))
    scatter = {
        "actual": [float(v) for v in actual[chosen, 0]],
        "predicted": [float(v) for v in predicted[chosen, 0]],
    }
    return PerformanceResult(
        task="regression",
        windows=count,
        overall=regression_metrics(actual, predicted),
        per_step=per_step,
        per_group=per_group,
        persistence=persistence,
        scatter=scatter,
    )


def _classification(ctx: AnalysisContext, scores: torch.Tensor) -> PerformanceResult:
    labels = torch.as_tensor(ctx.windows.targets, dtype=torch.long)
    mean_log_loss = float(log_loss(scores, labels).mean())
    predicted = scores.argmax(dim=1)
    n_classes = scores.shape[1]
    confusion = torch.zeros((n_classes, n_classes), dtype=torch.long)
    confusion.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    counts = np.bincount(labels.numpy(), minlength=n_classes)
    return PerformanceResult(
        task="classification",
        windows=int(labels.shape[0]),
        overall={
            "accuracy": clean_float((predicted == labels).double().mean()),
            "log_loss": clean_float(mean_log_loss),
            "majority_accuracy": clean_float(counts.max() / counts.sum()),
        },
        confusion=confusion.tolist(),
        classes=[str(c) for c in (ctx.windows.classes or range(n_classes))],
    )


def performance_figures(report: Any, spec: AnalysisSpec, perf: dict[str, Any]) -> list[Figure]:
    """Predicted against actual and the error per horizon step (regression), or the confusion matrix."""
    from tsreport.render import plots

    target = report.inputs["schema"]["target"]["column"]
    figures = []
    if perf["task"] == "regression":
        scatter = perf.get("scatter") or {}
        if scatter.get("actual"):
            figures.append((
                "performance_scatter",
                plots.scatter_actual_predicted(scatter["actual"], scatter["predicted"], unit=target),
                f"Scatter of predicted against actual {target} at horizon step 1 for "
                f"{len(scatter['actual'])} windows; points near the dashed diagonal are accurate.",
            ))  # fmt: skip
        if len(perf.get("per_step", [])) > 1:
            figures.append((
                "performance_steps",
                plots.step_metric([s["mae"] for s in perf["per_step"]], ylabel=f"MAE ({target})"),
                "Mean absolute error at each horizon step.",
            ))  # fmt: skip
    elif perf.get("confusion"):
        figures.append((
            "performance_confusion",
            plots.confusion_matrix(perf["confusion"], perf["classes"]),
            "Confusion matrix: counts of windows by actual class (rows) and predicted class (columns).",
        ))  # fmt: skip
    return figures


SPEC = AnalysisSpec("performance", FIGURES, performance, "Model performance", figures=performance_figures)
