"""Tables as real users have them: all-float inputs, scaled fields, gaps, inf, dates, headers, formats.

Each test here failed before the fix it guards (pandas 3 read-only arrays, NaN baselines, month-first
guessing, 'price.1', string-ordered row numbers...).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import models
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import explain, results

from tsreport.data import baseline_values, build_windows, read_table
from tsreport.exceptions import DataError
from tsreport.schema import parse_schema

FAST = ("--analyses", "performance,occlusion,integrated_gradients,shap,sensitivity", "--samples", "16")


def _float_frame(length: int = 40) -> pd.DataFrame:
    """Only float input columns (no integer one-hot forcing a copy), as exported by most pipelines."""
    frame = models.make_frame(groups=2, length=length)
    for column in ("w_0", "w_1", "w_2"):
        frame[column] = frame[column].astype(float)
    return frame


def _schema(**overrides) -> dict:
    raw = models.make_schema(**overrides)
    raw["fields"][0]["scale"] = {"mean": 0.5, "std": 2.0}
    raw["target"] = {"column": "y", "scale": {"mean": 0.0, "std": 3.0}}
    return raw


def _case(tmp_path: Path, frame: pd.DataFrame, raw: dict, name: str = "data.csv") -> dict:
    data = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(data, index=False)
    else:
        frame.to_csv(data, index=False)
    schema = tmp_path / "schema.yaml"
    schema.write_text(yaml.safe_dump(raw, sort_keys=False))
    model = models.save_torchscript(models.LastStepLinear(), tmp_path / "model.pt")
    return {"data": data, "schema": schema, "model": model, "out": tmp_path / "out"}


def _windows(frame: pd.DataFrame, **overrides):
    schema = parse_schema(_schema(**overrides), source="schema.yaml")
    return schema, build_windows(schema, frame, "data.csv")


# ---------------------------------------------------------------- pandas 3: never write into pandas' arrays


@pytest.mark.parametrize("missing", ["error", "drop", "ffill"])
def test_all_float_table_with_scaled_fields_runs_under_every_missing_policy(tmp_path: Path, missing: str) -> None:
    frame = _float_frame()
    if missing != "error":
        frame.loc[[5, 50], "b"] = np.nan
        frame.loc[12, "y"] = np.nan
    case = _case(tmp_path, frame, _schema(missing=missing))
    result = explain(case, *FAST)
    assert result.exit_code == 0, result.output
    report = results(case["out"])
    assert all(entry["status"] == "ok" for entry in report["analyses"].values()), report["analyses"]
    assert report["analyses"]["occlusion"]["field_importance"]["b"] is not None


def test_read_only_frame_is_never_written(tmp_path: Path) -> None:
    frame = _float_frame()
    frame.loc[3, "a"] = np.nan
    before = frame.copy()
    schema, windows = _windows(frame, missing="ffill")
    pd.testing.assert_frame_equal(frame, before)  # scaling and ffill worked on our own copy
    assert windows.values[:, 0].dtype == np.float32 and np.isfinite(windows.values).all()


# ---------------------------------------------------------------- missing and non-finite values


def test_inf_and_values_beyond_float32_count_as_missing() -> None:
    frame = _float_frame()
    frame.loc[4, "a"] = np.inf
    frame.loc[45, "b"] = 1e300  # finite in float64, inf in the model's float32
    _, dropped = _windows(frame, missing="drop")
    _, clean = _windows(_float_frame(), missing="drop")
    assert dropped.dropped > 0 and clean.dropped == 0
    assert np.isfinite(dropped.values[np.isfinite(dropped.values).all(axis=1)]).all()
    with pytest.raises(DataError) as error:
        _windows(frame, missing="error")
    assert str(error.value) == (
        "Column 'a' in data.csv has 1 missing or non-finite value(s) (empty, NaN, inf or beyond float32), first at "
        "row 5 (line 6); rows 5. Fill them, or set 'missing: drop' or 'missing: ffill' in the schema."
    )


def test_ffill_fills_inf_and_drops_leading_gaps_with_a_warning(tmp_path: Path) -> None:
    frame = _float_frame()
    frame.loc[[0, 1], "b"] = np.nan  # the first rows of series s0: nothing to fill from
    frame.loc[20, "a"] = -np.inf
    _, windows = _windows(frame, missing="ffill")
    assert windows.dropped == 2 and windows.unfilled == 2  # the windows starting at rows 0 and 1
    case = _case(tmp_path, frame, _schema(missing="ffill"))
    result = explain(case, *FAST)
    assert result.exit_code == 0, result.output
    assert any(
        "2 windows touching missing or non-finite values were dropped (gaps at the start of a series" in w
        for w in results(case["out"])["warnings"]
    )


def test_baseline_ignores_gaps_outside_the_windows() -> None:
    frame = _float_frame()
    frame.loc[[0, 1], "b"] = np.nan  # only in windows that are dropped
    schema, windows = _windows(frame, missing="drop", baseline="mean")
    baseline = baseline_values(schema, windows)
    assert np.isfinite(baseline).all()


def test_a_field_with_no_finite_value_in_the_seen_rows_is_exit_3() -> None:
    frame = _float_frame()
    frame["noise"] = np.inf
    raw = _schema(missing="ffill", baseline="mean")
    schema = parse_schema(raw, source="schema.yaml")
    with pytest.raises(DataError, match="touches a missing value"):
        build_windows(schema, frame, "data.csv")


# ---------------------------------------------------------------- dates


def _dated(times: list[str]) -> pd.DataFrame:
    frame = models.make_frame(groups=1, length=len(times))
    frame["time"] = times
    return frame


def test_day_first_dates_are_read_day_first_when_a_day_above_12_says_so() -> None:
    days = pd.date_range("2020-01-01", periods=40, freq="D")
    frame = _dated([d.strftime("%d/%m/%Y") for d in days]).sample(frac=1.0, random_state=0)  # shuffled rows
    _, windows = _windows(frame)
    assert windows.first_end == "2020-01-08" and windows.last_end == "2020-02-08"


def test_ambiguous_day_month_dates_are_exit_3_naming_both_readings() -> None:
    days = pd.date_range("2020-01-01", periods=12, freq="MS")  # day 01 of each month: both readings fit
    frame = _dated([d.strftime("%d/%m/%Y") for d in days])
    with pytest.raises(DataError) as error:
        _windows(frame)
    message = str(error.value)
    assert message.startswith("Time column 'time' in data.csv is ambiguous: '01/02/2020' at row 2 (line 3) reads as ")
    assert 'set time_format: "%d/%m/%Y" or "%m/%d/%Y" in the schema.' in message


def test_time_format_resolves_the_ambiguity() -> None:
    days = pd.date_range("2020-01-01", periods=12, freq="MS")
    frame = _dated([d.strftime("%d/%m/%Y") for d in days])
    _, windows = _windows(frame, time_format="%d/%m/%Y", window=4)
    assert windows.first_end == "2020-04-01"


def test_value_not_matching_time_format_names_row_and_value() -> None:
    days = pd.date_range("2020-01-01", periods=20, freq="D")
    times = [d.strftime("%d/%m/%Y") for d in days]
    times[6] = "2020-01-07"
    with pytest.raises(DataError) as error:
        _windows(_dated(times), time_format="%d/%m/%Y")
    assert str(error.value) == (
        "Time column 'time' in data.csv holds '2020-01-07' at row 7 (line 8), which does not match the schema's "
        "time_format '%d/%m/%Y' (1 such rows); fix the value or 'time_format'."
    )


def test_mixed_date_formats_are_exit_3_naming_a_pair_of_rows() -> None:
    days = pd.date_range("2020-01-01", periods=20, freq="D")
    times = [d.strftime("%Y-%m-%d") for d in days]
    times[10] = "11/01/2020"
    with pytest.raises(DataError) as error:
        _windows(_dated(times))
    assert str(error.value) == (
        "Time column 'time' in data.csv mixes date formats: '2020-01-01' at row 1 (line 2) is ISO-8601 (YYYY-MM-DD), "
        "but '11/01/2020' at row 11 (line 12) is not; write every time in one format, and set 'time_format' in the "
        "schema if it is not ISO-8601."
    )


def test_mixed_offsets_are_instants_converted_to_utc() -> None:
    # Across a DST change: +01:00 then +02:00; in UTC the hourly order holds.
    stamps = pd.date_range("2021-03-28 00:00", periods=30, freq="h", tz="UTC").tz_convert("Europe/Berlin")
    frame = _dated([t.isoformat() for t in stamps])
    _, windows = _windows(frame)
    assert windows.first_end == "2021-03-28 07:00:00Z"


def test_times_with_and_without_offsets_are_exit_3() -> None:
    stamps = [f"2021-03-01T{h:02d}:00:00+01:00" for h in range(20)]
    stamps[5] = "2021-03-01T05:00:00"
    with pytest.raises(DataError, match="mixes times with a UTC offset"):
        _windows(_dated(stamps))


def test_without_a_time_column_rows_keep_file_order_and_ends_compare_as_numbers() -> None:
    frame = models.make_frame(groups=1, length=1200)
    _, windows = _windows(frame, time=None, group=None)
    assert windows.first_end == "8" and windows.last_end == "1199"  # not '999' > '1199' as strings


# ---------------------------------------------------------------- headers and file formats


def test_duplicate_headers_are_exit_3_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("time,price,price,y\n2020-01-01,1,2,3\n")
    with pytest.raises(DataError) as error:
        read_table(path)
    assert str(error.value) == (
        f"Data file {path} has two columns named 'price'; rename one (tsreport would otherwise read the second as "
        "'price.1' and could mix them up)."
    )


def test_csv_gz_and_parquet_give_identical_windows(tmp_path: Path) -> None:
    frame = _float_frame()
    frame.loc[7, "b"] = np.nan
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_csv(tmp_path / "d.csv.gz", index=False, compression="gzip")
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    schema = parse_schema(_schema(missing="ffill"), source="schema.yaml")
    built = [build_windows(schema, read_table(tmp_path / name), name) for name in ("d.csv", "d.csv.gz", "d.parquet")]
    for other in built[1:]:
        np.testing.assert_array_equal(built[0].values, other.values)
        np.testing.assert_array_equal(built[0].starts, other.starts)
        np.testing.assert_array_equal(built[0].targets, other.targets)
        assert list(built[0].end_times) == list(other.end_times)


def test_parquet_with_datetime_column_runs_end_to_end(tmp_path: Path) -> None:
    frame = _float_frame()
    frame["time"] = pd.to_datetime(frame["time"])
    case = _case(tmp_path, frame, _schema(), name="data.parquet")
    result = explain(case, *FAST)
    assert result.exit_code == 0, result.output
    assert results(case["out"])["windows"]["first_end"] == "2024-01-08"


def test_gzip_bomb_is_refused_while_reading(tmp_path: Path) -> None:
    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(b"a,b\n")
        chunk = b"1,2\n" * (1 << 18)  # 1 MB
        for _ in range(300):  # 300 MB of text, about 0.3 MB compressed
            handle.write(chunk)
    with pytest.raises(DataError, match="looks like a decompression bomb"):
        read_table(path)


def test_float_labels_with_blank_cells_match_integer_classes() -> None:
    frame = models.make_frame(groups=1, length=30)
    frame["label"] = frame["label"].astype(float)
    frame.loc[2, "label"] = np.nan  # pandas now reads 0.0 / 1.0
    schema = parse_schema(
        {**models.make_schema(task="classification", target="label", missing="drop"), "horizon": 1},
        source="schema.yaml",
    )
    windows = build_windows(schema, frame, "data.csv")
    assert windows.classes == (0, 1)
    assert set(windows.targets_raw) <= {"0", "1"}
