#!/usr/bin/env python
"""Does Temporal Saliency Rescaling (TSR) help tsreport's gradient maps find the informative cells?

Usage::

    python bench/bench_tsr.py [--quick] [--seeds 3] [--size 50] [--model cnn|lstm]
        [--tsr-threshold 1.0] [--out FILE.md]

An external benchmark after Ismail, Gunady, Corrada Bravo & Feizi (2020), "Benchmarking
Deep Learning Interpretability in Time Series Predictions", NeurIPS. The data generator,
the training and the scoring below are our own code, written from the paper's description
(and the box geometry of its public benchmark at T = F = 50).

Data (binary classification, every sample a T x F matrix of N(0, 1) noise, T = F = 50 as in
the paper unless ``--size`` says otherwise; box sizes scale with T/50 and F/50):

* ``Middle``         box over time steps [10, 40) x features [10, 40); the box cells are
                     shifted by +mu for class 1 and -mu for class 0.
* ``RareTime``       box over 6 time steps [22, 28) x 40 features [5, 45); +mu / -mu.
* ``RareFeature``    box over 40 time steps [5, 45) x 6 features [22, 28); +mu / -mu.
* ``PositionalTime`` a 20 x 20 box shifted by +mu in BOTH classes; the class is WHERE it is
                     in time: steps [1, 21) for class 1, [29, 49) for class 0; its first
                     feature is uniform in [0, F - 20) per sample (so the model cannot
                     count on fixed features).

mu = 1 (the paper's box is N(+-1, 1)). Classes are balanced in expectation (fair coin).
Full run: 1000 train (10 % of it held out for early stopping) / 200 test samples per dataset
and seed; ``--quick``: 400 / 50 and one seed.

Models (``--model``): ``cnn`` (default), 2 Conv1d layers (32 channels, kernel 5, ReLU), an
average pool over 5 steps and a linear head on the flattened time bins (so it can tell where
in time the box is); ``lstm``, a 1-layer LSTM (hidden 32) whose last hidden state feeds a
linear head. Two logits. Trained with Adam (lr 3e-3, batch 32) on 90 % of the training
samples, early stopping on the other 10 %'s loss (``--patience`` 3, at most ``--max-epochs`` 30,
the best epoch's weights kept); the test accuracy is measured through tsreport's own
forward on the CSV windows.

The model is saved as TorchScript; the test samples are written as a CSV (one row per time
step, one column per feature ``f00..``, ``sample`` as the group, ``t`` as time, ``label`` as
the target) with a schema (task classification, window T, one field per feature, baseline
zero), and the context is built with ``tsreport.pipeline.build_context(..., RunConfig(
samples=None))``: every test sample is one explained window, and what is explained is
the logit of the predicted class (tsreport's convention).

Methods (tsreport's own functions, called as the pipeline calls them, with
``ctx.config.params(name)`` updated): ``gradient_x_input``, ``saliency``,
``integrated_gradients`` (``--ig-steps`` points, Gauss-Legendre), each once with
``tsr: true, tsr_threshold: 1.0`` so that the plain map (the result's ``maps[name]``) and the
rescaled one (``maps[name + "+tsr"]``) come from the same call; ``occlusion``
(blocks of ``--occlusion-sizes`` steps of one feature, default 4 = tsreport's default; 1 =
one cell, about 4x slower) for reference; and ``random`` (a uniform random map per window) as the floor.

Score (after the paper's code; our exact definition). For each window, take its (T x F)
map of |attribution| (tsreport's field maps are already absolute), min-max rescale it to
[0, 1] within the window (as the paper does), call it s, and the true box mask B. Sort the
cells by s, largest first. For each p in {0.1, 0.2, ..., 0.9}, select the smallest set S_p of
top cells whose saliency mass reaches p of the window's total mass (sum s over S_p >= p * sum s).
Then

    weighted precision P(p) = sum_{S_p & B} s / sum_{S_p} s
    weighted recall    R(p) = sum_{S_p & B} s / sum_{B} s

A window whose rescaled map is all zero (constant map) scores P = R = 0. AUP and AUR are the
trapezoidal areas under P(p) and R(p) over p in [0.1, 0.9] divided by 0.8, i.e. the curve's
mean height, in [0, 1]. Each is averaged over the test windows, then mean +- std over seeds
(std with ddof = 0; one seed shows +- 0). The random map gives AUP ~ |B| / (T F) (the box's
share of the cells), the floor to beat.

Beware of the weighted recall, which we keep because it is the paper's: S_p holds p of the
map's mass, so an ideal map (all its mass in the box) has R(p) = p and AUR ~ 0.5, and so does a
random map in expectation; AUR exceeds 0.5 only for a map that ranks the box first AND keeps
much mass outside it. A map that concentrates its mass (as TSR does, by zeroing the dropped
steps) is therefore pulled towards 0.5 from above whether it is right or not. AUP is the
figure to read; AUR mostly says how diffuse a map is.

As a threshold-free complement we also print AP, the unweighted average precision of ranking
the cells by |map| to find the box cells: AP = sum_k (R_k - R_{k-1}) P_k over the distinct
map values taken from the largest down (tied cells enter together, as sklearn's
``average_precision_score`` does), with P_k / R_k the plain cell-count precision / recall of
the cells at or above the k-th value; averaged over windows. Ideal map 1, random or constant
map ~ the box's share of the cells.

Note how tsreport's TSR differs from the paper's. As we read the paper (its Algorithm 1), the
time relevance of step t is the total change of the *saliency map* when all features at t are
masked; for the steps above the threshold (the mean) the feature relevance of (t, i) is again
the saliency map's change when that one cell is masked, and the rescaled map is their product
(T + T' F extra saliency computations per window). tsreport's variant
(``tsreport.analyses.gradients.time_relevance`` / ``tsr_rescale``) takes the time relevance
from the change of the *explained output* (the predicted class's logit) when step t is set to
the baseline (T forward passes per window, no extra backward pass), keeps the steps whose
relevance is >= threshold x the window's mean, and splits a kept step's relevance over the
features in proportion to the method's own map. The benchmark therefore also prints how well
that first stage picks the box's time steps (time precision / recall of the kept steps).

Printed: the markdown table (dataset x method: AUP, AUR, AP without and with TSR), the test
accuracy per dataset and seed, the TSR time-stage table, the wall time and the exact command.
Runs on one torch thread by default (``BENCH_THREADS`` to change): on a busy 2-core machine
one thread was faster than two.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

from tsreport.analyses.gradients import gradient_x_input, integrated_gradients, saliency
from tsreport.analyses.occlusion import occlusion
from tsreport.config import RunConfig
from tsreport.pipeline import build_context

THREADS = int(os.environ.get("BENCH_THREADS", "1"))  # 1 is faster than 2 on a busy 2-core machine
torch.set_num_threads(THREADS)

MU = 1.0
PERCENTAGES = np.round(np.arange(0.1, 0.91, 0.1), 10)
GRADIENT_METHODS = {
    "gradient_x_input": gradient_x_input,
    "saliency": saliency,
    "integrated_gradients": integrated_gradients,
}
DATASETS = ("Middle", "RareTime", "RareFeature", "PositionalTime")


# --------------------------------------------------------------------------- data


@dataclasses.dataclass
class Split:
    x: np.ndarray  # (N, T, F) float32
    y: np.ndarray  # (N,) int64, 0 or 1
    mask: np.ndarray  # (N, T, F) bool, the informative box of each sample


def _scaled(value: int, size: int) -> int:
    """A box coordinate given for 50 steps/features, scaled to ``size``."""
    return int(round(value * size / 50))


def box_geometry(name: str, T: int, F: int) -> dict[str, Any]:
    """Box extents in (T, F) coordinates; see the module docstring."""
    if name == "Middle":
        return {"t": (_scaled(10, T), _scaled(40, T)), "f": (_scaled(10, F), _scaled(40, F))}
    if name == "RareTime":
        return {"t": (_scaled(22, T), _scaled(28, T)), "f": (_scaled(5, F), _scaled(45, F))}
    if name == "RareFeature":
        return {"t": (_scaled(5, T), _scaled(45, T)), "f": (_scaled(22, F), _scaled(28, F))}
    if name == "PositionalTime":
        length, width = _scaled(20, T), _scaled(20, F)
        return {
            "t1": (_scaled(1, T), _scaled(1, T) + length),
            "t0": (_scaled(29, T), _scaled(29, T) + length),
            "width": width,
        }
    raise ValueError(name)


def generate(name: str, n: int, T: int, F: int, rng: np.random.Generator) -> Split:
    """``n`` samples of one dataset (our own generator after Ismail et al. 2020)."""
    x = rng.normal(0.0, 1.0, (n, T, F))
    y = rng.integers(0, 2, n)
    mask = np.zeros((n, T, F), dtype=bool)
    geometry = box_geometry(name, T, F)
    if name == "PositionalTime":
        width = geometry["width"]
        feature_starts = rng.integers(0, F - width, n)
        for i in range(n):
            t0, t1 = geometry["t1"] if y[i] == 1 else geometry["t0"]
            f0 = feature_starts[i]
            mask[i, t0:t1, f0 : f0 + width] = True
        x = x + MU * mask  # +mu in both classes: only the position tells the class
    else:
        (t0, t1), (f0, f1) = geometry["t"], geometry["f"]
        mask[:, t0:t1, f0:f1] = True
        sign = np.where(y == 1, 1.0, -1.0)[:, None, None]
        x = x + MU * sign * mask
    return Split(x.astype(np.float32), y.astype(np.int64), mask)


# --------------------------------------------------------------------------- models


class CNNClassifier(nn.Module):
    """2 Conv1d layers (32 channels, kernel 5, ReLU), average pool over 5 steps, linear head on the flattened bins.

    The head has weights per time bin, so the model can tell WHERE in time the box is (PositionalTime).
    """

    def __init__(self, features: int, steps: int, width: int = 32, pool: int = 5) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(features, width, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(width, width, 5, padding=2),
            nn.ReLU(),
            nn.AvgPool1d(pool, ceil_mode=True),
        )
        self.head = nn.Linear(width * ((steps + pool - 1) // pool), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F)
        return self.head(self.net(x.transpose(1, 2)).flatten(1))


class LSTMClassifier(nn.Module):
    """1-layer LSTM (hidden 32); the last hidden state feeds a linear head with two logits."""

    def __init__(self, features: int, steps: int, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


MODELS = {
    "cnn": (CNNClassifier, "1-D CNN (2x Conv1d k5 32ch, avg-pool 5, linear head)"),
    "lstm": (LSTMClassifier, "1-layer LSTM, hidden 32"),
}


def train(kind: str, data: Split, seed: int, max_epochs: int, patience: int = 3) -> tuple[nn.Module, str, float]:
    """Adam (lr 3e-3, batch 32) on 90 % of ``data``; early stopping on the held-out 10 %'s loss.

    Stops after ``patience`` epochs without a lower held-out loss (or ``max_epochs``) and
    keeps the best epoch's weights. Returns (model, "best epoch/epochs run", held-out accuracy).
    """
    torch.manual_seed(seed)
    n = data.x.shape[0]
    held = max(1, n // 10)
    x = torch.from_numpy(data.x)
    y = torch.from_numpy(data.y)
    x_fit, y_fit, x_val, y_val = x[held:], y[held:], x[:held], y[:held]
    model = MODELS[kind][0](data.x.shape[2], data.x.shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    best = (float("inf"), 0.0, copy.deepcopy(model.state_dict()))
    since_best, epoch, best_epoch = 0, 0, 0
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.randperm(x_fit.shape[0], generator=generator)
        for begin in range(0, len(order), 32):
            batch = order[begin : begin + 32]
            optimiser.zero_grad()
            loss_fn(model(x_fit[batch]), y_fit[batch]).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            loss = float(loss_fn(logits, y_val))
            accuracy = float((logits.argmax(dim=1) == y_val).float().mean())
        if loss < best[0] - 1e-4:
            best, since_best, best_epoch = (loss, accuracy, copy.deepcopy(model.state_dict())), 0, epoch
        else:
            since_best += 1
            if since_best >= patience:
                break
    model.load_state_dict(best[2])
    return model.eval(), f"{best_epoch}/{epoch}", best[1]


# --------------------------------------------------------------------------- tsreport context


def write_case(folder: Path, test: Split, model: nn.Module) -> tuple[Path, Path, Path]:
    """Test samples -> data.csv (one group per sample) + schema.yaml; model -> TorchScript."""
    n, T, F = test.x.shape
    names = [f"f{i:02d}" for i in range(F)]
    frame = pd.DataFrame(test.x.reshape(n * T, F), columns=names)
    frame.insert(0, "t", np.tile(np.arange(T), n))
    frame.insert(0, "sample", np.repeat([f"s{i:05d}" for i in range(n)], T))
    frame["label"] = np.repeat(test.y, T)
    data = folder / "data.csv"
    frame.to_csv(data, index=False, float_format="%.6f")
    schema = {
        "version": 1, "task": "classification", "time": "t", "group": "sample", "window": T,
        "target": "label", "layout": "btc", "missing": "error", "baseline": "zero",
        "fields": [{"name": f, "columns": [f]} for f in names],
    }  # fmt: skip
    schema_path = folder / "schema.yaml"
    schema_path.write_text(yaml.safe_dump(schema, sort_keys=False))
    model_path = folder / "model.pt"
    torch.jit.save(torch.jit.script(model), str(model_path))
    return model_path, data, schema_path


# --------------------------------------------------------------------------- scoring


def precision_recall_curves(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, T, F) maps and box masks -> (n, 9) weighted precision and recall at p = 0.1 .. 0.9."""
    n = maps.shape[0]
    flat = np.abs(maps.reshape(n, -1).astype(np.float64))
    box = masks.reshape(n, -1)
    low, high = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    span = high - low
    s = np.divide(flat - low, span, out=np.zeros_like(flat), where=span > 0)
    order = np.argsort(-s, axis=1, kind="stable")
    sorted_s = np.take_along_axis(s, order, axis=1)
    sorted_box = np.take_along_axis(box, order, axis=1)
    mass = np.cumsum(sorted_s, axis=1)
    hits = np.cumsum(sorted_s * sorted_box, axis=1)
    total = mass[:, -1:]
    box_total = (s * box).sum(axis=1, keepdims=True)
    precision = np.zeros((n, len(PERCENTAGES)))
    recall = np.zeros((n, len(PERCENTAGES)))
    rows = np.arange(n)
    for j, p in enumerate(PERCENTAGES):
        # Smallest k with mass[k-1] >= p * total (a tiny tolerance for float sums).
        k = np.minimum((mass < p * total - 1e-12).sum(axis=1), flat.shape[1] - 1)
        selected, inside = mass[rows, k], hits[rows, k]
        precision[:, j] = np.divide(inside, selected, out=np.zeros(n), where=selected > 0)
        recall[:, j] = np.divide(inside, box_total[:, 0], out=np.zeros(n), where=box_total[:, 0] > 0)
    return precision, recall


def aup_aur(maps: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """Mean over windows of the normalised areas under the weighted precision / recall curves."""
    precision, recall = precision_recall_curves(maps, masks)
    width = PERCENTAGES[-1] - PERCENTAGES[0]
    aup = np.trapezoid(precision, PERCENTAGES, axis=1) / width
    aur = np.trapezoid(recall, PERCENTAGES, axis=1) / width
    return float(aup.mean()), float(aur.mean())


def average_precision(maps: np.ndarray, masks: np.ndarray) -> float:
    """Mean over windows of the (unweighted) average precision of ranking cells by |map| to find the box.

    Ties count as one threshold (all tied cells enter together), as in sklearn's
    ``average_precision_score``: AP = sum_k (R_k - R_{k-1}) P_k over the distinct scores.
    """
    values = []
    for saliency_map, box in zip(np.abs(maps.reshape(maps.shape[0], -1)), masks.reshape(masks.shape[0], -1)):
        positives = box.sum()
        if positives == 0:
            continue
        order = np.argsort(-saliency_map, kind="stable")
        scores, truth = saliency_map[order], box[order]
        last_of_tie = np.r_[scores[1:] != scores[:-1], True]
        hits = np.cumsum(truth)[last_of_tie]
        taken = np.arange(1, len(scores) + 1)[last_of_tie]
        recall = hits / positives
        precision = hits / taken
        values.append(float(np.sum(np.diff(np.r_[0.0, recall]) * precision)))
    return float(np.mean(values))


def _self_test() -> None:
    """Known answers of the scores: a perfect map, the box's complement, a constant map."""
    mask = np.zeros((1, 20, 20), dtype=bool)
    mask[0, 2:12, 3:13] = True
    perfect = mask.astype(float)
    aup, aur = aup_aur(perfect, mask)
    # A perfect map: P(p) = 1, and R(p) = p (the selected mass is p of the box's mass).
    assert abs(aup - 1.0) < 1e-9 and abs(aur - 0.5) < 0.02, (aup, aur)
    assert average_precision(perfect, mask) == 1.0
    wrong = (~mask).astype(float)
    assert aup_aur(wrong, mask) == (0.0, 0.0)
    assert abs(average_precision(wrong, mask) - 0.25) < 1e-9  # one tie group above, all cells below
    flat = np.ones((1, 20, 20))
    assert aup_aur(flat, mask) == (0.0, 0.0)  # a constant map rescales to zero
    assert abs(average_precision(flat, mask) - 0.25) < 1e-9  # one tie group: the box's share


# --------------------------------------------------------------------------- one run


@dataclasses.dataclass
class RunResult:
    dataset: str
    seed: int
    accuracy: float  # test accuracy through tsreport's own forward on the CSV windows
    epochs: str  # best epoch / epochs run
    scores: dict[str, tuple[float, float, float]]  # method (or method+tsr) -> (AUP, AUR, AP)
    time_stage: dict[str, float]  # TSR first stage vs the box's time steps
    seconds: dict[str, float]


def run_one(name: str, seed: int, args: argparse.Namespace, n_train: int, n_test: int, folder: Path) -> RunResult:
    T = F = args.size
    rng = np.random.default_rng([seed, DATASETS.index(name)])
    train_split = generate(name, n_train, T, F, rng)
    test = generate(name, n_test, T, F, rng)
    seconds: dict[str, float] = {}

    begin = time.perf_counter()
    model, epochs, _ = train(args.model, train_split, seed, args.max_epochs, args.patience)
    seconds["train"] = time.perf_counter() - begin

    case = folder / f"{name}-{seed}"
    case.mkdir()
    model_path, data, schema = write_case(case, test, model)
    config = RunConfig(samples=None, seed=seed, batch_size=1024)
    for method in GRADIENT_METHODS:
        config.analysis_params[method].update({"tsr": True, "tsr_threshold": args.tsr_threshold})
    config.analysis_params["integrated_gradients"]["n_steps"] = args.ig_steps
    ctx, _, _ = build_context(model_path, data, schema, config)

    # Map the explained windows back to the generated samples through their group names.
    index = np.array([int(str(g)[1:]) for g in ctx.windows.groups[ctx.explained]])
    masks = test.mask[index]
    np.testing.assert_allclose(ctx.explained_inputs.numpy(), test.x[index], atol=1e-5)
    predicted = ctx.explained_outputs().argmax(dim=1).numpy()
    accuracy = float((predicted == ctx.windows.targets[ctx.explained]).mean())

    scores: dict[str, tuple[float, float, float]] = {}

    def score(maps: np.ndarray) -> tuple[float, float, float]:
        return (*aup_aur(maps, masks), average_precision(maps, masks))

    rng_methods = np.random.default_rng(seed)
    for method, run in GRADIENT_METHODS.items():
        begin = time.perf_counter()
        maps = run(ctx, ctx.config.params(method), rng=rng_methods).maps
        seconds[method] = time.perf_counter() - begin
        scores[method] = score(maps[method])
        scores[method + "+tsr"] = score(maps[method + "+tsr"])
    for size in args.occlusion_sizes:
        begin = time.perf_counter()
        maps = occlusion(ctx, {**ctx.config.params("occlusion"), "size": size, "stride": None}, rng=rng_methods).maps
        seconds[f"occlusion{size}"] = time.perf_counter() - begin
        scores[f"occlusion (size {size})"] = score(maps["occlusion"])
    scores["random"] = score(rng_methods.random(masks.shape))

    # TSR's first stage alone: which steps it keeps, against the box's time steps.
    relevance = ctx.cache["time_relevance"]  # (n, T)
    kept = relevance >= args.tsr_threshold * relevance.mean(axis=1, keepdims=True)
    box_steps = masks.any(axis=2)
    true_kept = (kept & box_steps).sum(axis=1)
    time_stage = {
        "kept": float(kept.sum(axis=1).mean()),
        "box_steps": float(box_steps.sum(axis=1).mean()),
        "precision": float(np.mean(true_kept / np.maximum(kept.sum(axis=1), 1))),
        "recall": float(np.mean(true_kept / np.maximum(box_steps.sum(axis=1), 1))),
    }
    return RunResult(name, seed, accuracy, epochs, scores, time_stage, seconds)


# --------------------------------------------------------------------------- report


def _fmt(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def report(results: list[RunResult], args: argparse.Namespace, n_train: int, n_test: int, wall: float) -> str:
    T = F = args.size
    seeds = sorted({r.seed for r in results})
    lines = [
        f"### TSR benchmark (after Ismail et al. 2020): T = {T}, F = {F}, {n_train} train / {n_test} test "
        f"samples per dataset, {MODELS[args.model][1]}, seeds {seeds}, IG {args.ig_steps} points, "
        f"occlusion blocks of {', '.join(map(str, args.occlusion_sizes))} step(s), baseline zero",
        "",
        "AUP / AUR: the paper's weighted precision / recall of the top cells (by saliency mass, p = 0.1..0.9) "
        "against the true box (an ideal map scores AUP 1, AUR ≈ 0.5); AP: unweighted average precision of the "
        "cell ranking (ideal 1, random ≈ the box's share). Means over the test windows, then mean ± std over "
        "seeds; definitions in the script's docstring. \"+TSR\": the same call's `maps[name + '+tsr']` "
        f"(`tsr: true, tsr_threshold: {args.tsr_threshold:g}`).",
        "",
        "| dataset | box cells | method | AUP | AUR | AP | AUP +TSR | AUR +TSR | AP +TSR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    methods = list(GRADIENT_METHODS) + [f"occlusion (size {s})" for s in args.occlusion_sizes] + ["random"]
    for name in DATASETS:
        rows = [r for r in results if r.dataset == name]
        if not rows:
            continue
        share = box_share(name, T, F)
        for method in methods:
            plain = [_fmt([r.scores[method][k] for r in rows]) for k in range(3)]
            if method in GRADIENT_METHODS:
                tsr = [_fmt([r.scores[method + "+tsr"][k] for r in rows]) for k in range(3)]
            else:
                tsr = ["—"] * 3
            lines.append(f"| {name} | {share:.1%} | {method} | " + " | ".join(plain + tsr) + " |")
    lines += [
        "",
        "Test accuracy (through tsreport's forward on the CSV windows) per seed, with the kept (best held-out loss) epoch / epochs run:",
        "",
        "| dataset | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
        "|---|" + "---|" * (len(seeds) + 1),
    ]
    for name in DATASETS:
        rows = sorted((r for r in results if r.dataset == name), key=lambda r: r.seed)
        if rows:
            cells = " | ".join(f"{r.accuracy:.3f} (ep {r.epochs})" for r in rows)
            mean = np.mean([r.accuracy for r in rows])
            flag = (
                " ⚠ below 0.9: this dataset's scores explain a model that did not learn the task" if mean < 0.9 else ""
            )
            lines.append(f"| {name} | {cells} | {mean:.3f}{flag} |")
    lines += [
        "",
        "TSR's first stage (time relevance = |change of the explained logit| when one step is set to the "
        f"baseline; steps kept when >= {args.tsr_threshold:g} x the window's mean), against the box's time steps:",
        "",
        "| dataset | box steps | kept steps | time precision | time recall |",
        "|---|---|---|---|---|",
    ]
    for name in DATASETS:
        rows = [r for r in results if r.dataset == name]
        if rows:
            stage = {k: [r.time_stage[k] for r in rows] for k in rows[0].time_stage}
            lines.append(
                f"| {name} | {np.mean(stage['box_steps']):.0f} | {np.mean(stage['kept']):.1f} | "
                f"{_fmt(stage['precision'])} | {_fmt(stage['recall'])} |"
            )
    totals: dict[str, float] = {}
    for r in results:
        for key, value in r.seconds.items():
            totals[key] = totals.get(key, 0.0) + value
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in totals.items())
    lines += [
        "",
        f"Wall time {wall:.0f} s ({wall / 60:.1f} min) on {platform.machine()} with torch "
        f"{torch.__version__}, {THREADS} torch thread(s) (of which: {timing}; gradient timings include TSR's "
        "time relevance, computed once per context by the first method).",
        "",
        f"Command: `{command_line()}`",
    ]
    return "\n".join(lines)


def box_share(name: str, T: int, F: int) -> float:
    geometry = box_geometry(name, T, F)
    if name == "PositionalTime":
        length = geometry["t1"][1] - geometry["t1"][0]
        return length * geometry["width"] / (T * F)
    (t0, t1), (f0, f1) = geometry["t"], geometry["f"]
    return (t1 - t0) * (f1 - f0) / (T * F)


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 400 train / 50 test samples: a smoke run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", type=int, default=50, help="T = F (the paper: 50)")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=3, help="early stopping: epochs without a lower held-out loss")
    parser.add_argument("--ig-steps", type=int, default=50)
    parser.add_argument("--tsr-threshold", type=float, default=1.0, help="tsr_threshold (1 = the window's mean)")
    parser.add_argument(
        "--occlusion-sizes", default="4", help="comma separated block lengths in steps (1 = per cell, slow)"
    )
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--out", help="also write the markdown to this file")
    args = parser.parse_args(argv)
    args.occlusion_sizes = [int(s) for s in args.occlusion_sizes.split(",") if s]
    names = [d for d in args.datasets.split(",") if d]
    unknown = set(names) - set(DATASETS)
    if unknown:
        parser.error(f"unknown datasets {sorted(unknown)}; choose from {', '.join(DATASETS)}")
    seeds = 1 if args.quick else args.seeds
    n_train, n_test = (400, 50) if args.quick else (args.n_train, args.n_test)
    _self_test()

    clock = time.perf_counter()
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="bench_tsr_") as tmp:
        for name in [d for d in DATASETS if d in names]:
            for seed in range(seeds):
                begin = time.perf_counter()
                result = run_one(name, seed, args, n_train, n_test, Path(tmp))
                results.append(result)
                print(
                    f"# {name} seed {seed}: accuracy {result.accuracy:.3f}, epoch {result.epochs}, "
                    f"{time.perf_counter() - begin:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    text = report(results, args, n_train, n_test, time.perf_counter() - clock)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
