"""Models for the engine tests, loaded by --model-class in worker processes (importable by path)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch
from torch import nn


class DilatedCNN(nn.Module):
    """A small dilated 1-D CNN forecaster with BatchNorm, in the (B, T, C) layout."""

    def __init__(self, channels: int = 6, hidden: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv1d(channels, hidden, kernel_size=3, dilation=1, padding=2)
        self.norm = nn.BatchNorm1d(hidden)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel_size=3, dilation=2, padding=4)
        self.head = nn.Linear(hidden, 1)
        with torch.no_grad():
            self.norm.running_mean.uniform_(-0.1, 0.1)
            self.norm.running_var.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm(self.conv1(x.transpose(1, 2))))
        h = torch.relu(self.conv2(h))
        return self.head(h[:, :, -1])


class KillOnce(DilatedCNN):
    """A DilatedCNN that kills the worker process it first runs in (not the main process ``parent``):
    the first call in any other process creates ``marker`` and sends itself SIGKILL."""

    def __init__(self, marker: str = "", parent: int = 0) -> None:
        super().__init__()
        self.marker, self.parent = marker, parent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.marker and os.getpid() != self.parent and not Path(self.marker).exists():
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)


class StackedRecurrent(nn.Module):
    """A projection per step, a 2-layer LSTM (time-major), a GRU on top, a head on the GRU's final state."""

    def __init__(self, channels: int = 6, hidden: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(channels, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=2)  # (T, B, H): batch_first=False
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.proj(x).transpose(0, 1))
        _, last = self.gru(h.transpose(0, 1))
        return self.head(last[-1])


class ConvThenLSTM(nn.Module):
    """A convolution over time before the LSTM: an occluded block changes the LSTM's inputs before it."""

    def __init__(self, channels: int = 6, hidden: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(channels, hidden, kernel_size=5, padding=2)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.conv(x.transpose(1, 2)).transpose(1, 2))
        return self.head(out[:, -1])


class DeadlyChunk:
    """An engine chunk that kills the worker process running it, every time."""

    size = 1

    def run(self, engine: object) -> torch.Tensor:
        os.kill(os.getpid(), signal.SIGKILL)
        return torch.zeros(1)
