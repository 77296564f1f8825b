"""Field aggregation, shared by every attribution method.

An attribution map has one value per window, time step and input channel,
(n, T, C). Users think in fields, so each window's map is folded into a
time × field map by summing |attribution| over the field's channels, and then
summarised over windows. Because the fold is a sum of absolute values, a
field's importance equals the sum of its columns' importances.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from tsreport.analyses._base import AnalysisContext, clean_float
from tsreport.numeric import shares


def field_maps(attributions: torch.Tensor | np.ndarray, slices: list[slice]) -> np.ndarray:
    """|attribution| summed over each field's channels: (n, T, C) -> (n, T, F) float64."""
    values = np.abs(torch.as_tensor(attributions).double().numpy())
    return np.stack([values[:, :, channel].sum(axis=2) for channel in slices], axis=2)


def signed_field_totals(attributions: torch.Tensor | np.ndarray, slices: list[slice]) -> np.ndarray:
    """Signed attribution summed over each field's channels and time: (n, T, C) -> (n, F)."""
    values = torch.as_tensor(attributions).double().numpy()
    return np.stack([values[:, :, channel].sum(axis=(1, 2)) for channel in slices], axis=1)


@dataclasses.dataclass(frozen=True)
class AttributionResult:
    """A method's attributions folded into fields and time.

    ``field_importance`` field -> mean over windows of the sum over time of the
    field's |attribution|; ``share`` the same normalised to sum to 1;
    ``time_profile`` (T,) mean over windows of the sum over fields, oldest step
    first; ``heatmap`` (T, F) mean time × field map; ``field_direction`` field ->
    mean signed attribution (positive: the field pushes the explained output up);
    ``per_step`` H dicts field -> importance for each horizon step (regression,
    H > 1), else None; ``explained`` what scalar was explained; ``settings`` the
    method's resolved settings; ``notes`` anything a reader should know; ``tsr``
    the Temporal Saliency Rescaling variant's field_importance, share, time_profile
    and heatmap when asked for (gradient methods). ``maps`` name -> (n, T, F) float32
    per-window maps for the analyses that come later (not written to results.json).
    """

    method: str
    windows: int
    explained: str
    field_importance: dict[str, float | None]
    share: dict[str, float | None]
    time_profile: list[float | None]
    heatmap: list[list[float | None]]
    field_direction: dict[str, float | None] | None = None
    per_step: list[dict[str, float | None]] | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    tsr: dict[str, Any] | None = None  # gradient methods with `tsr: true`: the rescaled map's summary
    maps: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        entry = dataclasses.asdict(dataclasses.replace(self, maps={}))
        del entry["maps"]
        return entry


def summarise(
    ctx: AnalysisContext,
    method: str,
    maps: np.ndarray,
    *,
    signed: np.ndarray | None = None,
    per_step_maps: list[np.ndarray] | None = None,
    settings: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> AttributionResult:
    """Summarise per-window field maps (n, T, F) into an AttributionResult that carries the maps."""
    names = ctx.field_names
    importance = maps.sum(axis=1).mean(axis=0)
    field_importance = {name: clean_float(value) for name, value in zip(names, importance)}
    per_step = None
    if per_step_maps is not None:
        per_step = [
            {name: clean_float(v) for name, v in zip(names, step.sum(axis=1).mean(axis=0))} for step in per_step_maps
        ]
    direction = None
    if signed is not None:
        direction = {name: clean_float(v) for name, v in zip(names, signed.mean(axis=0))}
    return AttributionResult(
        method=method,
        windows=int(maps.shape[0]),
        explained=ctx.explained_description(),
        field_importance=field_importance,
        share=shares(field_importance),
        time_profile=[clean_float(v) for v in maps.sum(axis=2).mean(axis=0)],
        heatmap=[[clean_float(v) for v in row] for row in maps.mean(axis=0)],
        field_direction=direction,
        per_step=per_step,
        settings=dict(settings or {}),
        notes=list(notes or []),
        maps={method: maps.astype(np.float32)},
    )


def attribution_figures(report: Any, spec: Any, entry: dict[str, Any]) -> list[tuple[str, str, str]]:
    """An attribution map's charts: field bars, time profile and heatmap."""
    from tsreport.analyses._base import NEEDS_MAPS
    from tsreport.render import plots

    title = spec.title.lower()
    names = report.fields
    importance = entry["field_importance"]
    order = sorted(names, key=lambda n: -(importance.get(n) or 0.0))
    unit = "normalised attribution (each window's peak = 1)" if NEEDS_MAPS in spec.needs else "mean |attribution|"
    profile = entry["time_profile"]
    peak = max(range(len(profile)), key=lambda i: profile[i] or 0.0) - (len(profile) - 1)
    return [
        (
            f"{spec.name}_bars",
            plots.field_bars(names, [importance.get(n) for n in names], xlabel=f"{unit}, summed over time"),
            f"Bar chart of {title} importance per field; most important first: {', '.join(order[:5])}.",
        ),
        (
            f"{spec.name}_time",
            plots.time_profile(profile, ylabel=unit.split(" (")[0]),
            f"{title} summed over fields at each time step of the window; the largest is at step {peak} "
            "(0 = the last input step).",
        ),
        (
            f"{spec.name}_heatmap",
            plots.heatmap(entry["heatmap"], names, label=unit.split(" (")[0]),
            f"Heatmap of {title} by field (rows) and time step (columns), averaged over the explained windows.",
        ),
    ]
