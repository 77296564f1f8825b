"""Tables as real users have them: all-float inputs, scaled fields, gaps, inf, dates, headers, formats.

Each test here failed before the fix it guards (pandas 3 read-only arrays, NaN baselines, month-first
guessing, 'price.1', string-ordered row numbers...).
"""

from __future__ import annotations

import dataclasses
import gzip
import lzma
import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import models
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import explain, results, run_cli

from tsreport.data import DataLimits, baseline_values, build_windows, read_table
from tsreport.exceptions import DataError, SchemaError
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


def test_day_first_dates_need_time_format_even_when_a_day_above_12_tells() -> None:
    # pandas' format="mixed" read 02/01/2020 as 1 February and 13/01/2020 as 13 January in one column.
    # tsreport never decides the order from the data: one stray row would flip a whole column.
    days = pd.date_range("2020-01-01", periods=40, freq="D")
    with pytest.raises(DataError) as error:
        _windows(_dated([d.strftime("%d/%m/%Y") for d in days]))
    assert str(error.value) == (
        "Time column 'time' in data.csv holds numeric day/month dates, which tsreport does not read without "
        "'time_format': '02/01/2020' at row 2 (line 3) reads day first or month first, and '13/01/2020' at row 13 "
        '(line 14) only day first. If every date is day first, set time_format: "%d/%m/%Y" in the schema.'
    )


def test_time_format_reads_shuffled_day_first_dates_in_time_order() -> None:
    days = pd.date_range("2020-01-01", periods=40, freq="D")
    frame = _dated([d.strftime("%d/%m/%Y") for d in days])
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    _, windows = _windows(shuffled, time_format="%d/%m/%Y")
    assert windows.first_end == "2020-01-08" and windows.last_end == "2020-02-08"
    iso = frame.assign(time=[d.strftime("%Y-%m-%d") for d in days])
    _, ordered = _windows(iso)
    np.testing.assert_array_equal(windows.inputs(), ordered.inputs())


def test_ambiguous_day_month_dates_are_exit_3_naming_a_pair_and_both_readings() -> None:
    days = pd.date_range("2020-01-01", periods=12, freq="MS")  # day 01 of each month: both readings fit
    frame = _dated([d.strftime("%d/%m/%Y") for d in days])
    with pytest.raises(DataError) as error:
        _windows(frame)
    # Monthly read one way, daily the other: both evenly spaced, so neither is called likely.
    assert str(error.value) == (
        "Time column 'time' in data.csv has dates that read day first or month first: '01/02/2020' at row 2 "
        "(line 3) and '01/03/2020' at row 3 (line 4) are 2020-02-01 and 2020-03-01 read day first, 2020-01-02 and "
        '2020-01-03 read month first. tsreport does not guess: set time_format: "%d/%m/%Y" or "%m/%d/%Y" in the '
        "schema."
    )


def test_ambiguous_dates_name_the_likely_format_when_one_reading_is_evenly_spaced() -> None:
    # Hourly, 1-12 March, month first: read day first, each day jumps to the 3rd of another month.
    hours = pd.date_range("2020-03-01", periods=12 * 24, freq="h")
    with pytest.raises(DataError) as error:
        _windows(_dated([h.strftime("%m/%d/%Y %H:%M") for h in hours]))
    assert 'set time_format: "%m/%d/%Y %H:%M" (likely: it spaces the times more evenly) or "%d/%m/%Y %H:%M"' in str(
        error.value
    )


def test_many_distinct_non_iso_times_parse_in_one_or_two_full_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every candidate format used to be tried on every value: 10 s for 300k distinct times.
    import tsreport.timeparse as timeparse

    stamps = pd.Series(pd.date_range("2000-01-01", periods=50_000, freq="min").strftime("%d %b %Y %H:%M"))
    sizes: list[int] = []
    real = pd.to_datetime

    def counting(values, *args, **kwargs):
        sizes.append(len(values))
        return real(values, *args, **kwargs)

    monkeypatch.setattr(timeparse.pd, "to_datetime", counting)
    parsed = timeparse.parse_times(stamps, column="t", source="d.csv", time_format=None, row_label=str)
    assert parsed.iloc[-1] == pd.Timestamp("2000-02-04 17:19")
    assert sum(size > 2000 for size in sizes) <= 2, sizes


def test_day_month_formats_with_dots_and_two_digit_years_are_recognised() -> None:
    times = [d.strftime("%d.%m.%y") for d in pd.date_range("2020-01-13", periods=30, freq="D")]
    with pytest.raises(DataError, match='set time_format: "%d.%m.%y" in the schema'):
        _windows(_dated(times))
    _, windows = _windows(_dated(times), time_format="%d.%m.%y")
    assert windows.last_end == "2020-02-10"  # the last row is truth only


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
        "time_format '%d/%m/%Y' (1 row in all); fix the value or 'time_format'."
    )


def test_time_format_with_an_unknown_directive_is_a_schema_error() -> None:
    days = pd.date_range("2020-01-01", periods=20, freq="D")
    with pytest.raises(SchemaError) as error:  # was a ValueError from pandas: exit 4
        _windows(_dated([d.strftime("%d/%m/%Y") for d in days]), time_format="%d/%m/%Q")
    assert str(error.value) == (
        "The schema's time_format '%d/%m/%Q' is not a strptime format ('Q' is a bad directive in format "
        "'%d/%m/%Q'); use the codes of Python's datetime.strptime, e.g. \"%d/%m/%Y %H:%M\"."
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
        f"Data file {path} has two columns named 'price' (columns 2 and 3); rename one (tsreport would otherwise "
        "read the second as 'price.1' and could mix them up)."
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
        chunk = (b"1" * 1021 + b",2\n") * 1024  # 1 MB of long rows: the ratio, not the cell count, stops it
        for _ in range(300):  # 300 MB of text, about 0.3 MB compressed
            handle.write(chunk)
    with pytest.raises(DataError) as error:
        read_table(path)
    allowance = max(100, 200 * path.stat().st_size // 2**20)
    assert str(error.value) == (
        f"Data file {path} inflates to more than {allowance} MB (200x its compressed size): it looks like a "
        "decompression bomb, not a table. Decompress it yourself if it is genuine."
    )


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


# ---------------------------------------------------------------- bounded reading, other formats


def test_other_compressions_are_refused_not_inflated(tmp_path: Path) -> None:
    # pandas inflated .xz/.bz2/.zip/.zst by name, without any bound: 8 KB of xz made 50 MB of text.
    text = b"a,b\n" + b"1,2\n" * 1000
    for name in ("data.csv.xz", "data.csv"):  # by content, whatever the name
        path = tmp_path / name
        path.write_bytes(lzma.compress(text))
        with pytest.raises(DataError) as error:
            read_table(path)
        assert str(error.value) == (
            f"Data file {path} is xz-compressed; tsreport reads .csv, .csv.gz (gzip) and .parquet files. Save the "
            "table as one of those."
        )
    (tmp_path / "data.zip").write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(DataError, match="is a zip archive"):
        read_table(tmp_path / "data.zip")


def test_a_flood_of_rows_is_stopped_while_it_streams_in(tmp_path: Path) -> None:
    path = tmp_path / "flood.csv"
    path.write_bytes(b"a,b,c,d\n" + b",,,\n" * 200_000)  # 4 bytes a row, 32 bytes a row as float64
    limits = DataLimits(max_cells=100_000)
    tracemalloc.start()
    with pytest.raises(DataError) as error:
        read_table(path, limits)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert str(error.value).startswith(f"Data file {path} has more than 100,000 cells (")
    assert "rows so far x 4 columns): tsreport stops there rather than exhaust memory." in str(error.value)
    assert peak < 20e6, f"peak {peak / 1e6:.0f} MB"
    with pytest.raises(DataError, match=r"holds more than 0.0625 MiB of CSV text: tsreport stops there"):
        read_table(path, DataLimits(max_bytes=2**16))
    assert read_table(path).shape == (200_000, 4)  # within the default limits
    endless = tmp_path / "endless.csv"
    endless.write_bytes(b"a,b\n1," + b"2" * 3_000_000 + b"\n")
    with pytest.raises(DataError) as error:
        read_table(endless, DataLimits(max_line_bytes=2**20))
    assert str(error.value) == (
        f"Data file {endless} has a row longer than 1 MiB (row 2 of the file): it is not a table tsreport can read. "
        "Check the file's line breaks and delimiter."
    )


def test_parquet_limits_are_checked_from_metadata_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "zeros.parquet"
    pd.DataFrame({"a": np.zeros(300_000), "b": np.zeros(300_000)}).to_parquet(path)  # 8 KB on disk
    with pytest.raises(DataError) as error:
        read_table(path, DataLimits(max_cells=500_000))
    assert str(error.value) == (
        f"Data file {path} has 600,000 cells (300,000 rows x 2 columns), more than the 500,000 tsreport reads "
        "without exhausting memory. Give it an extract with the rows and columns the schema needs."
    )
    plain = tmp_path / "plain.parquet"  # 2 MB of text in 9 KB: plain encoding, zstd-compressed
    table = pa.table({"y": np.zeros(2000), "note": ["x" * 1000] * 2000})
    pq.write_table(table, plain, use_dictionary=False, compression="zstd")
    with pytest.raises(DataError, match="holds 1.9.* MiB of column data once decompressed, more than the 1 MiB"):
        read_table(plain, DataLimits(max_bytes=2**20))


@pytest.mark.parametrize("store_schema", [True, False])
def test_parquet_dictionary_bomb_is_measured_before_it_is_expanded(tmp_path: Path, store_schema: bool) -> None:
    # One 100 KB string on 20,000 rows: 2 GB once expanded, under 1 KB on disk, 100 KB in the metadata.
    note = pa.DictionaryArray.from_arrays(pa.array(np.zeros(20_000, dtype=np.int32)), pa.array(["x" * 100_000]))
    path = tmp_path / "repeated.parquet"
    pq.write_table(pa.table({"y": np.zeros(20_000), "note": note}), path, store_schema=store_schema)
    assert path.stat().st_size < 10_000
    with pytest.raises(DataError) as error:
        read_table(path, DataLimits(max_bytes=64 * 2**20))
    assert str(error.value) == (
        f"Data file {path} expands to more than 64 MiB once read, more than tsreport reads without exhausting "
        "memory. Give it an extract with the rows and columns the schema needs."
    )


def test_parquet_duplicate_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "dup.parquet"
    table = pa.table([pa.array([1.0, 2.0]), pa.array([3.0, 4.0]), pa.array([5.0, 6.0])], names=["y", "price", "price"])
    pq.write_table(table, path)
    with pytest.raises(DataError) as error:
        read_table(path)
    assert str(error.value) == (
        f"Data file {path} has two columns named 'price' (columns 2 and 3); rename one (tsreport would otherwise "
        "read the second as 'price.1' and could mix them up)."
    )


def test_leading_blank_lines_do_not_hide_a_duplicate_header(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text('\n\ntime,"pr,ice","pr,ice",y\n2020-01-01,1,2,3\n')
    with pytest.raises(DataError, match="two columns named 'pr,ice'"):
        read_table(path)


def test_schema_command_never_drafts_a_duplicate_header(tmp_path: Path) -> None:
    frame = models.make_frame(groups=1, length=30)
    path = tmp_path / "dup.csv"
    frame.rename(columns={"b": "y"}).to_csv(path, index=False)  # 'y' twice; pandas drafted 'y.1' as the target
    result = run_cli("schema", path)
    assert result.exit_code == 3
    assert f"Data file {path} has two columns named 'y' (columns 4 and 9)" in result.stderr


class _Payload:
    """Unpickling it writes a marker file: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_parquet_column_stored_as_a_pickle_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    # pyarrow 14.0.0 (the lowest pyarrow setup.cfg allowed) unpickles arrow.py_extension_type while reading
    # a file's schema (CVE-2023-47248): this file ran its payload there. Newer pyarrow reads it as bytes.
    marker = tmp_path / "marker"
    payload = pickle.dumps(_Payload(marker))

    class Pickled(pa.ExtensionType):
        def __init__(self) -> None:
            super().__init__(pa.binary(), "arrow.py_extension_type")

        def __arrow_ext_serialize__(self) -> bytes:
            return payload

        @classmethod
        def __arrow_ext_deserialize__(cls, storage_type, serialized):
            return cls()

    path = tmp_path / "pickled.parquet"
    blob = pa.ExtensionArray.from_storage(Pickled(), pa.array([b"x", b"y"], type=pa.binary()))
    pq.write_table(pa.table({"price": [1.0, 2.0], "blob": blob}), path)
    pickle.loads(payload)  # the payload is real: unpickling it runs code
    assert marker.read_text() == "ran"
    marker.unlink()
    # A fresh process, where nothing registers the type: what a user's run sees.
    code = (
        "import sys; from tsreport.data import read_table\n"
        "try:\n    read_table(sys.argv[1])\nexcept Exception as error:\n    print(type(error).__name__, error)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, timeout=120)
    # pyarrow 14.0.0 stops while reading the schema, before the column's name is known: "a column" there.
    message = done.stdout.strip()
    assert message in (
        f"DataError Data file {path}: {named} is stored as a pickled Python object (arrow.py_extension_type); "
        "tsreport never unpickles a data file (that could run code from it). Write the column as plain numbers or "
        "text."
        for named in ("column 'blob'", "a column")
    ), (message, done.stderr)
    assert not marker.exists()


def test_parquet_index_columns_and_categories_read_like_csv(tmp_path: Path) -> None:
    frame = models.make_frame(groups=1, length=20)
    frame["kind"] = pd.Categorical(["u", "v"] * 10)
    path = tmp_path / "indexed.parquet"
    frame.set_index("time").to_parquet(path)  # a named index: kept as a column
    read = read_table(path)
    assert sorted(read.columns) == sorted(frame.columns)
    assert not isinstance(read["kind"].dtype, pd.CategoricalDtype)
    frame.iloc[::2].to_parquet(tmp_path / "filtered.parquet")  # an unnamed, non-range index: pandas' helper column
    assert "__index_level_0__" not in read_table(tmp_path / "filtered.parquet").columns


# ---------------------------------------------------------------- non-finite in model units, baselines


def test_values_beyond_float32_once_scaled_count_as_missing() -> None:
    frame = _float_frame()
    frame.loc[6, "a"] = 1e10  # (1e10 - 0.5) / 1e-30 overflows float32 in model units
    raw = _schema(missing="error")
    raw["fields"][0]["scale"] = {"mean": 0.5, "std": 1e-30}
    schema = parse_schema(raw, source="schema.yaml")
    with pytest.raises(DataError, match=r"Column 'a' in data.csv has 1 missing or non-finite value\(s\)"):
        build_windows(schema, frame, "data.csv")
    raw["missing"] = "drop"
    windows = build_windows(parse_schema(raw, source="schema.yaml"), frame, "data.csv")
    assert windows.dropped == 7 and np.isfinite(windows.inputs()).all()  # starts 0..6 of series s0


def test_target_beyond_float32_counts_as_missing() -> None:
    frame = _float_frame()
    frame.loc[15, "y"] = 1e39  # finite in float64, inf as the model's float32 truth
    _, windows = _windows(frame, missing="drop")
    assert windows.dropped == 1 and np.isfinite(windows.targets).all()
    assert 15 - 8 not in windows.starts  # the window whose truth row is 15


def test_baseline_is_the_mean_of_the_rows_the_model_sees() -> None:
    frame = _float_frame()
    frame.loc[[20, 21], "b"] = np.nan  # series s0 rows 20-21: windows starting at 13..21 are dropped
    schema, windows = _windows(frame, missing="drop", baseline="mean")
    seen = np.zeros(len(frame), dtype=bool)
    for start in windows.starts:
        seen[start : start + 8] = True
    expected = frame.loc[seen, "b"].mean()
    assert baseline_values(schema, windows)[1] == pytest.approx(expected, rel=1e-5)
    assert np.isfinite(expected)


def test_a_field_without_any_finite_value_is_a_data_error_naming_it() -> None:
    schema, windows = _windows(_float_frame())
    values = windows.values.copy()
    values[:, 2] = np.nan
    with pytest.raises(DataError) as error:
        baseline_values(dataclasses.replace(schema, baseline="mean"), dataclasses.replace(windows, values=values))
    assert str(error.value).startswith("Field 'noise' has no finite value in the rows the model sees")


# ---------------------------------------------------------------- --explain-at reads times as the column does


def test_explain_at_reads_times_as_the_column_is_read() -> None:
    days = pd.date_range("2020-01-01", periods=40, freq="D")
    _, windows = _windows(_dated([d.strftime("%d/%m/%Y") for d in days]), time_format="%d/%m/%Y")
    assert np.flatnonzero(windows.ends_at("02/01/2020")).tolist() == []  # no window ends on 2 January
    assert np.flatnonzero(windows.ends_at("13/01/2020")).tolist() == [5]  # not read month first
    assert np.flatnonzero(windows.ends_at("2020-01-13")).tolist() == [5]  # the displayed ISO form
    stamps = pd.date_range("2021-03-28 00:00", periods=30, freq="h", tz="UTC").tz_convert("Europe/Berlin")
    _, utc = _windows(_dated([t.isoformat() for t in stamps]))
    assert utc.ends_at("2021-03-28T09:00:00+02:00").tolist() == utc.ends_at("2021-03-28 07:00:00Z").tolist()
    assert utc.ends_at("2021-03-28T07:00").sum() == 1  # without an offset: UTC, as the report shows it
    _, rows = _windows(models.make_frame(groups=1, length=1200), time=None, group=None)
    assert rows.ends_at("1000").sum() == 1 and rows.ends_at("1000.0").sum() == 1


def test_explain_at_outside_the_windows_names_the_first_and_last_numerically(tmp_path: Path) -> None:
    frame = models.make_frame(groups=1, length=1200)
    case = _case(tmp_path, frame, _schema(time=None, group=None))
    result = explain(case, "--analyses", "performance", "--explain-at", "5")
    assert result.exit_code == 2
    assert "--explain-at 5: no window ends at 5. Windows end between 8 and 1199." in result.stderr
