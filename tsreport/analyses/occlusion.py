"""`occlusion`: replace a block of time steps of one field by its baseline and watch the output.

References
----------
Zeiler, M. D., Fergus, R. (2014). Visualizing and understanding convolutional
networks. ECCV. (Captum: ``captum.attr.Occlusion``.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from tsreport.analyses._base import ATTRIBUTION_MAP, AnalysisContext, AnalysisSpec
from tsreport.analyses.aggregation import (
    AttributionResult,
    attribution_figures,
    field_maps,
    signed_field_totals,
    summarise,
)
from tsreport.engine import Masked
from tsreport.params import Params, optional_positive_int, positive_int, setting


def time_blocks(window: int, size: int, stride: int) -> list[tuple[int, int]]:
    """[begin, end) blocks of exactly ``size`` steps (the whole window when it is shorter), every ``stride``
    steps from the oldest; the last block ends at the window's last step.

    No block is clipped: when (window − size) is not a multiple of ``stride``, the last block starts
    early and overlaps the one before it. A clipped block would be judged on fewer occluded steps
    than the others, and a saturating model changes less than in proportion to the number of steps
    occluded, so its few cells would look more (or less) important per step than the rest.
    """
    size = min(size, window)
    begins = list(range(0, window - size + 1, stride))
    if begins[-1] != window - size:
        begins.append(window - size)
    return [(begin, begin + size) for begin in begins]


def occlusion_masks(ctx: AnalysisContext, size: int, stride: int) -> torch.Tensor:
    """(P, T, C) boolean masks: one per (field, time block), the cells that get the baseline."""
    window, channels = ctx.schema.window, ctx.schema.channels
    masks = []
    for channel in ctx.channel_slices():
        for begin, end in time_blocks(window, size, stride):
            mask = torch.zeros((window, channels), dtype=torch.bool)
            mask[begin:end, channel] = True
            masks.append(mask)
    return torch.stack(masks)


def perturbation_differences(ctx: AnalysisContext, masks: torch.Tensor) -> torch.Tensor:
    """f(x) − f(x with the masked cells set to the baseline), (n, P, O), for the explained windows."""
    inputs = ctx.explained_inputs
    build = Masked(inputs, masks, ctx.baseline.to(inputs.dtype))
    with ctx.model_steps(inputs.shape[0] * masks.shape[0]):
        perturbed = ctx.forward.perturbed(inputs.shape[0], masks.shape[0], build)
    return ctx.explained_outputs()[:, None, :] - perturbed


def occlusion_attributions(ctx: AnalysisContext, size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-cell attributions (n, T, C) of the explained scalar, and per horizon step (n, H, T, C)
    for regression with H > 1 (else None).

    Each (field, time block) is set to the baseline, every block ``size`` steps long (see
    ``time_blocks``); the output change is spread evenly over the block's cells (so a block's
    cells sum to its change). A cell covered by several blocks of its field (a stride below the
    size, or the last block overlapping the one before it) gets the average of those blocks'
    per-cell values.
    """
    masks = occlusion_masks(ctx, size, stride)
    differences = perturbation_differences(ctx, masks)  # (n, P, O)
    weights = masks.double()
    cells = weights.sum(dim=(1, 2))
    coverage = weights.sum(dim=0).clamp(min=1)

    def attribute(change: torch.Tensor) -> torch.Tensor:
        # Each block adds to its own cells only. (A product with the 0/1 masks would turn one
        # block's inf change into NaN on every other field's cells, since inf · 0 = NaN.)
        per_cell = change.double() / cells  # (n, P)
        total = torch.zeros((change.shape[0],) + tuple(masks.shape[1:]), dtype=torch.float64)
        for index, mask in enumerate(masks):
            total[:, mask] += per_cell[:, index, None]
        return total / coverage

    explained = attribute(_explained_change(ctx, differences))
    if ctx.schema.task != "regression" or differences.shape[2] == 1:
        return explained, None  # no per-step maps to report: keep no second copy
    per_output = torch.stack([attribute(differences[:, :, o]) for o in range(differences.shape[2])], dim=1)
    return explained, per_output


def occlusion(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> AttributionResult:
    size = min(int(params["size"]), ctx.schema.window)
    stride = int(params["stride"] or size)
    attributions, per_output = occlusion_attributions(ctx, size, stride)
    slices = ctx.channel_slices()
    per_step = None
    if per_output is not None:
        per_step = [field_maps(per_output[:, h], slices) for h in range(per_output.shape[1])]
    return summarise(
        ctx,
        "occlusion",
        field_maps(attributions, slices),
        signed=signed_field_totals(attributions, slices),
        per_step_maps=per_step,
        settings={"size": size, "stride": stride, "blocks": len(time_blocks(ctx.schema.window, size, stride))},
        notes=prefix_notes(ctx),
    )


def prefix_notes(ctx: AnalysisContext) -> list[str]:
    """What the engine's prefix-state reuse did for this model (tsreport/engine/prefix.py), if it applied."""
    info = ctx.forward.prefix_info
    if not info:
        return []
    layers = ", ".join(info["layers"])
    if info["used"]:
        return [
            f"The recurrent layers ({layers}) ran only the occluded block onward, from each window's clean "
            f"state (checked against the plain path on {info['checked_windows']} windows: largest relative "
            f"difference {info['max_relative_difference']:.1e})."
        ]
    return [f"Prefix-state reuse for the recurrent layers ({layers}) was switched off: {info['reason']}."]


def _explained_change(ctx: AnalysisContext, differences: torch.Tensor) -> torch.Tensor:
    """(n, P, O) output differences of every explained window -> (n, P) differences of the explained scalar."""
    return ctx.select(differences, torch.arange(differences.shape[0]))


@dataclasses.dataclass(frozen=True)
class OcclusionParams(Params):
    size: int = setting(4, "time steps per occluded block", check=positive_int)
    stride: int | None = setting(None, "steps between blocks (default: size)", check=optional_positive_int)


SPEC = AnalysisSpec(
    "occlusion", ATTRIBUTION_MAP, occlusion, "Occlusion", params=OcclusionParams, figures=attribution_figures
)
