"""Data: read the table, order it, and cut it into the windows the model sees.

Windows are never materialised as N separate copies of T rows: the model-unit
values live once in a (rows, channels) array and a window is a start row into
it. :meth:`Windows.inputs` gathers the windows a batch needs through a strided
view, so memory stays O(rows) however many windows overlap.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tsreport.exceptions import DataError, SchemaError
from tsreport.schema import Schema, row_label, validate_against


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (or Parquet) file into a frame; the index is the data row position."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            try:
                frame = pd.read_parquet(path)
            except ImportError:
                raise DataError(
                    f"Reading {path} needs a Parquet engine: pip install pyarrow, or save it as CSV."
                ) from None
        else:
            frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"Data file {path} is empty: it needs a header row and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"Cannot parse data file {path} as CSV: {first}.") from None
    except OSError as error:
        raise DataError(f"Cannot read data file {path}: {error.strerror or error}.") from None
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
    """Order rows by group then time; reject duplicate timestamps within a group."""
    frame = frame.copy()
    frame["__row__"] = np.arange(len(frame))
    keys: list[str] = []
    if schema.group:
        if frame[schema.group].isna().any():
            row = int(np.flatnonzero(frame[schema.group].isna().to_numpy())[0])
            raise DataError(
                f"Group column '{schema.group}' in {source} is empty at {row_label(row)}: every row needs a series id."
            )
        frame["__group__"] = frame[schema.group].astype(str)
        keys.append("__group__")
    if schema.time:
        raw_time = frame[schema.time]
        if raw_time.isna().any():
            row = int(np.flatnonzero(raw_time.isna().to_numpy())[0])
            raise DataError(
                f"Time column '{schema.time}' in {source} is empty at {row_label(row)}: every row needs a time."
            )
        if pd.api.types.is_numeric_dtype(raw_time):
            frame["__time__"] = raw_time
        else:
            parsed = pd.to_datetime(raw_time, errors="coerce", format="mixed")
            if parsed.isna().any():
                row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
                raise DataError(
                    f"Time column '{schema.time}' in {source} holds {raw_time.iloc[row]!r} at "
                    f"{row_label(row)}, which is neither a date/time nor a number."
                )
            frame["__time__"] = parsed
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


def build_windows(schema: Schema, frame: pd.DataFrame, source: str) -> Windows:
    """Cut the frame into windows as CONTRACT §3 describes.

    Regression: the inputs are rows [i, i+T) and the truth rows [i+T, i+T+H).
    Classification: the label is the target's value at row i+T-1.
    """
    validate_against(schema, frame, source)
    ordered = _order(schema, frame, source)
    columns = schema.columns
    values = ordered[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    group_labels = ordered["__group__"].to_numpy() if schema.group else np.full(len(ordered), "", dtype=object)
    source_rows = ordered["__row__"].to_numpy(dtype=np.int64)

    target_column = ordered[schema.target.column]
    if schema.task == "regression":
        target_values = pd.to_numeric(target_column, errors="coerce").to_numpy(dtype=np.float64)
        target_missing = np.isnan(target_values)
    else:
        target_missing = target_column.isna().to_numpy()

    if schema.missing == "ffill" and (np.isnan(values).any() or target_missing.any()):
        filled = pd.DataFrame(values).groupby(group_labels).ffill().to_numpy(dtype=np.float64)
        values = filled
        if schema.task == "regression":
            target_values = pd.Series(target_values).groupby(group_labels).ffill().to_numpy(dtype=np.float64)
            target_missing = np.isnan(target_values)
    input_missing = np.isnan(values).any(axis=1)

    if schema.missing == "error":
        for position, column in enumerate(columns + [schema.target.column]):
            if position < len(columns):
                bad = np.isnan(values[:, position])
            else:
                bad = target_missing
            if bad.any():
                rows = np.sort(source_rows[bad])
                shown = ", ".join(str(r + 1) for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
                raise DataError(
                    f"Column '{column}' in {source} has {len(rows)} missing value(s), first at "
                    f"{row_label(int(rows[0]))}; rows {shown}. Fill them, or set 'missing: drop' or "
                    "'missing: ffill' in the schema."
                )

    for field in schema.fields:
        if field.scale is not None:
            channel = schema.channel_slices()[field.name]
            values[:, channel] = (values[:, channel] - field.scale.mean) / field.scale.std
    values32 = np.ascontiguousarray(values, dtype=np.float32)

    window, horizon = schema.window, schema.horizon
    span = window + horizon if schema.task == "regression" else window
    # A window needs complete inputs on rows [i, i+T) and a known truth: target rows
    # [i+T, i+T+H) (regression) or the label at row i+T-1 (classification). Cumulative
    # counts answer "does this range touch a missing value" in O(1) per window.
    input_cumsum = np.concatenate([[0], np.cumsum(input_missing)])
    target_cumsum = np.concatenate([[0], np.cumsum(target_missing)])

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
        needed = f"{window} + horizon {horizon}" if schema.task == "regression" else f"{window}"
        raise DataError(
            f"No window fits in {source}: the schema's window needs {needed} = {span} consecutive "
            f"rows per series, but the longest series has {longest}. Lower 'window' in "
            f"{schema.source} or provide longer series."
        )
    truth_begin = starts + window if schema.task == "regression" else starts + window - 1
    touches_missing = (input_cumsum[starts + window] - input_cumsum[starts] > 0) | (
        target_cumsum[starts + span] - target_cumsum[truth_begin] > 0
    )
    dropped = int(touches_missing.sum())
    starts = starts[~touches_missing]
    if starts.size == 0:
        raise DataError(
            f"Every window in {source} touches a missing value (missing: {schema.missing}); "
            "fill the gaps or use 'missing: ffill'."
        )

    if schema.task == "regression":
        truth_rows = starts[:, None] + window + np.arange(horizon)[None, :]
        targets_raw = target_values[truth_rows]
        scale = schema.target.scale
        targets_model = (targets_raw - scale.mean) / scale.std if scale else targets_raw
        targets = targets_model.astype(np.float32)
        classes = None
    else:
        labels = target_column.to_numpy()[starts + window - 1]
        classes = schema.classes or _infer_classes(target_column.to_numpy()[~target_missing])
        lookup = {str(value): index for index, value in enumerate(classes)}
        index = np.array([lookup.get(str(label), -1) for label in labels], dtype=np.int64)
        if (index < 0).any():
            bad = labels[index < 0][0]
            raise SchemaError(
                f"Label {bad!r} of target '{schema.target.column}' is not among the schema's "
                f"classes {list(classes)}; add it to 'classes' in {schema.source}."
            )
        targets, targets_raw = index, labels

    if schema.time:
        times = ordered[schema.time].to_numpy()[starts + window - 1]
        end_times = np.array([str(t) for t in times], dtype=object)
    else:
        end_times = np.array([str(r + 1) for r in source_rows[starts + window - 1]], dtype=object)
    return Windows(
        target_values=target_values if schema.task == "regression" else None,
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
    )


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
    """Per-channel baseline in model units (CONTRACT §3 ``baseline``), shape (C,)."""
    baseline = np.zeros(windows.channels, dtype=np.float32)
    for field in schema.fields:
        channel = schema.channel_slices()[field.name]
        choice = schema.field_baseline(field)
        block = windows.values[:, channel]
        if choice == "zero":
            value = np.zeros(block.shape[1])
        elif choice == "mean":
            value = block.mean(axis=0)
        elif choice == "median":
            value = np.median(block, axis=0)
        else:  # a number, in the data's units: bring it into model units
            value = np.full(block.shape[1], float(choice))
            if field.scale is not None:
                value = (value - field.scale.mean) / field.scale.std
        baseline[channel] = value
    return baseline
