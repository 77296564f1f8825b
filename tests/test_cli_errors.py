"""Bad inputs: exact exit code, a useful stderr message, no traceback, no report left behind.

CONTRACT §1: 2 = usage error (click's own convention for a missing file),
3 = bad input (model, data or schema cannot be used as given). For both, stderr
names the file / field / column and what to do, and no partial report is left.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import warnings
from pathlib import Path
from typing import Any

import models
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import explain, results, run_cli
from torch import nn

MODELS_PY = str(Path(models.__file__).resolve())
FAST = ("--analyses", "performance", "--format", "json", "--samples", "8")


# ---------------------------------------------------------------- helpers


def assert_no_report(out: Path) -> None:
    """Nothing was left behind: the folder is gone, or (when it pre-existed) still empty."""
    out = Path(out)
    if out.exists():
        assert out.is_dir()
        left = sorted(p.name for p in out.iterdir())
        assert left == [], f"left behind in {out}: {left}"


def assert_fails(result: Any, code: int, *parts: str, out: Path | None = None) -> str:
    """Exit ``code``, every ``part`` in stderr, no traceback, no report in ``out``."""
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}:\n{result.output}"
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    for part in parts:
        assert part in result.stderr, f"{part!r} not in stderr:\n{result.stderr}"
    if out is not None:
        assert_no_report(out)
    return result.stderr


def assert_ok(result: Any, out: Path) -> dict:
    assert result.exit_code == 0, result.output
    return results(out)


def rewrite(case: dict, frame: Any = None, **schema_overrides: Any) -> None:
    """Overwrite the case's data.csv / schema.yaml (same paths)."""
    models.write_case(case["dir"], frame, **schema_overrides)


def write_schema(case: dict, raw: dict) -> None:
    case["schema"].write_text(yaml.safe_dump(raw, sort_keys=False))


FOUR_CHANNELS = [
    {"name": "a", "columns": ["a"]},
    {"name": "b", "columns": ["b"]},
    {"name": "noise", "columns": ["noise"]},
    {"name": "w0", "columns": ["w_0"]},
]


class InfModel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1, :1] * 0.0 + float("inf")


class Payload:
    """Unpickling this calls Path.touch(marker): proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


# ---------------------------------------------------------------- 1. missing files (click: 2)


def test_missing_model_file_is_a_usage_error(case: dict) -> None:
    missing = case["dir"] / "nope.pt"
    result = run_cli("explain", missing, case["data"], "--schema", case["schema"], "--out", case["out"])
    assert_fails(result, 2, "nope.pt", "does not exist", out=case["out"])
    assert not case["out"].exists()


def test_missing_data_file_is_a_usage_error(case: dict) -> None:
    missing = case["dir"] / "nope.csv"
    result = run_cli("explain", case["model"], missing, "--schema", case["schema"], "--out", case["out"])
    assert_fails(result, 2, "nope.csv", "does not exist", out=case["out"])
    assert not case["out"].exists()


# ---------------------------------------------------------------- 2. damaged / non-model files (3)


def test_truncated_torchscript_file(case: dict) -> None:
    blob = case["model"].read_bytes()
    case["model"].write_bytes(blob[: len(blob) // 2])
    stderr = assert_fails(explain(case), 3, str(case["model"]), "damaged zip archive (truncated?)", out=case["out"])
    assert "save the model again" in stderr
    assert "--trust-model" not in stderr  # not misread as a pickled module


@pytest.mark.parametrize(
    ("content", "says"),
    [
        pytest.param(np.random.default_rng(0).bytes(4096), "not a PyTorch model file", id="random-bytes"),
        pytest.param(b"date,price\n2024-01-01,3.5\n", "not a PyTorch model file", id="text-file"),
        pytest.param(b"", "is empty (0 bytes)", id="empty-file"),
    ],
)
def test_non_model_file(case: dict, content: bytes, says: str) -> None:
    case["model"].write_bytes(content)
    stderr = assert_fails(explain(case), 3, f"Model file {case['model']}", says, out=case["out"])
    assert "--trust-model" not in stderr  # not a pickled module: trusting it would not help


# ---------------------------------------------------------------- 3. pickles


def test_pickled_module_needs_trust_model(case: dict) -> None:
    models.save_pickle(models.LastStepLinear(), case["model"])
    stderr = assert_fails(explain(case, *FAST), 3, str(case["model"]), "--trust-model", out=case["out"])
    assert "run code" in stderr


def test_pickled_module_loads_with_trust_model(case: dict) -> None:
    models.save_pickle(models.LastStepLinear(), case["model"])
    data = assert_ok(explain(case, *FAST, "--trust-model"), case["out"])
    assert data["inputs"]["model"]["format"] == "pickle"
    assert data["analyses"]["performance"]["status"] == "ok"


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_never_unpickled(case: dict, writer: str) -> None:
    marker = case["dir"] / "MARKER"
    if writer == "torch.save":
        torch.save(Payload(marker), str(case["model"]))
    else:
        with open(case["model"], "wb") as handle:
            pickle.dump(Payload(marker), handle)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = explain(case, *FAST)
    stderr = assert_fails(result, 3, str(case["model"]), "--trust-model", out=case["out"])
    assert "run code" in stderr
    assert not marker.exists()
    assert [str(w.message) for w in caught] == []  # torch's pickle-protocol notes stay out of stderr


def test_malicious_pickle_payload_is_real(case: dict) -> None:
    """The payload above does run when trusted: the previous test is not vacuous."""
    marker = case["dir"] / "MARKER"
    torch.save(Payload(marker), str(case["model"]))
    assert_fails(explain(case, *FAST, "--trust-model"), 3, "not an nn.Module", out=case["out"])
    assert marker.exists()


# ---------------------------------------------------------------- 4-5. schema structure / columns


def test_schema_column_not_in_data_suggests_closest(case: dict) -> None:
    fields = models.make_schema()["fields"]
    fields[0] = {"name": "a", "columns": ["aa"]}
    rewrite(case, fields=fields)
    assert_fails(explain(case), 3, "'aa'", "data.csv", "Closest existing columns: 'a'", out=case["out"])


def test_schema_target_not_in_data_suggests_closest(case: dict) -> None:
    rewrite(case, target="yy")
    assert_fails(explain(case), 3, "'yy'", "target", "'y'", out=case["out"])


def test_schema_unknown_top_level_key(case: dict) -> None:
    raw = models.make_schema()
    raw["windw"] = 8
    write_schema(case, raw)
    stderr = assert_fails(
        explain(case), 3, str(case["schema"]), "unknown key 'windw'", "Did you mean 'window'?", out=case["out"]
    )
    assert "Valid keys: version, task, time, group, window" in stderr


def test_schema_unknown_key_in_field(case: dict) -> None:
    raw = models.make_schema()
    raw["fields"][1] = {"name": "b", "colums": ["b"]}
    write_schema(case, raw)
    assert_fails(
        explain(case),
        3,
        "field #2 'b'",
        "unknown key 'colums'",
        "Valid keys: name, columns, kind, scale, baseline",
        out=case["out"],
    )


# ---------------------------------------------------------------- 6. shapes: channels, layout, window


def test_channel_count_mismatch_torchscript(case: dict) -> None:
    rewrite(case, fields=FOUR_CHANNELS)
    stderr = assert_fails(explain(case), 3, "(2, 8, 4)", "4 channels", str(case["schema"]), out=case["out"])
    assert "in_features=6" in stderr and "(2x4 and 6x1)" in stderr
    assert "TorchScript interpreter" not in stderr  # the useful line, not torch's preamble


def test_channel_count_mismatch_lstm(case: dict) -> None:
    rewrite(case, fields=FOUR_CHANNELS)
    models.save_state_dict(models.TinyLSTM(), case["model"])
    result = explain(case, "--model-class", f"{MODELS_PY}:TinyLSTM")
    stderr = assert_fails(result, 3, "(2, 8, 4)", "first layer 'lstm' (LSTM) takes input_size=6", out=case["out"])
    assert "Expected 6, got 4" in stderr


def test_layout_mismatch_channels_first_model(case: dict) -> None:
    models.save_state_dict(models.ChannelsFirstConv(), case["model"])
    result = explain(case, "--model-class", f"{MODELS_PY}:ChannelsFirstConv")
    assert_fails(result, 3, "(2, 8, 6)", "layout btc", "in_channels=6", "'layout'", out=case["out"])


def test_layout_mismatch_torchscript(case: dict) -> None:
    models.save_torchscript(models.ChannelsFirstConv(), case["model"])
    stderr = assert_fails(explain(case), 3, "(2, 8, 6)", "layout btc", "in_channels=6", "'layout'", out=case["out"])
    assert "TorchScript interpreter" not in stderr


def test_export_static_shape_wrong_window(case: dict) -> None:
    models.save_export(models.LastStepLinear(), case["dir"] / "model.pt2", torch.zeros(2, 8, 6))
    case["model"] = case["dir"] / "model.pt2"
    rewrite(case, window=12)
    assert_fails(explain(case), 3, "(2, 8, 6)", "(2, 12, 6)", "'window'", out=case["out"])


# ---------------------------------------------------------------- 7. missing values


def _frame_with_gaps():
    frame = models.make_frame()
    frame.loc[[10, 11, 70], "b"] = np.nan  # rows 11, 12 (series s0) and 71 (series s1)
    return frame


def test_nan_with_missing_error(case: dict) -> None:
    rewrite(case, _frame_with_gaps())
    assert_fails(explain(case), 3, "'b'", "3 missing", "11, 12, 71", "missing: drop", out=case["out"])


def test_nan_with_missing_drop_succeeds(case: dict) -> None:
    rewrite(case, _frame_with_gaps(), missing="drop")
    data = assert_ok(explain(case, *FAST), case["out"])
    # 52 windows per series; a window is dropped when its 8 input rows touch a NaN row (a NaN
    # input in a truth row does not matter): s0 rows 10-11 -> starts 3..11 (9), s1 row 10 -> 3..10 (8)
    assert data["windows"]["dropped"] == 17
    assert data["windows"]["total"] == 2 * 52 - 17
    assert any("dropped" in w for w in data["warnings"])


def test_nan_with_missing_ffill_succeeds(case: dict) -> None:
    rewrite(case, _frame_with_gaps(), missing="ffill")
    data = assert_ok(explain(case, *FAST), case["out"])
    assert data["windows"]["dropped"] == 0
    assert data["windows"]["total"] == 2 * 52


# ---------------------------------------------------------------- 8-10. data that cannot be windowed


def test_window_longer_than_every_series(case: dict) -> None:
    rewrite(case, window=100)
    assert_fails(explain(case), 3, "No window fits", "101", "longest series has 60", "'window'", out=case["out"])


def test_empty_csv(case: dict) -> None:
    case["data"].write_bytes(b"")
    assert_fails(explain(case), 3, str(case["data"]), "empty", out=case["out"])


def test_header_only_csv(case: dict) -> None:
    case["data"].write_text(",".join(models.make_frame().columns) + "\n")
    assert_fails(explain(case), 3, str(case["data"]), "no data rows", out=case["out"])


def test_non_numeric_field_column(case: dict) -> None:
    frame = models.make_frame()
    frame["b"] = frame["b"].astype(object)
    frame.loc[3, "b"] = "abc"
    rewrite(case, frame)
    assert_fails(explain(case), 3, "'b'", "not numeric", "'abc'", "row 4 (line 5)", out=case["out"])


# ---------------------------------------------------------------- 11. non-finite outputs


@pytest.mark.parametrize("model", [models.NaNModel, InfModel], ids=["nan", "inf"])
def test_model_returning_non_finite(case: dict, model: type) -> None:
    models.save_torchscript(model(), case["model"])
    case["out"].mkdir()  # a pre-existing empty folder stays empty
    assert_fails(explain(case), 3, f"model {case['model']} returned NaN or inf", str(case["schema"]), out=case["out"])
    assert case["out"].is_dir()


# ---------------------------------------------------------------- 12. output folder


def test_out_below_a_regular_file(case: dict) -> None:
    blocker = case["dir"] / "afile"
    blocker.write_text("not a folder")
    out = blocker / "out"
    assert_fails(explain(case, out=out), 3, str(out), "--out")
    assert blocker.read_text() == "not a folder"


def test_out_is_a_regular_file(case: dict) -> None:
    out = case["dir"] / "afile"
    out.write_text("not a folder")
    assert_fails(explain(case, out=out), 3, str(out), "not a folder", "--out")
    assert out.read_text() == "not a folder"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_read_only_folder(case: dict) -> None:
    case["out"].mkdir()
    case["out"].chmod(0o500)
    try:
        assert_fails(explain(case), 3, str(case["out"]), "not writable", "--out", out=case["out"])
    finally:
        case["out"].chmod(0o700)


# ---------------------------------------------------------------- 13. more schema / data / model mismatches


def test_duplicate_timestamp_in_group(case: dict) -> None:
    frame = models.make_frame()
    frame = pd.concat([frame, frame.iloc[[65]]], ignore_index=True)  # a second row for s1's 6th day
    rewrite(case, frame)
    assert_fails(explain(case), 3, "Duplicate timestamp '2024-01-06'", "group 's1'", out=case["out"])


def test_column_used_twice(case: dict) -> None:
    fields = models.make_schema()["fields"] + [{"name": "a_again", "columns": ["a"]}]
    rewrite(case, fields=fields)
    assert_fails(explain(case), 3, "column 'a' is used twice", "'a_again'", out=case["out"])


def test_output_shape_does_not_fit_horizon(case: dict) -> None:
    rewrite(case, horizon=3)
    assert_fails(explain(case), 3, "(2, 1)", "(2, 3)", "'horizon'", out=case["out"])


def test_state_dict_without_model_class(case: dict) -> None:
    models.save_state_dict(models.LastStepLinear(), case["model"])
    assert_fails(explain(case), 3, str(case["model"]), "state dict", "--model-class FILE.py:NAME", out=case["out"])


def test_state_dict_with_mismatching_model_class(case: dict) -> None:
    models.save_state_dict(models.LastStepLinear(), case["model"])
    result = explain(case, "--model-class", f"{MODELS_PY}:TinyLSTM")
    assert_fails(
        result,
        3,
        str(case["model"]),
        "does not fit",
        "TinyLSTM",
        "Unexpected key(s)",
        "--model-kwargs",
        out=case["out"],
    )


def test_state_dict_with_model_class_loads(case: dict) -> None:
    models.save_state_dict(models.LastStepLinear([1.0, 2.0, 0, 0, 0, 0]), case["model"])
    result = explain(
        case, *FAST, "--model-class", f"{MODELS_PY}:LastStepLinear", "--model-kwargs", '{"weights": [3,0,0,0,0,0]}'
    )
    data = assert_ok(result, case["out"])
    assert data["inputs"]["model"]["format"] == "state_dict"
    # the state dict's weights won over the kwargs' (both shapes fit): not exact, so mae > 0
    assert data["analyses"]["performance"]["overall"]["mae"] > 0.1


# ---------------------------------------------------------------- 14. usage errors in options (2)


def test_unknown_analysis(case: dict) -> None:
    stderr = assert_fails(explain(case, "--analyses", "performance,permutaton"), 2, "'permutaton'", out=case["out"])
    assert "Did you mean 'permutation'?" in stderr
    assert "performance, permutation" in stderr
    assert not case["out"].exists()


def test_unknown_config_key(case: dict) -> None:
    config = case["dir"] / "config.yaml"
    config.write_text("samples: 8\nsedd: 3\n")
    stderr = assert_fails(
        explain(case, "--config", config), 2, str(config), "unknown key 'sedd'", "Valid keys:", out=case["out"]
    )
    assert "seed" in stderr and "samples" in stderr
    assert not case["out"].exists()


def test_unknown_config_key_in_analysis_section(case: dict) -> None:
    config = case["dir"] / "config.yaml"
    config.write_text(json.dumps({"permutation": {"repeats": 3}}))
    assert_fails(explain(case, "--config", config), 2, "'repeats'", "n_repeats", out=case["out"])
