"""Run the CLI in-process and read what it wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tsreport.cli import main


def run_cli(*args: Any) -> Any:
    runner = CliRunner()
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def explain(case: dict, *extra: Any, out: Path | None = None) -> Any:
    out = out or case["out"]
    return run_cli("explain", case["model"], case["data"], "--schema", case["schema"], "--out", out, *extra)


def results(out: Path) -> dict:
    return json.loads((Path(out) / "results.json").read_text())


#: Wall-clock figures: when, how long, the argv, and the batch-size probe's throughputs (run.engine).
TIMINGS = ("seconds", "started", "argv", "probe", "workers_probe")


def strip_timings(value: Any) -> Any:
    """results.json without wall-clock fields (they differ between any two runs)."""
    if isinstance(value, dict):
        return {k: strip_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [strip_timings(v) for v in value]
    return value
