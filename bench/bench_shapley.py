#!/usr/bin/env python
"""How close tsreport's exact field Shapley values run to the speed of the model itself, and shap's KernelExplainer.

Usage::

    python bench/bench_shapley.py [--quick] [--models lstm,transformer,cnn] [--n 2000] [--kernel-windows 100]
                                  [--repeats 1] [--wait-calm SECONDS]

Every figure is a RATIO to a limit measured in the same run (the machines are
shared and noisy):

* the limit: N x 2^8 forward passes (every coalition of the 8 fields of every
  window) at the best plain forward throughput of the very TorchScript module
  the pipeline loaded (windows/s under torch.inference_mode, best of 3 over
  batch sizes 16..4096);
* ours: ``tsreport.analyses.shapley.shapley(ctx, params, rng=...)`` called as
  the pipeline calls it, at tsreport's default batch size (RunConfig.batch_size) and at the batch size
  that was best for plain throughput, one timed run each on a fresh context
  (it also computes f(x) of every window and f(baseline): N + 1 evaluations
  more than the limit counts);
* shap.KernelExplainer over the same binary field coalitions (a field present
  = its own 48 x 1 block, absent = its baseline), ``nsamples = 2^8`` so that it
  enumerates every coalition (2^8 - 2 = 254 of them plus f(x)) and
  ``l1_reg=False``, the model called directly on each window's 254 coalitions
  in one batch. It runs one window at a time, so it is timed on a subset of
  the windows and the time is EXTRAPOLATED linearly to N (the table says which
  subset); its Shapley values are compared with ours on that subset.

Because a full run of ours lasts minutes while the sweep's best throughput is
a burst of seconds, each timing is also given "paired": divided by a plain
forward at the best batch size of an eighth of the same evaluations run just
before it and another just after, scaled up and averaged: the limit as it was
around the time ours ran. On a quiet
machine the two ratios agree; on a shared one the strict ratio also measures
the other processes.

The "load" column is the best plain throughput of the sweep divided by a short
throughput probe taken just before the timed run: 1.00 means the machine was as
fast as during the sweep, 1.5 means something else was using the cores (the
ratio is then pessimistic).

Windows: T = 48 steps, C = 8 single-channel numeric fields (the 8 players),
horizon 1, baseline = each field's mean. Models, data and timing kit shared with
bench_attributions.py in bench/common.py: 2-layer LSTM (hidden 64), Transformer
encoder (d_model 64, 4 heads, 2 layers), dilated CNN. Each of our runs is timed ``--repeats`` times (default 1: a full
run of one model is minutes of model time) and the best kept.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import (
    CHANNELS,
    DEFAULT_BATCH,
    MODELS,
    REPEATS,
    WINDOW,
    Probe,
    Task,
    Timing,
    build,
    forward_rate,
    fresh,
    interleaved,
    line,
    print_verdicts,
    save_model,
    sweep,
    tile,
    verdict,
    wait_until_calm,
    write_data,
)

FIELDS = CHANNELS  # one channel each: the 8 players
COALITIONS = 2**FIELDS
TARGET = 1.15  # ours / limit
KERNEL_RANGE = (1.3, 3.0)  # what shap.KernelExplainer measured here when this benchmark was written
TOLERANCE = 1e-5
PAIRED_FRACTION = 0.125  # of the evaluations, for each plain forward run just before and after a timing


# --------------------------------------------------------------------------- paired timing


def plain_seconds(module, inputs: torch.Tensor, batch: int, evaluations: int) -> float:
    """Seconds a plain forward of ``evaluations`` windows at ``batch`` takes now (a fraction run, scaled up)."""
    calls = max(1, round(evaluations * PAIRED_FRACTION / batch))
    return evaluations / forward_rate(module, tile(inputs, batch), calls)


def paired_timing(run: Callable[[], float], module, inputs: torch.Tensor, batch: int, evaluations: int):
    """``run()``'s seconds and the plain-forward seconds of the same evaluations, measured before and after it."""
    before = plain_seconds(module, inputs, batch, evaluations)
    seconds = run()
    after = plain_seconds(module, inputs, batch, evaluations)
    return seconds, (before + after) / 2


def run_ours(ctx):
    from tsreport.analyses._base import child_rng
    from tsreport.analyses.shapley import shapley
    from tsreport.config import RunConfig

    config = RunConfig()
    return shapley(ctx, config.params("shap"), rng=child_rng(config.seed, "shap"))


class KernelGame:
    """shap.KernelExplainer's model: (m, 8) field vectors -> (m,) outputs, the module called directly.

    Row values code the window: field j of window i is i + 1 when present and 0
    (the background) when absent, so one explainer (one f(background)) serves
    every window, and each window's coalitions go to the model in one batch.
    """

    def __init__(self, module, inputs: torch.Tensor, baseline: torch.Tensor) -> None:
        self.module, self.inputs, self.baseline = module, inputs, baseline

    def __call__(self, coded: np.ndarray) -> np.ndarray:
        coded = torch.as_tensor(coded)
        window = (coded.max(dim=1).values - 1).clamp(min=0).long()  # all absent: any window will do
        present = (coded > 0)[:, None, :]  # (m, 1, 8): one channel per field
        with torch.inference_mode():
            x = torch.where(present, self.inputs[window], self.baseline)
            return self.module(x).double().numpy()[:, 0]


def kernel_explainer(module, ctx, windows: int) -> tuple[float, np.ndarray]:
    """Seconds for ``windows`` windows and their (windows, 8) Shapley values."""
    import shap

    game = KernelGame(module, ctx.explained_inputs[:windows], ctx.baseline.float())
    coded = np.repeat(np.arange(1, windows + 1, dtype=float)[:, None], FIELDS, axis=1)
    begin = time.perf_counter()
    explainer = shap.KernelExplainer(game, np.zeros((1, FIELDS)))
    values = explainer.shap_values(coded, nsamples=COALITIONS, l1_reg=False, silent=True)
    return time.perf_counter() - begin, np.asarray(values)


def bench_model(name: str, folder: Path, data: Path, schema: Path, n: int, kernel_windows: int, quick: bool,
                repeats: int) -> dict:  # fmt: skip
    model_path = save_model(name, folder)
    ctx = build(model_path, data, schema)
    module = ctx.forward.loaded.module
    sample = ctx.explained_inputs[:4096]
    line()
    line("=" * 100)
    line(f"{name}: {MODELS[name][1]} (TorchScript via build_context), windows {WINDOW}x{FIELDS}, N = {n}")
    line("=" * 100)

    batches = [64, 256, 1024] if quick else [16, 64, 256, 1024, 4096]
    forward = sweep(module, sample, batches, forward_rate, 0.15 if quick else 0.6, REPEATS)
    best_batch = max(forward, key=forward.get)
    fwd = forward[best_batch]
    limit = n * COALITIONS / fwd
    line(f"plain forward throughput (windows/s, best of {REPEATS}; torch threads {torch.get_num_threads()}):")
    line("  batch    " + "".join(f"{b:>10}" for b in batches))
    line("  forward  " + "".join(f"{forward[b]:10.0f}" for b in batches) + f"   best {fwd:.0f} @ {best_batch}")
    line(f"  limit = {n} x {COALITIONS} / {fwd:.0f} = {limit:.2f} s")
    probe = Probe(module, sample, forward_rate, best_batch, fwd, 0.1 if quick else 0.25)

    sizes = [DEFAULT_BATCH] + ([best_batch] if best_batch != DEFAULT_BATCH else [])
    row = {"name": name, "fwd": fwd, "limit": limit, "best_batch": best_batch}
    line(f"ours (tsreport.analyses.shapley.shapley on N = {n} windows, best of {repeats}); 'paired' = the same "
         f"seconds divided by plain forwards of {PAIRED_FRACTION:g} of the same evaluations at batch {best_batch} "
         f"just before and after, scaled up and averaged (the limit around the time ours ran):")  # fmt: skip
    for batch in sizes:
        holder: list[Timing] = []

        def measure(b: int = batch, holder: list[Timing] = holder) -> float:
            task = Task(run_ours, prepare=lambda: fresh(ctx, n, b), probe=probe)
            holder.append(interleaved({b: task}, repeats, counter=lambda: ctx.forward.evaluations)[b])
            return holder[-1].seconds

        _, same_time = paired_timing(measure, module, sample, best_batch, n * COALITIONS)
        timing = holder[0]
        ratio, paired = timing.seconds / limit, timing.seconds / same_time
        row[batch] = (timing, ratio, paired)
        line(f"  @ batch {batch:5d}: {timing.seconds:8.2f} s = {ratio:5.2f}x the limit, paired {paired:5.2f}x "
             f"(load {timing.load:.2f}; {timing.evaluations} evaluations = N x {timing.evaluations / n:.2f})  "
             + verdict(f"{name} ours @{batch}", ratio <= TARGET, f"{ratio:.2f}x, paired {paired:.2f}x (target {TARGET})"))  # fmt: skip
    ctx.forward.batch_size = DEFAULT_BATCH

    windows = min(kernel_windows, n)
    ours_subset = run_ours(fresh(ctx, windows, DEFAULT_BATCH))
    ours_phi = np.array(ours_subset.values["phi"])  # every window when windows <= 300
    load = probe.load()
    kernel: list[np.ndarray] = []

    def measure_kernel() -> float:
        seconds, values = kernel_explainer(module, ctx, windows)
        kernel.append(values)
        return seconds

    kernel_seconds, same_time = paired_timing(measure_kernel, module, sample, best_batch, windows * COALITIONS)
    kernel_phi = kernel[0]
    extrapolated = kernel_seconds / windows * n
    kernel_ratio, kernel_paired = extrapolated / limit, kernel_seconds / same_time
    difference = float(np.abs(kernel_phi - ours_phi).max())
    row.update(kernel_ratio=kernel_ratio, kernel_paired=kernel_paired, difference=difference, kernel_windows=windows)
    line(f"shap.KernelExplainer (nsamples {COALITIONS}: all coalitions, l1_reg False, one window at a time), timed on "
         f"the first {windows} windows: {kernel_seconds:.2f} s, EXTRAPOLATED to {n}: {extrapolated:.1f} s = "
         f"{kernel_ratio:.2f}x the limit, paired {kernel_paired:.2f}x (load {load:.2f})")  # fmt: skip
    line(f"max |ours - KernelExplainer| over {windows} windows x {FIELDS} fields: {difference:.2e} "
         f"(max |phi| {np.abs(ours_phi).max():.3g}; additivity error of ours {ours_subset.additivity_max_error:.1e})  "
         + verdict(f"{name} values == KernelExplainer", difference < TOLERANCE, f"{difference:.2e}"))  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 200, fewer batch sizes: a smoke test")
    parser.add_argument("--models", default="lstm,transformer,cnn")
    parser.add_argument("--n", type=int, default=None, help="windows explained (default 2000; 200 with --quick)")
    parser.add_argument("--kernel-windows", type=int, default=None, help="KernelExplainer subset (default 100; 20)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of ours, best kept (default 1; 2)")
    parser.add_argument("--wait-calm", type=float, default=0.0, metavar="SECONDS",
                        help="first wait (at most SECONDS) for idle CPUs: other processes ruin the timings")  # fmt: skip
    args = parser.parse_args()
    quick = args.quick
    n = args.n or (200 if quick else 2000)
    kernel_windows = args.kernel_windows or (20 if quick else 100)
    repeats = args.repeats or (2 if quick else 1)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")

    import shap

    import tsreport

    if args.wait_calm:
        wait_until_calm(args.wait_calm)

    started = time.perf_counter()
    line(f"tsreport {tsreport.__version__}, torch {torch.__version__}, shap {shap.__version__}, python "
         f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
         f"load average at start {os.getloadavg()[0]:.2f}")  # fmt: skip
    line(f"exact field Shapley values: N = {n}{' (quick)' if quick else ''}, T = {WINDOW}, {FIELDS} one-channel fields, "
         f"{COALITIONS} coalitions per window")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="tsreport-bench-shap-") as tmp:
        folder = Path(tmp)
        data, schema = write_data(folder, n)
        for name in names:
            rows.append(bench_model(name, folder, data, schema, n, kernel_windows, quick, repeats))

    line()
    line("=" * 100)
    line(f"summary ({time.perf_counter() - started:.0f} s, load average at end {os.getloadavg()[0]:.2f}); ratios to "
         f"the limit N x {COALITIONS} / best plain throughput (target for ours <= {TARGET}x):")  # fmt: skip
    line(f"  {'model':12}{'best fwd/s':>11}{'limit s':>9}{'ours @' + str(DEFAULT_BATCH):>12}{'ours @best':>14}{'Kernel (extrap.)':>18}"
         f"{'max |diff|':>11}")  # fmt: skip
    line(f"  {'':12}{'':>11}{'':>9}{'(paired)':>12}{'(paired)':>14}{'(paired)':>18}")
    for row in rows:
        default, best = row[DEFAULT_BATCH], row[row["best_batch"]]
        line(f"  {row['name']:12}{row['fwd']:11.0f}{row['limit']:9.1f}{default[1]:11.2f}x{best[1]:8.2f}x@{row['best_batch']:<5}"
             f"{row['kernel_ratio']:17.2f}x{row['difference']:11.1e}")  # fmt: skip
        line(f"  {'':12}{'':>11}{'':>9}{default[2]:11.2f}x{best[2]:13.2f}x{row['kernel_paired']:17.2f}x")
    print_verdicts()


if __name__ == "__main__":
    main()
