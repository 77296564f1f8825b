#!/usr/bin/env python
"""The engine at its defaults, with worker processes, and with prefix-state reuse (issue 12).

Usage::

    python bench/bench_engine.py [--n 1000] [--models lstm,transformer,cnn] [--repeats 3]

Every figure is a RATIO to the limit measured in the same run (as in bench_attributions.py): the
model evaluations an analysis needs / the model's best plain throughput (forward, or forward +
backward for the gradient methods) over batch sizes 16..4096, with torch's 2 threads in this one
process. For each of the three reference models (bench/common.py, TorchScript) it times, best of
``--repeats`` interleaved rounds:

* ``auto``: the package's defaults (``--batch-size auto``: the probe picks the size);
* ``256``: the fixed default before issue 12;
* ``2 workers``: ``--workers 2`` (two spawned processes, one intra-op thread each), the pool warm;
* LSTM only: the same 2-layer LSTM as an eager module (state dict + ``--model-class``), occlusion
  with the engine's prefix-state reuse against the plain path (reuse switched off).

Targets (issue 12): at ``auto`` every analysis <= 1.1x its limit; with 2 workers the CNN's occlusion
and permutation <= 0.6x; prefix reuse gives LSTM occlusion <= 0.65x.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import (
    CHANNELS,
    MODELS,
    WINDOW,
    Task,
    backward_rate,
    forward_rate,
    fresh,
    interleaved,
    line,
    print_verdicts,
    save_model,
    sweep,
    verdict,
    write_data,
)

HERE = Path(__file__).resolve().parent
ANALYSES = ("occlusion", "permutation", "gradient_x_input", "integrated_gradients")
GRADIENT = {"gradient_x_input", "integrated_gradients"}
LADDER = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]


def limits(module, inputs: torch.Tensor) -> tuple[float, float]:
    """Best forward and forward+backward throughput (windows/s) of ``module`` over the ladder."""
    forward = sweep(module, inputs, LADDER, forward_rate, seconds=0.4, repeats=2)
    backward = sweep(module, inputs, LADDER, backward_rate, seconds=0.4, repeats=2)
    return max(forward.values()), max(backward.values())


def context(model: Path, data: Path, schema: Path, **settings):
    from tsreport.config import RunConfig
    from tsreport.pipeline import build_context

    config = RunConfig(samples=None, **settings)
    ctx, _, _ = build_context(model, data, schema, config)
    return ctx, config


def runner(name: str, config):
    from tsreport.analyses import BY_NAME
    from tsreport.analyses._base import child_rng

    spec = BY_NAME[name]
    return lambda ctx: spec.run(ctx, config.params(name), rng=child_rng(config.seed, name))


def time_analyses(contexts: dict[str, tuple], repeats: int) -> dict[tuple[str, str], tuple[float, int]]:
    """(setting, analysis) -> (best seconds, model evaluations), rounds interleaved over settings."""
    tasks = {}
    for setting, (ctx, config) in contexts.items():
        for name in ANALYSES:
            tasks[(setting, name)] = Task(runner(name, config), prepare=lambda ctx=ctx: fresh(ctx))
    counters = {setting: ctx.forward for setting, (ctx, _) in contexts.items()}
    best = {}
    for task in tasks.values():  # one untimed round: TorchScript's profiling runs, the pools start
        task.run(task.prepare())
    for key, timing in interleaved(tasks, repeats).items():
        best[key] = timing.seconds
    evaluations = {}
    for key, task in tasks.items():
        engine = counters[key[0]]
        before = engine.evaluations
        task.run(task.prepare())
        evaluations[key] = engine.evaluations - before
    return {key: (best[key], evaluations[key]) for key in tasks}


def bench_model(name: str, folder: Path, n: int, repeats: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model = save_model(name, folder)
    data, schema = write_data(folder, n)
    module = torch.jit.load(str(model)).eval()
    probe_inputs = torch.randn(64, WINDOW, CHANNELS)
    forward_limit, backward_limit = limits(module, probe_inputs)
    line(f"\n## {name}: {MODELS[name][1]}, N = {n}")
    line(f"limits: forward {forward_limit:,.0f} windows/s, forward+backward {backward_limit:,.0f} windows/s")
    contexts = {"auto": context(model, data, schema), "256": context(model, data, schema, batch_size=256)}
    contexts["2 workers"] = context(model, data, schema, workers=2)
    try:
        timings = time_analyses(contexts, repeats)
    finally:
        for ctx, _ in contexts.values():
            if ctx.forward.executor is not None:
                ctx.forward.executor.close()
    auto_engine = contexts["auto"][0].engine_info
    line(
        f"auto chose forward {auto_engine['forward_batch_size']}, backward {auto_engine['backward_batch_size']} "
        f"(probe {auto_engine.get('probe', {}).get('seconds', 0):.2f} s); 2 workers: "
        f"{contexts['2 workers'][0].engine_info['forward_batch_size']}"
    )
    line(f"{'analysis':22}{'setting':>11}{'evals':>10}{'seconds':>9}{'ratio':>8}")
    for analysis in ANALYSES:
        for setting in contexts:
            seconds, evaluations = timings[(setting, analysis)]
            rate = backward_limit if analysis in GRADIENT else forward_limit
            ratio = seconds / (evaluations / rate)
            mark = ""
            if setting == "auto":
                mark = verdict(f"{name} {analysis} at auto <= 1.1x", ratio <= 1.1, f"{ratio:.2f}x")
            if setting == "2 workers" and name == "cnn" and analysis in ("occlusion", "permutation"):
                mark = verdict(f"cnn {analysis} with 2 workers <= 0.6x", ratio <= 0.6, f"{ratio:.2f}x")
            line(f"{analysis:22}{setting:>11}{evaluations:>10}{seconds:>9.2f}{ratio:>7.2f}x {mark}")


def bench_prefix(folder: Path, n: int, repeats: int) -> None:
    """Eager 2-layer LSTM: occlusion with prefix-state reuse against the plain path."""
    from common import LSTMForecaster

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    module = LSTMForecaster().eval()
    weights = folder / "lstm_state.pt"
    torch.save(module.state_dict(), weights)
    data, schema = write_data(folder, n)
    forward_limit = max(sweep(module, torch.randn(64, WINDOW, CHANNELS), LADDER, forward_rate, 0.4, 2).values())
    spec = f"{HERE / 'common.py'}:LSTMForecaster"
    reuse_ctx, config = context(weights, data, schema, model_class=spec)
    plain_ctx, _ = context(weights, data, schema, model_class=spec)
    plain_ctx.forward.prefix_reuse = False
    occlusion = runner("occlusion", config)
    tasks = {
        "prefix reuse": Task(occlusion, prepare=lambda: fresh(reuse_ctx)),
        "plain": Task(occlusion, prepare=lambda: fresh(plain_ctx)),
    }
    for task in tasks.values():
        task.run(task.prepare())
    before = plain_ctx.forward.evaluations
    tasks["plain"].run(tasks["plain"].prepare())
    evaluations = plain_ctx.forward.evaluations - before
    best = interleaved(tasks, repeats)
    info = reuse_ctx.forward.prefix_info
    line(f"\n## LSTM occlusion with prefix-state reuse (eager module, N = {n})")
    line(f"limit: forward {forward_limit:,.0f} windows/s; reuse checked: {info}")
    for setting, timing in best.items():
        ratio = timing.seconds / (evaluations / forward_limit)
        mark = (
            verdict("LSTM occlusion with prefix reuse <= 0.65x", ratio <= 0.65, f"{ratio:.2f}x")
            if setting == "prefix reuse"
            else ""
        )
        line(f"occlusion {setting:>14}{evaluations:>10}{timing.seconds:>9.2f}{ratio:>7.2f}x {mark}")
    plain, reused = fresh(plain_ctx), fresh(reuse_ctx)
    a = runner("occlusion", config)(plain).maps["occlusion"]
    b = runner("occlusion", config)(reused).maps["occlusion"]
    line(f"max |reuse - plain| over the occlusion maps: {abs(a - b).max():.2e} (scale {abs(a).max():.2e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--models", default="lstm,transformer,cnn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-prefix", action="store_true")
    args = parser.parse_args()
    began = time.perf_counter()
    line(
        f"# bench_engine: torch {torch.__version__}, {torch.get_num_threads()} threads, python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models.split(","):
            bench_model(name, Path(scratch) / name, args.n, args.repeats)
        if not args.skip_prefix:
            bench_prefix(Path(scratch) / "prefix", args.n, args.repeats)
    print_verdicts()
    line(f"\n(total {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
