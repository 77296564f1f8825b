"""`combined`: the report's headline ranking, agreed between attribution methods.

Methods measure in different units (output changes, gradients), so each
window's time × field map is first divided by its own maximum; the methods'
normalised maps are then averaged. The result ranks fields by how much of
each window's strongest attribution they carry, whichever method looks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tsreport.analyses._base import (
    ATTRIBUTION_MAP,
    NEEDS_MAPS,
    AnalysisContext,
    AnalysisSpec,
    SkipAnalysis,
    clean_float,
)
from tsreport.analyses.aggregation import AttributionResult, attribution_figures, summarise
from tsreport.exceptions import UsageError
from tsreport.numeric import share_rows
from tsreport.params import Params, setting


def normalise_per_window(maps: np.ndarray) -> np.ndarray:
    """(n, T, F) maps divided by each window's maximum (all-zero windows stay zero)."""
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps, dtype=np.float64), where=peak > 0)


def combined(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> AttributionResult:
    wanted = list(params["methods"])
    available = [method for method in wanted if method in ctx.field_maps]
    if not available:
        raise SkipAnalysis(
            f"none of its methods ({', '.join(wanted)}) produced attributions in this run; "
            "run them (--analyses) or set combined: {methods: [...]} in --config"
        )
    maps = np.mean([normalise_per_window(ctx.field_maps[m].astype(np.float64)) for m in available], axis=0)
    missing = [m for m in wanted if m not in available]
    notes = [f"Averaged over: {', '.join(available)}."]
    if missing:
        notes.append(f"Not available in this run, left out: {', '.join(missing)}.")
    result = summarise(ctx, "combined", maps, settings={"methods": available}, notes=notes)
    per_step = per_step_shares(ctx, available)
    if per_step is not None:
        result = dataclasses.replace(result, per_step=per_step)
        notes.append("By horizon step: each field's share of the step's importance, averaged over the methods.")
    return result


def per_step_shares(ctx: AnalysisContext, methods: list[str]) -> list[dict[str, float | None]] | None:
    """Per horizon step, each field's share of that step's importance, averaged over ``methods``.

    Methods measure in different units, so each step's importances are normalised to sum to 1
    before averaging. None when the horizon is 1 or no method reported steps.
    """
    tables = [
        ctx.results[m]["per_step"]
        for m in methods
        if ctx.results.get(m, {}).get("per_step") and len(ctx.results[m]["per_step"]) > 1
    ]
    if not tables:
        return None
    names = ctx.field_names
    steps = np.array([[[step.get(name) or 0.0 for name in names] for step in table] for table in tables])  # (M, H, F)
    mean_shares = share_rows(steps).mean(axis=0)
    return [{name: clean_float(value) for name, value in zip(names, row)} for row in mean_shares]


def _methods(value: Any, label: str) -> None:
    from tsreport.analyses import attribution_methods

    valid = attribution_methods()
    if not isinstance(value, list) or not value or any(m not in valid for m in value):
        raise UsageError(f"Invalid combined methods {value!r}: give a list drawn from {', '.join(valid)}.")


@dataclasses.dataclass(frozen=True)
class CombinedParams(Params):
    methods: list[str] = setting(
        help="attribution methods averaged (each normalised per window)",
        factory=lambda: ["occlusion", "gradient_x_input"],
        check=_methods,
    )


SPEC = AnalysisSpec(
    "combined",
    ATTRIBUTION_MAP,
    combined,
    "Combined attribution",
    params=CombinedParams,
    needs=(NEEDS_MAPS,),
    section="sections/_attribution.html",
    description="Each method's time × field map is divided by its own peak in every window, then the methods are "
    "averaged, so methods measured in different units count equally. This is the report's headline ranking.",
    figures=attribution_figures,
)
