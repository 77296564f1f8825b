"""`faithfulness`: do the cells a method calls important really move the output? And do methods agree?

Deletion curves: for each method, the top k% most-attributed (time, field)
cells of each window are set to the baseline (k = 0, 5, ..., 50) and the mean
|change| of the explained output is measured, next to the same deletion in a
random order. A faithful method's curve rises fast: its area under the curve
(AUC) is large, and larger than the random order's.

Method agreement: Kendall's tau between every pair of methods' field rankings.

References
----------
Samek, W., Binder, A., Montavon, G., Lapuschkin, S., Müller, K.-R. (2017).
Evaluating the visualization of what a deep neural network has learned. IEEE TNNLS.
Petsiuk, V., Das, A., Saenko, K. (2018). RISE: randomized input sampling for
explanation of black-box models. BMVC.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from scipy import stats
from scipy.integrate import trapezoid  # np.trapezoid is numpy 2 only; install_requires allows 1.24

from tsreport.analyses._base import (
    FIGURES,
    NEEDS_MAPS,
    AnalysisContext,
    AnalysisSpec,
    Figure,
    SkipAnalysis,
    clean_float,
)
from tsreport.exceptions import UsageError
from tsreport.params import Params, is_number, positive_int, setting


@dataclasses.dataclass(frozen=True)
class FaithfulnessResult:
    """``fractions`` (K,) deleted share of cells; ``curves`` method -> (K,) mean |Δoutput|
    (``random`` included); ``auc`` method -> area under its curve; ``auc_ratio`` method ->
    auc / random's auc; ``ranking`` methods by AUC, best first; ``agreement`` {methods,
    tau (M × M Kendall tau of field rankings)}."""

    windows: int
    fractions: list[float]
    curves: dict[str, list[float | None]]
    auc: dict[str, float | None]
    auc_ratio: dict[str, float | None]
    ranking: list[str]
    agreement: dict[str, Any]
    units: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _cell_ranks(maps: np.ndarray) -> torch.Tensor:
    """(n, T, F) maps -> (n, T·F) rank of each cell, 0 = most attributed (ties by position)."""
    flat = maps.reshape(maps.shape[0], -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :].repeat(flat.shape[0], 0), axis=1)
    return torch.from_numpy(ranks)


def deletion_curves(
    ctx: AnalysisContext, maps: dict[str, np.ndarray], fractions: list[float], rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], int]:
    """Mean |Δ explained output| after deleting the top fraction of cells, per method and for a random order."""
    rows = ctx.explained_inputs.shape[0]
    count = next(iter(maps.values())).shape[0] if maps else rows
    inputs = ctx.explained_inputs[:count]
    window, fields = ctx.schema.window, len(ctx.field_names)
    cells = window * fields
    ranks = [_cell_ranks(maps[name][:count]) for name in maps]
    random_ranks = torch.from_numpy(np.argsort(rng.random((count, cells)), axis=1).argsort(axis=1))
    ranks.append(random_ranks)
    names = [*maps, "random"]
    deleted = torch.tensor([int(round(f * cells)) for f in fractions])
    channel_field = torch.zeros(ctx.schema.channels, dtype=torch.long)
    for index, channel in enumerate(ctx.channel_slices()):
        channel_field[channel] = index
    baseline = ctx.baseline.to(inputs.dtype)
    all_ranks = torch.stack(ranks, dim=1)  # (n, M+1, T·F)
    levels = len(fractions)

    def build(window_index: torch.Tensor, perturbation_index: torch.Tensor) -> torch.Tensor:
        method, level = perturbation_index // levels, perturbation_index % levels
        cell_rank = all_ranks[window_index, method].view(-1, window, fields)  # (k, T, F)
        field_mask = cell_rank < deleted[level][:, None, None]
        mask = field_mask[:, :, channel_field]  # (k, T, C)
        return torch.where(mask, baseline, inputs[window_index])

    with ctx.model_steps(count * len(names) * levels):
        outputs = ctx.forward.perturbed(count, len(names) * levels, build)  # (n, P, O)
    rows_index = torch.arange(count)
    original = ctx.select(ctx.explained_outputs()[:count], rows_index).double()
    changed = ctx.select(outputs, rows_index).double()  # (n, P)
    change = (changed - original[:, None]).abs().mean(dim=0).view(len(names), levels).numpy()
    return {name: change[i] for i, name in enumerate(names)}, count


def agreement(results: dict[str, dict[str, Any]], fields: list[str]) -> dict[str, Any]:
    """Kendall's tau between every pair of methods' field importances (1 = same order)."""
    from tsreport.analyses import ranked_analyses

    methods = [
        name
        for name in ranked_analyses()
        if results.get(name, {}).get("status") == "ok" and results[name].get("field_importance")
    ]
    vectors = {m: [results[m]["field_importance"].get(f) or 0.0 for f in fields] for m in methods}
    tau = []
    for left in methods:
        row = []
        for right in methods:
            if left == right:
                row.append(1.0)
                continue
            value = stats.kendalltau(vectors[left], vectors[right]).statistic
            row.append(clean_float(value))
        tau.append(row)
    off_diagonal = [
        tau[i][j] for i in range(len(methods)) for j in range(len(methods)) if i != j and tau[i][j] is not None
    ]
    return {
        "methods": methods,
        "tau": tau,
        "mean_tau": clean_float(np.mean(off_diagonal)) if off_diagonal else None,
    }


def faithfulness(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> FaithfulnessResult:
    step, largest = float(params["step"]), float(params["max_fraction"])
    fractions = [round(f, 6) for f in np.arange(0.0, largest + 1e-9, step)]
    methods = [m for m in params["methods"] if m in ctx.field_maps]
    if not methods:
        raise SkipAnalysis("no attribution method produced per-window maps in this run")
    limit = int(params["max_windows"])
    maps = {m: ctx.field_maps[m][:limit] for m in methods}
    curves, count = deletion_curves(ctx, maps, fractions, rng)
    auc = {name: clean_float(trapezoid(curve, fractions)) for name, curve in curves.items()}
    random_auc = auc["random"] or 0.0
    ratio = {name: clean_float((value or 0.0) / random_auc) if random_auc > 0 else None for name, value in auc.items()}
    ranking = sorted(methods, key=lambda m: -(auc[m] or 0.0))
    units = "logits" if ctx.schema.task == "classification" else "model units"
    return FaithfulnessResult(
        windows=count,
        fractions=fractions,
        curves={name: [clean_float(v) for v in curve] for name, curve in curves.items()},
        auc=auc,
        auc_ratio=ratio,
        ranking=ranking,
        agreement=agreement(ctx.results, ctx.field_names),
        units=units,
    )


def _step(value: Any, label: str) -> None:
    if not (is_number(value) and 0 < value <= 0.5):
        raise UsageError(f"Invalid {label} '{value}': give a fraction in (0, 0.5], e.g. 0.05.")


def _default_methods(selected: tuple[str, ...] | None) -> list[str]:
    """Every map of the default battery, and of an opt-in method when --analyses selects it."""
    from tsreport.analyses import BY_NAME, map_producers

    return [name for name in map_producers() if BY_NAME[name].default or (selected and name in selected)]


@dataclasses.dataclass(frozen=True)
class FaithfulnessParams(Params):
    step: float = setting(0.05, "share of cells deleted per point of the curve", check=_step)
    max_fraction: float = setting(0.5, "largest share of cells deleted")
    max_windows: int = setting(256, "explained windows the curves use", check=positive_int)
    methods: list[str] = setting(help="maps whose deletion curves are drawn", default_for=_default_methods)

    @classmethod
    def check_together(cls, name: str, values: Any) -> None:
        largest = values["max_fraction"]
        if not (isinstance(largest, (int, float)) and values["step"] <= largest <= 1):
            raise UsageError(f"Invalid {name} max_fraction '{largest}': give a fraction in [step, 1].")


def faithfulness_figures(report: Any, spec: AnalysisSpec, faith: dict[str, Any]) -> list[Figure]:
    from tsreport.render import plots

    figures = [
        (
            "faithfulness_curves",
            plots.deletion_curves(
                faith["fractions"], faith["curves"], ylabel=f"mean |change of output| ({faith['units']})"
            ),
            "Deletion curves: the mean change of the output as more of each window's most-attributed cells are set "
            f"to the baseline, per method, against a random order; best area under the curve: {faith['ranking'][0]}.",
        )
    ]
    agreement = faith["agreement"]
    if len(agreement["methods"]) > 1:
        figures.append((
            "faithfulness_agreement",
            plots.agreement_matrix(agreement["methods"], agreement["tau"]),
            "Matrix of Kendall's tau between the field rankings of every pair of methods (1 = same order).",
        ))  # fmt: skip
    return figures


SPEC = AnalysisSpec(
    "faithfulness",
    FIGURES,
    faithfulness,
    "Faithfulness and agreement",
    params=FaithfulnessParams,
    needs=(NEEDS_MAPS,),
    figures=faithfulness_figures,
)
