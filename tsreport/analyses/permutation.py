"""`permutation`: how much worse the model gets when a field's values are shuffled.

References
----------
Breiman, L. (2001). Random forests. Machine Learning 45, 5-32.
Fisher, A., Rudin, C., Dominici, F. (2019). All models are wrong, but many are
useful. JMLR 20(177).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from scipy import stats

from tsreport.analyses._base import FIELD_SCORES, AnalysisContext, AnalysisSpec, Figure, clean_float
from tsreport.engine import Permuted
from tsreport.numeric import log_loss, shares, unit_factor
from tsreport.params import Params, positive_int, setting


@dataclasses.dataclass(frozen=True)
class PermutationResult:
    """Permutation importance per field.

    ``field_importance`` field -> mean increase of the loss over ``n_repeats``
    permutations (MSE in target units² for regression, the mean pinball loss in
    target units for a quantile head, log loss for classification); ``std`` its standard deviation over repeats;
    ``interval`` field -> [low, high] 95% t-interval of the mean;
    ``repeats`` field -> the n_repeats individual increases;
    ``share`` the positive importances normalised to sum to 1.
    """

    loss: str
    baseline_loss: float | None
    n_repeats: int
    windows: int
    field_importance: dict[str, float | None]
    std: dict[str, float | None]
    interval: dict[str, list[float | None]]
    repeats: dict[str, list[float | None]]
    share: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def window_losses(ctx: AnalysisContext, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-window loss in float64: MSE over the horizon in target units, log loss, or for a
    quantile head (``outputs`` computed inside ``forward.full_outputs()``) the mean pinball
    loss over the horizon and the quantiles, in target units."""
    if ctx.schema.task == "regression" and ctx.schema.output is not None:
        scale = ctx.schema.target.scale
        levels = torch.tensor(ctx.schema.output.quantiles, dtype=torch.float64)
        error = targets.double()[:, :, None] - ctx.quantile_outputs(outputs).double()  # (k, H, Q)
        loss = torch.maximum(levels * error, (levels - 1.0) * error)
        return loss.mean(dim=(1, 2)) * unit_factor(scale)
    if ctx.schema.task == "regression":
        factor = unit_factor(ctx.schema.target.scale, 2)
        return ((outputs.double() - targets.double()) ** 2).mean(dim=1) * factor
    return log_loss(outputs, targets)


def permutation(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> PermutationResult:
    n_repeats = int(params["n_repeats"])
    inputs = ctx.explained_inputs
    count = inputs.shape[0]
    targets = torch.as_tensor(ctx.windows.targets[ctx.explained])
    baseline_loss = float(window_losses(ctx, ctx.explained_full_outputs(), targets).mean())  # once per run

    # One perturbation per (field, repeat), field-major: the field's whole (T x channels) block
    # moves with its window, so the field's own temporal pattern is kept while its link to the
    # rest is cut. The orders are drawn in that order, as the seed has always drawn them.
    channels = ctx.field_channels()
    names = [field.name for field in ctx.schema.fields]
    orders = torch.stack([torch.as_tensor(rng.permutation(count)) for _ in names for _ in range(n_repeats)])
    spans = [channels[name] for name in names for _ in range(n_repeats)]
    increases: dict[str, list[float]] = {}
    with ctx.model_steps(count * len(spans)), ctx.forward.full_outputs():
        for index, name in enumerate(names):
            # One field's repeats per call (batches never mix perturbations, so the numbers are those of
            # one call for all), so that its progress note follows each field.
            part = slice(index * n_repeats, (index + 1) * n_repeats)
            build = Permuted.of(inputs, orders[part], spans[part])
            outputs = ctx.forward.perturbed(count, n_repeats, build, major="perturbation")
            increases[name] = _increases(ctx, outputs, targets, baseline_loss)
            ctx.progress(f"permutation: {name}")

    importance, spread, interval = summarise_repeats(increases, n_repeats)
    share = shares({name: max(value or 0.0, 0.0) for name, value in importance.items()})
    return PermutationResult(
        loss="log_loss" if ctx.schema.task == "classification" else "pinball" if ctx.schema.output else "mse",
        baseline_loss=clean_float(baseline_loss),
        n_repeats=n_repeats,
        windows=count,
        field_importance=importance,
        std=spread,
        interval=interval,
        repeats={name: [clean_float(v) for v in values] for name, values in increases.items()},
        share=share,
    )


def _increases(ctx: AnalysisContext, outputs: torch.Tensor, targets: torch.Tensor, baseline_loss: float) -> list[float]:
    """Each repeat's mean loss increase, from (n, repeats, O) outputs of the permuted windows."""
    count = outputs.shape[0]
    values = []
    for repeat in range(outputs.shape[1]):
        column = outputs[:, repeat]
        # Summed batch by batch, as the losses of one batch of windows at a time always were.
        total = sum(float(window_losses(ctx, column[part], targets[part]).sum()) for part in ctx.forward.batches(count))
        values.append(total / count - baseline_loss)
    return values


@dataclasses.dataclass(frozen=True)
class PermutationParams(Params):
    n_repeats: int = setting(5, "shuffles of each field (the interval's spread)", check=positive_int)


def permutation_figures(report: Any, spec: AnalysisSpec, perm: dict[str, Any]) -> list[Figure]:
    from tsreport.render import plots

    names = report.fields
    values = [perm["field_importance"].get(n) for n in names]
    intervals = [perm["interval"].get(n, [None, None]) for n in names]
    loss = "MSE (target units²)" if perm["loss"] == "mse" else "log loss"
    order = sorted(names, key=lambda n: -(perm["field_importance"].get(n) or 0.0))
    bars = plots.field_bars(names, values, xlabel=f"increase in {loss} when the field is shuffled", intervals=intervals)
    alt = "Bar chart of permutation importance per field with 95% intervals; most important first: "
    return [("permutation_bars", bars, alt + ", ".join(order[:5]) + ".")]


SPEC = AnalysisSpec(
    "permutation",
    FIELD_SCORES,
    permutation,
    "Permutation importance",
    params=PermutationParams,
    figures=permutation_figures,
)


def summarise_repeats(
    increases: dict[str, list[float]], n_repeats: int
) -> tuple[dict[str, float | None], dict[str, float | None], dict[str, list[float | None]]]:
    """Per field: the mean loss increase over the repeats, its std and a 95% t-interval (None when not finite)."""
    t_quantile = float(stats.t.ppf(0.975, n_repeats - 1)) if n_repeats > 1 else float("nan")
    importance, spread, interval = {}, {}, {}
    for name, values in increases.items():
        array = np.asarray(values, dtype=np.float64)
        mean = float(array.mean())
        std = float(array.std(ddof=1)) if n_repeats > 1 else float("nan")
        half = t_quantile * std / np.sqrt(n_repeats)
        importance[name] = clean_float(mean)
        spread[name] = clean_float(std)
        interval[name] = [clean_float(mean - half), clean_float(mean + half)]
    return importance, spread, interval
