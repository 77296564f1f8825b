"""`shap`: field-level Shapley values of the explained output.

A player is a field: its whole block of T time steps × its channels. A field is
absent when its block holds the baseline (the schema's ``baseline``), present
when it holds the window's own values, so the game of a window x is
v(S) = f(x with the fields outside S set to the baseline), and

    φ_j = Σ_{S ⊆ F∖{j}} |S|! (J − |S| − 1)! / J! · (v(S ∪ {j}) − v(S)).

Up to ``max_exact_fields`` fields (default 10) every one of the 2^J coalitions
of every explained window is evaluated, in full batches through the perturbation
engine (``Engine.perturbed``), and the sum is taken exactly, in float64.

Beyond that, they are estimated with ``shap.SamplingExplainer`` (Shapley
sampling values) over the binary field vector, seeded: ``n_samples`` paired
evaluations per window (the coalition of the fields before j in a random
permutation, with and without j), first spread evenly over the fields, then by
their variance; shap finally adjusts the estimates so that they add up to
f(x) − f(baseline). ``shap.PermutationExplainer`` would use the evaluations
about twice as well (antithetic permutations), but its masking code is
numba-compiled on first use, uncached: 10–25 s in every new process before the
first window, more than the sampling itself costs on a typical run. Neither
explainer takes a numpy Generator (both draw from numpy's global generator),
so the global generator is seeded from ``rng`` for the call and its state
restored afterwards. The game handed to shap returns the explained scalar of a
whole group of windows per coalition (one output per window), so each of
shap's calls is one batched pass through the engine instead of one window at
a time; the windows of a group share their random draws, and each group of
:data:`WINDOWS_PER_SAMPLE_SET` windows gets its own seed, so sampling errors of
different groups are independent.

Additivity, Σ_j φ_j = f(x) − f(baseline), holds by construction for both
paths; it is checked against f(x) and f(baseline) computed separately, so
the reported error also covers the masking and the batching.

References
----------
Shapley, L. S. (1953). A value for n-person games. Contributions to the Theory
of Games II, 307–317.
Lundberg, S. M., Lee, S.-I. (2017). A unified approach to interpreting model
predictions. NeurIPS. (``shap``.)
Štrumbelj, E., Kononenko, I. (2014). Explaining prediction models and individual
predictions with feature contributions. Knowledge and Information Systems 41, 647–665.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from tsreport.analyses._base import FIELD_SCORES, AnalysisContext, AnalysisSpec, Figure, clean_float
from tsreport.engine import Masked
from tsreport.exceptions import UsageError
from tsreport.numeric import shares
from tsreport.params import Params, positive_int, setting

#: Windows drawn for the beeswarm (their φ and field values are kept in results.json).
MAX_VALUE_WINDOWS = 300
#: Sampling path: windows that share one set of shap's random draws (one seed per set).
WINDOWS_PER_SAMPLE_SET = 128
#: Exact path: a batch spanning more windows than this is built with one gather instead of per-window runs.
MAX_RUNS = 32
#: Exact path: coalition masks up to this many cells (bytes) are materialised; beyond, a broadcast view.
MAX_MASK_CELLS = 1 << 26
#: Exact path: windows whose per-step Shapley values are computed at once (bounds the float64 work array).
WINDOW_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class ShapleyResult:
    """Field Shapley values of the explained scalar, summarised over the explained windows.

    ``field_importance`` field -> mean over windows of |φ| (in the explained
    output's units); ``share`` the same normalised to sum to 1; ``mean_phi``
    field -> mean signed φ (positive: the field moves the output up from its
    value at the baseline); ``expected_value`` f(baseline), the explained
    scalar with every field absent (classification: the baseline's score of
    each window's predicted class, averaged over windows); ``method`` "exact" (all 2^J coalitions) or
    "sampling" (shap's SamplingExplainer); ``coalitions`` coalitions
    evaluated per window; ``additivity_max_error`` the largest
    |Σ_j φ_j − (f(x) − f(baseline))| over windows and
    ``additivity_relative_error`` the same divided by the mean
    |f(x) − f(baseline)|; ``values`` the beeswarm's data for a seeded subset of
    at most 300 windows: {"windows": (m,) indices into the window list,
    "phi": (m, F) φ per window and field, "field_value": (m, F) the field's
    mean standardised value over its block (each channel standardised over
    the whole data), for the colour}; ``per_step`` H dicts field -> mean |φ| of
    each horizon step's output (regression with H > 1), else None;
    ``settings`` the resolved settings and the explainer used; ``notes``
    anything a reader should know.
    """

    method: str
    windows: int
    explained: str
    coalitions: int
    field_importance: dict[str, float | None]
    share: dict[str, float | None]
    mean_phi: dict[str, float | None]
    expected_value: float | None
    additivity_max_error: float | None
    additivity_relative_error: float | None
    values: dict[str, list[Any]]
    per_step: list[dict[str, float | None]] | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def coalition_presence(fields: int) -> torch.Tensor:
    """(2^J, J) bool: coalition s holds field j when bit j of s is set (s = 0: none, 2^J − 1: all)."""
    codes = torch.arange(2**fields, dtype=torch.int64)
    return ((codes[:, None] >> torch.arange(fields)) & 1).bool()


def coalition_masks(ctx: AnalysisContext) -> torch.Tensor:
    """(2^J, T, C) boolean masks, True on the cells that get the baseline (the absent fields' blocks).

    Contiguous, so that building a batch runs over whole (T, C) blocks; past
    :data:`MAX_MASK_CELLS` cells, a broadcast view of (2^J, 1, C) instead.
    """
    absent = ~coalition_presence(len(ctx.field_names))[:, _channel_fields(ctx)]  # (2^J, C)
    masks = absent[:, None, :].expand(-1, ctx.schema.window, -1)
    return masks.contiguous() if masks.numel() <= MAX_MASK_CELLS else masks


def size_weights(fields: int) -> torch.Tensor:
    """(J,) float64: the Shapley weight |S|! (J − |S| − 1)! / J! of a coalition S of each size 0..J−1."""
    total = math.factorial(fields)
    return torch.tensor(
        [math.factorial(k) * math.factorial(fields - k - 1) / total for k in range(fields)], dtype=torch.float64
    )


def shapley_weights(fields: int) -> torch.Tensor:
    """(2^J, J) float64 matrix W with φ = v @ W for coalition values v (n, 2^J).

    W[s, j] = +w(|s| − 1) where coalition s holds field j (s = S ∪ {j}) and −w(|s|) where it
    does not (s = S), with w(k) = k! (J − k − 1)! / J!.
    """
    present = coalition_presence(fields)
    sizes = present.sum(dim=1)
    weight = torch.cat([size_weights(fields), torch.zeros(1, dtype=torch.float64)])
    return torch.where(present, weight[(sizes - 1).clamp(min=0)][:, None], -weight[sizes][:, None])


def exact_shapley(values: torch.Tensor, fields: int) -> torch.Tensor:
    """Exact Shapley values (n, ..., J) from coalition values (n, 2^J, ...), float64.

    The same sum as ``v @ shapley_weights(J)``, taken over the 2^(J−1) pairs
    (S, S ∪ {j}) as weighted differences: a field the model ignores then gets
    exactly 0 rather than the rounding residue of ±w·v terms.
    """
    values = values.double()
    present = coalition_presence(fields)
    sizes = present.sum(dim=1)
    weight = size_weights(fields)
    phi = []
    for j in range(fields):
        without = torch.nonzero(~present[:, j])[:, 0]  # the coalitions S that lack field j
        differences = values[:, without | (1 << j)] - values[:, without]  # (n, 2^(J-1), ...)
        phi.append(torch.tensordot(differences.movedim(1, -1), weight[sizes[without]], dims=1))
    return torch.stack(phi, dim=-1)


def shapley(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> ShapleyResult:
    """Field Shapley values of the explained scalar (and of each horizon step), exact or sampled.

    Parameters
    ----------
    ctx : AnalysisContext
    params : dict
        ``max_exact_fields`` (exact enumeration up to this many fields) and
        ``n_samples`` (the sampling path's shap ``nsamples``: coalition pairs
        per window, two model evaluations each).
    rng : numpy.random.Generator
        Picks the beeswarm's windows and seeds shap's sampling.

    Returns
    -------
    ShapleyResult

    References
    ----------
    Shapley (1953); Lundberg & Lee (2017), see the module docstring.
    """
    names = ctx.field_names
    fields = len(names)
    inputs = ctx.explained_inputs
    count = int(inputs.shape[0])
    per_step_wanted = ctx.schema.task == "regression" and ctx.schema.horizon > 1
    max_exact = int(params["max_exact_fields"])
    n_samples = int(params["n_samples"])
    # Drawn first, so the subset is the same whichever path runs.
    subset = (
        np.sort(rng.choice(count, size=min(count, MAX_VALUE_WINDOWS), replace=False)) if count else np.zeros(0, int)
    )
    notes: list[str] = []
    settings: dict[str, Any] = {"max_exact_fields": max_exact, "n_samples": n_samples}

    if fields <= max_exact:
        method = "exact"
        coalitions = 2**fields
        settings["explainer"] = "exact enumeration of all coalitions"
        phi_all = _exact(ctx, per_step_wanted)  # (n, S, J)
    else:
        method = "sampling"
        used = max(n_samples, 2 * fields)  # shap gives each field an even number of samples, at least 2
        if used > n_samples:
            notes.append(f"n_samples {n_samples} is below 2 per field; {used} were used.")
        coalitions = 2 * used
        settings["explainer"] = "shap.SamplingExplainer (Shapley sampling values, seeded)"
        phi_all = _sampled(ctx, per_step_wanted, used, rng)
        notes.append(
            f"{fields} fields exceed max_exact_fields {max_exact}: the Shapley values are estimated by shap's "
            f"SamplingExplainer from {used} sampled coalition pairs per window ({coalitions} evaluations), "
            "not enumerated over all coalitions."
        )

    phi = phi_all[:, 0, :].numpy()  # (n, J) for the explained scalar
    expected, full = _reference_values(ctx)  # (n,) each
    gap = full - expected
    error = np.abs(phi.sum(axis=1) - gap) if count else np.zeros(0)
    max_error = float(error.max()) if count else 0.0
    mean_gap = float(np.abs(gap).mean()) if count else 0.0
    relative = max_error / mean_gap if mean_gap > 0 else (0.0 if max_error == 0 else None)

    importance = np.abs(phi).mean(axis=0) if count else np.zeros(fields)
    field_importance = {name: clean_float(v) for name, v in zip(names, importance)}
    share = shares(dict(zip(names, importance)), total=float(importance.sum()))
    per_step = None
    if per_step_wanted:
        steps = np.abs(phi_all[:, 1:, :].numpy()).mean(axis=0)  # (H, J)
        per_step = [{name: clean_float(v) for name, v in zip(names, row)} for row in steps]

    return ShapleyResult(
        method=method,
        windows=count,
        explained=ctx.explained_description(),
        coalitions=int(coalitions),
        field_importance=field_importance,
        share=share,
        mean_phi={name: clean_float(v) for name, v in zip(names, phi.mean(axis=0) if count else np.zeros(fields))},
        expected_value=clean_float(expected.mean()) if count else None,
        additivity_max_error=clean_float(max_error),
        additivity_relative_error=clean_float(relative) if relative is not None else None,
        values={
            "windows": [int(ctx.explained[i]) for i in subset],
            "phi": [[clean_float(v) for v in phi[i]] for i in subset],
            "field_value": [[clean_float(v) for v in row] for row in _field_values(ctx, subset)],
        },
        per_step=per_step,
        settings=settings,
        notes=notes,
    )


# --------------------------------------------------------------------------- the two paths


def _exact(ctx: AnalysisContext, per_step: bool) -> torch.Tensor:
    """(n, S, J) exact Shapley values: S = 1 (the explained scalar), or 1 + H with per-step values."""
    inputs = ctx.explained_inputs
    baseline = ctx.baseline.to(inputs.dtype).expand(inputs.shape[1:]).contiguous()  # (T, C)
    fields = len(ctx.field_names)
    masks = coalition_masks(ctx)

    build = Coalitions(inputs, masks, baseline)
    with ctx.model_steps(inputs.shape[0] * masks.shape[0]):
        outputs = ctx.forward.perturbed(inputs.shape[0], masks.shape[0], build)  # (n, 2^J, O)
    parts = []
    for begin in range(0, outputs.shape[0], WINDOW_CHUNK):
        rows = torch.arange(begin, min(begin + WINDOW_CHUNK, outputs.shape[0]))
        parts.append(exact_shapley(_game_values(ctx, outputs[rows], rows, per_step), fields))
    if not parts:
        return torch.zeros((0, 1 + (ctx.schema.horizon if per_step else 0), fields), dtype=torch.float64)
    return torch.cat(parts)


@dataclasses.dataclass(frozen=True)
class Coalitions(Masked):
    """Shapley coalitions as a perturbation: batches built by :func:`coalition_batch` (window-major)."""

    def __call__(self, window_index: torch.Tensor, perturbation_index: torch.Tensor) -> torch.Tensor:
        return coalition_batch(self.inputs, self.baseline, self.masks, window_index, perturbation_index)


def coalition_batch(
    inputs: torch.Tensor,
    baseline: torch.Tensor,
    masks: torch.Tensor,
    window_index: torch.Tensor,
    coalition_index: torch.Tensor,
) -> torch.Tensor:
    """The (k, T, C) windows of the engine's (window, coalition) pairs: ``where(masks[c], baseline, inputs[w])``.

    ``baseline`` is (C,) or (T, C). The engine enumerates pairs window-major,
    so a batch is a few runs of consecutive coalitions of one window each;
    each run is written straight into the batch from the window broadcast over
    its coalitions and a slice of the masks, with no gathered copy of the
    windows or of the masks: at 8 fields on 48 × 8 windows, about twice as fast
    as gathering both first (as ``occlusion`` does), some 3% of a small CNN's
    forward pass instead of 7%.
    """
    count = window_index.shape[0]
    first, last = int(window_index[0]), int(window_index[-1])
    if last - first >= MAX_RUNS:  # many windows with few coalitions each: one gather beats many small runs
        return torch.where(masks[coalition_index], baseline, inputs.index_select(0, window_index))
    perturbations = masks.shape[0]
    start = first * perturbations + int(coalition_index[0])  # the batch's first pair
    batch = torch.empty((count,) + tuple(inputs.shape[1:]), dtype=inputs.dtype)
    for window in range(first, last + 1):
        begin = max(0, window * perturbations - start)
        end = min(count, (window + 1) * perturbations - start)
        coalition = int(coalition_index[begin])
        torch.where(masks[coalition : coalition + end - begin], baseline, inputs[window], out=batch[begin:end])
    return batch


def _sampled(ctx: AnalysisContext, per_step: bool, n_samples: int, rng: np.random.Generator) -> torch.Tensor:
    """(n, S, J) Shapley values estimated by shap.SamplingExplainer over binary field vectors."""
    import shap

    inputs = ctx.explained_inputs
    baseline = ctx.baseline.to(inputs.dtype)
    fields = len(ctx.field_names)
    channel_fields = _channel_fields(ctx)
    steps = 1 + (ctx.schema.horizon if per_step else 0)
    count = int(inputs.shape[0])
    size = WINDOWS_PER_SAMPLE_SET
    groups = [torch.arange(begin, min(begin + size, count)) for begin in range(0, count, size)]
    seeds = rng.integers(0, 2**31 - 1, size=len(groups))
    phi = torch.zeros((count, steps, fields), dtype=torch.float64)
    for rows, seed in ctx.progress.counted(zip(groups, seeds), total=len(groups)):

        def game(present: np.ndarray, rows: torch.Tensor = rows) -> np.ndarray:
            """(m, J) 0/1 field vectors -> (m, k·S) explained values of the group's k windows."""
            absent = ~torch.as_tensor(np.asarray(present) != 0)[:, channel_fields]  # (m, C)

            build = Masked(inputs[rows], absent[:, None, :], baseline)
            outputs = ctx.forward.perturbed(len(rows), absent.shape[0], build)  # (k, m, O)
            values = _game_values(ctx, outputs, rows, per_step)  # (k, m, S)
            return values.permute(1, 0, 2).reshape(absent.shape[0], -1).numpy()

        with _global_numpy_seed(int(seed)):  # shap draws its samples from numpy's global generator
            explainer = shap.SamplingExplainer(game, np.zeros((1, fields)))
            values = explainer.shap_values(np.ones((1, fields)), nsamples=n_samples, silent=True)
        values = np.asarray(values, dtype=np.float64).reshape(fields, len(rows), steps)
        phi[rows] = torch.from_numpy(values).permute(1, 2, 0)
    return phi


@contextlib.contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for shap, and give the caller's state back afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


# --------------------------------------------------------------------------- helpers


def _channel_fields(ctx: AnalysisContext) -> torch.Tensor:
    """(C,) the index of the field that owns each channel."""
    owner = torch.empty(ctx.schema.channels, dtype=torch.int64)
    for index, channel in enumerate(ctx.channel_slices()):
        owner[channel] = index
    return owner


def _game_values(ctx: AnalysisContext, outputs: torch.Tensor, rows: torch.Tensor, per_step: bool) -> torch.Tensor:
    """(k, P, O) outputs of windows ``rows`` -> (k, P, S) float64: the explained scalar, then each step."""
    if ctx.schema.task == "classification":
        classes = ctx.explained_classes()[rows]
        index = classes[:, None, None].expand(-1, outputs.shape[1], 1)
        return outputs.gather(2, index).double()
    scalar = outputs.double().mean(dim=2, keepdim=True)
    return torch.cat([scalar, outputs.double()], dim=2) if per_step else scalar


def _reference_values(ctx: AnalysisContext) -> tuple[np.ndarray, np.ndarray]:
    """f(baseline) and f(x), (n,) each, of the explained scalar, computed apart from the coalitions.

    f(baseline) is one number for regression; for classification it is the
    baseline's score of each window's own predicted class.
    """
    window, channels = ctx.schema.window, ctx.schema.channels
    reference = ctx.baseline.float()[None, None, :].expand(1, window, channels)
    at_baseline = ctx.forward(reference).double()  # (1, O)
    outputs = ctx.explained_outputs().double()
    if ctx.schema.task == "classification":
        classes = ctx.explained_classes()
        return at_baseline[0, classes].numpy(), outputs.gather(1, classes[:, None])[:, 0].numpy()
    return at_baseline.mean(dim=1).expand(outputs.shape[0]).numpy(), outputs.mean(dim=1).numpy()


def _field_values(ctx: AnalysisContext, subset: np.ndarray) -> np.ndarray:
    """(m, F): each field's mean standardised value over its block, for the windows ``subset``."""
    values = ctx.seen_values()
    mean = values.mean(axis=0)
    spread = values.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    if len(subset) == 0:
        return np.zeros((0, len(ctx.field_names)))
    block = (ctx.explained_inputs[torch.from_numpy(subset)].double().numpy() - mean) / spread  # (m, T, C)
    return np.stack([block[:, :, channel].mean(axis=(1, 2)) for channel in ctx.channel_slices()], axis=1)


def _max_exact(value: Any, label: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 20:
        raise UsageError(
            f"Invalid {label} '{value}': give an integer in [0, 20] (exact Shapley values "
            "evaluate 2^fields coalitions per window; 0 always samples), e.g. 10."
        )


@dataclasses.dataclass(frozen=True)
class ShapleyParams(Params):
    max_exact_fields: int = setting(10, "exact values up to this many fields, sampled above", check=_max_exact)
    n_samples: int = setting(2000, "sampled coalitions per window (many fields)", check=positive_int)


def shapley_figures(report: Any, spec: AnalysisSpec, entry: dict[str, Any]) -> list[Figure]:
    from tsreport.render import plots

    names = report.fields
    importance = entry["field_importance"]
    order = ", ".join(sorted(names, key=lambda n: -(importance.get(n) or 0.0))[:5])
    figures = [
        (
            "shap_bars",
            plots.field_bars(names, [importance.get(n) for n in names], xlabel="mean |Shapley value| over windows"),
            f"Bar chart of each field's mean absolute Shapley value; most important first: {order}.",
        )
    ]
    phi = entry["values"]["phi"]
    if phi:
        figures.append((
            "shap_beeswarm",
            plots.shap_beeswarm(names, phi, entry["values"]["field_value"], xlabel="Shapley value"),
            f"Beeswarm of the Shapley value of each field (rows, most important on top) in {len(phi)} windows "
            "(points), coloured from dark blue (low) to yellow (high) by the field's mean value in the window; "
            "points right of zero raised the output.",
        ))  # fmt: skip
    return figures


SPEC = AnalysisSpec(
    "shap", FIELD_SCORES, shapley, "Field Shapley values", params=ShapleyParams, figures=shapley_figures
)
