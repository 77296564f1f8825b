"""`combined`: the report's headline ranking, agreed between attribution methods.

Methods measure in different units (output changes, gradients), so each
window's time × field map is first divided by its own maximum; the methods'
normalised maps are then averaged. The result ranks fields by how much of
each window's strongest attribution they carry, whichever method looks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tsreport.analyses._base import AnalysisContext, SkipAnalysis
from tsreport.analyses.aggregation import AttributionResult, summarise


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
    return summarise(ctx, "combined", maps, settings={"methods": available}, notes=notes)
