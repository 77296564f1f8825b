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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tsreport.exceptions import DataError, SchemaError
from tsreport.schema import Schema, row_label, validate_against
from tsreport.timeparse import format_times, parse_times

#: A gzip-compressed CSV may inflate to at most this many times its size (beyond the first
#: 100 MB): real CSVs compress 5-20x, a decompression bomb thousands of times.
GZIP_MAX_RATIO = 200
GZIP_FREE_BYTES = 100 * 2**20


class _BoundedGzip(io.RawIOBase):
    """A gzip stream that stops with a DataError once it has inflated past its allowance."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inner = gzip.open(path, "rb")
        self.allowance = max(GZIP_FREE_BYTES, GZIP_MAX_RATIO * path.stat().st_size)
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.produced += len(data)
        if self.produced > self.allowance:
            raise DataError(
                f"Data file {self.path} inflates to more than {self.allowance // 2**20} MB "
                f"({GZIP_MAX_RATIO}x its compressed size): it looks like a decompression bomb, not a table. "
                "Decompress it yourself if it is genuine."
            )
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def data_format(path: Path) -> str:
    """csv, csv.gz or parquet, from the file name (CONTRACT §1: DATA)."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".gz"):
        return "csv.gz"
    return "csv"


def _header(path: Path, kind: str) -> list[str]:
    """The column names as written in the file (pandas renames a repeated name to 'name.1')."""
    if kind == "parquet":
        import pyarrow.parquet as pq

        return [str(name) for name in pq.read_schema(path).names]
    opener = gzip.open if kind == "csv.gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as handle:
        line = handle.readline(1 << 20)
    try:
        return next(csv.reader([line]))
    except (StopIteration, csv.Error):
        return []


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, gzip-compressed CSV or Parquet file into a frame; the index is the data row position.

    Parquet is read with pyarrow, which never unpickles (pandas metadata in a Parquet file is JSON).
    """
    path = Path(path)
    kind = data_format(path)
    try:
        names = _header(path, kind)
        if kind == "parquet":
            frame = pd.read_parquet(path, engine="pyarrow")
        elif kind == "csv.gz":
            with _BoundedGzip(path) as raw, io.BufferedReader(raw, 1 << 20) as stream:
                frame = pd.read_csv(stream)
        else:
            frame = pd.read_csv(path)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"Data file {path} is empty: it needs a header row and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, EOFError, gzip.BadGzipFile) as error:
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
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(
                f"Data file {path} has two columns named '{name}'; rename one (tsreport would otherwise read the "
                f"second as '{name}.1' and could mix them up)."
            )
        seen.add(name)
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

    @property
    def first_end(self) -> str | None:
        """The earliest window end, compared as times or numbers, never as strings."""
        return str(self.end_times[int(np.argmin(self._order_key()))]) if self.count else None

    @property
    def last_end(self) -> str | None:
        return str(self.end_times[int(np.argmax(self._order_key()))]) if self.count else None

    def _order_key(self) -> np.ndarray:
        return self.end_order if self.end_order is not None else np.arange(self.count, dtype=np.float64)

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
    """The input columns as a float64 array we own (pandas 3 hands out read-only views), non-finite as NaN.

    Values beyond float32's range would turn into inf in the model's float32 inputs, so they count
    as missing too.
    """
    values = np.array(
        ordered[schema.columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64), copy=True
    )
    values[~_representable(values)] = np.nan
    return values


def _representable(values: np.ndarray) -> np.ndarray:
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
    source_rows = ordered["__row__"].to_numpy(dtype=np.int64)
    target_column = ordered[schema.target.column]
    if schema.task == "regression":
        target_values = np.array(pd.to_numeric(target_column, errors="coerce").to_numpy(dtype=np.float64), copy=True)
        target_values[~np.isfinite(target_values)] = np.nan
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

    for field in schema.fields:
        if field.scale is not None:
            channel = schema.channel_slices()[field.name]
            values[:, channel] = (values[:, channel] - field.scale.mean) / field.scale.std
    values32 = np.ascontiguousarray(values, dtype=np.float32)

    starts, short_groups, group_names = _window_starts(schema, group_labels, source)
    starts, dropped = _drop_touching(schema, starts, input_missing, target_missing, source)
    window, horizon = schema.window, schema.horizon
    if schema.task == "regression":
        truth_rows = starts[:, None] + window + np.arange(horizon)[None, :]
        targets_raw = target_values[truth_rows]
        scale = schema.target.scale
        targets = ((targets_raw - scale.mean) / scale.std if scale else targets_raw).astype(np.float32)
        classes = None
    else:
        targets, targets_raw, classes = _class_targets(schema, target_column, target_missing, starts + window - 1)

    end_rows = starts + window - 1
    if schema.time:
        end_key = ordered["__time__"].iloc[end_rows]
        end_times = format_times(end_key.reset_index(drop=True))
        end_order = _sort_key(end_key)
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
            value = np.full(block.shape[1], float(choice))
            if field.scale is not None:
                value = (value - field.scale.mean) / field.scale.std
        baseline[channel] = value
    return baseline


def seen_rows(windows: Windows) -> np.ndarray:
    """(rows,) bool: the ordered rows that some window's inputs cover."""
    edges = np.zeros(windows.values.shape[0] + 1, dtype=np.int64)
    np.add.at(edges, windows.starts, 1)
    np.add.at(edges, windows.starts + windows.window, -1)
    return np.cumsum(edges[:-1]) > 0
