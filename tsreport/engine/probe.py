"""``--batch-size auto`` and ``--workers auto``: a short timing probe on this model and machine.

The probe times the model on real windows over a ladder of batch sizes, separately for the
forward pass and for forward + backward (gradient methods), and picks the size with the highest
throughput. It stops climbing once two sizes in a row are clearly slower than the best, and it
never spends much more than ``budget`` seconds. The figures go into results.json
(``run.engine``), so a reviewer sees why a size was chosen.

Batch size changes only float32 round-off, not results. So that reruns on one machine are still
bit-identical, the choice is remembered (:func:`remembered`): a later run of the same model, window
shape and settings on the same machine (CPU or GPU model, torch version, threads) reuses it instead of
probing again. The file is ``batch-sizes.json`` in ``$TSREPORT_CACHE_DIR`` (default
``$XDG_CACHE_HOME/tsreport`` or ``~/.cache/tsreport``); delete it to probe afresh. Pin
``--batch-size N`` for bit-identical runs across machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tsreport.engine.core import Engine

#: The ladder of batch sizes tried (windows per model call).
LADDER = (16, 32, 64, 128, 256, 512, 1024)
#: Seconds of timed calls per size and pass (at least two calls each); the best of PASSES passes is kept.
SECONDS_PER_SIZE = 0.1
PASSES = 2
#: ...and at most this many calls: a small model's size is judged in milliseconds, not 0.1 s each.
MAX_CALLS = 8
#: A size this much slower than the best, twice in a row, ends the climb.
GIVE_UP_RATIO = 0.75
#: Predicted gain from worker processes that ``--workers auto`` needs before it starts them.
WORKERS_MIN_GAIN = 1.3


@dataclasses.dataclass(frozen=True)
class Probe:
    """The chosen batch sizes and the throughputs (windows per second) they were chosen by."""

    forward: int
    backward: int
    forward_rates: dict[int, float]
    backward_rates: dict[int, float]
    seconds: float
    remembered: bool = False  # reused from an earlier run on this machine (see the module docstring)

    def to_dict(self) -> dict[str, Any]:
        return {
            "forward": self.forward,
            "backward": self.backward,
            "windows_per_second": {
                "forward": {str(k): round(v, 1) for k, v in self.forward_rates.items()},
                "backward": {str(k): round(v, 1) for k, v in self.backward_rates.items()},
            },
            "seconds": round(self.seconds, 3),
            "remembered": self.remembered,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Probe:
        rates = data["windows_per_second"]
        return cls(
            int(data["forward"]),
            int(data["backward"]),
            {int(k): float(v) for k, v in rates["forward"].items()},
            {int(k): float(v) for k, v in rates["backward"].items()},
            float(data["seconds"]),
            remembered=True,
        )


def cache_file() -> Path:
    folder = os.environ.get("TSREPORT_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = str(Path(base) / "tsreport")
    return Path(folder) / "batch-sizes.json"


def machine() -> str:
    """What the timings depend on besides the model: processor or GPU, torch, threads."""
    if torch.cuda.is_available():
        chip = torch.cuda.get_device_name()
    else:
        chip = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                chip = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), chip)
        except OSError:
            pass
    return f"{chip}|torch {torch.__version__}|{torch.get_num_threads()} threads|{os.cpu_count()} cpus"


def remembered(key: dict[str, Any], probe: Callable[[], Probe]) -> Probe:
    """The probe for ``key`` (model sha256, shapes, device, gradients) on this machine: from the cache
    file when an earlier run probed it, else probed now and remembered. A cache that cannot be read
    or written only means probing again."""
    from filelock import FileLock, Timeout

    digest = hashlib.sha256(json.dumps({**key, "machine": machine()}, sort_keys=True).encode()).hexdigest()[:32]
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock", timeout=10)
        with lock:
            entries = _read(path)
            if digest in entries:
                return Probe.from_dict(entries[digest])
            found = probe()
            entries[digest] = found.to_dict()
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(temporary, path)
            return found
    except (OSError, Timeout, ValueError, KeyError, TypeError):
        return probe()


def _read(path: Path) -> dict[str, Any]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged cache is rewritten
    return entries if isinstance(entries, dict) else {}


def _sync(engine: Engine) -> None:
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)


def _rate(engine: Engine, step: Callable[[torch.Tensor], Any], batch: torch.Tensor, warm: int = 2) -> float:
    """Windows per second of ``step`` on ``batch`` (after ``warm`` untimed calls: a TorchScript
    program is profiled on its first calls at a new shape, then optimised)."""
    for _ in range(warm):
        step(batch)
    _sync(engine)
    calls, begin = 0, time.perf_counter()
    while calls < 2 or (time.perf_counter() - begin < SECONDS_PER_SIZE and calls < MAX_CALLS):
        step(batch)
        calls += 1
    _sync(engine)
    return batch.shape[0] * calls / (time.perf_counter() - begin)


def _climb(
    engine: Engine, step: Callable[[torch.Tensor], Any], windows: torch.Tensor, deadline: float
) -> dict[int, float]:
    """Throughput per size up the ladder (until two sizes in a row are clearly slower), then another
    pass over the sizes tried, keeping each size's best: a burst of load elsewhere spoils one pass only."""
    rates: dict[int, float] = {}
    batches: dict[int, torch.Tensor] = {}
    slower = 0
    for size in LADDER:
        repeats = -(-size // windows.shape[0])
        batches[size] = engine.to_device(windows.repeat(repeats, 1, 1)[:size].contiguous())
        rates[size] = _rate(engine, step, batches[size])
        best = max(rates.values())
        slower = slower + 1 if rates[size] < GIVE_UP_RATIO * best else 0
        if slower >= 2 or time.perf_counter() > deadline:
            break
    for _ in range(PASSES - 1):
        for size, batch in batches.items():
            if time.perf_counter() > deadline + 1.0:
                return rates
            rates[size] = max(rates[size], _rate(engine, step, batch, warm=0))
    return rates


def probe_batch_sizes(engine: Engine, windows: torch.Tensor, *, gradients: bool, budget: float = 6.0) -> Probe:
    """Time the ladder on ``windows`` (a few real (k, T, C) windows) and pick the fastest sizes.

    ``gradients``: also probe forward + backward (when a gradient method will run); otherwise the
    backward size is the forward one.
    """
    begin = time.perf_counter()
    deadline = begin + budget / (2 if gradients else 1)

    def forward(batch: torch.Tensor) -> Any:
        with torch.inference_mode():
            return engine.raw_call(batch)

    def backward(batch: torch.Tensor) -> Any:
        with torch.enable_grad(), engine._backward_context():
            leaf = batch.detach().requires_grad_(True)
            output = engine.raw_call(leaf)
            if output.requires_grad:
                torch.autograd.grad(output.sum(), leaf, allow_unused=True)

    evaluations = engine.evaluations
    forward_rates = _climb(engine, forward, windows, deadline)
    backward_rates: dict[int, float] = {}
    if gradients:
        try:
            backward_rates = _climb(engine, backward, windows, begin + budget)
        except RuntimeError:  # no gradients: the gradient methods will say so themselves
            backward_rates = {}
    engine.evaluations = evaluations  # probe calls are not the analyses' work
    chosen = max(forward_rates, key=forward_rates.__getitem__)
    chosen_backward = max(backward_rates, key=backward_rates.__getitem__) if backward_rates else chosen
    return Probe(chosen, chosen_backward, forward_rates, backward_rates, time.perf_counter() - begin)


def predicted_worker_gain(engine: Engine, windows: torch.Tensor, workers: int) -> tuple[float, dict[str, float]]:
    """How much faster ``workers`` single-threaded processes would be than this one with all its
    threads, predicted from the forward rate at the chosen size with 1 thread and with all."""
    threads = torch.get_num_threads()
    size = engine.batch_size
    batch = engine.to_device(windows.repeat(-(-size // windows.shape[0]), 1, 1)[:size].contiguous())

    def forward(batch: torch.Tensor) -> Any:
        with torch.inference_mode():
            return engine.raw_call(batch)

    evaluations = engine.evaluations
    all_threads = _rate(engine, forward, batch)
    try:
        torch.set_num_threads(max(1, threads // workers))
        one = _rate(engine, forward, batch)
    finally:
        torch.set_num_threads(threads)
    engine.evaluations = evaluations
    gain = one * workers / all_threads
    return gain, {"all_threads": round(all_threads, 1), "per_worker": round(one, 1), "gain": round(gain, 2)}
