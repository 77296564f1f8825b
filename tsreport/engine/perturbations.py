"""Perturbations the engine can cut into chunks and send to other processes.

A perturbation maps (window index, perturbation index) pairs to perturbed windows. The engine
accepts any callable ``build(window_index, perturbation_index) -> (k, T, C)``; the classes here
are also *picklable* and can be restricted to a rectangle of windows x perturbations
(:meth:`take`), so a chunk of the work travels with only the windows it needs. A plain closure
runs in this process only.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import torch


def own(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` with a storage of its own: pickling a view sends its base's whole storage, so a
    chunk of 1,000 windows cut from a million would carry all million to its worker."""
    if tensor.untyped_storage().nbytes() > tensor.numel() * tensor.element_size():
        return tensor.clone(memory_format=torch.contiguous_format)
    return tensor


@runtime_checkable
class Perturbation(Protocol):
    def __call__(self, window_index: torch.Tensor, perturbation_index: torch.Tensor) -> torch.Tensor: ...

    def take(self, windows: slice, perturbations: slice) -> Perturbation:
        """The same perturbation over windows ``windows`` and perturbations ``perturbations`` only,
        indexed from 0 in both."""
        ...


@dataclasses.dataclass(frozen=True)
class Masked:
    """Cells where ``masks[p]`` is True take the baseline: occlusion, time relevance, Shapley coalitions.

    inputs : (n, T, C) float32
    masks : (P, T, C) or (P, 1, C) bool (broadcast over time)
    baseline : (C,) or (T, C) float32
    """

    inputs: torch.Tensor
    masks: torch.Tensor
    baseline: torch.Tensor

    def __call__(self, window_index: torch.Tensor, perturbation_index: torch.Tensor) -> torch.Tensor:
        return torch.where(self.masks[perturbation_index], self.baseline, self.inputs[window_index])

    def take(self, windows: slice, perturbations: slice) -> Masked:
        return dataclasses.replace(
            self, inputs=own(self.inputs[windows]), masks=own(self.masks[perturbations]), baseline=own(self.baseline)
        )


@dataclasses.dataclass(frozen=True)
class Permuted:
    """Perturbation p moves channels ``channels[p]`` of window ``donors[p, w]`` into window w
    (permutation importance: the field's whole (T x channels) block travels with its window).

    inputs : (m, T, C) float32, the windows referred to (by row)
    rows : (n,) int64, window w is ``inputs[rows[w]]``
    donors : (P, n) int64, rows of ``inputs`` whose block window w receives
    channels : P (start, stop) channel ranges
    """

    inputs: torch.Tensor
    rows: torch.Tensor
    donors: torch.Tensor
    channels: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, inputs: torch.Tensor, orders: torch.Tensor, channels: list[slice]) -> Permuted:
        """Over all of ``inputs``: perturbation p gives window w the block of window ``orders[p, w]``."""
        spans = tuple((int(c.start), int(c.stop)) for c in channels)
        return cls(inputs, torch.arange(inputs.shape[0]), orders.to(torch.int64), spans)

    def __call__(self, window_index: torch.Tensor, perturbation_index: torch.Tensor) -> torch.Tensor:
        batch = self.inputs[self.rows[window_index]]  # advanced indexing: a copy
        for p in torch.unique(perturbation_index).tolist():
            picked = perturbation_index == p
            start, stop = self.channels[p]
            donors = self.donors[p, window_index[picked]]
            batch[picked, :, start:stop] = self.inputs[donors, :, start:stop]
        return batch

    def take(self, windows: slice, perturbations: slice) -> Permuted:
        rows = self.rows[windows]
        donors = self.donors[perturbations, windows]
        needed, inverse = torch.unique(torch.cat([rows, donors.reshape(-1)]), return_inverse=True)
        return Permuted(
            self.inputs[needed],
            inverse[: rows.shape[0]],
            inverse[rows.shape[0] :].reshape(donors.shape),
            self.channels[perturbations],
        )


@dataclasses.dataclass(frozen=True)
class Selector:
    """What a gradient is taken of: every output column (regression), or for classification the score
    of each row's class, ``classes[row]`` (shape (k, 1)). Picklable, restrictable to rows."""

    classes: torch.Tensor | None = None

    def __call__(self, outputs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if self.classes is None:
            return outputs
        return outputs.gather(1, self.classes[rows].to(outputs.device)[:, None])

    def rows(self, index: torch.Tensor) -> Selector:
        """Row i of the result selects what row ``index[i]`` of this one selects."""
        return self if self.classes is None else Selector(self.classes[index])

    def take(self, windows: slice) -> Selector:
        return self if self.classes is None else Selector(own(self.classes[windows]))
