#!/usr/bin/env python
"""One million windows of the bundled example, explained by occlusion through ``--scheduler local``.

Usage::

    python bench/bench_dask_scale.py [--windows 1000000] [--small 10000] [--workers 2] [--size 28]

The bundled example's stores are repeated (renamed, values as they are) until the data holds
``--windows`` windows; the same is done for ``--small`` windows. Each is explained by
``tsreport explain ... --analyses occlusion --samples all --scheduler local --workers W`` in a
subprocess, while this script samples the resident memory of every process under it (psutil) every
0.2 s. It prints the wall time, the main process's peak RSS and each Dask worker's peak RSS, and the
ratio of the largest worker peak at ``--windows`` to that at ``--small`` (issue 12: within 1.5x).

``--size`` is occlusion's block size: 28 (the whole window, one block per field: 7 perturbations a
window) keeps a million windows near a quarter of an hour on 2 cores; memory per worker does not
depend on it (a chunk is batches of the same size either way).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples"


def write_data(folder: Path, windows: int) -> Path:
    frame = pd.read_csv(EXAMPLE / "sales.csv")
    per_store = frame.groupby("store").size().min() - 28  # windows a store gives (window 28, horizon 1)
    copies = -(-windows // (per_store * frame["store"].nunique()))
    parts = []
    for copy in range(copies):
        part = frame.copy()
        part["store"] = part["store"] + f"_{copy:05d}"
        parts.append(part)
    path = folder / f"sales_{windows}.csv"
    pd.concat(parts, ignore_index=True).to_csv(path, index=False)
    return path


def watch(process: subprocess.Popen, peaks: dict[int, tuple[str, int]], stop: threading.Event) -> None:
    root = psutil.Process(process.pid)
    while not stop.is_set():
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for member in family:
            try:
                rss = member.memory_info().rss
                command = " ".join(member.cmdline())
                role = "main" if member.pid == root.pid else ("worker" if "spawn_main" in command else "other")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if rss > peaks.get(member.pid, ("", 0))[1]:
                peaks[member.pid] = (role, rss)
        stop.wait(0.2)


def run(folder: Path, windows: int, workers: int, size: int) -> dict:
    data = write_data(folder, windows)
    config = folder / "occlusion.yaml"
    config.write_text(f"occlusion: {{size: {size}}}\n")
    out = folder / f"out_{windows}"
    command = [
        sys.executable, "-m", "tsreport", "explain", str(EXAMPLE / "model.pt"), str(data),
        "--schema", str(EXAMPLE / "schema.yaml"), "--out", str(out), "--analyses", "occlusion", "--samples", "all",
        "--format", "json", "--scheduler", "local", "--workers", str(workers), "--config", str(config), "--quiet",
        "--batch-size", "256",
    ]  # fmt: skip
    peaks: dict[int, tuple[str, int]] = {}
    stop = threading.Event()
    began = time.perf_counter()
    process = subprocess.Popen(command)
    watcher = threading.Thread(target=watch, args=(process, peaks, stop), daemon=True)
    watcher.start()
    code = process.wait()
    stop.set()
    watcher.join()
    seconds = time.perf_counter() - began
    main = next((rss for pid, (role, rss) in peaks.items() if role == "main"), 0)
    workers_rss = sorted((rss for role, rss in peaks.values() if role == "worker"), reverse=True)
    return {"windows": windows, "exit": code, "seconds": seconds, "main": main, "workers": workers_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=28)
    args = parser.parse_args()
    mib = 1 << 20
    with tempfile.TemporaryDirectory() as scratch:
        rows = [run(Path(scratch), n, args.workers, args.size) for n in (args.small, args.windows)]
    for row in rows:
        shown = ", ".join(f"{rss / mib:.0f}" for rss in row["workers"][: args.workers + 2])
        print(
            f"{row['windows']:>9} windows: exit {row['exit']}, {row['seconds']:.0f} s, main peak RSS "
            f"{row['main'] / mib:.0f} MiB, worker-side processes' peak RSS (MiB): {shown}"
        )
    small, large = (max(row["workers"][: args.workers] or [0]) for row in rows)
    ratio = large / small if small else float("nan")
    print(f"largest worker peak, {args.windows} vs {args.small} windows: {ratio:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
