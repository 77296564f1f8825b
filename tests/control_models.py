"""Two architectures users bring, for the positive control's tests (issue 9, item 7).

* ``FCNClassifier``: the fully convolutional classifier of Wang et al. (2017), as tsai's ``FCN``
  and sktime's ``FCNClassifier``: Conv1d + BatchNorm1d + ReLU blocks, global average pooling over
  time, a Linear layer to class logits (kernels 7, 5, 3 and 'same' padding as tsai's). Input (B, C, T).
* ``TCN``: the temporal convolutional network of Bai et al. (2018), as locuslab's ``TCN`` and
  darts' ``TCNModel``: residual blocks of two causal dilated convolutions with weight
  normalisation (dilations 1, 2, 4, ...), a Linear head on the last step. Input (B, T, C).
  ``legacy=True`` uses the old ``torch.nn.utils.weight_norm`` (``weight_g``/``weight_v`` and a
  forward pre-hook, what most published TCN code calls); the default uses
  ``torch.nn.utils.parametrizations.weight_norm`` (``original0``/``original1``).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


class FCNClassifier(nn.Module):
    def __init__(
        self, c_in: int, classes: int, layers: tuple[int, ...] = (16, 32, 16), kernels: tuple[int, ...] = (7, 5, 3)
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        previous = c_in
        for width, kernel in zip(layers, kernels):
            blocks += [nn.Conv1d(previous, width, kernel, padding="same"), nn.BatchNorm1d(width), nn.ReLU()]
            previous = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(previous, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=-1))


def _weight_norm(module: nn.Conv1d, legacy: bool) -> nn.Module:
    if not legacy:
        return nn.utils.parametrizations.weight_norm(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated, but what locuslab's TCN calls
        return nn.utils.weight_norm(module)


class Chomp1d(nn.Module):
    """Drop the last ``size`` steps: with padding (k-1)·d on both sides, what remains is causal."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.size].contiguous()


class TemporalBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float, legacy: bool) -> None:
        super().__init__()
        padding = (kernel - 1) * dilation
        self.net = nn.Sequential(
            _weight_norm(nn.Conv1d(c_in, c_out, kernel, padding=padding, dilation=dilation), legacy),
            Chomp1d(padding),
            nn.ReLU(),
            nn.Dropout(dropout),
            _weight_norm(nn.Conv1d(c_out, c_out, kernel, padding=padding, dilation=dilation), legacy),
            Chomp1d(padding),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.downsample = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.net(x) + self.downsample(x))


class TCN(nn.Module):
    def __init__(
        self,
        c_in: int,
        horizon: int = 1,
        channels: int = 16,
        levels: int = 3,
        kernel: int = 3,
        dropout: float = 0.1,
        legacy: bool = False,
    ) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *[
                TemporalBlock(c_in if level == 0 else channels, channels, kernel, 2**level, dropout, legacy)
                for level in range(levels)
            ]
        )
        self.head = nn.Linear(channels, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x.transpose(1, 2))[:, :, -1])
