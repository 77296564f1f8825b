"""Interrupted runs: SIGINT exits 130 and SIGTERM 143 (never 1, which means "--fail-on tripped"),
no staging folder is left, and the previous report in --out is untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import models
import pytest

REPO = Path(__file__).resolve().parent.parent


class SlowModel(models.LastStepLinear):
    """LastStepLinear that sleeps on every call, so a run is still going when the signal arrives."""

    def forward(self, x):  # type: ignore[no-untyped-def]
        time.sleep(0.05)
        return super().forward(x)


@pytest.mark.parametrize(("signum", "code", "name"), [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_exit_code_and_previous_report_intact(tmp_path: Path, signum: int, code: int, name: str) -> None:
    data, schema = models.write_case(tmp_path)
    model = models.save_pickle(SlowModel(), tmp_path / "model.pt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"tsreport_version": "0.0.9", "previous": true}')  # an older run
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "tsreport", "explain", str(model), str(data), "--schema", str(schema), "--out", str(out),
         "--trust-model", "--analyses", "performance,occlusion", "--samples", "all", "--batch-size", "1", "--verbose"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
        # A shell without job control starts background jobs with SIGINT ignored, and Python keeps an
        # inherited SIG_IGN: give the child the default disposition, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert child.stderr is not None
    # Wait until the analyses are running (the model is loaded and checked), then interrupt.
    seen = b""
    while b"occlusion" not in seen:
        line = child.stderr.readline()
        assert line, seen.decode()
        seen += line
    began = time.perf_counter()
    child.send_signal(signum)
    rest = child.stderr.read().decode()
    child.wait(timeout=30)
    assert child.returncode == code, rest
    assert time.perf_counter() - began < 5  # stops within a batch or two
    assert f"tsreport: interrupted by {name}; no new report was written." in rest.splitlines()[-1]
    assert "Traceback" not in rest
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]  # no staging folder left
    assert (out / "results.json").read_text() == '{"tsreport_version": "0.0.9", "previous": true}'
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tsreport-")] == []  # no staging beside
