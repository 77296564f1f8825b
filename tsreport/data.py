"""Data: read the table, order it, and cut it into the windows the model sees.

Windows are never materialised as N separate copies of T rows: the model-unit
values live once in a (rows, channels) array and a window is a start row into
it. :meth:`Windows.inputs` gathers the windows a batch needs through a strided
view, so memory stays O(rows) however many windows overlap.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tsreport.exceptions import DataError, SchemaError
from tsreport.numeric import to_model_units
from tsreport.schema import Schema, row_label, validate_against
from tsreport.timeparse import format_times, parse_one, parse_times


@dataclasses.dataclass(frozen=True)
class DataLimits:
    """What reading one DATA file may cost, so that no file can exhaust the machine.

    ``max_bytes``: CSV text once decompressed (counted while it streams in), or a Parquet file's
    uncompressed column data (from its metadata, before anything is read). ``max_cells``: rows ×
    columns (a newline count × the header's columns while a CSV streams in; the metadata of a
    Parquet file); the table takes 8 bytes a numeric cell, and a file of commas ``,,,,`` would
    otherwise take 8 times its size. ``max_line_bytes``: one CSV row (a row of 100,000 columns takes
    about 1 MB; a file without line breaks would be held whole). A gzip-compressed CSV may inflate to at most
    ``gzip_max_ratio`` times its size beyond its first ``gzip_free_bytes``: real CSVs compress
    5-20x, a decompression bomb a thousand times.
    """

    max_bytes: int = 2**30
    max_cells: int = 50_000_000
    max_line_bytes: int = 16 * 2**20
    gzip_max_ratio: int = 200
    gzip_free_bytes: int = 100 * 2**20


DATA_LIMITS = DataLimits()
#: Compressed formats recognised by their first bytes, which pandas would inflate without a bound.
_OTHER_COMPRESSIONS = {
    b"PK\x03\x04": "a zip archive (or an Excel workbook)",
    b"BZh": "bzip2-compressed",
    b"\xfd7zXZ\x00": "xz-compressed",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive",
}
#: The header is looked for in this much text at the start of a CSV (a header longer than this is
#: checked for repeated names only as far as it goes).
_HEADER_BYTES = 16 * 2**20


class _BoundedStream(io.RawIOBase):
    """A byte stream that raises a DataError as soon as it has produced more than ``limits`` allow.

    pandas pulls the CSV through it, so a bomb or a flood of short rows is stopped while it
    streams in, holding at most about ``max_cells`` parsed cells.
    """

    def __init__(self, inner: Any, path: Path, limits: DataLimits, *, columns: int, compressed: int | None) -> None:
        self.inner = inner
        self.path = path
        self.limits = limits
        self.columns = max(columns, 1)
        self.compressed = compressed  # the file's size when it is gzip-compressed, else None
        self.produced = 0
        self.lines = 0
        self.line_bytes = 0  # bytes since the last line break

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.produced += len(data)
        breaks = data.count(b"\n")
        self.lines += breaks
        self.line_bytes = len(data) - data.rfind(b"\n") - 1 if breaks else self.line_bytes + len(data)
        self._check()
        buffer[: len(data)] = data
        return len(data)

    def _check(self) -> None:
        limits, path = self.limits, self.path
        if self.compressed is not None:
            allowance = max(limits.gzip_free_bytes, limits.gzip_max_ratio * self.compressed)
            if self.produced > allowance:
                raise DataError(
                    f"Data file {path} inflates to more than {allowance // 2**20} MB "
                    f"({limits.gzip_max_ratio}x its compressed size): it looks like a decompression bomb, not a "
                    "table. Decompress it yourself if it is genuine."
                )
        if self.produced > limits.max_bytes:
            inflated = " once decompressed" if self.compressed is not None else ""
            raise DataError(
                f"Data file {path} holds more than {_size(limits.max_bytes)} of CSV text{inflated}: tsreport stops "
                "there rather than exhaust memory. Give it an extract with the rows and columns the schema needs."
            )
        if self.line_bytes > limits.max_line_bytes:
            raise DataError(
                f"Data file {path} has a row longer than {_size(limits.max_line_bytes)} (row {self.lines + 1:,} of "
                "the file): it is not a table tsreport can read. Check the file's line breaks and delimiter."
            )
        if self.lines * self.columns > limits.max_cells:
            raise DataError(
                f"Data file {path} has more than {limits.max_cells:,} cells ({self.lines:,} rows so far x "
                f"{self.columns:,} columns): tsreport stops there rather than exhaust memory. Give it an extract "
                "with the rows and columns the schema needs."
            )

    def close(self) -> None:
        self.inner.close()
        super().close()


def _size(count: int) -> str:
    return f"{count / 2**30:g} GiB" if count >= 2**30 else f"{count / 2**20:g} MiB"


def data_format(path: Path) -> str:
    """csv, csv.gz or parquet (CONTRACT §1: DATA), from the file's first bytes, whatever its name.

    Other compressed formats are refused: pandas would inflate them without any bound.
    """
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x1f\x8b"):
        return "csv.gz"
    for magic, what in _OTHER_COMPRESSIONS.items():
        if head.startswith(magic):
            raise DataError(
                f"Data file {path} is {what}; tsreport reads .csv, .csv.gz (gzip) and .parquet files. "
                "Save the table as one of those."
            )
    if path.name.lower().endswith((".parquet", ".pq")) and head:
        raise DataError(
            f"Data file {path} is named as Parquet but is not a Parquet file (it does not start with 'PAR1'); "
            "write it again with pandas' to_parquet or pyarrow, or save it as CSV."
        )
    return "csv"


def _csv_header(path: Path, kind: str) -> list[str]:
    """The column names as written in the file (pandas renames a repeated name to 'name.1').

    Blank lines before the header are skipped, as pandas skips them; a quoted name may hold a
    comma or a line break.
    """
    opener = gzip.open if kind == "csv.gz" else open
    with opener(path, "rb") as handle:
        start = handle.read(_HEADER_BYTES)
    text = start.decode("utf-8-sig", errors="replace")
    try:
        for record in csv.reader(io.StringIO(text, newline="")):
            if any(cell.strip() for cell in record):
                return record
    except csv.Error:
        pass
    return []


def _refuse_duplicates(names: list[str], path: Path) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(names):
        if name in seen and name.strip():
            raise DataError(
                f"Data file {path} has two columns named '{name}' (columns {seen[name] + 1} and {position + 1}); "
                f"rename one (tsreport would otherwise read the second as '{name}.1' and could mix them up)."
            )
        seen.setdefault(name, position)


def _read_csv(path: Path, kind: str, limits: DataLimits) -> pd.DataFrame:
    names = _csv_header(path, kind)
    _refuse_duplicates(names, path)
    inner = gzip.open(path, "rb") if kind == "csv.gz" else open(path, "rb")
    compressed = path.stat().st_size if kind == "csv.gz" else None
    with _BoundedStream(inner, path, limits, columns=len(names), compressed=compressed) as raw:
        with io.BufferedReader(raw, 1 << 20) as stream:
            return pd.read_csv(stream, compression=None)


def _read_parquet(path: Path, limits: DataLimits) -> pd.DataFrame:
    """Read a Parquet file with pyarrow, within ``limits`` checked from its metadata before reading.

    Nothing is unpickled. A column stored as a pickled Python object (``arrow.py_extension_type``,
    which pyarrow 14.0.0 still unpickles on reading the schema: CVE-2023-47248) is refused, on every
    pyarrow version. The pandas metadata the file may hold is ignored (``ignore_metadata``): it is
    JSON, but it only renames index columns and dtypes that tsreport does not need.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    _forbid_pickled_arrow_type(pa)
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except _PickledArrowType:
        raise _pickled_column(path, None) from None
    metadata = parquet.metadata
    cells = metadata.num_rows * max(metadata.num_columns, 1)
    if cells > limits.max_cells:
        raise DataError(
            f"Data file {path} has {cells:,} cells ({metadata.num_rows:,} rows x {metadata.num_columns:,} columns), "
            f"more than the {limits.max_cells:,} tsreport reads without exhausting memory. Give it an extract with "
            "the rows and columns the schema needs."
        )
    inflated = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if inflated > limits.max_bytes:
        raise DataError(
            f"Data file {path} holds {_size(inflated)} of column data once decompressed, more than the "
            f"{_size(limits.max_bytes)} tsreport reads without exhausting memory. Give it an extract with the rows "
            "and columns the schema needs."
        )
    for field in schema:
        if (field.metadata or {}).get(b"ARROW:extension:name") == _PICKLED_ARROW_TYPE.encode():
            raise _pickled_column(path, field.name)
    _refuse_duplicates([str(name) for name in schema.names], path)
    # Text columns are read dictionary-encoded, so that a long string repeated on every row (a few
    # bytes in the file) is measured before it is expanded.
    texts = [field.name for field in schema if _is_text(pa, field.type)]
    parquet = pq.ParquetFile(path, read_dictionary=texts)
    parts, used = [], 0
    for group in range(metadata.num_row_groups):
        part = parquet.read_row_group(group)
        used += sum(_expanded_bytes(pa, chunk) for column in part.columns for chunk in column.chunks)
        if used > limits.max_bytes:
            raise DataError(
                f"Data file {path} expands to more than {_size(limits.max_bytes)} once read, more than tsreport "
                "reads without exhausting memory. Give it an extract with the rows and columns the schema needs."
            )
        parts.append(part)
    table = pa.concat_tables(parts) if parts else parquet.schema_arrow.empty_table()
    # Dictionary-encoded (categorical) columns come out as their plain values, like CSV's.
    columns = [
        column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
        for column in table.columns
    ]
    table = pa.Table.from_arrays(columns, names=table.column_names)
    frame = table.to_pandas(ignore_metadata=True, date_as_object=False)
    hidden_index = [c for c in frame.columns if re.fullmatch(r"__index_level_\d+__", str(c))]
    return frame.drop(columns=hidden_index)


def _is_text(pa: Any, kind: Any) -> bool:
    return any(
        check(kind)
        for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
    )


def _expanded_bytes(pa: Any, chunk: Any) -> int:
    """Bytes an Arrow array takes once its dictionary (if any) is expanded into plain values."""
    if not pa.types.is_dictionary(chunk.type) or not _is_text(pa, chunk.type.value_type):
        return int(chunk.nbytes)
    import pyarrow.compute as pc

    lengths = pc.binary_length(chunk.dictionary).fill_null(0).to_numpy(zero_copy_only=False)
    indices = chunk.indices.fill_null(0).to_numpy(zero_copy_only=False)
    return int(lengths[indices].sum()) + 8 * len(chunk) if lengths.size else int(chunk.nbytes)


_PICKLED_ARROW_TYPE = "arrow.py_extension_type"


class _PickledArrowType(Exception):
    """Raised, in place of unpickling, where pyarrow would deserialize ``arrow.py_extension_type``."""


def _pickled_column(path: Path, column: str | None) -> DataError:
    named = f"column '{column}'" if column else "a column"
    return DataError(
        f"Data file {path}: {named} is stored as a pickled Python object ({_PICKLED_ARROW_TYPE}); tsreport never "
        "unpickles a data file (that could run code from it). Write the column as plain numbers or text."
    )


def _forbid_pickled_arrow_type(pa: Any) -> None:
    """Where this pyarrow still unpickles ``arrow.py_extension_type`` (14.0.0), put a refusal in its place.

    Replacing it rather than only unregistering it keeps pyarrow's own clean-up at exit quiet.
    """
    try:
        pa.unregister_extension_type(_PICKLED_ARROW_TYPE)
    except (LookupError, ValueError, pa.ArrowException):
        return  # not registered: this pyarrow never unpickles it (the schema check above refuses it)

    class _Refused(pa.ExtensionType):
        def __init__(self) -> None:
            super().__init__(pa.null(), _PICKLED_ARROW_TYPE)

        def __arrow_ext_serialize__(self) -> bytes:
            return b""

        @classmethod
        def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> Any:
            raise _PickledArrowType

    pa.register_extension_type(_Refused())


def read_table(path: str | Path, limits: DataLimits = DATA_LIMITS) -> pd.DataFrame:
    """Read a CSV, gzip-compressed CSV or Parquet file into a frame; the index is the data row position.

    Bounded by ``limits``: a decompression bomb, a flood of rows or columns, or a Parquet file
    that inflates beyond them is a DataError before it can exhaust memory. A column name that
    appears twice is a DataError naming it.
    """
    path = Path(path)
    kind = "csv"
    try:
        kind = data_format(path)
        frame = _read_parquet(path, limits) if kind == "parquet" else _read_csv(path, kind, limits)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"Data file {path} is empty: it needs a header row and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        what = "Parquet" if kind == "parquet" else "gzip-compressed CSV" if kind == "csv.gz" else "CSV"
        raise DataError(f"Cannot parse data file {path} as {what}: {first}.") from None
    except OSError as error:
        raise DataError(f"Cannot read data file {path}: {error.strerror or error}.") from None
    except Exception as error:  # pyarrow raises its own ArrowInvalid family for damaged files
        if type(error).__module__.startswith("pyarrow"):
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DataError(f"Cannot parse data file {path} as Parquet: {first}.") from None
        raise
    if frame.shape[1] == 0 or len(frame) == 0:
        raise DataError(
            f"Data file {path} has no data rows (only a header, or nothing): it needs at least one "
            "series as long as the schema's window."
        )
    frame.columns = [str(c) for c in frame.columns]
    return frame.reset_index(drop=True)


@dataclasses.dataclass(frozen=True)
class Windows:
    """The windows a model sees, as start rows into one ordered value array.

    Attributes
    ----------
    values : (rows, C) float32
        Field columns in model units (schema scale applied), rows ordered by group then time.
    starts : (N,) int64
        First row of each window.
    targets : (N, H) float32 or (N,) int64
        Regression: the truth over the horizon in the model's units. Classification: class index.
    targets_raw : (N, H) float64 or (N,) object
        The same truth in the data's own units (regression) or label values (classification).
    end_times : (N,) str
        Time of each window's last input row (or its row number when there is no time column).
    groups : (N,) str
        Series of each window ("" when there is no group column).
    source_rows : (rows,) int64
        Each ordered row's position in the data file, for messages.
    """

    values: np.ndarray
    starts: np.ndarray
    targets: np.ndarray
    targets_raw: np.ndarray
    end_times: np.ndarray
    groups: np.ndarray
    source_rows: np.ndarray
    window: int
    horizon: int
    classes: tuple[Any, ...] | None = None
    group_names: tuple[str, ...] = ()
    dropped: int = 0
    short_groups: tuple[str, ...] = ()
    target_values: np.ndarray | None = None  # (rows,) regression target in the data's units, per ordered row
    end_order: np.ndarray | None = None  # (N,) float64 sort key of end_times (time value, or file row)
    unfilled: int = 0  # windows dropped because ffill had nothing to fill from (gaps at a series' start)
    missing_cells: int = 0  # missing or non-finite input/target cells found in the data
    time_kind: str = "row"  # what end_order holds: "datetime" (ns, UTC when the data had offsets), "number", "row"
    time_format: str | None = None  # the schema's time_format, to read --explain-at times the same way

    @property
    def first_end(self) -> str | None:
        """The earliest window end, compared as times or numbers, never as strings."""
        return str(self.end_times[int(np.argmin(self._order_key()))]) if self.count else None

    @property
    def last_end(self) -> str | None:
        return str(self.end_times[int(np.argmax(self._order_key()))]) if self.count else None

    def _order_key(self) -> np.ndarray:
        return self.end_order if self.end_order is not None else np.arange(self.count, dtype=np.float64)

    def ends_at(self, text: str) -> np.ndarray:
        """(N,) bool: the windows whose last input row is at ``text`` (``--explain-at``).

        The text is compared as the time column is read (``time_format``, else ISO-8601; UTC when
        it has an offset), as a number, or as a data row number, never by guessing a date format.
        """
        mask = self.end_times == text
        if mask.any() or self.end_order is None:
            return mask
        key: float | None = None
        if self.time_kind == "datetime":
            parsed = parse_one(text, self.time_format)
            key = float(parsed.as_unit("ns").value) if parsed is not None else None
        else:
            try:
                key = float(text) - (1 if self.time_kind == "row" else 0)
            except ValueError:
                key = None
        return mask if key is None else self.end_order == key

    @property
    def count(self) -> int:
        return int(self.starts.shape[0])

    @property
    def channels(self) -> int:
        return int(self.values.shape[1])

    def inputs(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Gather windows (selected by ``index`` into the window list) as a (n, T, C) float32 array."""
        view = sliding_window_view(self.values, self.window, axis=0)  # (rows-T+1, C, T), no copy
        starts = self.starts if index is None else self.starts[index]
        return np.ascontiguousarray(view[starts].transpose(0, 2, 1))


def _order(schema: Schema, frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Order rows by group then time (file order without a time column); reject duplicate timestamps."""
    frame = frame.copy()
    frame["__row__"] = np.arange(len(frame))
    keys: list[str] = []
    if schema.group:
        if frame[schema.group].isna().any():
            row = int(np.flatnonzero(frame[schema.group].isna().to_numpy())[0])
            raise DataError(
                f"Group column '{schema.group}' in {source} is empty at {row_label(row)}: every row needs a series id."
            )
        frame["__group__"] = frame[schema.group].map(_label_text)
        keys.append("__group__")
    if schema.time:
        raw_time = frame[schema.time]
        if raw_time.isna().any():
            row = int(np.flatnonzero(raw_time.isna().to_numpy())[0])
            raise DataError(
                f"Time column '{schema.time}' in {source} is empty at {row_label(row)}: every row needs a time."
            )
        frame["__time__"] = parse_times(
            raw_time, column=schema.time, source=source, time_format=schema.time_format, row_label=row_label
        )
        keys.append("__time__")
        duplicated = frame.duplicated(subset=keys, keep=False)
        if duplicated.any():
            rows = np.flatnonzero(duplicated.to_numpy())[:2]
            in_group = f" in group '{frame['__group__'].iloc[rows[0]]}'" if schema.group else ""
            raise DataError(
                f"Duplicate timestamp {raw_time.iloc[rows[0]]!r}{in_group} in {source} "
                f"({row_label(int(rows[0]))} and {row_label(int(rows[1]))}): each series needs one "
                "row per time step. Aggregate or remove the duplicates"
                + ("." if schema.group else ", or set 'group' in the schema if rows belong to different series.")
            )
    if keys:
        frame = frame.sort_values(keys, kind="stable")
    return frame.reset_index(drop=True)


def _label_text(value: Any) -> str:
    """A group id or label as text: 3.0 read from a column with gaps is '3', like the 3 beside it."""
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _model_values(schema: Schema, ordered: pd.DataFrame) -> np.ndarray:
    """The input columns in model units (schema scale applied), as a float64 array we own.

    pandas 3 hands out read-only views, so the array is a copy before anything writes into it.
    Non-finite values, and values beyond float32's range in model units (the model's inputs are
    float32, where they would become inf), are set to NaN: they count as missing.
    """
    values = np.array(
        ordered[schema.columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64), copy=True
    )
    with np.errstate(over="ignore", invalid="ignore"):
        for field in schema.fields:
            if field.scale is not None:
                channel = schema.channel_slices()[field.name]
                values[:, channel] = to_model_units(values[:, channel], field.scale)
    values[~_representable(values)] = np.nan
    return values


def _target_values(schema: Schema, target_column: pd.Series) -> np.ndarray:
    """Regression truth in the data's units, a float64 copy; NaN where it, or its model-unit value, is not
    finite in float32 (it counts as missing)."""
    values = np.array(pd.to_numeric(target_column, errors="coerce").to_numpy(dtype=np.float64), copy=True)
    with np.errstate(over="ignore", invalid="ignore"):
        model_units = to_model_units(values, schema.target.scale)
    values[~(_representable(values) & _representable(model_units))] = np.nan
    return values


def _representable(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (np.abs(values) <= np.finfo(np.float32).max)


def build_windows(schema: Schema, frame: pd.DataFrame, source: str) -> Windows:
    """Cut the frame into windows as CONTRACT §3 describes.

    Regression: the inputs are rows [i, i+T) and the truth rows [i+T, i+T+H).
    Classification: the label is the target's value at row i+T-1. Missing and non-finite
    values follow the schema's ``missing`` policy; a window never touches one.
    """
    validate_against(schema, frame, source)
    ordered = _order(schema, frame, source)
    values = _model_values(schema, ordered)
    group_labels = ordered["__group__"].to_numpy() if schema.group else np.full(len(ordered), "", dtype=object)
    source_rows = np.array(ordered["__row__"].to_numpy(dtype=np.int64), copy=True)  # kept on Windows: ours, writable
    target_column = ordered[schema.target.column]
    if schema.task == "regression":
        target_values = _target_values(schema, target_column)
        target_missing = np.isnan(target_values)
    else:
        target_values = None
        target_missing = target_column.isna().to_numpy()
    missing_cells = int(np.isnan(values).sum() + target_missing.sum())

    if schema.missing == "error":
        _refuse_missing(schema, values, target_missing, source_rows, source)
    if schema.missing == "ffill" and missing_cells:
        values = pd.DataFrame(values).groupby(group_labels).ffill().to_numpy(dtype=np.float64, copy=True)
        if target_values is not None:
            target_values = pd.Series(target_values).groupby(group_labels).ffill().to_numpy(dtype=np.float64, copy=True)
            target_missing = np.isnan(target_values)
    input_missing = np.isnan(values).any(axis=1)
    values32 = np.ascontiguousarray(values, dtype=np.float32)

    starts, short_groups, group_names = _window_starts(schema, group_labels, source)
    starts, dropped = _drop_touching(schema, starts, input_missing, target_missing, source)
    window, horizon = schema.window, schema.horizon
    if schema.task == "regression":
        truth_rows = starts[:, None] + window + np.arange(horizon)[None, :]
        targets_raw = target_values[truth_rows]
        targets = to_model_units(targets_raw, schema.target.scale).astype(np.float32)
        classes = None
    else:
        targets, targets_raw, classes = _class_targets(schema, target_column, target_missing, starts + window - 1)

    end_rows = starts + window - 1
    time_kind = "row"
    if schema.time:
        end_key = ordered["__time__"].iloc[end_rows]
        end_times = format_times(end_key.reset_index(drop=True))
        end_order = _sort_key(end_key)
        time_kind = "datetime" if _is_datetime(end_key) else "number"
    else:
        end_times = np.array([str(r + 1) for r in source_rows[end_rows]], dtype=object)
        end_order = source_rows[end_rows].astype(np.float64)
    return Windows(
        target_values=target_values,
        values=values32,
        starts=starts,
        targets=targets,
        targets_raw=targets_raw,
        end_times=end_times,
        groups=np.asarray(group_labels[starts], dtype=object),
        source_rows=source_rows,
        window=window,
        horizon=horizon if schema.task == "regression" else 1,
        classes=tuple(classes) if classes is not None else None,
        group_names=tuple(group_names),
        dropped=dropped,
        short_groups=tuple(short_groups),
        end_order=end_order,
        unfilled=dropped if schema.missing == "ffill" else 0,
        missing_cells=missing_cells,
        time_kind=time_kind,
        time_format=schema.time_format,
    )


def _refuse_missing(
    schema: Schema, values: np.ndarray, target_missing: np.ndarray, source_rows: np.ndarray, source: str
) -> None:
    """``missing: error``: name the first column with a missing or non-finite value, its count and first rows."""
    for position, column in enumerate(schema.columns + [schema.target.column]):
        bad = np.isnan(values[:, position]) if position < values.shape[1] else target_missing
        if bad.any():
            rows = np.sort(source_rows[bad])
            shown = ", ".join(str(r + 1) for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
            raise DataError(
                f"Column '{column}' in {source} has {len(rows)} missing or non-finite value(s) (empty, NaN, inf or "
                f"beyond float32), first at {row_label(int(rows[0]))}; rows {shown}. Fill them, or set "
                "'missing: drop' or 'missing: ffill' in the schema."
            )


def _window_starts(schema: Schema, group_labels: np.ndarray, source: str) -> tuple[np.ndarray, list[str], list[str]]:
    """Start rows of every window that fits in its series, the series too short for one, and every series."""
    span = schema.window + schema.horizon if schema.task == "regression" else schema.window
    boundaries = np.flatnonzero(np.r_[True, group_labels[1:] != group_labels[:-1], True])
    starts_list: list[np.ndarray] = []
    short_groups: list[str] = []
    group_names: list[str] = []
    longest = 0
    for begin, end in zip(boundaries[:-1], boundaries[1:]):
        group_names.append(str(group_labels[begin]))
        longest = max(longest, end - begin)
        if end - begin < span:
            short_groups.append(str(group_labels[begin]))
            continue
        starts_list.append(np.arange(begin, end - span + 1, schema.stride, dtype=np.int64))
    starts = np.concatenate(starts_list) if starts_list else np.zeros(0, dtype=np.int64)
    if starts.size == 0:
        needed = f"{schema.window} + horizon {schema.horizon}" if schema.task == "regression" else f"{schema.window}"
        raise DataError(
            f"No window fits in {source}: the schema's window needs {needed} = {span} consecutive "
            f"rows per series, but the longest series has {longest}. Lower 'window' in "
            f"{schema.source} or provide longer series."
        )
    return starts, short_groups, group_names


def _drop_touching(
    schema: Schema, starts: np.ndarray, input_missing: np.ndarray, target_missing: np.ndarray, source: str
) -> tuple[np.ndarray, int]:
    """Drop windows whose inputs [i, i+T) or truth touch a missing value; cumulative counts make it O(1) each."""
    window = schema.window
    span = window + schema.horizon if schema.task == "regression" else window
    input_cumsum = np.concatenate([[0], np.cumsum(input_missing)])
    target_cumsum = np.concatenate([[0], np.cumsum(target_missing)])
    truth_begin = starts + window if schema.task == "regression" else starts + window - 1
    touches = (input_cumsum[starts + window] - input_cumsum[starts] > 0) | (
        target_cumsum[starts + span] - target_cumsum[truth_begin] > 0
    )
    kept = starts[~touches]
    if kept.size == 0:
        fix = (
            "the gaps sit at the start of every series, where forward-filling has nothing to fill from; "
            "trim those rows or fill them"
            if schema.missing == "ffill"
            else "fill the gaps or use 'missing: ffill'"
        )
        raise DataError(f"Every window in {source} touches a missing value (missing: {schema.missing}); {fix}.")
    return kept, int(touches.sum())


def _class_targets(
    schema: Schema, target_column: pd.Series, target_missing: np.ndarray, label_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[Any, ...]]:
    """Classification: class index per window, the label values, and the class order."""
    labels = target_column.to_numpy()[label_rows]
    classes = schema.classes or _infer_classes(target_column.to_numpy()[~target_missing])
    lookup = {_label_text(value): index for index, value in enumerate(classes)}
    index = np.array([lookup.get(_label_text(label), -1) for label in labels], dtype=np.int64)
    if (index < 0).any():
        bad = _label_text(labels[index < 0][0])
        raise SchemaError(
            f"Label {bad!r} of target '{schema.target.column}' is not among the schema's "
            f"classes {list(classes)}; add it to 'classes' in {schema.source}."
        )
    return index, np.array([_label_text(label) for label in labels], dtype=object), classes


def _is_datetime(times: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(times) or isinstance(times.dtype, pd.DatetimeTZDtype)


def _sort_key(times: pd.Series) -> np.ndarray:
    """A float64 key that orders times (datetimes as nanoseconds) or numbers."""
    if pd.api.types.is_datetime64_any_dtype(times) or isinstance(times.dtype, pd.DatetimeTZDtype):
        if isinstance(times.dtype, pd.DatetimeTZDtype):
            times = times.dt.tz_convert("UTC").dt.tz_localize(None)
        return times.to_numpy().astype("datetime64[ns]").astype(np.int64).astype(np.float64)
    return pd.to_numeric(times, errors="coerce").to_numpy(dtype=np.float64)


def _infer_classes(labels: np.ndarray) -> tuple[Any, ...]:
    """Class order when the schema gives none: sorted label values (0..K-1 for integer labels)."""
    unique = pd.unique(labels)
    try:
        ordered = sorted(unique.tolist())
    except TypeError:
        ordered = sorted(unique.tolist(), key=str)
    values = [v.item() if isinstance(v, np.generic) else v for v in ordered]
    if all(isinstance(v, (int, float)) and float(v).is_integer() for v in values):
        values = [int(v) for v in values]
        if values and values[0] >= 0:
            # Integer labels are class indices: class k is output k even if some k never occurs.
            values = list(range(max(values) + 1))
    return tuple(values)


def baseline_values(schema: Schema, windows: Windows) -> np.ndarray:
    """Per-channel baseline in model units (CONTRACT §3 ``baseline``), shape (C,).

    Means and medians are taken over the rows some window's inputs cover (the data the model
    sees), finite values only: a gap elsewhere in a column never empties a field's baseline.
    """
    seen = seen_rows(windows)
    baseline = np.zeros(windows.channels, dtype=np.float32)
    for field in schema.fields:
        channel = schema.channel_slices()[field.name]
        choice = schema.field_baseline(field)
        block = windows.values[seen][:, channel].astype(np.float64)
        if choice == "zero":
            value = np.zeros(block.shape[1])
        elif choice in ("mean", "median"):
            finite = np.isfinite(block)
            if not finite.any(axis=0).all():
                raise DataError(
                    f"Field '{field.name}' has no finite value in the rows the model sees, so its {choice} baseline "
                    f"is undefined; check the column or give the field a numeric 'baseline' in {schema.source}."
                )
            value = (
                np.nanmean(np.where(finite, block, np.nan), axis=0)
                if choice == "mean"
                else np.nanmedian(np.where(finite, block, np.nan), axis=0)
            )
        else:  # a number, in the data's units: bring it into model units
            value = to_model_units(np.full(block.shape[1], float(choice)), field.scale)
        baseline[channel] = value
    return baseline


def seen_rows(windows: Windows) -> np.ndarray:
    """(rows,) bool: the ordered rows that some window's inputs cover."""
    edges = np.zeros(windows.values.shape[0] + 1, dtype=np.int64)
    np.add.at(edges, windows.starts, 1)
    np.add.at(edges, windows.starts + windows.window, -1)
    return np.cumsum(edges[:-1]) > 0
