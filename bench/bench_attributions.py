#!/usr/bin/env python
"""How close tsreport's attribution analyses run to the speed of the model itself.

Usage::

    python bench/bench_attributions.py [--quick] [--models lstm,transformer,cnn] [--n 2000]

Every figure is a RATIO to a limit measured in the same run, because these
machines are noisy (other processes share the cores):

* the limits: the best plain forward throughput (windows/s under
  torch.inference_mode, best over batch sizes 16..4096) and the best
  forward+backward throughput (gradient of output.sum() w.r.t. the input) of
  the very TorchScript module the pipeline loaded; an analysis's limit time is
  (model evaluations it needs) / throughput;
* ours: tsreport's analyses called exactly as the pipeline calls them
  (``occlusion(ctx, params, rng=...)``...), at the package's default batch size (RunConfig().batch_size) and
  at the batch size that was best for plain throughput;
* correctness against captum (largest absolute difference per cell);
* captum at its best and the per-window Python loops of tutorials;
* peak RSS of our occlusion at two sizes (fresh subprocesses), time linear in N;
* the whole default battery on the bundled example (``tsreport demo``).

Every timing is repeated 3 times and the best is kept (once with --quick, which
also skips the demo: run it with --only demo); the
repetitions are interleaved (round 1 of every setting, then round 2...) so that a
burst of load from another process does not spoil every repetition of one
setting. The "load" column is the sweep's best throughput divided by a short
probe (forward, or forward+backward) taken just before the kept repetition: 1.00
means the machine was as fast as during the sweep; above ~1.15 something else was
using the cores and the ratio is pessimistic ("adj" = ratio / load). Beware: with
2 torch threads on 2 shared cores, every parallel region waits for a descheduled
thread when other processes run, and small calls then cost ~10 ms per operator;
--wait-calm SECONDS waits for idle CPUs first.

Windows: T = 48 steps, C = 8 single-channel numeric fields, horizon 1,
occlusion blocks of 4 steps (stride 4: 12 blocks x 8 fields = 96 perturbations).
When one occlusion run of a model would take longer than ``--unit-seconds`` at
the model's own speed (or one IG run longer than 1.5x that), that model explains
fewer windows (the first n of the N); gradient x input always runs on all N.
Ratios do not depend on n once batches are full, and this keeps the full run
near 15-20 minutes; the tables say which n was used.

"proposed fixes" times monkeypatched copies of our analyses (defined in this
file; the package is not modified) interleaved with the originals.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    CHANNELS,
    DEFAULT_BATCH,
    HORIZON,
    MODELS,
    REPEATS,
    THREADS,
    WINDOW,
    Probe,
    Task,
    Timing,
    backward_rate,
    best_of,
    build,
    forward_rate,
    fresh,
    interleaved,
    line,
    print_verdicts,
    save_model,
    sweep,
    verdict,
    wait_until_calm,
    write_data,
)

BLOCK = 4
PERTURBATIONS = (WINDOW // BLOCK) * CHANNELS  # 96
N_STEPS = 50
N_REPEATS = 5  # permutation's default
TARGETS = {"occlusion": 1.15, "permutation": 1.10, "gradient_x_input": 1.15, "integrated_gradients": 1.10}
TOLERANCE = 1e-5
MEMORY_RATIO_MAX = 1.5
LINEAR_SPREAD_MAX = 1.25  # max/min seconds per window over N = 500, 2000, 8000 (our own threshold)
DEMO_SECONDS_MAX = 60.0


# --------------------------------------------------------------------------- our analyses


def our_runners():
    from tsreport.analyses._base import child_rng
    from tsreport.analyses.gradients import gradient_x_input, integrated_gradients
    from tsreport.analyses.occlusion import occlusion
    from tsreport.analyses.permutation import permutation
    from tsreport.config import RunConfig

    config = RunConfig()
    functions = {
        "occlusion": occlusion,
        "permutation": permutation,
        "gradient_x_input": gradient_x_input,
        "integrated_gradients": integrated_gradients,
    }

    def runner(name: str):
        function = functions[name]
        return lambda ctx: function(ctx, config.params(name), rng=child_rng(config.seed, name))

    return {name: runner(name) for name in functions}


def limit_seconds(name: str, n: int, fwd: float, fwd_bwd: float) -> float:
    if name == "occlusion":
        return n * (PERTURBATIONS + 1) / fwd
    if name == "permutation":
        return n * (CHANNELS * N_REPEATS + 1) / fwd
    if name == "gradient_x_input":
        return n / fwd_bwd
    return n * N_STEPS / fwd_bwd + (n + 1) / fwd  # IG plus its completeness check (f(x) and f(baseline))


def expected_evaluations(name: str, n: int) -> int:
    return {
        "occlusion": n * (PERTURBATIONS + 1),
        "permutation": n * (CHANNELS * N_REPEATS + 1),
        "gradient_x_input": n,
        "integrated_gradients": n * N_STEPS + n + 1,
    }[name]


# --------------------------------------------------------------------------- captum and tutorials


def captum_baseline(ctx) -> torch.Tensor:
    return ctx.baseline.float()[None, None, :].expand(1, WINDOW, CHANNELS).contiguous()


def in_batches(inputs: torch.Tensor, batch: int):
    for begin in range(0, inputs.shape[0], batch):
        yield inputs[begin : begin + batch]


def captum_occlusion(module, inputs, baseline, batch: int, per_eval: int) -> torch.Tensor:
    from captum.attr import Occlusion

    method = Occlusion(module)
    return torch.cat(
        [
            method.attribute(
                x,
                sliding_window_shapes=(BLOCK, 1),
                strides=(BLOCK, 1),
                baselines=baseline,
                target=None,
                perturbations_per_eval=per_eval,
            )
            for x in in_batches(inputs, batch)
        ]
    )


def captum_input_x_gradient(module, inputs, batch: int) -> torch.Tensor:
    from captum.attr import InputXGradient

    method = InputXGradient(module)
    return torch.cat([method.attribute(x.clone().requires_grad_(True)).detach() for x in in_batches(inputs, batch)])


def captum_ig(module, inputs, baseline, internal: int) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    return (
        IntegratedGradients(module)
        .attribute(inputs, baselines=baseline, n_steps=N_STEPS, method="gausslegendre", internal_batch_size=internal)
        .detach()
    )


def tutorial_occlusion(module, inputs, baseline_channels) -> None:
    """The tutorial loop: one forward per window, then one per (field, block)."""
    with torch.no_grad():
        for window in inputs:
            reference = module(window[None])
            for channel in range(CHANNELS):
                for begin in range(0, WINDOW, BLOCK):
                    occluded = window.clone()
                    occluded[begin : begin + BLOCK, channel] = baseline_channels[channel]
                    _ = reference - module(occluded[None])


def tutorial_gradient_x_input(module, inputs) -> None:
    for window in inputs:
        x = window[None].clone().requires_grad_(True)
        module(x).sum().backward()
        _ = (x.grad * x).detach()


def sklearn_wrapper(module, inputs: torch.Tensor, batch: int):
    """A scikit-learn regressor over X = (n, 8) window indices, one column per field.

    Column j holds the window whose field j is fed, so permuting column j moves field
    j's whole 48-step block to another window: the same permutation as tsreport's.
    """
    from sklearn.base import BaseEstimator, RegressorMixin

    class WindowIndexRegressor(RegressorMixin, BaseEstimator):
        def __init__(self, module=None, inputs=None, batch: int = 1024) -> None:
            self.module, self.inputs, self.batch = module, inputs, batch

        def fit(self, X, y):  # noqa: N803 - scikit-learn names
            return self

        def predict(self, X):  # noqa: N803
            index = torch.as_tensor(np.asarray(X), dtype=torch.long)
            steps, channels = torch.arange(WINDOW)[None, None, :], torch.arange(CHANNELS)[:, None, None]
            out = []
            with torch.inference_mode():
                for begin in range(0, index.shape[0], self.batch):
                    rows = index[begin : begin + self.batch]  # (k, C)
                    x = self.inputs[rows.T[:, :, None], steps, channels]  # (C, k, T)
                    out.append(self.module(x.permute(1, 2, 0).contiguous()))  # (k, T, C)
            return torch.cat(out)[:, 0].numpy()

    return WindowIndexRegressor(module, inputs, batch)


# --------------------------------------------------------------------------- reporting helpers


def fmt_ratio(value: float) -> str:
    return f"{value:6.2f}x" if value < 100 else f"{value:6.0f}x"


# --------------------------------------------------------------------------- per model


def bench_model(name: str, folder: Path, data: Path, schema: Path, args, quick: bool) -> dict[str, Any]:
    model_path = save_model(name, folder)
    ctx = build(model_path, data, schema)
    module = ctx.forward.loaded.module
    sample = ctx.explained_inputs[:4096]
    line()
    line("=" * 110)
    line(
        f"{name}: {MODELS[name][1]} (TorchScript, loaded by build_context), windows {WINDOW}x{CHANNELS}, "
        f"horizon {HORIZON}; load average {os.getloadavg()[0]:.2f}"
    )
    line("=" * 110)

    # ---- limits
    batches = [16, 64, 256, 1024, 4096] if not quick else [64, 256, 1024]
    sweep_seconds = 0.15 if quick else 0.8
    sweep_repeats = max(2, REPEATS)  # the limits get at least 2 repetitions, even with --quick
    forward = sweep(module, sample, batches, forward_rate, sweep_seconds, sweep_repeats)
    backward = sweep(module, sample, batches, backward_rate, sweep_seconds, sweep_repeats)
    best_fwd_batch = max(forward, key=forward.get)
    best_bwd_batch = max(backward, key=backward.get)
    fwd, fwd_bwd = forward[best_fwd_batch], backward[best_bwd_batch]
    # The same with the parameters frozen (requires_grad False): a backward w.r.t. the input alone.
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    frozen = sweep(module, sample, [best_bwd_batch], backward_rate, sweep_seconds, sweep_repeats)[best_bwd_batch]
    for p, flag in zip(params, flags):
        p.requires_grad_(flag)
    line(
        f"limits (windows/s, best of {sweep_repeats} interleaved; torch.get_num_threads() = {torch.get_num_threads()}):"
    )
    line("  batch        " + "".join(f"{b:>10}" for b in batches))
    line(
        "  forward      " + "".join(f"{forward[b]:10.0f}" for b in batches) + f"   best {fwd:.0f}/s @ {best_fwd_batch}"
    )
    line(
        "  fwd+bwd      "
        + "".join(f"{backward[b]:10.0f}" for b in batches)
        + f"   best {fwd_bwd:.0f}/s @ {best_bwd_batch}"
    )
    line(
        f"  (fwd+bwd with the parameters frozen @ {best_bwd_batch}: {frozen:.0f}/s, {frozen / fwd_bwd:.2f}x; "
        "the loaded module's parameters require grad, as in the pipeline, and the limit above keeps them so)"
    )

    # ---- how many windows
    n_full = args.n
    floor = 32 if quick else 64
    affordable = min(args.unit_seconds * fwd / (PERTURBATIONS + 1), 1.5 * args.unit_seconds * fwd_bwd / N_STEPS)
    n = min(n_full, max(floor, int(affordable) // floor * floor))
    if n < n_full:
        line(
            f"  -> this model explains n = {n} of the N = {n_full} windows: at the limit one occlusion run would take "
            f"{n_full * (PERTURBATIONS + 1) / fwd:.0f} s and one IG run {n_full * N_STEPS / fwd_bwd:.0f} s "
            f"(caps: --unit-seconds {args.unit_seconds:g} for occlusion, 1.5x that for IG)"
        )
    probe_seconds = 0.05 if quick else 0.25
    probes = {
        "fwd": Probe(module, sample, forward_rate, best_fwd_batch, fwd, probe_seconds),
        "bwd": Probe(module, sample, backward_rate, best_bwd_batch, fwd_bwd, probe_seconds),
    }
    kinds = {"occlusion": "fwd", "permutation": "fwd", "gradient_x_input": "bwd", "integrated_gradients": "bwd"}

    # ---- ours
    runners = our_runners()
    sizes = [DEFAULT_BATCH] + ([best_fwd_batch] if best_fwd_batch != DEFAULT_BATCH else [])
    # gradient x input is cheap (one forward+backward per window): always on all N windows, so
    # that its batches are full; the others on n.
    counts = {"occlusion": n, "permutation": n, "gradient_x_input": n_full, "integrated_gradients": n}
    for batch in sizes:  # warm-up, untimed, twice (TorchScript optimises a graph on its second run), on
        # enough windows that a full batch of this size and a partial one occur
        warm = {
            "occlusion": math.ceil(batch / (PERTURBATIONS + 1)) + 1,
            "permutation": min(n, 8),
            "gradient_x_input": min(n_full, batch + floor),
            "integrated_gradients": min(n, 2 * max(1, batch // N_STEPS)),
        }
        for _ in range(2):
            for analysis, run in runners.items():
                run(fresh(ctx, min(counts[analysis], warm[analysis]), batch))
    tasks = {
        (analysis, batch): Task(
            run, prepare=lambda a=analysis, b=batch: fresh(ctx, counts[a], b), probe=probes[kinds[analysis]]
        )
        for batch in sizes
        for analysis, run in runners.items()
    }
    ours = interleaved(tasks, REPEATS, counter=lambda: ctx.forward.evaluations)
    ctx.forward.batch_size = DEFAULT_BATCH

    line()
    line(
        f"ours, on n = {n} windows (gradient x input on all N = {n_full}) (tsreport.analyses.*, called as the "
        f"pipeline calls them), best of {REPEATS} "
        "interleaved; ratio = time / limit time; load = the machine's slowdown read just before the kept run; "
        "adj = ratio / load:"
    )
    header = f"  {'analysis':22}{'n':>6}{'evals':>9}{'counted':>9}{'limit s':>9}"
    for batch in sizes:
        header += f"{'@' + str(batch) + ' s':>9}{'ratio':>8}{'load':>6}{'adj':>7}"
    line(header + f"{'target':>8}  verdict (official ratio)")
    figures: dict[str, Any] = {"n": n, "fwd": fwd, "fwd_bwd": fwd_bwd, "best_fwd_batch": best_fwd_batch, "ours": ours}
    for analysis in runners:
        count = counts[analysis]
        limit = limit_seconds(analysis, count, fwd, fwd_bwd)
        counted = ours[(analysis, DEFAULT_BATCH)].evaluations
        row = f"  {analysis:22}{count:6d}{expected_evaluations(analysis, count):9d}{counted:9d}{limit:9.2f}"
        ratios = []
        target = TARGETS[analysis]
        texts = []
        for batch in sizes:
            timing = ours[(analysis, batch)]
            ratio = timing.seconds / limit
            ratios.append(ratio)
            row += f"{timing.seconds:9.2f}{fmt_ratio(ratio):>8}{timing.load:6.2f}{fmt_ratio(ratio / timing.load):>7}"
            noisy = f", load {timing.load:.2f}, adj {ratio / timing.load:.2f}x" if timing.load > 1.15 else ""
            texts.append(
                verdict(f"{name} {analysis} @{batch}", ratio <= target, f"{ratio:.2f}x (target {target}{noisy})")
            )
        line(row + f"{target:7.2f}x  " + "/".join(texts))
        figures[analysis] = ratios

    # ---- proposed fixes
    if not args.no_proposed:
        line()
        proposed(ctx, name, max(floor, n // 2 // floor * floor), fwd, fwd_bwd, quick)

    # ---- correctness against captum
    n_check = min(n, 32 if quick else 128)
    line()
    line(
        f"correctness against captum on the first {n_check} windows (largest |ours - captum| per cell, "
        f"tolerance {TOLERANCE:g}):"
    )
    correctness(ctx, module, n_check, name)

    # ---- captum at its best
    cap = 64 if quick else 512
    n_captum = min(n, max(floor, min(cap, int(args.unit_seconds / 2 * fwd / (PERTURBATIONS + 1)) // floor * floor)))
    line()
    line(
        f"captum at its best, on the first {n_captum} windows (batch 'all' = all {n_captum}); every setting "
        f"timed once, the fastest then re-timed (best of {REPEATS}); ratios to the same limits as ours:"
    )
    captum_speed(ctx, module, n_captum, fwd, fwd_bwd, probes, quick)

    # ---- tutorials
    line()
    tutorials(ctx, module, n, fwd, fwd_bwd, probes, quick)

    # ---- scikit-learn
    if not args.no_sklearn:
        sklearn_permutation(ctx, module, n, best_fwd_batch, fwd, probes["fwd"])
    return figures


def correctness(ctx, module, n_check: int, name: str) -> None:
    gradients = importlib.import_module("tsreport.analyses.gradients")
    from tsreport.analyses.gradients import input_gradients
    from tsreport.analyses.occlusion import occlusion_attributions

    sub = fresh(ctx, n_check, DEFAULT_BATCH)
    inputs = sub.explained_inputs
    baseline = captum_baseline(ctx)

    ours_occlusion, _ = occlusion_attributions(sub, BLOCK, BLOCK)  # (n, T, C): a block's change spread over 4 cells
    theirs = captum_occlusion(module, inputs, baseline, n_check, 16)
    diff = float((ours_occlusion * BLOCK - theirs.double()).abs().max())
    line(
        f"  occlusion         occlusion_attributions(ctx, 4, 4) x {BLOCK} vs captum Occlusion((4,1), strides (4,1), "
        f"per-channel baseline, target None): max diff {diff:.2e} (max |attr| {float(theirs.abs().max()):.3g})  "
        + verdict(f"{name} occlusion == captum", diff < TOLERANCE, f"max diff {diff:.2e}")
    )

    sub = fresh(ctx, n_check, DEFAULT_BATCH)
    ours_gxi = input_gradients(sub)[:, 0] * sub.explained_inputs  # (n, T, C), S = 1
    theirs = captum_input_x_gradient(module, inputs, n_check)
    diff = float((ours_gxi - theirs).abs().max())
    line(
        f"  gradient x input  input_gradients(ctx)[:, 0] x inputs vs captum InputXGradient: max diff {diff:.2e} "
        f"(max |attr| {float(theirs.abs().max()):.3g})  "
        + verdict(f"{name} gradient_x_input == captum", diff < TOLERANCE, f"max diff {diff:.2e}")
    )

    # Per-cell IG through our own code path: integrated_gradients hands its signed (n, S, T, C)
    # attributions to _with_completeness; a wrapper keeps a copy.
    captured: dict[str, torch.Tensor] = {}
    original = gradients._with_completeness

    def keep(ctx_, result, attributions):
        captured["attributions"] = attributions.detach().clone()
        return original(ctx_, result, attributions)

    gradients._with_completeness = keep
    try:
        sub = fresh(ctx, n_check, DEFAULT_BATCH)
        result = our_runners()["integrated_gradients"](sub)
    finally:
        gradients._with_completeness = original
    ours_ig = captured["attributions"].mean(dim=1)  # (n, T, C): the explained scalar is the mean over S = 1 step
    theirs = captum_ig(module, inputs, baseline, 1024)
    diff = float((ours_ig.double() - theirs.double()).abs().max())
    maps = torch.from_numpy(result.maps["integrated_gradients"]).double()  # |attr| per (window, step, field)
    diff_maps = float((maps - theirs.double().abs()).abs().max())
    line(
        f"  integrated grads  per-cell signed IG from integrated_gradients(ctx, ...) (captured where it calls "
        f"_with_completeness) vs captum IntegratedGradients(n_steps 50, gausslegendre, same baseline): "
        f"max diff {diff:.2e} (max |attr| {float(theirs.abs().max()):.3g})  "
        + verdict(f"{name} integrated_gradients == captum", diff < TOLERANCE, f"max diff {diff:.2e}")
    )
    line(
        f"                    also its maps['integrated_gradients'] (|attr| per window, step and field, "
        f"float32; one channel per field) vs |captum|: max diff {diff_maps:.2e}"
    )


def captum_speed(ctx, module, n_captum: int, fwd: float, fwd_bwd: float, probes: dict, quick: bool) -> None:
    inputs = ctx.explained_inputs[:n_captum].clone()
    baseline = captum_baseline(ctx)
    occlusion_limit = limit_seconds("occlusion", n_captum, fwd, fwd_bwd)
    gxi_limit = limit_seconds("gradient_x_input", n_captum, fwd, fwd_bwd)
    ig_limit = n_captum * N_STEPS / fwd_bwd  # captum IG has no completeness check

    def sweep_settings(label: str, settings: dict[str, Callable[[], Any]], limit: float, probe: Probe) -> None:
        for run in settings.values():  # one untimed warm-up of the shapes
            run()
            break
        once = interleaved({key: Task(run, probe=probe) for key, run in settings.items()}, 1)
        fastest = min(once, key=lambda k: once[k].seconds)
        best = once[fastest]
        if REPEATS > 1:
            again = best_of(settings[fastest], probe=probe, repeats=REPEATS - 1)
            best = again if again.seconds < best.seconds else best
        cells = "  ".join(f"{key}: {once[key].seconds / limit:.2f}x" for key in settings)
        line(f"  {label:16} {cells}")
        line(
            f"  {'':16} best {fastest}: {best.seconds:.2f} s = {best.seconds / limit:.2f}x the limit "
            f"(limit {limit:.2f} s; load {best.load:.2f}, adj {best.seconds / limit / best.load:.2f}x)"
        )

    batches = [64, n_captum] if n_captum > 64 else [n_captum]
    occlusion_settings = {}
    for per_eval in (1, 16, 64):
        for batch in batches:
            key = f"ppe {per_eval} batch {'all' if batch == n_captum else batch}"
            occlusion_settings[key] = lambda b=batch, p=per_eval: captum_occlusion(module, inputs, baseline, b, p)
    sweep_settings("Occlusion", occlusion_settings, occlusion_limit, probes["fwd"])

    gxi_settings = {
        f"batch {'all' if batch == n_captum else batch}": (lambda b=batch: captum_input_x_gradient(module, inputs, b))
        for batch in batches
    }
    sweep_settings("InputXGradient", gxi_settings, gxi_limit, probes["bwd"])

    # captum raises an internal_batch_size below the number of windows to that number (one step per batch)
    asked = (64, 256, 1024, 4096) if not quick else (64, 1024)
    internals = sorted({max(i, n_captum) for i in asked})
    ig_settings = {f"ibs {i}": (lambda i=i: captum_ig(module, inputs, baseline, i)) for i in internals}
    sweep_settings("IntegratedGrads", ig_settings, ig_limit, probes["bwd"])
    raised = [i for i in asked if i < n_captum]
    if raised:
        line(
            f"  {'':16} (internal_batch_size {', '.join(map(str, raised))} < {n_captum} windows: captum raises it to "
            f"{n_captum}, timed as 'ibs {n_captum}')"
        )


def tutorials(ctx, module, n: int, fwd: float, fwd_bwd: float, probes: dict, quick: bool) -> None:
    n_occ = 4 if quick else 20
    n_gxi = 20 if quick else 200
    channels = ctx.baseline.float()
    occ = best_of(lambda: tutorial_occlusion(module, ctx.explained_inputs[:n_occ], channels), probe=probes["fwd"])
    gxi = best_of(lambda: tutorial_gradient_x_input(module, ctx.explained_inputs[:n_gxi]), probe=probes["bwd"])
    occ_n = occ.seconds / n_occ * n
    gxi_n = gxi.seconds / n_gxi * n
    occ_ratio = occ_n / limit_seconds("occlusion", n, fwd, fwd_bwd)
    gxi_ratio = gxi_n / limit_seconds("gradient_x_input", n, fwd, fwd_bwd)
    line(f"tutorial loops (best of {REPEATS}, timed on the first windows and extrapolated linearly to n = {n}):")
    line(
        f"  occlusion, one forward per window and one per (field, block), {n_occ} windows timed: {occ.seconds:.2f} s "
        f"-> {occ_n:.1f} s = {occ_ratio:.1f}x the limit (load {occ.load:.2f})"
    )
    line(
        f"  gradient x input, one forward+backward per window, {n_gxi} windows timed: {gxi.seconds:.2f} s "
        f"-> {gxi_n:.1f} s = {gxi_ratio:.1f}x the limit (load {gxi.load:.2f})"
    )


def sklearn_permutation(ctx, module, n: int, batch: int, fwd: float, probe: Probe) -> None:
    from sklearn.inspection import permutation_importance

    estimator = sklearn_wrapper(module, ctx.explained_inputs[:n], batch)
    X = np.repeat(np.arange(n)[:, None], CHANNELS, axis=1)  # noqa: N806
    y = ctx.windows.targets[ctx.explained[:n]][:, 0]
    timing = best_of(
        lambda: permutation_importance(
            estimator, X, y, scoring="neg_mean_squared_error", n_repeats=N_REPEATS, random_state=0
        ),
        probe=probe,
    )
    ratio = timing.seconds / limit_seconds("permutation", n, fwd, fwd)
    line(
        f"scikit-learn permutation_importance (a regressor over window indices, one column per field, batch {batch}, "
        f"n_repeats {N_REPEATS}), best of {REPEATS}: {timing.seconds:.2f} s = {ratio:.2f}x the limit "
        f"(load {timing.load:.2f})"
    )


# --------------------------------------------------------------------------- proposed fixes (monkeypatched copies)


def fast_perturbation_differences(ctx, masks: torch.Tensor) -> torch.Tensor:
    """occlusion.perturbation_differences with a gather-free build.

    Engine.perturbed enumerates pairs window-major, so a batch is a run of consecutive
    rows of the (windows, P, T, C) block; one broadcast torch.where over the windows it
    touches, then a slice, replaces two advanced-indexing gathers (inputs[window_index],
    masks[perturbation_index]) and their index arithmetic.
    """
    inputs = ctx.explained_inputs
    baseline = ctx.baseline.to(inputs.dtype)

    def build(window_index: torch.Tensor, perturbation_index: torch.Tensor) -> torch.Tensor:
        first, last, offset = int(window_index[0]), int(window_index[-1]), int(perturbation_index[0])
        block = torch.where(masks, baseline, inputs[first : last + 1, None])  # (w, P, T, C)
        return block.reshape(-1, *inputs.shape[1:])[offset : offset + window_index.shape[0]]

    perturbed = ctx.forward.perturbed(inputs.shape[0], masks.shape[0], build)
    return ctx.explained_outputs()[:, None, :] - perturbed


def occlusion_proposed(ctx, params, *, rng):
    module = importlib.import_module("tsreport.analyses.occlusion")  # the package re-exports a function of that name
    original = module.perturbation_differences
    module.perturbation_differences = fast_perturbation_differences
    try:
        return module.occlusion(ctx, params, rng=rng)
    finally:
        module.perturbation_differences = original


def permutation_proposed(ctx, params, *, rng):
    """permutation with every (field, repeat) evaluated through Engine.perturbed: full batches at any n.

    Same random stream (field-major, repeat-minor), same losses; f(x) from ctx.explained_outputs().
    """

    from tsreport.analyses._base import clean_float
    from tsreport.analyses.permutation import PermutationResult, summarise_repeats, window_losses

    n_repeats = int(params["n_repeats"])
    inputs = ctx.explained_inputs
    count = inputs.shape[0]
    targets = torch.as_tensor(ctx.windows.targets[ctx.explained])
    baseline_loss = float(window_losses(ctx, ctx.explained_outputs(), targets).mean())
    channels = ctx.field_channels()
    fields = ctx.schema.fields
    orders = torch.stack([torch.as_tensor(rng.permutation(count)) for _ in fields for _ in range(n_repeats)])
    masks = torch.zeros((len(fields) * n_repeats, 1, inputs.shape[2]), dtype=torch.bool)
    for index, field in enumerate(fields):
        masks[index * n_repeats : (index + 1) * n_repeats, 0, channels[field.name]] = True

    def build(window_index: torch.Tensor, perturbation_index: torch.Tensor) -> torch.Tensor:
        moved = inputs[orders[perturbation_index, window_index]]
        return torch.where(masks[perturbation_index], moved, inputs[window_index])

    outputs = ctx.forward.perturbed(count, orders.shape[0], build)  # (n, P, O)
    repeated = targets.repeat_interleave(orders.shape[0], dim=0)
    losses = window_losses(ctx, outputs.reshape(-1, outputs.shape[2]), repeated).view(count, -1)
    means = (losses.sum(dim=0) / count).tolist()
    increases = {
        field.name: [means[index * n_repeats + r] - baseline_loss for r in range(n_repeats)]
        for index, field in enumerate(fields)
    }
    importance, spread, interval = summarise_repeats(increases, n_repeats)
    positive = {name: max(value or 0.0, 0.0) for name, value in importance.items()}
    total = sum(positive.values())
    share = {name: clean_float(value / total) if total > 0 else 0.0 for name, value in positive.items()}
    return PermutationResult(
        loss="mse" if ctx.schema.task == "regression" else "log_loss",
        baseline_loss=clean_float(baseline_loss),
        n_repeats=n_repeats,
        windows=count,
        field_importance=importance,
        std=spread,
        interval=interval,
        repeats={name: [clean_float(v) for v in values] for name, values in increases.items()},
        share=share,
    )


def integrated_gradients_proposed(ctx, params, *, rng, freeze: bool = False):
    """integrated_gradients with the quadrature weights folded into the backward pass.

    The explained scalar of path point k is multiplied by its weight w_k before the backward,
    so the gradients come out weighted and the integral is a plain sum over the steps
    (no einsum over the (m, steps, S, T, C) gradients). The path is built exactly as captum
    builds it (an addcmul would round differently and, through ReLU kinks, change gradients).
    ``freeze`` also sets requires_grad False on the module's parameters during the call.
    """
    import contextlib

    from tsreport.analyses._base import SkipAnalysis
    from tsreport.analyses.gradients import _result, _select_all, _with_completeness, integration_points
    from tsreport.engine import NoGradient

    n_steps = int(params["n_steps"])
    internal = int(params["internal_batch_size"] or ctx.forward.batch_size)
    step_sizes, alphas = integration_points(n_steps, str(params["method"]))
    alpha = torch.tensor(alphas, dtype=torch.float32)[None, :, None, None]
    weight = torch.tensor(step_sizes, dtype=torch.float32)
    inputs = ctx.explained_inputs
    baseline = ctx.baseline.to(inputs.dtype)
    count = inputs.shape[0]
    per_chunk = max(1, internal // n_steps)
    select = _select_all(ctx)
    path_weight = weight.repeat(per_chunk)
    total = None
    module = ctx.forward.loaded.torch_module
    frozen = [p for p in module.parameters() if p.requires_grad] if (freeze and module is not None) else []
    with contextlib.ExitStack() as stack:
        for parameter in frozen:
            parameter.requires_grad_(False)
            stack.callback(parameter.requires_grad_, True)
        for begin in range(0, count, per_chunk):
            window_index = torch.arange(begin, min(count, begin + per_chunk))
            x = inputs[begin : begin + len(window_index)]
            delta = x - baseline
            path = (baseline + alpha * delta[:, None]).reshape(-1, *x.shape[1:])  # as captum: bit-equal path points
            path_rows = window_index.repeat_interleave(n_steps)

            def select_path(outputs, rows, path_rows=path_rows):
                return select(outputs, path_rows[rows]) * path_weight[rows, None]

            try:
                grads = ctx.forward.gradients(path, select_path)
            except NoGradient as error:
                raise SkipAnalysis(str(error)) from None
            integral = grads.view(len(window_index), n_steps, *grads.shape[1:]).sum(dim=1)
            chunk = integral * delta[:, None]
            if total is None:
                total = torch.empty((count,) + tuple(chunk.shape[1:]))
            total[begin : begin + len(window_index)] = chunk
    result = _result(
        ctx, "integrated_gradients", total.mean(dim=1), total, {**params, "internal_batch_size": internal}, signed=True
    )
    return _with_completeness(ctx, result, total)


def proposed(ctx, name: str, n: int, fwd: float, fwd_bwd: float, quick: bool) -> None:
    """Original vs monkeypatched copies, interleaved round by round (so the load hits both alike)."""
    from tsreport.analyses._base import child_rng
    from tsreport.config import RunConfig

    config = RunConfig()
    runners = our_runners()
    n_perm = min(n, 512)  # the pipeline's default --samples

    def call(function, analysis, **extra):
        return lambda c: function(c, config.params(analysis), rng=child_rng(config.seed, analysis), **extra)

    cases = {
        ("occlusion", "original"): (runners["occlusion"], n),
        ("occlusion", "gather-free build"): (call(occlusion_proposed, "occlusion"), n),
        ("permutation", "original"): (runners["permutation"], n_perm),
        ("permutation", "through perturbed"): (call(permutation_proposed, "permutation"), n_perm),
        ("integrated_gradients", "original"): (runners["integrated_gradients"], n),
        ("integrated_gradients", "weights in backward"): (
            call(integrated_gradients_proposed, "integrated_gradients"),
            n,
        ),
        ("integrated_gradients", "+ params frozen"): (
            call(integrated_gradients_proposed, "integrated_gradients", freeze=True),
            n,
        ),
    }
    # same numbers?
    outputs = {}
    for key, (run, count) in cases.items():
        outputs[key] = run(fresh(ctx, min(count, 64), DEFAULT_BATCH))
    tasks = {
        key: Task(run, prepare=lambda count=count: fresh(ctx, count, DEFAULT_BATCH))
        for key, (run, count) in cases.items()
    }
    timings = interleaved(tasks, 1 if quick else REPEATS)
    ctx.forward.batch_size = DEFAULT_BATCH
    line(
        f"proposed fixes (monkeypatched copies in this script, batch {DEFAULT_BATCH}; original and patched interleaved, "
        f"best of {1 if quick else REPEATS}; 'vs original' is immune to a steady load):"
    )
    for key, (_run, count) in cases.items():
        analysis, variant = key
        timing = timings[key]
        limit = limit_seconds(analysis, count, fwd, fwd_bwd)
        base = timings[(analysis, "original")].seconds
        same = ""
        if variant != "original":
            a, b = outputs[(analysis, "original")], outputs[key]
            diff = max(
                abs((x or 0.0) - (y or 0.0)) for x, y in zip(a.field_importance.values(), b.field_importance.values())
            )
            scale = max(abs(x or 0.0) for x in a.field_importance.values())
            same = f", field importance max diff {diff:.1e} (of {scale:.2g})"
        line(
            f"  {analysis:21} {variant:20} n = {count:5d}: {timing.seconds:7.2f} s = {timing.seconds / limit:5.2f}x the limit, "
            f"{timing.seconds / base:5.2f}x the original{same}"
        )


# --------------------------------------------------------------------------- memory, linearity, demo


def vm_hwm_kb() -> int:
    """Peak RSS of this process image (VmHWM). Unlike ru_maxrss it does not inherit the parent's
    RSS: on Linux a child started by fork+exec reports in ru_maxrss at least the parent's RSS at fork."""
    for row in open("/proc/self/status"):
        if row.startswith("VmHWM:"):
            return int(row.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def current_rss_kb() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def child_memory(args) -> None:
    """Run in a fresh process: build the context on N windows, run our occlusion once, report RSS.

    ru_maxrss is the process's peak; a thread sampling /proc/self/statm every 2 ms gives the peak
    during the occlusion call itself, so its own increment is visible under the imports' peak.
    """
    import threading

    folder = Path(args.child_folder)
    data, schema = write_data(folder, args.child_memory)
    ctx = build(Path(args.child_model), data, schema)
    ctx.explained_outputs()
    run = our_runners()["occlusion"]
    gc.collect()
    before_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before_hwm = vm_hwm_kb()
    before = current_rss_kb()
    sampled = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            sampled[0] = max(sampled[0], current_rss_kb())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    begin = time.perf_counter()
    run(ctx)
    seconds = time.perf_counter() - begin
    done.set()
    thread.join()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    after_hwm = vm_hwm_kb()
    print(
        json.dumps(
            {
                "n": args.child_memory,
                "maxrss_before_kb": before_peak,
                "maxrss_kb": after,
                "hwm_before_kb": before_hwm,
                "hwm_kb": after_hwm,
                "rss_before_kb": before,
                "rss_during_kb": sampled[0],
                "seconds": seconds,
            }
        )
    )


def memory(model_name: str, folder: Path, sizes: tuple[int, int]) -> None:
    model_path = folder / f"{model_name}.pt"
    if not model_path.exists():
        save_model(model_name, folder)
    line()
    line(
        f"memory: our occlusion ({model_name}, batch {DEFAULT_BATCH}) on N windows, each N in a fresh subprocess "
        "(data, build_context, f(x), then occlusion once):"
    )
    peaks, increments = {}, {}
    for n in sizes:
        sub = folder / f"mem_{n}"
        sub.mkdir(exist_ok=True)
        command = [
            sys.executable,
            __file__,
            "--child-memory",
            str(n),
            "--child-model",
            str(model_path),
            "--child-folder",
            str(sub),
            "--threads",
            str(torch.get_num_threads()),
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1200)
        except subprocess.TimeoutExpired:
            line(f"  N = {n}: the subprocess ran past 1200 s and was stopped")
            verdict("memory", False, "subprocess timed out")
            return
        if result.returncode != 0:
            line(f"  N = {n}: the subprocess failed:\n{result.stderr[-2000:]}")
            verdict("memory", False, "subprocess failed")
            return
        record = json.loads(result.stdout.strip().splitlines()[-1])
        peaks[n] = record["hwm_kb"]
        increments[n] = record["rss_during_kb"] - record["rss_before_kb"]
        line(
            f"  N = {n:6d}: peak RSS (VmHWM) {record['hwm_kb'] / 1024:6.0f} MiB, {record['hwm_before_kb'] / 1024:.0f} MiB "
            f"before occlusion; ru_maxrss {record['maxrss_kb'] / 1024:.0f} MiB (inherits the parent's RSS at fork, "
            f"see vm_hwm_kb); RSS {record['rss_before_kb'] / 1024:.0f} MiB before occlusion, sampled peak during it "
            f"{record['rss_during_kb'] / 1024:.0f} MiB (+{increments[n] / 1024:.0f} MiB); occlusion "
            f"{record['seconds']:.1f} s = {record['seconds'] / n * 1e3:.3f} ms/window (single run)"
        )
    ratio = peaks[sizes[1]] / peaks[sizes[0]]
    line(
        f"  peak RSS ratio N={sizes[1]} / N={sizes[0]}: {ratio:.2f} (target <= {MEMORY_RATIO_MAX})  "
        + verdict("memory: peak RSS ratio", ratio <= MEMORY_RATIO_MAX, f"{ratio:.2f} (target {MEMORY_RATIO_MAX})")
    )
    line(
        f"  occlusion's own increment: +{increments[sizes[0]] / 1024:.0f} MiB at N={sizes[0]}, "
        f"+{increments[sizes[1]] / 1024:.0f} MiB at N={sizes[1]} "
        f"({increments[sizes[1]] / max(1, sizes[1]):.1f} KiB per window at N={sizes[1]})"
    )


def linearity(
    model_name: str, folder: Path, data: Path, schema: Path, sizes: list[int], known: dict[int, Timing]
) -> None:
    ctx = build(folder / f"{model_name}.pt", data, schema)
    run = our_runners()["occlusion"]
    run(fresh(ctx, min(sizes)))  # warm-up
    tasks = {n: Task(run, prepare=lambda n=n: fresh(ctx, n, DEFAULT_BATCH)) for n in sizes if n not in known}
    timings = {**interleaved(tasks, REPEATS), **known}
    line()
    line(f"time linear in N: our occlusion ({model_name}, batch {DEFAULT_BATCH}), best of {REPEATS} interleaved:")
    per_window = []
    for n in sizes:
        timing = timings[n]
        per_window.append(timing.seconds / n)
        line(
            f"  N = {n:6d}: {timing.seconds:7.2f} s = {timing.seconds / n * 1e3:.3f} ms per window"
            + ("  (from the table above)" if n in known else "")
        )
    spread = max(per_window) / min(per_window)
    line(
        f"  spread of seconds per window (max/min): {spread:.2f} (our threshold <= {LINEAR_SPREAD_MAX})  "
        + verdict("occlusion time linear in N", spread <= LINEAR_SPREAD_MAX, f"spread {spread:.2f}")
    )


def demo(folder: Path) -> None:
    line()
    exe = Path(sys.executable).with_name("tsreport")
    command = [str(exe) if exe.exists() else sys.executable] + ([] if exe.exists() else ["-m", "tsreport"])
    command += ["demo", "--out", str(folder / "demo"), "--quiet"]
    begin = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - begin
    timings = ""
    results_json = next((folder / "demo").rglob("results.json"), None) if (folder / "demo").exists() else None
    if results_json:
        report = json.loads(results_json.read_text())
        timings = ", ".join(f"{k} {v.get('seconds', 0):.1f}" for k, v in report.get("analyses", {}).items())
    status = "" if result.returncode == 0 else f" (exit code {result.returncode}: {result.stderr.strip()[-300:]})"
    line(
        f"whole default battery: `tsreport demo` wall time {seconds:.1f} s (single run, target < {DEMO_SECONDS_MAX:.0f} s){status}  "
        + verdict("demo wall time", result.returncode == 0 and seconds < DEMO_SECONDS_MAX, f"{seconds:.1f} s")
    )
    if timings:
        line(f"  per analysis (s): {timings}")


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shrink everything (N=300) for a smoke test")
    parser.add_argument("--models", default="lstm,transformer,cnn")
    parser.add_argument("--n", type=int, default=None, help="windows explained (default 2000; 300 with --quick)")
    parser.add_argument(
        "--unit-seconds",
        type=float,
        default=None,
        help="cap on one occlusion run at the model's own speed, 1.5x that on one IG run; a model too "
        "slow for N windows explains fewer (default 6; 1.5 with --quick)",
    )
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads (default 2)")
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument(
        "--wait-calm",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for the CPUs to be idle (other processes finished)",
    )
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--only", choices=["memory", "demo"], help="run just that part (with the cnn model for memory)")
    parser.add_argument("--no-proposed", action="store_true", help="skip the monkeypatched proposed fixes")
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--child-memory", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-model", help=argparse.SUPPRESS)
    parser.add_argument("--child-folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child_memory:
        child_memory(args)
        return
    quick = args.quick
    global REPEATS
    if quick:
        REPEATS = 1  # a smoke test: one repetition (the limit sweeps keep 2)
    warnings.filterwarnings("ignore", category=UserWarning, module="captum")
    if args.wait_calm:
        wait_until_calm(args.wait_calm)
    args.n = args.n or (300 if quick else 2000)
    args.unit_seconds = args.unit_seconds or (1.5 if quick else 6.0)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")

    import captum

    import tsreport

    started = time.perf_counter()
    linear_sizes = [100, 300, 600] if quick else [500, 2000, 8000]
    memory_sizes = (300, 1500) if quick else (2000, 20000)
    line(
        f"tsreport {tsreport.__version__}, torch {torch.__version__}, captum {captum.__version__}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, torch.get_num_threads() = {torch.get_num_threads()}"
        f", load average at start {os.getloadavg()[0]:.2f}"
    )
    line(
        f"N = {args.n}{' (quick)' if quick else ''}, T = {WINDOW}, C = {CHANNELS}, horizon {HORIZON}, occlusion "
        f"{BLOCK}x1 blocks ({PERTURBATIONS} per window), IG {N_STEPS} steps gausslegendre, permutation {N_REPEATS} repeats"
    )

    with tempfile.TemporaryDirectory(prefix="tsreport-bench-") as tmp:
        folder = Path(tmp)
        if args.only == "memory":
            memory(names[-1], folder, memory_sizes)
        elif args.only == "demo":
            demo(folder)
        else:
            data, schema = write_data(folder, max(args.n, max(linear_sizes)))
            figures = {}
            for name in names:
                figures[name] = bench_model(name, folder, data, schema, args, quick)

            # memory and linearity on the fastest model (plain forward) among those benchmarked
            fastest = max(figures, key=lambda k: figures[k]["fwd"])
            known = {}
            if figures[fastest]["n"] in linear_sizes:
                known[figures[fastest]["n"]] = figures[fastest]["ours"][("occlusion", DEFAULT_BATCH)]
            linearity(fastest, folder, data, schema, linear_sizes, known)
            if not args.no_memory:
                memory(fastest, folder, memory_sizes)
            if not args.no_demo and not quick:
                demo(folder)

    line()
    line("=" * 100)
    line(f"summary ({time.perf_counter() - started:.0f} s, load average at end {os.getloadavg()[0]:.2f}):")
    print_verdicts()


if __name__ == "__main__":
    main()
