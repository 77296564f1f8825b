"""Gradient methods: `gradient_x_input`, `saliency` and `integrated_gradients`.

All run one batched forward and backward per chunk of windows (never one
window at a time) through Engine.gradients. For a horizon of H > 1 steps
the gradient of each step is taken (H backward passes on one forward) and the
explained mean over steps is their average, by linearity, so per-step
importances cost no extra forward pass.

References
----------
Simonyan, K., Vedaldi, A., Zisserman, A. (2014). Deep inside convolutional
networks: visualising image classification models and saliency maps. ICLR workshop.
Shrikumar, A., Greenside, P., Shcherbina, A., Kundaje, A. (2016). Not just a black
box: learning important features through propagating activation differences. arXiv:1605.01713.
Sundararajan, M., Taly, A., Yan, Q. (2017). Axiomatic attribution for deep networks. ICML.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from tsreport.analyses._base import ATTRIBUTION_MAP, AnalysisContext, AnalysisSpec, SkipAnalysis, clean_float
from tsreport.analyses.aggregation import (
    AttributionResult,
    attribution_figures,
    field_maps,
    signed_field_totals,
    summarise,
)
from tsreport.engine import Masked, NoGradient, Selector
from tsreport.exceptions import UsageError
from tsreport.numeric import share_rows, shares
from tsreport.params import Params, boolean, is_number, one_of, optional_positive_int, positive_int, setting

CUDNN_NOTE = "cuDNN was disabled for the backward passes (cuDNN cannot run RNN backward in eval mode)."


def _select_all(ctx: AnalysisContext) -> Selector:
    """(k, O) outputs -> (k, S): every horizon step (regression) or the predicted class's score."""
    return Selector(ctx.explained_classes())


def _notes(ctx: AnalysisContext) -> list[str]:
    return [CUDNN_NOTE] if ctx.forward.device.type == "cuda" else []


def input_gradients(ctx: AnalysisContext) -> torch.Tensor:
    """(n, S, T, C) gradients at the explained windows, computed once and shared by two methods."""

    def compute() -> torch.Tensor:
        try:
            with ctx.model_steps(ctx.explained_inputs.shape[0]):
                return ctx.forward.gradients(ctx.explained_inputs, _select_all(ctx))
        except NoGradient as error:
            raise SkipAnalysis(str(error)) from None

    return ctx.shared("input_gradients", compute)


def _result(
    ctx: AnalysisContext,
    method: str,
    attributions: torch.Tensor,
    per_step_attr: torch.Tensor,
    settings: dict,
    *,
    signed: bool,
) -> AttributionResult:
    """Summarise (n, T, C) attributions, plus (n, S, T, C) per-step ones when S > 1."""
    slices = ctx.channel_slices()
    per_step = None
    if per_step_attr.shape[1] > 1:
        per_step = [field_maps(per_step_attr[:, s], slices) for s in range(per_step_attr.shape[1])]
    maps = field_maps(attributions, slices)
    tsr = rescaled = None
    if settings.get("tsr"):
        rescaled = tsr_rescale(maps, time_relevance(ctx), float(settings["tsr_threshold"]))
        tsr = summarise_maps(ctx, rescaled)
    result = summarise(
        ctx,
        method,
        maps,
        signed=signed_field_totals(attributions, slices) if signed else None,
        per_step_maps=per_step,
        settings=settings,
        notes=_notes(ctx),
    )
    if tsr is None:
        return result
    return dataclasses.replace(result, tsr=tsr, maps={**result.maps, f"{method}+tsr": rescaled.astype(np.float32)})


def time_relevance(ctx: AnalysisContext) -> np.ndarray:
    """(n, T) |change of the explained output| when one whole time step is set to the baseline.

    The first stage of Temporal Saliency Rescaling; computed once per run with the
    perturbation engine (T perturbations per window) and shared by every gradient method.
    """

    def compute() -> np.ndarray:
        from tsreport.analyses.occlusion import _explained_change

        window, channels = ctx.schema.window, ctx.schema.channels
        masks = torch.zeros((window, window, channels), dtype=torch.bool)
        masks[torch.arange(window), torch.arange(window)] = True
        inputs = ctx.explained_inputs
        build = Masked(inputs, masks, ctx.baseline.to(inputs.dtype))
        with ctx.model_steps(inputs.shape[0] * window):
            outputs = ctx.forward.perturbed(inputs.shape[0], window, build)
        change = _explained_change(ctx, ctx.explained_outputs()[:, None, :] - outputs)
        return change.abs().double().numpy()

    return ctx.shared("time_relevance", compute)


def tsr_rescale(maps: np.ndarray, relevance: np.ndarray, threshold: float) -> np.ndarray:
    """Temporal Saliency Rescaling of (n, T, F) field maps by (n, T) time relevance.

    Steps whose relevance is at least ``threshold`` × the window's mean relevance are kept;
    within a kept step the fields share the step's relevance in proportion to the method's
    own map; every other step is zero. The rescaled map of a window sums to the relevance of
    its kept steps, so time comes from perturbation and the field split from the gradients.

    References
    ----------
    Ismail, A. A., Gunady, M., Corrada Bravo, H., Feizi, S. (2020). Benchmarking deep
    learning interpretability in time series predictions. NeurIPS.
    """
    kept = relevance >= threshold * relevance.mean(axis=1, keepdims=True)
    return share_rows(maps) * (relevance * kept)[:, :, None]


def summarise_maps(ctx: AnalysisContext, maps: np.ndarray) -> dict[str, Any]:
    """field_importance, share, time_profile and heatmap of (n, T, F) maps (for the TSR variant)."""
    names = ctx.field_names
    importance = {name: clean_float(v) for name, v in zip(names, maps.sum(axis=1).mean(axis=0))}
    return {
        "field_importance": importance,
        "share": shares(importance),
        "time_profile": [clean_float(v) for v in maps.sum(axis=2).mean(axis=0)],
        "heatmap": [[clean_float(v) for v in row] for row in maps.mean(axis=0)],
    }


def gradient_x_input(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> AttributionResult:
    per_step = input_gradients(ctx) * ctx.explained_inputs[:, None]
    # The explained scalar is the mean over steps: its gradient is the mean of the steps' gradients.
    return _result(ctx, "gradient_x_input", per_step.mean(dim=1), per_step, dict(params), signed=True)


def saliency(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> AttributionResult:
    grads = input_gradients(ctx)
    return _result(ctx, "saliency", grads.mean(dim=1).abs(), grads.abs(), dict(params), signed=False)


def path_gradients(
    ctx: AnalysisContext, points: torch.Tensor, point_rows: torch.Tensor, select: Any, per_window: int
) -> torch.Tensor:
    """Gradients of each window's explained output at points on its paths, shape (m, per_window, O, T, C).

    ``points`` holds ``per_window`` consecutive points for each of m windows; ``point_rows[i]`` is the
    window of point i, so that ``select`` picks that window's output (its class, its horizon steps).
    A model without gradients skips the analysis.
    """

    try:
        grads = ctx.forward.gradients(points, select.rows(point_rows))  # (m·per_window, O, T, C)
    except NoGradient as error:
        raise SkipAnalysis(str(error)) from None
    return grads.view(-1, per_window, *grads.shape[1:])


def integration_points(n_steps: int, method: str) -> tuple[list[float], list[float]]:
    """Captum's quadrature of the path integral: (step sizes, alphas) in [0, 1]."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters(method)
    return list(step_sizes(n_steps)), list(alphas(n_steps))


def integrated_gradients(
    ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator
) -> AttributionResult:
    n_steps = int(params["n_steps"])
    method = str(params["method"])
    internal = int(params["internal_batch_size"] or ctx.forward.batch_size)
    step_sizes, alphas = integration_points(n_steps, method)
    alpha = torch.tensor(alphas, dtype=torch.float32)
    weight = torch.tensor(step_sizes, dtype=torch.float32)
    inputs = ctx.explained_inputs
    baseline = ctx.baseline.to(inputs.dtype)
    count = inputs.shape[0]
    # Windows per chunk so one chunk's path (windows × steps) is about one internal batch:
    # memory stays bounded whatever the number of windows.
    per_chunk = max(1, internal // n_steps)
    select = _select_all(ctx)
    total: torch.Tensor | None = None
    for begin in ctx.progress.counted(range(0, count, per_chunk)):
        window_index = torch.arange(begin, min(count, begin + per_chunk))
        x = inputs[window_index]
        delta = x - baseline
        path = (baseline + alpha[None, :, None, None] * delta[:, None]).reshape(-1, *x.shape[1:])
        grads = path_gradients(ctx, path, window_index.repeat_interleave(n_steps), select, n_steps)  # (m, k, S, T, C)
        integral = torch.einsum("k,mkstc->mstc", weight, grads)
        chunk = integral * delta[:, None]
        if total is None:
            total = torch.empty((count,) + tuple(chunk.shape[1:]))
        total[window_index] = chunk
    assert total is not None
    result = _result(
        ctx,
        "integrated_gradients",
        total.mean(dim=1),
        total,
        {**params, "internal_batch_size": internal},
        signed=True,
    )
    return _with_completeness(ctx, result, total)


def _with_completeness(
    ctx: AnalysisContext, result: AttributionResult, attributions: torch.Tensor
) -> AttributionResult:
    """IG's attributions should sum to f(x) − f(baseline); report how far off the quadrature is."""
    baseline_input = ctx.baseline.to(ctx.explained_inputs.dtype)[None, None].expand(1, *ctx.explained_inputs.shape[1:])
    baseline_output = ctx.forward(baseline_input)
    outputs = ctx.explained_outputs()
    rows = torch.arange(outputs.shape[0])
    explained = ctx.select(outputs, rows).double()
    at_baseline = ctx.select(baseline_output.expand(outputs.shape[0], -1), rows).double()
    gap = explained - at_baseline
    error = (attributions.mean(dim=1).double().sum(dim=(1, 2)) - gap).abs()
    relative = float(error.mean() / gap.abs().mean()) if float(gap.abs().mean()) > 0 else 0.0
    note = f"Completeness: attributions sum to f(x) − f(baseline) within {relative:.2%} on average (mean |error| {float(error.mean()):.3g})."
    return dataclasses.replace(
        result, notes=[*result.notes, note], settings={**result.settings, "completeness_error": relative}
    )


# --------------------------------------------------------------------------- settings and specs

IG_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


def _tsr_threshold(value: Any, label: str) -> None:
    if not is_number(value) or value < 0:
        raise UsageError(f"Invalid {label} '{value}': give a number >= 0 (1 = the mean).")


_TSR_HELP = "Temporal Saliency Rescaling: time from perturbation, fields from the gradients"
_THRESHOLD_HELP = "TSR keeps the steps whose relevance is at least this x the window's mean"


@dataclasses.dataclass(frozen=True)
class GradientParams(Params):
    tsr: bool = setting(False, _TSR_HELP, check=boolean)
    tsr_threshold: float = setting(1.0, _THRESHOLD_HELP, check=_tsr_threshold)


@dataclasses.dataclass(frozen=True)
class IntegratedGradientsParams(Params):
    n_steps: int = setting(50, "points of the path integral", check=positive_int)
    method: str = setting("gausslegendre", "quadrature of the path integral", check=one_of(IG_METHODS))
    internal_batch_size: int | None = setting(
        None, "path points per model call (default: --batch-size)", check=optional_positive_int
    )
    tsr: bool = setting(False, _TSR_HELP, check=boolean)
    tsr_threshold: float = setting(1.0, _THRESHOLD_HELP, check=_tsr_threshold)


GRADIENT_X_INPUT = AnalysisSpec(
    "gradient_x_input",
    ATTRIBUTION_MAP,
    gradient_x_input,
    "Gradient × input",
    params=GradientParams,
    section="sections/_attribution.html",
    description="The gradient of the output with respect to each input cell, times the input's value (in the "
    "model's units): a first-order estimate of each cell's contribution. Cheap and exact for linear models; "
    "local for non-linear ones.",
    figures=attribution_figures,
)
INTEGRATED_GRADIENTS = AnalysisSpec(
    "integrated_gradients",
    ATTRIBUTION_MAP,
    integrated_gradients,
    "Integrated gradients",
    params=IntegratedGradientsParams,
    section="sections/_attribution.html",
    description="Gradients averaged along the straight path from the baseline to the input, times the input's "
    "distance from the baseline (Sundararajan et al. 2017). The attributions of a window add up to the output's "
    "change from the baseline.",
    figures=attribution_figures,
)
SALIENCY = AnalysisSpec(
    "saliency",
    ATTRIBUTION_MAP,
    saliency,
    "Saliency",
    params=GradientParams,
    section="sections/_attribution.html",
    description="The size of the gradient of the output with respect to each input cell (|∂f/∂x|): how sensitive "
    "the output is to a small change there, whatever the input's value.",
    figures=attribution_figures,
)
