"""`sensitivity`: how much the prediction moves when a field is nudged.

Numeric fields are scaled by (1 + δ) and, separately, shifted up by one
standard deviation (both in the data's own units); categorical fields are
switched, at every time step, to the most frequent other category. The
importance is the mean |change| of the explained output, in the target's
units for regression (logits for classification).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tsreport.analyses._base import FIELD_SCORES, AnalysisContext, AnalysisSpec, Figure, clean_float
from tsreport.analyses.occlusion import _explained_change
from tsreport.exceptions import UsageError
from tsreport.numeric import unit_factor
from tsreport.params import Params, is_number, setting

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class SensitivityResult:
    """``field_importance`` field -> mean |change| for the one-std shift (numeric) or the
    category switch (categorical); ``effects`` field -> {perturbation: {mean_abs, mean}}
    where ``mean`` is the signed mean change (its direction); ``units`` of the changes.
    """

    delta: float
    units: str
    windows: int
    field_importance: dict[str, float | None]
    effects: dict[str, dict[str, dict[str, float | None]]]
    per_step: list[dict[str, float | None]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _numeric_transforms(ctx: AnalysisContext, field, channel: slice, delta: float) -> dict[str, Transform]:
    mean_model = float(field.scale.mean / field.scale.std) if field.scale else 0.0
    spread = torch.as_tensor(ctx.seen_values()[:, channel].std(axis=0), dtype=torch.float32)

    def scale(x: torch.Tensor) -> torch.Tensor:
        # raw·(1+δ) in model units: x·(1+δ) + δ·mean/std
        out = x.clone()
        out[:, :, channel] = x[:, :, channel] * (1 + delta) + delta * mean_model
        return out

    def shift(x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        out[:, :, channel] = x[:, :, channel] + spread
        return out

    return {"scale": scale, "shift": shift}


def _categorical_transform(ctx: AnalysisContext, channel: slice) -> Transform:
    block = ctx.seen_values()[:, channel]
    order = np.argsort(-np.bincount(block.argmax(axis=1), minlength=block.shape[1]), kind="stable")
    first, second = int(order[0]), int(order[1]) if len(order) > 1 else int(order[0])
    width = channel.stop - channel.start

    def switch(x: torch.Tensor) -> torch.Tensor:
        current = x[:, :, channel].argmax(dim=2)
        target = torch.where(current == first, second, first)
        out = x.clone()
        out[:, :, channel] = torch.nn.functional.one_hot(target, width).to(x.dtype)
        return out

    return switch


def sensitivity(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> SensitivityResult:
    delta = float(params["delta"])
    names: list[tuple[str, str]] = []
    transforms: list[Transform] = []
    slices = ctx.field_channels()
    for field in ctx.schema.fields:
        channel = slices[field.name]
        if field.kind == "categorical" and channel.stop - channel.start > 1:
            names.append((field.name, "switch"))
            transforms.append(_categorical_transform(ctx, channel))
        else:
            for kind, transform in _numeric_transforms(ctx, field, channel, delta).items():
                names.append((field.name, kind))
                transforms.append(transform)

    inputs = ctx.explained_inputs

    def build(window_index: torch.Tensor, perturbation_index: torch.Tensor) -> torch.Tensor:
        batch = inputs[window_index]
        for p in torch.unique(perturbation_index).tolist():
            rows = perturbation_index == p
            batch[rows] = transforms[p](batch[rows])
        return batch

    with ctx.model_steps(inputs.shape[0] * len(transforms)):
        perturbed = ctx.forward.perturbed(inputs.shape[0], len(transforms), build)
    differences = perturbed - ctx.explained_outputs()[:, None, :]  # (n, P, O): perturbed minus original
    factor, units = 1.0, "logits"
    if ctx.schema.task == "regression":
        factor = unit_factor(ctx.schema.target.scale)
        units = f"{ctx.schema.target.column} units"
    change = _explained_change(ctx, differences).double() * factor  # (n, P)

    effects: dict[str, dict[str, dict[str, float | None]]] = {}
    for p, (name, kind) in enumerate(names):
        effects.setdefault(name, {})[kind] = {
            "mean_abs": clean_float(change[:, p].abs().mean()),
            "mean": clean_float(change[:, p].mean()),
        }
    headline = {name: effects[name].get("shift", effects[name].get("switch"))["mean_abs"] for name in effects}
    per_step = None
    if ctx.schema.task == "regression" and ctx.schema.horizon > 1:
        headline_index = [names.index((n, "shift" if (n, "shift") in names else "switch")) for n in effects]
        per_step = [
            {
                n: clean_float((differences[:, p, h].double() * factor).abs().mean())
                for n, p in zip(effects, headline_index)
            }
            for h in range(differences.shape[2])
        ]
    return SensitivityResult(
        delta=delta,
        units=units,
        windows=int(inputs.shape[0]),
        field_importance=headline,
        effects=effects,
        per_step=per_step,
    )


def _delta(value: Any, label: str) -> None:
    if not is_number(value) or not 0 < value <= 10:
        raise UsageError(f"Invalid {label} '{value}': give a number in (0, 10], e.g. 0.1.")


@dataclasses.dataclass(frozen=True)
class SensitivityParams(Params):
    delta: float = setting(0.1, "relative change of each numeric field (the 'scale' effect)", check=_delta)


def sensitivity_figures(report: Any, spec: AnalysisSpec, sens: dict[str, Any]) -> list[Figure]:
    from tsreport.render import plots

    names = report.fields
    headline = [(sens["effects"][n].get("shift") or sens["effects"][n].get("switch") or {}).get("mean") for n in names]
    return [
        (
            "sensitivity_bars",
            plots.signed_bars(names, headline, xlabel=f"mean change of the prediction ({sens['units']})"),
            "Bar chart of the mean signed change of the prediction when each numeric field is raised by one "
            "standard deviation, or each categorical field switched to its most frequent other category.",
        )
    ]


SPEC = AnalysisSpec(
    "sensitivity", FIELD_SCORES, sensitivity, "Sensitivity", params=SensitivityParams, figures=sensitivity_figures
)
