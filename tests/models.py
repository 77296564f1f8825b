"""Toy models with hand-computable behaviour, and the synthetic data they explain.

The data: per series, fields a, b (numeric), noise (numeric, ignored by the
models) and a 3-column one-hot ``w``; the regression target follows
y(t+1) = 3·a(t), so a model reading ``a`` at the last step is exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

CHANNELS = ["a", "b", "noise", "w_0", "w_1", "w_2"]


def make_frame(groups: int = 2, length: int = 60, seed: int = 0, *, dates: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for g in range(groups):
        a = rng.normal(0, 1, length)
        b = rng.normal(0, 1, length)
        noise = rng.normal(0, 1, length)
        weekday = rng.integers(0, 3, length)
        onehot = np.eye(3)[weekday]
        y = np.empty(length)
        y[0] = 0.0
        y[1:] = 3.0 * a[:-1]
        time = (
            pd.date_range("2024-01-01", periods=length, freq="D").strftime("%Y-%m-%d") if dates else np.arange(length)
        )
        parts.append(
            pd.DataFrame(
                {
                    "time": time,
                    "series": f"s{g}",
                    "a": a.round(6),
                    "b": b.round(6),
                    "noise": noise.round(6),
                    "w_0": onehot[:, 0].astype(int),
                    "w_1": onehot[:, 1].astype(int),
                    "w_2": onehot[:, 2].astype(int),
                    "y": y.round(6),
                    "label": (a > 0).astype(int),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def make_schema(**overrides: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "version": 1,
        "task": "regression",
        "time": "time",
        "group": "series",
        "window": 8,
        "horizon": 1,
        "target": "y",
        "layout": "btc",
        "missing": "error",
        "baseline": "zero",
        "fields": [
            {"name": "a", "columns": ["a"]},
            {"name": "b", "columns": ["b"]},
            {"name": "noise", "columns": ["noise"]},
            {"name": "w", "columns": ["w_0", "w_1", "w_2"], "kind": "categorical"},
        ],
    }
    schema.update(overrides)
    return schema


def write_case(folder: Path, frame: pd.DataFrame | None = None, **schema_overrides: Any) -> tuple[Path, Path]:
    """Write data.csv and schema.yaml into ``folder``; return their paths."""
    frame = make_frame() if frame is None else frame
    data = folder / "data.csv"
    schema = folder / "schema.yaml"
    frame.to_csv(data, index=False)
    schema.write_text(yaml.safe_dump(make_schema(**schema_overrides), sort_keys=False))
    return data, schema


class LastStepLinear(nn.Module):
    """f(x) = Σ_c w_c · x[:, T-1, c] + bias, shape (B, 1): closed-form attributions."""

    def __init__(self, weights: list[float] | None = None, bias: float = 0.0) -> None:
        super().__init__()
        weights = weights if weights is not None else [3.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        self.linear = nn.Linear(len(weights), 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([weights], dtype=torch.float32))
            self.linear.bias.fill_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x[:, -1, :])


class LastStepClassifier(nn.Module):
    """Two logits [0, 5·a(T-1)]: predicts label 1 exactly when a > 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = 5.0 * x[:, -1, 0:1]
        return torch.cat([torch.zeros_like(score), score], dim=1)


class TinyLSTM(nn.Module):
    def __init__(self, channels: int = 6, hidden: int = 8, horizon: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])


class ChannelsFirstConv(nn.Module):
    """Expects (B, C, T): a 'bct' layout model."""

    def __init__(self, channels: int = 6) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(channels, 4, kernel_size=3)
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=2))


class NaNModel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1, :1] * float("nan")


def save_torchscript(model: nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(model.eval()), str(path))
    return path


def save_export(model: nn.Module, path: Path, example: torch.Tensor, *, dynamic_batch: bool = False) -> Path:
    dynamic_shapes = None
    if dynamic_batch:
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=100000)},)
    program = torch.export.export(model.eval(), (example,), dynamic_shapes=dynamic_shapes)
    torch.export.save(program, str(path))
    return path


def save_state_dict(model: nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), str(path))
    return path


def save_pickle(model: nn.Module, path: Path) -> Path:
    torch.save(model, str(path))
    return path


class TinyLSTMIgnoringNoise(nn.Module):
    """An LSTM over a, b and w only: the `noise` channel (2) never reaches the output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.lstm = nn.LSTM(5, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        used = torch.cat([x[:, :, 0:2], x[:, :, 3:6]], dim=2)
        out, _ = self.lstm(used)
        return self.head(out[:, -1, :])


class TwoStepLinear(nn.Module):
    """Horizon 2: step 1 = 3·a(T-1), step 2 = 2·b(T-1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([3.0 * x[:, -1, 0], 2.0 * x[:, -1, 1]], dim=1)


class DetachedModel(nn.Module):
    """Outputs that carry no gradient (as from a rounded or post-processed model)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (3.0 * x[:, -1, 0:1]).detach()


class TinyTransformer(nn.Module):
    """Input projection -> stock nn.TransformerEncoder (2 layers, 2 heads) -> head on the last step."""

    def __init__(self, channels: int = 6, d_model: int = 16, horizon: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.project = nn.Linear(channels, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead=2, dim_feedforward=32, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.head = nn.Linear(d_model, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.project(x))[:, -1, :])


class DirectAttention(nn.Module):
    """Calls nn.MultiheadAttention itself and uses the (head-averaged) weights it returns.

    ``patch`` > 1 groups that many consecutive steps into one token, so the attention
    runs over T / patch tokens instead of time steps.
    """

    def __init__(self, channels: int = 6, d_model: int = 16, patch: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patch = patch
        self.project = nn.Linear(channels * patch, d_model)
        self.attention = nn.MultiheadAttention(d_model, num_heads=2, batch_first=True)
        self.head = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.project(x.reshape(x.shape[0], x.shape[1] // self.patch, -1))
        out, weights = self.attention(tokens, tokens, tokens)
        return self.head(out[:, -1, :]) + weights[:, -1, -1:]
