"""A real-world corpus: small models in the style of widely used time-series libraries, trained on
public data that statsmodels ships inside its package (nothing is downloaded), saved in every format
their architecture allows, with the tables and schemas a user would export.

Cases (``CASES``; each builder writes data, schema and models into a folder in a few seconds):

``macro_fcn``
    US quarterly macro data (statsmodels ``macrodata``, 1959-2009), mixed scales. An FCN classifier
    (tsai ``FCN`` / sktime ``FCNClassifier``: Conv1d + BatchNorm1d + ReLU, global average pooling,
    Linear; layout ``bct``) says whether the year to the window's last quarter was a slow year (real
    GDP grew less than 2 % on the same quarter a year before). Four quarterly GDP growth rates sum to
    that year-on-year growth, so ``gdp_growth`` drives the label. Saved as a state dict plus
    ``build_fcn`` (primary), TorchScript (script and trace) and torch.export.
``co2_tcn``
    Weekly Mauna Loa CO2 (statsmodels ``co2``, 1958-2001) with its real gaps (59 missing weeks,
    ``missing: ffill``) and a month one-hot. A TCN (locuslab TCN / darts ``TCNModel``: causal dilated
    convolutions with weight normalisation, residual blocks) forecasts next week's CO2. Traced to
    TorchScript (primary); torch.export and a state dict plus ``build_tcn``. A scripted copy compiles
    but fails on its first call ("Parametrization is not working with scripting"), so there is none.
``elnino_checkpoint``
    Monthly Pacific sea surface temperature (statsmodels ``elnino``, 1950-2010), wide (a column per
    month) melted into a long table with a month one-hot. An LSTM encoder with a 6-step head
    (pytorch-forecasting / darts RNN style) saved as a training checkpoint the way PyTorch Lightning
    writes one (primary: ``state_dict`` keys prefixed ``model.``, ``hyper_parameters``, ``epoch``,
    ``optimizer_states``...), plus a plain state dict, TorchScript (script and trace) and torch.export.
``sunspots_quantile``
    Yearly sunspot numbers (statsmodels ``sunspots``, 1700-2008). An N-BEATS-like fully connected
    stack on the flattened window (layout ``flat``) with a quantile head: (batch, 3 steps,
    quantiles 0.1 / 0.5 / 0.9), trained on pinball loss (darts ``QuantileRegression`` /
    pytorch-forecasting ``QuantileLoss`` style). TorchScript trace (primary), script, torch.export,
    state dict.

Every case has a ``noise`` field: seeded random numbers on a scale of their own that no target
depends on. Models are trained on standardised inputs; the schema gives each field its ``scale``.
Only torch is imported at module level: tsreport imports this file for ``--model-class``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

HERE = Path(__file__).resolve()
QUANTILES = (0.1, 0.5, 0.9)
# Small settings for the tests: a full default battery per case, with a smaller positive control
# (its default trains two control models on 1024 windows for up to 40 epochs, about a minute each).
QUICK_CONFIG = {"sanity_positive_control": {"windows": 256, "epochs": 20, "seconds": 20}}


# --------------------------------------------------------------------------- architectures


class FCN(nn.Module):
    """Fully convolutional classifier (Wang et al. 2017) as tsai's ``FCN`` and sktime's ``FCNClassifier``.

    Three Conv1d + BatchNorm1d + ReLU blocks (kernels 8, 5, 3, 'same' padding), global average
    pooling over time, a Linear layer to class logits. Input (B, C, T), output (B, classes).
    """

    def __init__(
        self, c_in: int, c_out: int, layers: tuple[int, ...] = (16, 32, 16), kernels: tuple[int, ...] = (8, 5, 3)
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        previous = c_in
        for width, kernel in zip(layers, kernels):
            blocks += [nn.Conv1d(previous, width, kernel, padding="same"), nn.BatchNorm1d(width), nn.ReLU()]
            previous = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(previous, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=-1))


def build_fcn(c_in: int, c_out: int, layers: list[int] | None = None) -> FCN:
    """``--model-class tests/corpus_models.py:build_fcn --model-kwargs '{"c_in": .., "c_out": ..}'``."""
    return FCN(c_in, c_out, tuple(layers or (16, 32, 16)))


class TemporalBlock(nn.Module):
    """A TCN residual block: two causal dilated convolutions with weight normalisation (locuslab TCN)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        weight_norm = nn.utils.parametrizations.weight_norm
        self.padding = (kernel - 1) * dilation  # left padding only: no step sees the future
        self.conv1 = weight_norm(nn.Conv1d(c_in, c_out, kernel, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(c_out, c_out, kernel, dilation=dilation))
        self.dropout = nn.Dropout(dropout)
        self.downsample = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dropout(F.relu(self.conv1(F.pad(x, (self.padding, 0)))))
        y = self.dropout(F.relu(self.conv2(F.pad(y, (self.padding, 0)))))
        return F.relu(y + self.downsample(x))


class TCN(nn.Module):
    """Temporal convolutional network as darts' ``TCNModel``: input (B, T, C), dilations 1, 2, 4, ...

    The last time step's features go through a Linear layer to the horizon: output (B, H).
    """

    def __init__(
        self, c_in: int, horizon: int = 1, channels: int = 16, levels: int = 3, kernel: int = 3, dropout: float = 0.1
    ) -> None:
        super().__init__()
        blocks = [
            TemporalBlock(c_in if level == 0 else channels, channels, kernel, 2**level, dropout)
            for level in range(levels)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(x.transpose(1, 2))
        return self.head(features[:, :, -1])


def build_tcn(c_in: int, horizon: int = 1, channels: int = 16, levels: int = 3, kernel: int = 3) -> TCN:
    return TCN(c_in, horizon, channels, levels, kernel)


class LSTMForecaster(nn.Module):
    """An LSTM encoder and a Linear head to H steps (pytorch-forecasting / darts RNN style): (B, T, C) -> (B, H)."""

    def __init__(self, c_in: int, horizon: int, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(c_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoded, _ = self.lstm(x)
        return self.head(encoded[:, -1])


def build_forecaster(c_in: int, horizon: int, hidden: int = 32) -> LSTMForecaster:
    return LSTMForecaster(c_in, horizon, hidden)


class LightningForecaster(nn.Module):
    """What a LightningModule wrapping the forecaster holds: the network under ``self.model``.

    Lightning saves ``self.state_dict()``, so every key starts with ``model.``.
    """

    def __init__(self, **hyper_parameters: Any) -> None:
        super().__init__()
        self.hyper_parameters = hyper_parameters
        self.model = build_forecaster(**hyper_parameters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class QuantileMLP(nn.Module):
    """An N-BEATS-like fully connected stack on the flattened window with a quantile head.

    Input (B, T * C) (layout flat), output (B, H, 3): quantiles 0.1, 0.5, 0.9, kept in order by
    construction (median plus and minus a softplus width).
    """

    def __init__(self, window: int, c_in: int, horizon: int, hidden: int = 64) -> None:
        super().__init__()
        self.horizon = horizon
        self.body = nn.Sequential(nn.Linear(window * c_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, horizon * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.head(self.body(x)).reshape(-1, self.horizon, 3)
        median = raw[:, :, 1]
        low = median - F.softplus(raw[:, :, 0])
        high = median + F.softplus(raw[:, :, 2])
        return torch.stack([low, median, high], dim=-1)


def build_quantile_mlp(window: int, c_in: int, horizon: int, hidden: int = 64) -> QuantileMLP:
    return QuantileMLP(window, c_in, horizon, hidden)


# --------------------------------------------------------------------------- cases


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """One saved copy of a case's model and the extra CLI arguments it needs."""

    path: Path
    args: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class CorpusCase:
    """A case written to disk: data, schema, and its model in every format it could be saved in.

    ``driver`` is the field the target is known to depend on most; ``informative`` every field it is
    known to depend on, or to be strongly correlated with (the driver included); ``noise`` a field
    it does not depend on at all. ``not_saved`` names formats the architecture cannot be saved in, and why.
    """

    name: str
    description: str
    folder: Path
    data: Path
    schema: Path
    models: dict[str, ModelFile]
    primary: str
    driver: str
    informative: tuple[str, ...]
    noise: str
    fields: tuple[str, ...]
    train_seconds: float
    not_saved: dict[str, str] = dataclasses.field(default_factory=dict)
    xfail: str | None = None  # set while tsreport cannot yet run the case; names the gap

    @property
    def target(self) -> str:
        import yaml

        raw = yaml.safe_load(self.schema.read_text())
        target = raw["target"]
        return target["column"] if isinstance(target, dict) else target

    def plausible(self, ranking: list[str]) -> list[str]:
        """What is implausible about a ranking (empty when nothing is): the driver must be in the top 2
        and the noise field below every informative field."""
        problems = []
        if ranking.index(self.driver) >= 2:
            problems.append(f"{self.driver} (drives the target) ranks {ranking.index(self.driver) + 1}")
        above = [f for f in self.informative if ranking.index(f) > ranking.index(self.noise)]
        if above:
            problems.append(f"{self.noise} (pure noise) ranks above {above}")
        return problems

    def model_args(self, label: str | None = None) -> list[str]:
        """``MODEL`` and its extra arguments, for ``tsreport explain MODEL DATA ...``."""
        model = self.models[label or self.primary]
        return [str(model.path), *model.args]


def _class_args(builder: str, kwargs: dict[str, Any]) -> tuple[str, ...]:
    return ("--model-class", f"{HERE}:{builder}", "--model-kwargs", json.dumps(kwargs))


def _scale(values: np.ndarray) -> dict[str, float]:
    """Mean and standard deviation over the finite values, rounded as a user's config would hold them."""
    finite = values[np.isfinite(values)]
    return {"mean": round(float(finite.mean()), 4), "std": round(float(finite.std()), 4)}


def _one_hot(frame: Any, values: np.ndarray, prefix: str, levels: range) -> list[str]:
    names = []
    for level in levels:
        name = f"{prefix}_{level:02d}"
        frame[name] = (values == level).astype(int)
        names.append(name)
    return names


def _standardised(frame: Any, fields: list[dict[str, Any]]) -> np.ndarray:
    """(rows, C) float64 model inputs: each field's columns, scaled as the schema says."""
    blocks = []
    for field in fields:
        block = frame[field["columns"]].to_numpy(dtype=np.float64, copy=True)
        if "scale" in field:
            block = (block - field["scale"]["mean"]) / field["scale"]["std"]
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


def _windows(values: np.ndarray, window: int) -> np.ndarray:
    """(N, T, C) windows starting at every row where a full window fits."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # (N, C, T)
    return np.ascontiguousarray(view.transpose(0, 2, 1), dtype=np.float32)


def _fit(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss: Callable[..., torch.Tensor],
    steps: int,
    lr: float = 1e-2,
    seed: int = 0,
    batch: int = 64,
    validation: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """AdamW on mini-batches, a fixed number of steps, deterministic for a seed.

    With ``validation`` the latest share of the windows is held out and the state with the lowest
    held-out loss (checked every 10 steps) is kept, as Lightning's ``ModelCheckpoint(monitor="val_loss")``
    or tsai's ``SaveModel`` callback do: on a few hundred windows an unstopped network memorises them.
    """
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    train = inputs.shape[0] - int(validation * inputs.shape[0])
    best_loss, best_state = math.inf, None
    for step in range(steps):
        model.train()
        rows = torch.randint(0, train, (batch,), generator=generator)
        optimiser.zero_grad()
        loss(model(inputs[rows]), targets[rows]).backward()
        optimiser.step()
        if validation and step % 10 == 9:
            model.eval()
            with torch.no_grad():
                held_out = float(loss(model(inputs[train:]), targets[train:]))
            if held_out < best_loss:
                best_loss, best_state = held_out, {k: v.clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return optimiser


def _pinball(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    levels = torch.tensor(QUANTILES)
    error = truth[..., None] - prediction
    return torch.maximum(levels * error, (levels - 1) * error).mean()


def _save_formats(
    model: nn.Module, example: torch.Tensor, folder: Path, stem: str
) -> tuple[dict[str, ModelFile], dict[str, str]]:
    """TorchScript (script and trace) and torch.export copies of ``model``, each loaded back and checked
    against the eager model at another batch size; a format that fails either step is listed with why."""
    model.eval()
    check = torch.cat([example, example[:1] * 0.5])
    with torch.no_grad():
        expected = model(check)
    savers: dict[str, Callable[[Path], Any]] = {
        "torchscript-script": lambda path: torch.jit.save(torch.jit.script(model), str(path)),
        "torchscript-trace": lambda path: torch.jit.save(torch.jit.trace(model, example), str(path)),
        "export": lambda path: torch.export.save(
            torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)), str(path)
        ),
    }
    loaders: dict[str, Callable[[Path], Any]] = {
        "torchscript-script": lambda path: torch.jit.load(str(path)),
        "torchscript-trace": lambda path: torch.jit.load(str(path)),
        "export": lambda path: torch.export.load(str(path)).module(),
    }
    suffixes = {"torchscript-script": ".script.pt", "torchscript-trace": ".trace.pt", "export": ".pt2"}
    saved: dict[str, ModelFile] = {}
    not_saved: dict[str, str] = {}
    for label, save in savers.items():
        path = folder / f"{stem}{suffixes[label]}"
        try:
            with torch.no_grad():
                save(path)
                output = loaders[label](path)(check)
            if not torch.allclose(output, expected, atol=1e-5):
                raise ValueError("the saved copy's outputs differ from the model's")
        except Exception as error:  # the architecture decides; the case records why
            path.unlink(missing_ok=True)
            lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
            not_saved[label] = lines[-1] if lines else type(error).__name__
            continue
        saved[label] = ModelFile(path)
    return saved, not_saved


def _write_schema(path: Path, schema: dict[str, Any], comment: str) -> Path:
    import yaml

    lines = [f"# {line}" for line in comment.splitlines()]
    path.write_text("\n".join(lines) + "\n" + yaml.safe_dump(schema, sort_keys=False, default_flow_style=None))
    return path


def _noise(rows: int, seed: int, mean: float, std: float) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, std, rows).round(3)


def build_macro_fcn(folder: Path, seed: int = 0) -> CorpusCase:
    """FCN classifier on statsmodels' macrodata: was the year to this quarter a slow year (GDP growth < 2 %)?"""
    import pandas as pd
    from statsmodels.datasets import macrodata

    started = _clock()
    raw = macrodata.load_pandas().data
    frame = pd.DataFrame({"date": [f"{int(y)}-{3 * int(q) - 2:02d}-01" for y, q in zip(raw["year"], raw["quarter"])]})
    # Quarterly growth in percent (log differences): the first quarter has none, a real leading gap.
    for name, column in (("gdp_growth", "realgdp"), ("cons_growth", "realcons"), ("inv_growth", "realinv")):
        frame[name] = (100 * np.log(raw[column]).diff()).round(4)
    for column in ("unemp", "infl", "tbilrate", "m1"):
        frame[column] = raw[column]
    quarters = _one_hot(frame, raw["quarter"].to_numpy().astype(int), "quarter", range(1, 5))
    frame["noise"] = _noise(len(frame), seed + 11, 50.0, 10.0)
    yearly = 100 * np.log(raw["realgdp"]).diff(4)
    # The label is unknown for the first year: those cells are empty, as an export would leave them.
    frame["slow_year"] = pd.array(np.where(yearly.isna(), pd.NA, (yearly < 2.0).astype(int)), dtype="Int64")

    numeric = ["gdp_growth", "cons_growth", "inv_growth", "unemp", "infl", "tbilrate", "m1", "noise"]
    fields = [{"name": c, "columns": [c], "scale": _scale(frame[c].to_numpy(dtype=np.float64))} for c in numeric[:-1]]
    fields.append({"name": "quarter", "columns": quarters, "kind": "categorical"})
    fields.append({"name": "noise", "columns": ["noise"], "scale": _scale(frame["noise"].to_numpy(dtype=np.float64))})
    window = 4
    schema = {
        "version": 1, "task": "classification", "time": "date", "window": window, "target": "slow_year",
        "classes": [0, 1], "layout": "bct", "missing": "drop", "baseline": "mean", "fields": fields,
    }  # fmt: skip

    values = _standardised(frame, fields)
    inputs = _windows(values, window)  # window i ends at row i + T - 1
    labels = frame["slow_year"].to_numpy(dtype=np.float64, na_value=np.nan)[window - 1 :]
    keep = np.isfinite(labels) & np.isfinite(inputs).all(axis=(1, 2))
    x = torch.from_numpy(inputs[keep]).transpose(1, 2).contiguous()
    y = torch.from_numpy(labels[keep].astype(np.int64))
    torch.manual_seed(seed)
    model = build_fcn(c_in=x.shape[1], c_out=2)
    _fit(model, x, y, F.cross_entropy, steps=400, seed=seed, batch=32, validation=0.25)

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "macro.csv"
    frame.to_csv(data, index=False)
    schema_path = _write_schema(
        folder / "macro.yaml",
        schema,
        "US quarterly macro data (statsmodels macrodata). slow_year = 1 when real GDP grew less than 2 %\n"
        "on the same quarter a year before: the four quarterly gdp_growth values of a window sum to it.",
    )
    kwargs = {"c_in": int(x.shape[1]), "c_out": 2}
    state = folder / "fcn_state_dict.pt"
    torch.save(model.state_dict(), state)
    models = {"state_dict": ModelFile(state, _class_args("build_fcn", kwargs))}
    saved, not_saved = _save_formats(model, x[:2], folder, "fcn")
    models.update(saved)
    return CorpusCase(
        "macro_fcn", "FCN (Conv1d+BatchNorm1d, GAP) classifier on US quarterly macro data", folder, data,
        schema_path, models, "state_dict", "gdp_growth", ("gdp_growth", "cons_growth"), "noise", tuple(f["name"] for f in fields),
        _clock() - started, not_saved,
    )  # fmt: skip


def build_co2_tcn(folder: Path, seed: int = 0) -> CorpusCase:
    """TCN forecasting next week's CO2 at Mauna Loa, with the record's real gaps forward-filled."""
    import pandas as pd
    from statsmodels.datasets import co2

    started = _clock()
    raw = co2.load_pandas().data
    frame = pd.DataFrame({"date": raw.index.strftime("%Y-%m-%d"), "co2": raw["co2"].to_numpy()})
    months = _one_hot(frame, raw.index.month.to_numpy(), "month", range(1, 13))
    frame["noise"] = _noise(len(frame), seed + 12, 1000.0, 50.0)
    co2_scale = _scale(frame["co2"].to_numpy(dtype=np.float64))
    fields = [
        {"name": "co2", "columns": ["co2"], "scale": co2_scale},
        {"name": "month", "columns": months, "kind": "categorical"},
        {"name": "noise", "columns": ["noise"], "scale": _scale(frame["noise"].to_numpy(dtype=np.float64))},
    ]
    window = 32
    schema = {
        "version": 1, "task": "regression", "time": "date", "window": window, "horizon": 1,
        "target": {"column": "co2", "scale": co2_scale}, "layout": "btc", "missing": "ffill",
        "baseline": "mean", "fields": fields,
    }  # fmt: skip

    filled = frame.ffill()  # as the schema's missing: ffill does
    values = _standardised(filled, fields)
    target = (filled["co2"].to_numpy(dtype=np.float64) - co2_scale["mean"]) / co2_scale["std"]
    inputs = _windows(values, window)[:-1]
    x = torch.from_numpy(inputs)
    y = torch.from_numpy(target[window:].astype(np.float32))[:, None]
    torch.manual_seed(seed)
    model = build_tcn(c_in=x.shape[2])
    _fit(model, x, y, F.mse_loss, steps=300, seed=seed)

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "co2.csv"
    frame.to_csv(data, index=False)
    schema_path = _write_schema(
        folder / "co2.yaml",
        schema,
        "Weekly CO2 at Mauna Loa (statsmodels co2), 59 weeks missing in the record: forward-filled.",
    )
    kwargs = {"c_in": int(x.shape[2])}
    state = folder / "tcn_state_dict.pt"
    torch.save(model.state_dict(), state)
    saved, not_saved = _save_formats(model, x[:2], folder, "tcn")
    models = {"torchscript-trace": saved.pop("torchscript-trace"), **saved}
    models["state_dict"] = ModelFile(state, _class_args("build_tcn", kwargs))
    return CorpusCase(
        "co2_tcn", "TCN (causal dilated convs, weight norm, residual) forecasting weekly CO2", folder, data,
        schema_path, models, "torchscript-trace", "co2", ("co2", "month"), "noise", tuple(f["name"] for f in fields),
        _clock() - started, not_saved,
    )  # fmt: skip


def _elnino_frame(seed: int) -> tuple[Any, list[str]]:
    import pandas as pd
    from statsmodels.datasets import elnino

    wide = elnino.load_pandas().data
    long = wide.melt(id_vars="YEAR", var_name="month_name", value_name="sst")
    month_numbers = {name: i for i, name in enumerate(wide.columns[1:], start=1)}
    long["month"] = long["month_name"].map(month_numbers)
    long = long.sort_values(["YEAR", "month"], kind="stable").reset_index(drop=True)
    frame = pd.DataFrame(
        {"date": [f"{int(y)}-{m:02d}-01" for y, m in zip(long["YEAR"], long["month"])], "sst": long["sst"]}
    )
    months = _one_hot(frame, long["month"].to_numpy(), "month", range(1, 13))
    frame["noise"] = _noise(len(frame), seed + 13, -3.0, 0.5)
    return frame, months


def build_elnino_checkpoint(folder: Path, seed: int = 0) -> CorpusCase:
    """LSTM forecaster of the next 6 months of El Niño sea surface temperature, saved as a Lightning checkpoint."""
    started = _clock()
    frame, months = _elnino_frame(seed)
    sst_scale = _scale(frame["sst"].to_numpy(dtype=np.float64))
    fields = [
        {"name": "sst", "columns": ["sst"], "scale": sst_scale},
        {"name": "month", "columns": months, "kind": "categorical"},
        {"name": "noise", "columns": ["noise"], "scale": _scale(frame["noise"].to_numpy(dtype=np.float64))},
    ]
    window, horizon = 24, 6
    schema = {
        "version": 1, "task": "regression", "time": "date", "window": window, "horizon": horizon,
        "target": {"column": "sst", "scale": sst_scale}, "layout": "btc", "missing": "error",
        "baseline": "mean", "fields": fields,
    }  # fmt: skip
    values = _standardised(frame, fields)
    target = (frame["sst"].to_numpy(dtype=np.float64) - sst_scale["mean"]) / sst_scale["std"]
    count = len(frame) - window - horizon + 1
    x = torch.from_numpy(_windows(values, window)[:count])
    y = torch.from_numpy(np.stack([target[i + window : i + window + horizon] for i in range(count)]).astype(np.float32))
    hyper_parameters = {"c_in": int(x.shape[2]), "horizon": horizon, "hidden": 32}
    torch.manual_seed(seed)
    wrapper = LightningForecaster(**hyper_parameters)
    optimiser = _fit(wrapper, x, y, F.mse_loss, steps=300, seed=seed, validation=0.2)
    model = wrapper.model

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "elnino.csv"
    frame.to_csv(data, index=False)
    schema_path = _write_schema(
        folder / "elnino.yaml",
        schema,
        "Monthly Pacific sea surface temperature (statsmodels elnino), melted from one column per month.",
    )
    checkpoint = folder / "forecaster-epoch=4-step=300.ckpt"
    torch.save(lightning_checkpoint(wrapper, optimiser, hyper_parameters, steps=300), checkpoint)
    state = folder / "forecaster_state_dict.pt"
    torch.save(model.state_dict(), state)
    args = _class_args("build_forecaster", hyper_parameters)
    models = {"checkpoint": ModelFile(checkpoint, args), "state_dict": ModelFile(state, args)}
    saved, not_saved = _save_formats(model, x[:2], folder, "forecaster")
    models.update(saved)
    return CorpusCase(
        "elnino_checkpoint", "LSTM 6-month forecaster saved as a Lightning checkpoint (model.-prefixed keys)",
        folder, data, schema_path, models, "checkpoint", "sst", ("sst", "month"), "noise", tuple(f["name"] for f in fields),
        _clock() - started, not_saved,
    )  # fmt: skip


def lightning_checkpoint(
    wrapper: nn.Module, optimiser: Any, hyper_parameters: dict[str, Any], steps: int
) -> dict[str, Any]:
    """The dict PyTorch Lightning's ``Trainer.save_checkpoint`` writes, with the same keys (Lightning 2.x)."""
    return {
        "epoch": 4,
        "global_step": steps,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": wrapper.state_dict(),  # keys "model.lstm.weight_ih_l0", ...
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 5, "completed": 4}}}},
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min'}": {"best_model_score": torch.tensor(0.12)}
        },
        "optimizer_states": [optimiser.state_dict()],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": dict(hyper_parameters),
    }


def build_sunspots_quantile(folder: Path, seed: int = 0) -> CorpusCase:
    """N-BEATS-like MLP with a (batch, 3 years, 3 quantiles) head on yearly sunspot numbers."""
    import pandas as pd
    from statsmodels.datasets import sunspots

    started = _clock()
    raw = sunspots.load_pandas().data
    frame = pd.DataFrame({"year": raw["YEAR"].astype(int), "sunactivity": raw["SUNACTIVITY"]})
    frame["noise"] = _noise(len(frame), seed + 14, 7.0, 3.0)
    sun_scale = _scale(frame["sunactivity"].to_numpy(dtype=np.float64))
    fields = [
        {"name": "sunactivity", "columns": ["sunactivity"], "scale": sun_scale},
        {"name": "noise", "columns": ["noise"], "scale": _scale(frame["noise"].to_numpy(dtype=np.float64))},
    ]
    window, horizon = 22, 3  # two solar cycles in, three years out
    schema = {
        "version": 1, "task": "regression", "time": "year", "window": window, "horizon": horizon,
        "target": {"column": "sunactivity", "scale": sun_scale}, "output": {"quantiles": list(QUANTILES)},
        "layout": "flat", "missing": "error", "baseline": "mean", "fields": fields,
    }  # fmt: skip
    values = _standardised(frame, fields)
    target = (frame["sunactivity"].to_numpy(dtype=np.float64) - sun_scale["mean"]) / sun_scale["std"]
    count = len(frame) - window - horizon + 1
    x = torch.from_numpy(_windows(values, window)[:count]).reshape(count, -1)
    y = torch.from_numpy(np.stack([target[i + window : i + window + horizon] for i in range(count)]).astype(np.float32))
    kwargs = {"window": window, "c_in": len(fields), "horizon": horizon}
    torch.manual_seed(seed)
    model = build_quantile_mlp(**kwargs)
    _fit(model, x, y, _pinball, steps=600, lr=3e-3, seed=seed, validation=0.2)

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "sunspots.csv"
    frame.to_csv(data, index=False)
    schema_path = _write_schema(
        folder / "sunspots.yaml",
        schema,
        "Yearly sunspot numbers (statsmodels sunspots); the model's last axis holds quantiles 0.1, 0.5, 0.9.",
    )
    state = folder / "quantile_state_dict.pt"
    torch.save(model.state_dict(), state)
    saved, not_saved = _save_formats(model, x[:2], folder, "quantile")
    models = {"torchscript-trace": saved.pop("torchscript-trace"), **saved}
    models["state_dict"] = ModelFile(state, _class_args("build_quantile_mlp", kwargs))
    return CorpusCase(
        "sunspots_quantile", "N-BEATS-like MLP with a (B, 3, quantiles 0.1/0.5/0.9) head on yearly sunspots",
        folder, data, schema_path, models, "torchscript-trace", "sunactivity", ("sunactivity",), "noise",
        tuple(f["name"] for f in fields), _clock() - started, not_saved,
    )  # fmt: skip


def _clock() -> float:
    import time

    return time.perf_counter()


CASES: dict[str, Callable[[Path], CorpusCase]] = {
    "macro_fcn": build_macro_fcn,
    "co2_tcn": build_co2_tcn,
    "elnino_checkpoint": build_elnino_checkpoint,
    "sunspots_quantile": build_sunspots_quantile,
}


def write_config(path: Path, config: dict[str, Any] | None = None) -> Path:
    """A ``--config`` file; the tests use ``QUICK_CONFIG``."""
    import yaml

    path.write_text(yaml.safe_dump(config if config is not None else QUICK_CONFIG, sort_keys=False))
    return path


def non_finite_numbers(value: Any, where: str = "") -> list[str]:
    """Paths of every NaN or infinite float under ``value`` (JSON has none, but Python's json writes them)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_numbers(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite_numbers(v, f"{where}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [where]
    return []


def nulls(value: Any, where: str = "") -> list[str]:
    """Paths of every null under ``value``."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{where}[{i}]")]
    return [where] if value is None else []


# Keys whose null the contract allows beside numbers: R² of a constant target, the spread of a single
# repeat, the reason of an ok result, and a prediction's target history and heatmap (classification,
# or no attribution map in the run).
MAY_BE_NULL = frozenset({"r2", "std", "reason", "target_history", "heatmap"})


def holes(entry: dict[str, Any], fields: list[str], where: str = "") -> list[str]:
    """Nulls that stand for a missing number in an analysis entry: in a list that holds numbers, keyed
    by a field name, or beside numbers below the entry's top level (whose nulls mean "does not apply").
    """

    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def walk(value: Any, path: str, depth: int) -> list[str]:
        found: list[str] = []
        if isinstance(value, dict):
            numbers = any(is_number(v) for v in value.values())
            for key, item in value.items():
                if item is None and key not in MAY_BE_NULL and (key in fields or (numbers and depth > 0)):
                    found.append(f"{path}.{key}")
                found += walk(item, f"{path}.{key}", depth + 1)
        elif isinstance(value, list):
            numbers = any(is_number(v) for v in value)
            for index, item in enumerate(value):
                if item is None and numbers:
                    found.append(f"{path}[{index}]")
                found += walk(item, f"{path}[{index}]", depth + 1)
        return found

    return walk(entry, where, 0)
