"""`gradient_shap`: expected gradients (GradientSHAP), an attribution method in one file.

For each explained window x, ``n_samples`` baselines b are drawn from the explained windows
themselves (the data's own distribution, not one reference point), a point on the straight line
from b to x is drawn (α uniform in [0, 1]), optional Gaussian noise of ``stdevs`` (model units) is
added to x, and the attribution is the mean over the samples of

    (x − b) ⊙ ∂f/∂x evaluated at b + α (x − b).

In expectation this is integrated gradients averaged over baselines from the data: for a linear
model it is w ⊙ (x − E[b]) exactly. It is the algorithm of captum's ``GradientShap``
(``captum.attr.GradientShap``: a noise tunnel over input-minus-baseline × gradient with random
baselines and α); the draws are made here, from the analysis's seeded generator and per window, so a
run is reproducible and does not depend on ``--batch-size``, and the gradients go through the same
batched backward passes as the other gradient methods (every horizon step from one forward).

Opt-in (not in the default battery): ``--analyses ...,gradient_shap``, and add it to
``combined: {methods: [...]}`` to average it into the headline ranking.

References
----------
Lundberg, S. M., Lee, S.-I. (2017). A unified approach to interpreting model predictions. NeurIPS.
Erion, G., Janizek, J. D., Sturmfels, P., Lundberg, S. M., Lee, S.-I. (2021). Improving performance of
deep learning models with axiomatic attribution priors and expected gradients. Nature Machine Intelligence.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from tsreport.analyses._base import ATTRIBUTION_MAP, AnalysisContext, AnalysisSpec
from tsreport.analyses.aggregation import AttributionResult, attribution_figures
from tsreport.analyses.gradients import _result, _select_all, path_gradients
from tsreport.exceptions import UsageError
from tsreport.params import Params, is_number, positive_int, setting


def _stdevs(value: Any, label: str) -> None:
    if not is_number(value) or not 0 <= value < 1e6:
        raise UsageError(f"Invalid {label} '{value}': give a number >= 0 (model units; 0 = no noise).")


@dataclasses.dataclass(frozen=True)
class GradientShapParams(Params):
    n_samples: int = setting(32, "baselines (and points on the path) drawn per window", check=positive_int)
    stdevs: float = setting(0.0, "std of Gaussian noise added to the input per sample (model units)", check=_stdevs)


def draws(
    count: int, n_samples: int, stdevs: float, shape: tuple[int, int], rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per window: (count, S) baseline rows, (count, S) α in [0, 1), (count, S, T, C) noise or None.

    All drawn up front, in window order, so they do not depend on how the windows are batched.
    """
    baselines = torch.from_numpy(rng.integers(0, count, size=(count, n_samples)))
    alphas = torch.from_numpy(rng.random((count, n_samples), dtype=np.float32))
    noise = None
    if stdevs > 0:
        noise = torch.from_numpy(rng.standard_normal((count, n_samples, *shape), dtype=np.float32)) * stdevs
    return baselines, alphas, noise


def gradient_shap(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> AttributionResult:
    n_samples, stdevs = int(params["n_samples"]), float(params["stdevs"])
    inputs = ctx.explained_inputs
    count = inputs.shape[0]
    baseline_rows, alphas, noise = draws(count, n_samples, stdevs, tuple(inputs.shape[1:]), rng)
    per_chunk = max(1, ctx.forward.batch_size // n_samples)  # one chunk's points ≈ one model batch
    select = _select_all(ctx)
    total: torch.Tensor | None = None
    for begin in ctx.progress.counted(range(0, count, per_chunk)):
        rows = torch.arange(begin, min(count, begin + per_chunk))
        x = inputs[rows][:, None].expand(-1, n_samples, -1, -1)  # (m, S, T, C)
        if noise is not None:
            x = x + noise[rows]
        base = inputs[baseline_rows[rows]]  # (m, S, T, C)
        delta = x - base
        points = (base + alphas[rows][:, :, None, None] * delta).reshape(-1, *inputs.shape[1:])
        grads = path_gradients(ctx, points, rows.repeat_interleave(n_samples), select, n_samples)  # (m, S, O, T, C)
        chunk = (grads * delta[:, :, None]).mean(dim=1)  # (m, O, T, C)
        if total is None:
            total = torch.empty((count,) + tuple(chunk.shape[1:]))
        total[rows] = chunk
    assert total is not None
    settings = {"n_samples": n_samples, "stdevs": stdevs, "baselines": "drawn from the explained windows"}
    return _result(ctx, "gradient_shap", total.mean(dim=1), total, settings, signed=True)


SPEC = AnalysisSpec(
    "gradient_shap",
    ATTRIBUTION_MAP,
    gradient_shap,
    "Gradient SHAP",
    params=GradientShapParams,
    default=False,
    section="sections/_attribution.html",
    description="Expected gradients (GradientSHAP, Lundberg and Lee 2017; Erion et al. 2021): for each window, "
    "baselines are drawn from the explained windows themselves and a random point on the path from each baseline "
    "to the input; the gradient there times the input's distance from the baseline, averaged over the draws, is "
    "integrated gradients averaged over the data's own baselines instead of one reference point.",
    figures=attribution_figures,
)
