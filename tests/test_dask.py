"""--scheduler: the model work on a dask.distributed cluster gives the same report (issue 12)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import models
import pytest
import worker_models
from helpers import explain, results, strip_timings

pytest.importorskip("distributed")

HERE = Path(__file__).resolve().parent


def test_a_local_cluster_gives_the_same_report_even_when_a_worker_dies(tmp_path, one_thread):
    data, schema = models.write_case(tmp_path, frame=models.make_frame(groups=3, length=80))
    weights = models.save_state_dict(worker_models.DilatedCNN(), tmp_path / "cnn_state.pt")
    marker = tmp_path / "killed"
    case = {"data": data, "schema": schema, "model": weights}
    kwargs = f'{{"marker": "{marker}", "parent": {os.getpid()}}}'
    args = ("--samples", "all", "--analyses", "occlusion,permutation,integrated_gradients", "--batch-size", "32",
            "--quiet", "--model-class", f"{HERE / 'worker_models.py'}:KillOnce", "--model-kwargs", kwargs)  # fmt: skip
    assert explain(case, *args, out=tmp_path / "one").exit_code == 0
    assert not marker.exists()
    result = explain(case, *args, "--scheduler", "local", "--workers", "2", out=tmp_path / "dask")
    assert result.exit_code == 0, result.output
    assert marker.exists()  # a worker process was killed mid-run; its chunks ran again elsewhere
    one, dask = results(tmp_path / "one"), results(tmp_path / "dask")
    assert strip_timings(dask["analyses"]) == strip_timings(one["analyses"])
    assert dask["run"]["engine"]["executor"].startswith("Dask cluster at tcp://127.0.0.1")


def test_an_unreachable_scheduler_is_exit_3_within_seconds(case):
    began = time.monotonic()
    result = explain(case, "--scheduler", "tcp://127.0.0.1:9", "--quiet")
    assert result.exit_code == 3
    line = result.output.strip().splitlines()[-1]
    assert line == (
        "tsreport: error: Cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 5 s: start it (dask scheduler; "
        "dask worker ADDRESS), check the address, or use --scheduler local."
    )
    assert time.monotonic() - began < 20
    assert not case["out"].exists()
