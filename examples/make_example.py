#!/usr/bin/env python
"""Regenerate the bundled tsreport example: sales.csv, schema.yaml and model.pt.

    python examples/make_example.py [--out DIR]

Everything is seeded, so the data are identical on every run, and the model is
identical on the same machine and torch version. The script only needs torch,
numpy and pandas.

The data: daily sales of one product in four stores over 400 days. Each row's
drivers act on the *next* day's sales, which is exactly what a forecaster that
sees rows [i, i+28) and predicts sales at row i+28 can learn:

    sales[t] = base[store] - 45 * (price[t-1] - 5)      # price: negative effect
             + 70 * promo[t-1]                          # promotion: strong uplift
             + weekday_uplift[weekday(t)]               # weekend uplift
             + 3.0 * (temperature[t-1] - 15)            # temperature: moderate
             + L[t] + noise,   L[t] = 0.85 L[t-1] + e   # AR(1) demand level

humidity and competitor_noise are drawn independently and never enter sales.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

SEED = 20240101
STORES = ["north", "south", "east", "west"]
DAYS = 400
START = "2024-01-01"
WINDOW = 28
HORIZON = 1
HIDDEN = 32
EPOCHS = 40
BATCH = 64
TRAIN_FRACTION = 0.8

# Per-store ground truth of the data generator.
BASE = {"north": 330.0, "south": 300.0, "east": 250.0, "west": 280.0}
PRICE_LEVEL = {"north": 4.49, "south": 5.29, "east": 3.89, "west": 5.79}
TEMP_OFFSET = {"north": -3.0, "south": 4.0, "east": 0.0, "west": 1.5}
WEEKDAY_UPLIFT = np.array([0.0, -5.0, 0.0, 5.0, 15.0, 45.0, 40.0])  # Mon..Sun
PRICE_EFFECT = -45.0
PROMO_EFFECT = 70.0
TEMP_EFFECT = 3.0
AR_PHI = 0.85
AR_SD = 8.0
NOISE_SD = 8.0

DOW = [f"dow_{d}" for d in range(7)]
# Fields in the model's channel order (schema order).
FIELDS = [
    ("price", ["price"], "numeric"),
    ("promo", ["promo"], "numeric"),
    ("temperature", ["temperature"], "numeric"),
    ("weekday", DOW, "categorical"),
    ("humidity", ["humidity"], "numeric"),
    ("competitor_noise", ["competitor_noise"], "numeric"),
    ("sales", ["sales"], "numeric"),
]
CHANNELS = [c for _, cols, _ in FIELDS for c in cols]
NUMERIC = [cols[0] for _, cols, kind in FIELDS if kind == "numeric"]


# ---------------------------------------------------------------- the data


def _price_path(rng: np.random.Generator, level: float, n: int) -> np.ndarray:
    """Store price: a regular level with occasional changes, plus markdown days."""
    regular = np.empty(n)
    current, t = level, 0
    while t < n:
        run = int(rng.integers(45, 110))
        regular[t : t + run] = current
        t += run
        step = rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.12)
        current = float(np.clip(current * (1.0 + step), 0.8 * level, 1.25 * level))
    markdown = np.where(rng.random(n) < 0.2, rng.uniform(0.05, 0.20, n), 0.0)
    return np.round(regular * (1.0 - markdown), 2)


def _promo_path(rng: np.random.Generator, n: int) -> np.ndarray:
    """Promotions: runs of 3-6 days, starting on about 6% of free days."""
    promo = np.zeros(n, dtype=np.int64)
    t = 0
    while t < n:
        if rng.random() < 0.06:
            run = int(rng.integers(3, 7))
            promo[t : t + run] = 1
            t += run + 2  # at least two days between promotions
        else:
            t += 1
    return promo


def make_sales(seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # One extra leading day (2023-12-31): its drivers act on the sales of 2024-01-01.
    n = DAYS + 1
    dates = pd.date_range(pd.Timestamp(START) - pd.Timedelta(days=1), periods=n, freq="D")
    dow = dates.day_of_week.to_numpy()  # Monday = 0
    doy = dates.day_of_year.to_numpy()
    frames = []
    for store in STORES:
        price = _price_path(rng, PRICE_LEVEL[store], n)
        promo = _promo_path(rng, n)
        season = 13.0 + TEMP_OFFSET[store] + 10.0 * np.sin(2 * np.pi * (doy - 105) / 365.25)
        weather = np.zeros(n)
        shocks = rng.normal(0.0, 3.0, n)
        for t in range(n):  # weather persists a little from day to day
            weather[t] = (0.5 * weather[t - 1] if t else 0.0) + shocks[t]
        temperature = np.round(season + weather, 2)
        humidity = np.round(np.clip(rng.normal(65.0, 12.0, n), 15.0, 100.0), 2)
        competitor_noise = np.round(rng.normal(0.0, 1.0, n), 2)

        level = np.empty(n)
        level[0] = rng.normal(0.0, AR_SD / np.sqrt(1 - AR_PHI**2))
        innovations = rng.normal(0.0, AR_SD, n)
        for t in range(1, n):
            level[t] = AR_PHI * level[t - 1] + innovations[t]
        noise = rng.normal(0.0, NOISE_SD, n)

        sales = np.full(n, np.nan)
        sales[1:] = (
            BASE[store]
            + PRICE_EFFECT * (price[:-1] - 5.0)
            + PROMO_EFFECT * promo[:-1]
            + WEEKDAY_UPLIFT[dow[1:]]
            + TEMP_EFFECT * (temperature[:-1] - 15.0)
            + level[1:]
            + noise[1:]
        )
        sales = np.round(np.maximum(sales, 0.0), 2)

        frame = pd.DataFrame(
            {
                "date": dates.strftime("%Y-%m-%d"),
                "store": store,
                "price": price,
                "promo": promo,
                "temperature": temperature,
                **{f"dow_{d}": (dow == d).astype(np.int64) for d in range(7)},
                "humidity": humidity,
                "competitor_noise": competitor_noise,
                "sales": sales,
            }
        )
        frames.append(frame.iloc[1:])  # drop the leading driver-only day
    df = pd.concat(frames, ignore_index=True)
    # A realistic export: one block per day, stores in a fixed order within a day.
    df["_store"] = df["store"].map({s: i for i, s in enumerate(STORES)})
    df = df.sort_values(["date", "_store"], kind="stable").drop(columns="_store")
    return df.reset_index(drop=True)


def scales(df: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per numeric column (mean, std), rounded to 4 decimals as written to the schema."""
    return {c: (round(float(df[c].mean()), 4), round(float(df[c].std(ddof=0)), 4)) for c in NUMERIC}


def schema_yaml(sc: dict[str, tuple[float, float]]) -> str:
    m, s = sc["sales"]
    lines = [
        "# tsreport schema for the bundled example (written by examples/make_example.py).",
        "# Ground truth of the synthetic data: next-day sales are driven by price (negative),",
        "# promo (strong positive), weekday (weekend uplift), temperature (moderate positive)",
        "# and sales' own recent history (AR(1) demand level).",
        "# humidity and competitor_noise are pure noise: they do NOT influence sales.",
        "# The model sees standardised inputs (x - mean) / std; weekday one-hot is fed as 0/1.",
        "version: 1",
        "task: regression",
        "time: date",
        "group: store",
        f"window: {WINDOW}",
        "stride: 1",
        f"horizon: {HORIZON}",
        f"target: {{column: sales, scale: {{mean: {m}, std: {s}}}}}",
        "layout: btc",
        "missing: error",
        "baseline: mean",
        "fields:",
    ]
    for name, cols, kind in FIELDS:
        lines.append(f"  - name: {name}")
        lines.append(f"    columns: [{', '.join(cols)}]")
        if kind == "categorical":
            lines.append("    kind: categorical")
        else:
            mean, std = sc[cols[0]]
            lines.append(f"    scale: {{mean: {mean}, std: {std}}}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- windows


def model_inputs(df: pd.DataFrame, sc: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """The 13 model channels, numeric ones standardised with the schema's scales."""
    x = df[CHANNELS].astype(np.float64).copy()
    for c, (mean, std) in sc.items():
        x[c] = (x[c] - mean) / std
    return x


def make_windows(df: pd.DataFrame, sc: dict[str, tuple[float, float]]):
    """Per store: X windows [i, i+T), y = standardised sales at row i+T, target row index."""
    xs, ys, target_rows = [], [], []
    x_all = model_inputs(df, sc)
    sales_mean, sales_std = sc["sales"]
    for store in STORES:
        rows = df.index[df["store"] == store]
        rows = rows[np.argsort(df.loc[rows, "date"].to_numpy(), kind="stable")]
        x = x_all.loc[rows].to_numpy(np.float32)  # (n, C)
        y = ((df.loc[rows, "sales"].to_numpy() - sales_mean) / sales_std).astype(np.float32)
        n = len(rows)
        n_windows = n - WINDOW - HORIZON + 1
        win = sliding_window_view(x, WINDOW, axis=0)[:n_windows]  # (N, C, T)
        xs.append(np.ascontiguousarray(win.transpose(0, 2, 1)))  # btc
        ys.append(y[WINDOW : WINDOW + n_windows, None])
        target_rows.append(np.arange(WINDOW, WINDOW + n_windows))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(target_rows)


# ---------------------------------------------------------------- the model


class SalesForecaster(nn.Module):
    """LSTM over the window + linear head on the last hidden state + skip from the last step."""

    def __init__(self, channels: int = len(CHANNELS), hidden: int = HIDDEN):
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden, num_layers=1, batch_first=True)
        self.head = nn.Linear(hidden, 1)
        self.skip = nn.Linear(channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, time, channels)
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :]) + self.skip(x[:, -1, :])


def r2(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(1.0 - np.sum((pred - truth) ** 2) / np.sum((truth - truth.mean()) ** 2))


def train(x_tr, y_tr, x_te, y_te) -> SalesForecaster:
    torch.manual_seed(SEED)
    model = SalesForecaster()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS, eta_min=1e-4)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), BATCH):
            idx = order[start : start + BATCH]
            loss = nn.functional.mse_loss(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if (epoch + 1) % 10 == 0:
            print(
                f"  epoch {epoch + 1:3d}  train R2 {r2(predict(model, x_tr), y_tr):.3f}"
                f"  held-out R2 {r2(predict(model, x_te), y_te):.3f}"
            )
    return model


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def permutation_check(model, x, y, repeats: int = 5) -> dict[str, float]:
    """Held-out MSE increase when a field's channel block is shuffled across windows."""
    rng = np.random.default_rng(SEED)
    base = float(np.mean((predict(model, x) - y) ** 2))
    out, c0 = {}, 0
    for name, cols, _ in FIELDS:
        block = slice(c0, c0 + len(cols))
        c0 += len(cols)
        inc = []
        for _ in range(repeats):
            xp = x.copy()
            xp[:, :, block] = x[rng.permutation(len(x))][:, :, block]
            inc.append(float(np.mean((predict(model, xp) - y) ** 2)) - base)
        out[name] = float(np.mean(inc))
    return {"_baseline_mse": base, **out}


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder for sales.csv, schema.yaml, model.pt (default: this folder)",
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    torch.set_num_threads(1)  # small model: one thread is fast and keeps training reproducible
    args.out.mkdir(parents=True, exist_ok=True)

    df = make_sales()
    df.to_csv(args.out / "sales.csv", index=False)
    sc = scales(df)
    (args.out / "schema.yaml").write_text(schema_yaml(sc))
    print(f"wrote {args.out / 'sales.csv'} ({len(df)} rows) and {args.out / 'schema.yaml'}")

    x, y, target_row = make_windows(df, sc)
    cut = int(round(TRAIN_FRACTION * DAYS))  # split by time: targets before/after day `cut`
    tr, te = target_row < cut, target_row >= cut
    print(f"windows: {len(x)} ({tr.sum()} train, {te.sum()} held out), shape {x.shape[1:]}")
    model = train(x[tr], y[tr], x[te], y[te])
    held_out = r2(predict(model, x[te]), y[te])
    print(f"held-out R2: {held_out:.3f}")

    scripted = torch.jit.script(model.eval())
    torch.jit.save(scripted, str(args.out / "model.pt"))
    print(f"wrote {args.out / 'model.pt'}")

    perm = permutation_check(model, x[te], y[te])
    print(f"permutation check on held-out windows (baseline MSE {perm.pop('_baseline_mse'):.4f}):")
    for name, inc in perm.items():
        print(f"  {name:17s} MSE {inc:+.4f}")
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
