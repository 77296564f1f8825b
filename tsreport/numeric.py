"""The numeric conventions every analysis shares, each written once.

* Units: a model sees each scaled column as ``(raw - mean) / std`` (the schema's ``scale``);
  :func:`to_model_units` and :func:`to_data_units` convert values, :func:`unit_factor` converts a
  difference (or a squared difference) of model units into data units.
* Shares: :func:`shares` normalises importances to sum to 1 (the analyses' ``share``, and the
  shares that ``diff``, ``history`` and ``summary.md`` work out for an entry without one);
  :func:`share_rows` does it per row of an array.
* Losses: :func:`log_loss` is the per-window log loss of classification scores.

The explained scalar (the mean over the horizon, or the predicted class's score) is
:meth:`tsreport.analyses._base.AnalysisContext.select`, since it needs each window's predicted class.

Importing this module imports no torch (only :func:`log_loss` needs it): ``tsreport diff`` and
``tsreport history`` read results.json files without it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def to_data_units(values: Any, scale: Any) -> Any:
    """Model units -> data units: ``values · std + mean`` (unchanged when the column has no scale)."""
    return values * scale.std + scale.mean if scale is not None else values


def to_model_units(values: Any, scale: Any) -> Any:
    """Data units -> model units: ``(values − mean) / std`` (unchanged when the column has no scale)."""
    return (values - scale.mean) / scale.std if scale is not None else values


def unit_factor(scale: Any, power: int = 1) -> float:
    """What a difference in model units (``power`` 2: a squared difference) is multiplied by in data units."""
    if scale is None:
        return 1.0
    return scale.std**power if power != 1 else scale.std


def shares(
    values: Mapping[str, float | None], total: float | None = None, *, unknown: str = "zero"
) -> dict[str, float | None]:
    """Each value's share of ``total`` (default: the sum of the values), the one rule for field shares.

    ``values`` are importances, larger for more important fields. A negative value counts as 0:
    below zero, an importance says the field carries none (permutation importance is negative when
    shuffling the field happened to help), and a signed total would give shares below 0 or above 1.
    Every share is 0.0 when the total is not positive; a share that is not finite is None
    (results.json holds no NaN).

    ``unknown`` says what a None value (an importance that could not be worked out) means:

    - ``"zero"`` (default): it counts as 0, so the shares of all the fields sum to 1. For the
      analyses' own ``share`` and for ``history``, whose trend lines need a number for every field.
    - ``"unknown"``: its share is None too, and it is left out of the total. For ``diff`` and
      ``summary.md``, which show such a share as unknown ("n/a") rather than as a 0% they cannot know;
      ``diff`` then counts the value that became null (or stopped being null) as a change.
    """
    if unknown not in ("zero", "unknown"):
        raise ValueError(f"shares: unknown must be 'zero' or 'unknown'; got {unknown!r}.")
    counted = {key: max(value, 0.0) for key, value in values.items() if value is not None}
    if total is None:
        total = sum(counted.values())
    result: dict[str, float | None] = {}
    for key in values:
        if key not in counted and unknown == "unknown":
            result[key] = None
        else:
            result[key] = _finite((counted.get(key) or 0.0) / total) if total > 0 else 0.0
    return result


def _finite(value: Any) -> float | None:
    """A plain float, or None for NaN/inf (as ``analyses._base.clean_float``, without importing torch)."""
    value = float(value)
    return value if math.isfinite(value) else None


def log_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(k,) per-window log loss in float64 of (k, K) class scores (logits) against (k,) integer labels."""
    import torch

    return -torch.log_softmax(scores.double(), dim=1).gather(1, labels.long()[:, None])[:, 0]


def share_rows(values: np.ndarray) -> np.ndarray:
    """Each row of a (..., F) array divided by its sum over the last axis (rows summing to 0 stay 0)."""
    totals = values.sum(axis=-1, keepdims=True)
    return np.divide(values, totals, out=np.zeros_like(values, dtype=np.float64), where=totals > 0)
