"""The numeric conventions every analysis shares, each written once.

* Units: a model sees each scaled column as ``(raw - mean) / std`` (the schema's ``scale``);
  :func:`to_model_units` and :func:`to_data_units` convert values, :func:`unit_factor` converts a
  difference (or a squared difference) of model units into data units.
* Shares: :func:`shares` normalises importances to sum to 1.
* Losses: :func:`log_loss` is the per-window log loss of classification scores.

The explained scalar (the mean over the horizon, or the predicted class's score) is
:meth:`tsreport.analyses._base.AnalysisContext.select`, since it needs each window's predicted class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
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


def shares(values: Mapping[str, float | None], total: float | None = None) -> dict[str, float | None]:
    """Each value's share of ``total`` (default: the sum of the values that are not None).

    None counts as 0; every share is 0.0 when the total is not positive; a share that is not
    finite is None (results.json holds no NaN).
    """
    from tsreport.analyses._base import clean_float

    if total is None:
        total = sum(v for v in values.values() if v is not None)
    return {k: clean_float((v or 0.0) / total) if total > 0 else 0.0 for k, v in values.items()}


def log_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(k,) per-window log loss in float64 of (k, K) class scores (logits) against (k,) integer labels."""
    return -torch.log_softmax(scores.double(), dim=1).gather(1, labels.long()[:, None])[:, 0]


def share_rows(values: np.ndarray) -> np.ndarray:
    """Each row of a (..., F) array divided by its sum over the last axis (rows summing to 0 stay 0)."""
    totals = values.sum(axis=-1, keepdims=True)
    return np.divide(values, totals, out=np.zeros_like(values, dtype=np.float64), where=totals > 0)
