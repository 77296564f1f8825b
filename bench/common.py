"""What the benchmarks share: the three forecasters, the synthetic data, the context, and the timing kit.

Imported by bench_attributions.py and bench_shapley.py (run as ``python bench/<script>.py``, so this
folder is on sys.path). Importing it sets torch to THREADS threads, as both benchmarks measure.

Windows: T = WINDOW steps, CHANNELS single-channel numeric fields (f0..f7), horizon 1. Models:
2-layer LSTM (hidden 64), Transformer encoder (d_model 64, 4 heads, 2 layers, feed-forward 128),
dilated CNN (4 Conv1d, kernel 3, dilations 1, 2, 4, 8, 32 channels), saved as TorchScript.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

THREADS = 2
torch.set_num_threads(THREADS)

WINDOW, CHANNELS, HORIZON = 48, 8, 1
REPEATS = 3
DEFAULT_BATCH = 256  # the fixed default before --batch-size auto (issue 12); bench_engine.py measures auto
FIELDS = [f"f{i}" for i in range(CHANNELS)]


# --------------------------------------------------------------------------- models


class LSTMForecaster(nn.Module):
    """2-layer LSTM, hidden 64, prediction from the last step."""

    def __init__(self, channels: int = CHANNELS, hidden: int = 64) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, HORIZON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class TransformerForecaster(nn.Module):
    """Input projection to d_model 64, 2 encoder layers (4 heads, feed-forward 128), last step."""

    def __init__(self, channels: int = CHANNELS, d_model: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(channels, d_model)
        layer = nn.TransformerEncoderLayer(d_model, 4, dim_feedforward=128, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, HORIZON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.proj(x))[:, -1])


class DilatedCNN(nn.Module):
    """4 Conv1d layers (kernel 3, dilations 1, 2, 4, 8, 32 channels, ReLU), linear head on the last step."""

    def __init__(self, channels: int = CHANNELS, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        inside = channels
        for dilation in (1, 2, 4, 8):
            layers += [nn.Conv1d(inside, width, 3, dilation=dilation, padding=dilation), nn.ReLU()]
            inside = width
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(width, HORIZON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, C)
        return self.head(self.net(x.transpose(1, 2))[:, :, -1])


MODELS: dict[str, tuple[type[nn.Module], str]] = {
    "lstm": (LSTMForecaster, "2-layer LSTM, hidden 64"),
    "transformer": (TransformerForecaster, "Transformer encoder d64 4 heads 2 layers ff128"),
    "cnn": (DilatedCNN, "dilated CNN 4x Conv1d k3 d1,2,4,8 32ch"),
}


def save_model(name: str, folder: Path) -> Path:
    torch.manual_seed(0)
    module = MODELS[name][0]().eval()
    path = folder / f"{name}.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    return path


# --------------------------------------------------------------------------- data


def write_data(folder: Path, n_windows: int, seed: int = 0) -> tuple[Path, Path]:
    """One series, 8 numeric fields, target y; exactly ``n_windows`` windows of 48 steps."""
    rows = n_windows + WINDOW + HORIZON - 1
    rng = np.random.default_rng(seed)
    values = np.zeros((rows, CHANNELS))
    noise = rng.normal(0, 1, (rows, CHANNELS))
    for t in range(1, rows):
        values[t] = 0.8 * values[t - 1] + 0.6 * noise[t]
    y = np.zeros(rows)
    y[1:] = values[:-1] @ np.linspace(1, -1, CHANNELS)
    frame = pd.DataFrame(
        {"t": np.arange(rows), **{f: values[:, i].round(5) for i, f in enumerate(FIELDS)}, "y": y.round(5)}
    )
    data = folder / f"data_{n_windows}.csv"
    frame.to_csv(data, index=False)
    schema = {
        "version": 1,
        "task": "regression",
        "time": "t",
        "window": WINDOW,
        "stride": 1,
        "horizon": HORIZON,
        "target": "y",
        "layout": "btc",
        "missing": "error",
        "baseline": "mean",
        "fields": [{"name": f, "columns": [f]} for f in FIELDS],
    }
    schema_path = folder / "schema.yaml"
    schema_path.write_text(yaml.safe_dump(schema, sort_keys=False))
    return data, schema_path


def build(model_path: Path, data: Path, schema: Path, batch: int = DEFAULT_BATCH):
    from tsreport.config import RunConfig
    from tsreport.pipeline import build_context

    ctx, _, _ = build_context(model_path, data, schema, RunConfig(samples=None, batch_size=batch))
    return ctx


def fresh(ctx, n: int | None = None, batch: int | None = None):
    """A copy of the context on the first n windows with every cache empty (gradients, outputs, maps)."""
    n = ctx.explained.shape[0] if n is None else n
    if batch is not None:
        ctx.forward.batch_size = batch
    return dataclasses.replace(
        ctx,
        explained=ctx.explained[:n].copy(),
        explained_inputs=ctx.explained_inputs[:n].clone(),
        predictions=None,
        field_maps={},
        cache={},
        _explained_outputs=None,
    )


# --------------------------------------------------------------------------- timing


def tile(inputs: torch.Tensor, batch: int) -> torch.Tensor:
    reps = math.ceil(batch / inputs.shape[0])
    return inputs.repeat(reps, 1, 1)[:batch].contiguous()


def forward_rate(module, x: torch.Tensor, calls: int) -> float:
    with torch.inference_mode():
        begin = time.perf_counter()
        for _ in range(calls):
            module(x)
        return calls * x.shape[0] / (time.perf_counter() - begin)


def backward_rate(module, x: torch.Tensor, calls: int) -> float:
    begin = time.perf_counter()
    for _ in range(calls):
        leaf = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(module(leaf).sum(), leaf)
    return calls * x.shape[0] / (time.perf_counter() - begin)


def sweep(
    module, inputs: torch.Tensor, batches: list[int], rate: Callable, seconds: float, repeats: int
) -> dict[int, float]:
    """Best-of-``repeats`` throughput (windows/s) per batch size; each repetition runs about ``seconds``.

    The repetitions are interleaved over the batch sizes (round 1 of every size, then round 2...)
    so that a burst of load from another process does not spoil all repetitions of one size.
    """
    plan = {}
    for batch in batches:
        x = tile(inputs, batch)
        rate(module, x, 1)  # warm-up: TorchScript's profiling executor optimises after the first runs
        begin = time.perf_counter()
        rate(module, x, 1)
        per_call = time.perf_counter() - begin
        plan[batch] = (x, max(1, round(seconds / max(per_call, 1e-6))))
    result = dict.fromkeys(batches, 0.0)
    for _ in range(repeats):
        for batch, (x, calls) in plan.items():
            result[batch] = max(result[batch], rate(module, x, calls))
    return result


class Probe:
    """A short throughput probe at the best batch size (forward, or forward+backward), to read the load.

    ``load()`` = the sweep's best throughput / the probe's: 1.00 when the machine is as fast
    as during the sweep, 2.0 when another process takes half of it.
    """

    def __init__(self, module, inputs: torch.Tensor, rate: Callable, batch: int, best: float, seconds: float) -> None:
        self.module, self.rate, self.best = module, rate, best
        self.x = tile(inputs, batch)
        self.calls = max(1, round(seconds * best / batch))

    def load(self) -> float:
        return self.best / self.rate(self.module, self.x, self.calls)


@dataclasses.dataclass
class Timing:
    seconds: float
    load: float = float("nan")
    evaluations: int | None = None


@dataclasses.dataclass
class Task:
    run: Callable[..., Any]
    prepare: Callable[[], Any] | None = None  # untimed: builds the argument of run
    probe: Probe | None = None


def interleaved(tasks: dict[Any, Task], repeats: int, counter=None) -> dict[Any, Timing]:
    """Best wall time of each task over ``repeats`` rounds; a round runs every task once.

    Each kept time comes with the load read by the task's probe just before it ran.
    """
    best: dict[Any, Timing] = {}
    for _ in range(repeats):
        for key, task in tasks.items():
            argument = task.prepare() if task.prepare else None
            gc.collect()
            load = task.probe.load() if task.probe else float("nan")
            before = counter() if counter else None
            begin = time.perf_counter()
            task.run(argument) if task.prepare else task.run()
            seconds = time.perf_counter() - begin
            evaluations = counter() - before if counter else None
            if key not in best or seconds < best[key].seconds:
                best[key] = Timing(seconds, load, evaluations)
    return best


def best_of(run: Callable[[], Any], probe: Probe | None = None, repeats: int | None = None) -> Timing:
    return interleaved({0: Task(run, probe=probe)}, REPEATS if repeats is None else repeats)[0]


def wait_until_calm(max_seconds: float) -> None:
    """Wait (at most max_seconds) until the CPUs are >= 85% idle for three 3-second readings in a row."""

    def idle_share(seconds: float) -> float:
        def read() -> tuple[int, int]:
            with open("/proc/stat") as handle:
                fields = [int(v) for v in handle.readline().split()[1:]]
            return fields[3] + fields[4], sum(fields)

        idle0, total0 = read()
        time.sleep(seconds)
        idle1, total1 = read()
        return (idle1 - idle0) / max(1, total1 - total0)

    begin, calm = time.perf_counter(), 0
    while time.perf_counter() - begin < max_seconds:
        calm = calm + 1 if idle_share(3.0) >= 0.85 else 0
        if calm >= 3:
            line(f"(machine calm after {time.perf_counter() - begin:.0f} s of waiting)")
            return
    line(f"(machine still busy after waiting {max_seconds:.0f} s: other processes share the cores, expect load > 1)")


# --------------------------------------------------------------------------- reporting

VERDICTS: list[tuple[str, bool, str]] = []


def verdict(what: str, ok: bool, detail: str) -> str:
    """Note a target met or missed (the scripts list VERDICTS at the end); "ok" or "MISSED"."""
    VERDICTS.append((what, ok, detail))
    return "ok" if ok else "MISSED"


def line(text: str = "") -> None:
    print(text, flush=True)


def print_verdicts() -> None:
    """Every target noted by :func:`verdict`, met or missed, and the count."""
    missed = [v for v in VERDICTS if not v[1]]
    for what, ok, detail in VERDICTS:
        line(f"  {'met   ' if ok else 'MISSED'}  {what}: {detail}")
    line(
        f"{len(VERDICTS) - len(missed)} of {len(VERDICTS)} targets met" + (f"; missed: {len(missed)}" if missed else "")
    )
