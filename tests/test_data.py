"""Windows: the right rows, never across series, ordered by time, no T-fold copy of the data."""

from __future__ import annotations

import tracemalloc

import models
import numpy as np
import pandas as pd
import pytest

from tsreport.data import baseline_values, build_windows
from tsreport.schema import parse_schema


def _windows(frame: pd.DataFrame, **overrides):
    schema = parse_schema(models.make_schema(**overrides), source="schema.yaml")
    return schema, build_windows(schema, frame, "data.csv")


def test_windows_hold_the_right_rows_and_targets():
    frame = models.make_frame(groups=2, length=30)
    schema, windows = _windows(frame, horizon=2)
    # Per series of 30 rows: starts 0..20 (window 8 + horizon 2 must fit) -> 21 windows each.
    assert windows.count == 42
    inputs = windows.inputs()
    assert inputs.shape == (42, 8, 6) and inputs.dtype == np.float32
    s1 = frame[frame.series == "s1"].reset_index(drop=True)
    # Window 21 is the first of series s1: rows 0..7 of s1, truth rows 8 and 9.
    np.testing.assert_allclose(inputs[21], s1[models.CHANNELS].to_numpy()[0:8], rtol=1e-6)
    np.testing.assert_allclose(windows.targets_raw[21], s1["y"].to_numpy()[8:10])
    assert windows.groups[21] == "s1" and windows.end_times[21] == s1["time"][7]
    assert set(windows.groups[:21]) == {"s0"}


def test_no_window_crosses_a_series_and_stride_applies():
    frame = models.make_frame(groups=3, length=20)
    _, windows = _windows(frame, stride=5)
    # Each series: starts 0, 5, 10 (start + 8 + 1 <= 20).
    assert windows.count == 9
    rows = windows.starts[:, None] + np.arange(9)[None, :]
    series = frame["series"].to_numpy()
    assert all(len(set(series[r])) == 1 for r in rows)


def test_rows_are_ordered_by_time_within_a_series():
    frame = models.make_frame(groups=2, length=25)
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    _, ordered = _windows(frame)
    _, from_shuffled = _windows(shuffled)
    np.testing.assert_array_equal(ordered.inputs(), from_shuffled.inputs())
    np.testing.assert_array_equal(ordered.targets, from_shuffled.targets)
    np.testing.assert_array_equal(ordered.end_times, from_shuffled.end_times)


def test_scale_is_applied_to_fields_and_target():
    frame = models.make_frame(groups=1, length=20)
    fields = models.make_schema()["fields"]
    fields[0] = {"name": "a", "columns": ["a"], "scale": {"mean": 1.0, "std": 2.0}}
    _, windows = _windows(frame, fields=fields, target={"column": "y", "scale": {"mean": 3.0, "std": 4.0}})
    np.testing.assert_allclose(windows.inputs()[0, :, 0], (frame["a"][:8] - 1.0) / 2.0, rtol=1e-6)
    np.testing.assert_allclose(windows.targets[0], (frame["y"][8:9] - 3.0) / 4.0, rtol=1e-6)
    np.testing.assert_allclose(windows.targets_raw[0], frame["y"][8:9])


def test_missing_drop_and_ffill():
    frame = models.make_frame(groups=1, length=30)
    frame.loc[10, "b"] = np.nan
    _, dropped = _windows(frame, missing="drop")
    # Windows whose 8 input rows include row 10: starts 3..10 (a NaN input on a truth row is harmless).
    assert dropped.dropped == 8 and dropped.count == 22 - 8
    assert not np.isnan(dropped.inputs()).any()
    _, filled = _windows(frame, missing="ffill")
    assert filled.count == 22 and filled.dropped == 0
    assert filled.values[10, 1] == np.float32(frame.loc[9, "b"])


def test_missing_target_drops_only_windows_whose_truth_is_missing():
    frame = models.make_frame(groups=1, length=30)
    frame.loc[10, "y"] = np.nan
    _, dropped = _windows(frame, missing="drop")
    # y is not an input: only the window whose truth row is 10 (start 2) is dropped.
    assert dropped.dropped == 1 and 2 not in dropped.starts


def test_classification_labels_map_to_class_indices():
    frame = models.make_frame(groups=1, length=20)
    frame["label"] = np.where(frame["a"] > 0, "up", "down")
    schema, windows = _windows(frame, task="classification", target="label", classes=["down", "up"])
    assert windows.classes == ("down", "up")
    expected = (frame["a"].to_numpy()[7:20] > 0).astype(int)  # label at each window's last row
    np.testing.assert_array_equal(windows.targets, expected)


def test_baselines_per_field():
    frame = models.make_frame(groups=1, length=20)
    fields = models.make_schema()["fields"]
    fields[1]["baseline"] = "median"
    fields[2]["baseline"] = 0.5
    schema, windows = _windows(frame, fields=fields, baseline="mean")
    baseline = baseline_values(schema, windows)
    seen = frame.iloc[:-1]  # window 8, horizon 1: the last row is only ever a truth, never an input
    assert baseline[0] == pytest.approx(seen["a"].mean(), rel=1e-5)
    assert baseline[1] == pytest.approx(seen["b"].median(), rel=1e-5)
    assert baseline[2] == pytest.approx(0.5)


def test_windows_are_views_not_copies_of_the_data():
    # 300k rows x 6 channels with T = 48: materialising every window would take 345 MB.
    rows, window = 300_000, 48
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 6)).astype(np.float32), columns=models.CHANNELS)
    frame["y"] = rng.normal(size=rows)
    schema = parse_schema(models.make_schema(time=None, group=None, window=window, fields=models.CHANNELS), source="s")
    tracemalloc.start()
    windows = build_windows(schema, frame, "big.csv")
    batch = windows.inputs(np.arange(1024))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert windows.count == rows - window
    assert batch.shape == (1024, window, 6)
    assert peak < 80e6, f"peak {peak / 1e6:.0f} MB"
