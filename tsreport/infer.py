"""Draft a field schema (CONTRACT section 3) from a data frame.

This backs ``tsreport schema DATA``: it looks at the columns of a table and
writes a YAML schema a user can review and edit, rather than type from
scratch. Every guess it makes is said in a YAML comment next to the key it
affects, so that the draft explains itself; where it cannot know (the scale a
model was trained with, a day/month order no value settles), the comment names
exactly what to edit.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import warnings
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tsreport.exceptions import DataError
from tsreport.schema import MAX_STEPS, MAX_WINDOW_CELLS, TASKS, row_label
from tsreport.timeparse import CANDIDATE_FORMATS, parse_times

__all__ = ["draft_schema"]

# Share of non-null values that must parse as dates for a text column to be
# taken as the time column: a few malformed cells should not hide it.
DATE_PARSE_SHARE = 0.95
# Unique values parsed before committing to parsing a whole text column: a
# column of free text would otherwise go through dateutil cell by cell.
DATE_PROBE_SIZE = 200
# Bounds of the guessed window (time steps).
MIN_WINDOW = 2
MAX_WINDOW = 48
# A numeric target is taken as class labels only when it holds few integers;
# counts such as daily sales are integers too, but have many values.
MAX_CLASSES = 10
# With --task classification, the most label values a draft lists in ``classes``.
MAX_DRAFT_CLASSES = 1000
# A step counter must step at least this many times within its series: two or
# three rows that happen to increase are no evidence.
MIN_COUNTER_STEPS = 3
# Names listed in one comment before it says "and N more".
MAX_NAMES_IN_COMMENT = 8
# Characters YAML treats as line breaks: a value holding one must be double-quoted.
_YAML_LINE_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")
# Words in a column name that mark a series id (``store_id``, ``unitNr``, ``recording``).
# A name alone is weak evidence: it counts only for integers in contiguous blocks
# when no time column says otherwise.
_ID_WORDS = frozenset(
    "id ids key nr series store shop item sku unit subject patient recording record sensor station device "
    "machine entity customer user participant individual trial episode run segment instance case".split()
)
# Names of a step counter (``t``, ``time_idx``, ``step``): with them, an increasing
# integer column is the time column even when its steps are uneven.
_TIME_WORDS = frozenset(
    "t ts time timestamp timestep step steps idx index tick period epoch seq sequence frame year date day week "
    "month hour minute second".split()
)


@dataclass
class _DraftField:
    """One entry of ``fields`` and the comment that goes with it."""

    name: str
    columns: list[str]
    categorical: bool = False
    comments: list[str] = field(default_factory=list)
    scale_hint: tuple[float, float] | None = None


@dataclass
class _Roles:
    """What the draft recognised: time and group columns, and remarks on columns left as fields."""

    time: str | None = None
    time_comment: str = ""
    group: str | None = None
    group_comment: str = ""
    group_codes: np.ndarray | None = None  # (rows,) series number of each row; None without a group
    text_note: str | None = None  # why a repeated text column is not the group
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class _TimeAdvice:
    """What the draft says about reading the time column: a ``time_format`` and comment lines."""

    time_format: str | None = None
    comment: str | None = None
    lines: list[str] = field(default_factory=list)


def draft_schema(
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    window: int | None = None,
    horizon: int | None = None,
    task: str | None = None,
    source: str = "data",
) -> str:
    """Return a draft schema as YAML text (CONTRACT section 3) inferred from a data frame.

    Parameters
    ----------
    frame : pandas.DataFrame
        The data as read from the user's file (:func:`tsreport.data.read_table`), one row per
        time step.
    target : str, optional
        The column the model predicts. When omitted, the last numeric column that is not part
        of a one-hot group, a time or a group column is used, and a comment says so.
    window : int, optional
        Time steps the model sees. When omitted: for a classifier of whole series (the label is
        constant within each series), the shortest series; otherwise a quarter of the shortest
        series, kept within [2, 48].
    horizon : int, optional
        Steps a forecaster predicts after each window (regression only; implies it when
        ``task`` is not given). Default 1, with a comment saying to set it.
    task : {"regression", "classification"}, optional
        When omitted, inferred from the target (text or at most 10 distinct integers:
        classification).
    source : str, default "data"
        Where the frame came from (the file path); named in comments and error messages.

    Returns
    -------
    str
        YAML text, keys in the order of CONTRACT section 3, with comments explaining each
        guess. ``yaml.safe_load`` of it gives a mapping that
        :func:`tsreport.schema.parse_schema` accepts.

    Raises
    ------
    DataError
        If the frame has no columns, no rows, duplicate column names or no numeric column; if
        ``target`` is not a column (the message lists the closest names), holds dates, or does
        not suit the task; if ``window``, ``horizon`` or ``task`` is not a valid value, or the
        window (with the horizon, for regression) does not fit in the shortest series.

    Notes
    -----
    The rules, in the order they are applied:

    - time, dates: a datetime column, or the first text column whose non-null values parse as
      dates for at least 95%. Integer columns are never taken as dates. When the strings are
      not ISO-8601 and one format reads them all (``13/01/2020``: day first), ``time_format``
      is set to it; when two formats read them differently and no value tells them apart, the
      draft sets the one under which the times are evenly spaced and in file order, or leaves
      ``time_format`` commented out with both choices.
    - group: an integer column whose values each fill one contiguous block of rows (a store
      or recording number), when the time column (dates, or an integer step counter) repeats
      across the blocks and never within one. Otherwise the first text column with repeated
      values (fewer distinct values than half the rows); otherwise an integer column in
      contiguous blocks whose name says it is an id (``store_id``, ``unit``), when there is no
      time column at all. Of several candidates the time column confirms, the one with the
      fewest series wins: the finer ones would cut a series into pieces.
    - time, step counter: without a date column, an integer column that increases strictly
      within each series and either steps by one constant (0, 1, 2, ... or 1700, 1701, ...),
      restarts at the same 0 or 1 in every series, or is named like a step (``t``,
      ``time_idx``, ``step``, ``year``).
    - one-hot groups: numeric columns sharing the prefix before their last ``_`` (``dow_0`` ...
      ``dow_6``), holding only 0 and 1, and summing to 1 on every complete row, become one
      categorical field named after the prefix.
    - every other numeric column (booleans included) is one numeric field; a regression
      target stays an input field because autoregressive models see its history, a
      classification label does not (the model would see its own answer).
    - task: as given; regression when a horizon is given; else classification when the
      target is text, or holds at most 10 distinct integers; regression otherwise.
    """
    _check_frame(frame, source)
    _check_options(window, horizon, task, source)
    # Work on string labels throughout: the schema names columns as text and
    # a CSV header is text, whatever labels the frame was built with.
    frame = frame.set_axis([str(name) for name in frame.columns], axis="columns")
    columns = _sort_columns(frame, target, source)
    roles, ignored_text = _find_roles(frame, columns.dates, columns.text, columns.integers)
    guessed_target = target is None
    target, candidates, one_hot = _settle_target(frame, columns, roles, target, source)
    task, task_comment = _choose_task(frame[target], target, task, horizon)
    classes, classes_comment = _draft_labels(frame[target], target, task, source)
    horizon, horizon_comment = _draft_horizon(task, horizon)
    fields = _draft_fields(frame, columns.names, candidates, one_hot, roles, target, task, source)
    window, window_comment = _draft_window(frame, fields, roles, target, task, window, horizon, source)
    field_columns = [name for draft in fields for name in draft.columns]
    columns_with_gaps = _columns_with_gaps(frame, field_columns, target)
    advice = _time_advice(frame, roles, source)
    duplicate_note = _duplicate_times(frame, roles)
    return _render(
        source=source,
        task=task,
        task_comment=task_comment,
        roles=roles,
        advice=advice,
        duplicate_note=duplicate_note,
        window=window,
        window_comment=window_comment,
        horizon=horizon,
        horizon_comment=horizon_comment,
        target=target,
        target_scale=_scale_hint(frame[target]) if task == "regression" else None,
        guessed_target=guessed_target,
        target_is_field=target in field_columns,
        classes=classes,
        classes_comment=classes_comment,
        columns_with_gaps=columns_with_gaps,
        fields=fields,
        ignored_time=[name for name in columns.dates if name != roles.time],
        ignored_text=ignored_text,
    )


# --------------------------------------------------------------------------- steps
# draft_schema's decisions, in the order it takes them; each raises DataError when the data rules out a schema.


@dataclass
class _Columns:
    """The frame's columns by kind, in frame order, before any role is chosen."""

    names: list[str]
    dates: list[str]
    text: list[str]  # neither numbers nor dates, and not the given target
    numeric: list[str]
    one_hot: dict[str, list[str]]  # prefix -> columns of each one-hot group; the given target is in none
    integers: dict[str, np.ndarray]  # whole-number columns outside one-hot groups, the given target left out


def _sort_columns(frame: pd.DataFrame, target: str | None, source: str) -> _Columns:
    """Sort the columns into dates, text, numbers, one-hot groups and whole numbers; check the given target."""
    names = list(frame.columns)
    if target is not None and target not in names:
        raise DataError(_missing_column_message(target, names, source))

    dates = [name for name in names if _looks_like_dates(frame[name])]
    if target in dates:
        raise DataError(
            f"{source}: the target column {target!r} holds dates; choose a numeric or label column with --target COL."
        )
    text = [name for name in names if not _is_numeric(frame[name]) and name not in dates and name != target]
    numeric = [name for name in names if _is_numeric(frame[name])]
    if not numeric:
        raise DataError(
            f"{source}: no numeric column found, so there is nothing to feed the model; "
            f"the columns are {_names_for_message(names)}."
        )

    one_hot = _find_one_hot_groups(frame, numeric, exclude=target)
    in_one_hot = {name for group in one_hot.values() for name in group}
    integers = {
        name: values
        for name in numeric
        if name != target and name not in in_one_hot and (values := _integer_values(frame[name])) is not None
    }
    return _Columns(names, dates, text, numeric, one_hot, integers)


def _settle_target(
    frame: pd.DataFrame, columns: _Columns, roles: _Roles, target: str | None, source: str
) -> tuple[str, list[str], dict[str, list[str]]]:
    """The target as given or guessed; with the numeric columns other than time and group, and their one-hot groups."""
    role_columns = {roles.time, roles.group}
    candidates = [name for name in columns.numeric if name not in role_columns]
    one_hot = columns.one_hot
    if target is None:
        if not candidates:
            raise DataError(
                f"{source}: every numeric column is the time or the group column, so there is nothing to feed the "
                "model; pass --target COL."
            )
        target = _guess_target(candidates, one_hot)
        if any(target in group for group in one_hot.values()):
            one_hot = _find_one_hot_groups(frame, candidates, exclude=target)
    return target, candidates, one_hot


def _draft_labels(series: pd.Series, name: str, task: str, source: str) -> tuple[list[Any] | None, str | None]:
    """A classifier's ``classes`` and their comment; (None, None) for regression, whose target must be numeric."""
    if task == "classification":
        return _draft_classes(series, name, source)
    if not _is_numeric(series):
        raise DataError(
            f"{source}: the target column {name!r} is not numeric, so it cannot be a regression target; "
            "choose a numeric column with --target COL, or use --task classification."
        )
    return None, None


def _draft_horizon(task: str, horizon: int | None) -> tuple[int | None, str | None]:
    """A forecaster's horizon (1 unless given) and its comment; (None, None) for a classifier."""
    if task != "regression":
        return None, None
    if horizon is not None:
        return int(horizon), "as given: steps predicted after each window"
    return 1, "steps predicted after each window; set it to your model's forecast length (--horizon H)"


def _draft_fields(
    frame: pd.DataFrame,
    names: list[str],
    candidates: list[str],
    one_hot: dict[str, list[str]],
    roles: _Roles,
    target: str,
    task: str,
    source: str,
) -> list[_DraftField]:
    """The input fields: every candidate column, the target too unless it is a classifier's label."""
    input_columns = [name for name in candidates if task == "regression" or name != target]
    fields = _build_fields(frame, input_columns, one_hot, target, roles.notes)
    if not fields:
        raise DataError(
            f"{source}: no numeric column is left to feed the model besides the target {target!r}; "
            f"the columns are {_names_for_message(names)}."
        )
    return fields


def _draft_window(
    frame: pd.DataFrame,
    fields: list[_DraftField],
    roles: _Roles,
    target: str,
    task: str,
    window: int | None,
    horizon: int | None,
    source: str,
) -> tuple[int, str]:
    """The window as given or guessed from the shortest series (a whole series for a per-series label); checked."""
    channels = sum(len(draft.columns) for draft in fields)
    per_series_label = task == "classification" and _constant_within(frame[target], roles.group_codes)
    series_length, shortest_name = _shortest_series(frame, roles.group)
    return _choose_window(
        window, series_length, shortest_name, horizon, roles.group, source, channels, per_series_label
    )


def _columns_with_gaps(frame: pd.DataFrame, field_columns: list[str], target: str) -> list[str]:
    """The field columns, and the target, that hold missing values: they decide ``missing``."""
    checked = field_columns + ([target] if target not in field_columns else [])
    return [name for name in checked if _has_gaps(frame[name])]


# --------------------------------------------------------------------------- checks


def _check_frame(frame: pd.DataFrame, source: str) -> None:
    """Raise DataError when the frame cannot give a schema at all."""
    if frame.shape[1] == 0:
        raise DataError(f"{source}: the data is empty (no columns); expected a table with a header row.")
    if frame.shape[0] == 0:
        raise DataError(f"{source}: the data has a header but no rows; a schema is inferred from the values.")
    label_counts = Counter(str(name) for name in frame.columns)
    duplicated = sorted(name for name, count in label_counts.items() if count > 1)
    if duplicated:
        raise DataError(
            f"{source}: column names must be unique; {_names_for_message(duplicated)} "
            "appear more than once. Rename them."
        )


def _is_count(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_options(window: object, horizon: object, task: object, source: str) -> None:
    """Raise DataError for a window, horizon or task no schema could hold."""
    for name, value in (("window", window), ("horizon", horizon)):
        if value is None:
            continue
        if not _is_count(value) or value < 1:
            raise DataError(f"{source}: the {name} must be a positive integer; got {value!r}.")
        if value > MAX_STEPS:
            raise DataError(f"{source}: the {name} must be at most {MAX_STEPS:,} steps; got {value!r}.")
    if task is not None and task not in TASKS:
        raise DataError(f"{source}: the task must be one of {', '.join(TASKS)}; got {task!r}.")
    if task == "classification" and horizon is not None:
        raise DataError(
            f"{source}: a horizon applies to regression only (a classifier labels each window by its last row)."
        )


def _missing_column_message(column: str, columns: Sequence[str], source: str) -> str:
    """Say that ``column`` is absent from ``source`` and suggest close names."""
    close = difflib.get_close_matches(column, columns, n=3)
    if close:
        hint = f"did you mean {' or '.join(repr(name) for name in close)}?"
    else:
        hint = f"the columns are {_names_for_message(columns)}."
    return f"{source}: the target column {column!r} is not in the data; {hint}"


def _names_for_message(names: Sequence[str]) -> str:
    """Quote a list of names for an error message, eliding a long tail."""
    shown = ", ".join(repr(name) for name in names[:MAX_NAMES_IN_COMMENT])
    hidden = len(names) - MAX_NAMES_IN_COMMENT
    return shown + (f" and {hidden} more" if hidden > 0 else "")


# ------------------------------------------------------------------ column kinds


def _is_numeric(series: pd.Series) -> bool:
    """True for int, float and bool columns (complex numbers are not model input)."""
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_complex_dtype(series.dtype)


def _as_float(series: pd.Series) -> np.ndarray:
    """The values of a numeric column as float64, missing values as NaN."""
    # Going through Float64 copes with numpy bools and pandas' nullable dtypes alike.
    return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _integer_values(series: pd.Series) -> np.ndarray | None:
    """A column of whole numbers without gaps as int64; None for anything else.

    Floats count when every value is whole (exporters write ``1935.0`` for an integer column
    that once held a gap); booleans are flags, never ids or counters. Whole numbers alone are
    no evidence: the callers require a block or counter structure on top.
    """
    if pd.api.types.is_bool_dtype(series.dtype) or not _is_numeric(series) or series.isna().any():
        return None
    if pd.api.types.is_integer_dtype(series.dtype):
        try:
            return series.to_numpy(dtype=np.int64)
        except (OverflowError, TypeError, ValueError):  # uint64 beyond int64
            return None
    values = _as_float(series)
    if not (np.isfinite(values).all() and (values == np.round(values)).all() and (np.abs(values) < 2**53).all()):
        return None
    return values.astype(np.int64)


def _has_gaps(series: pd.Series) -> bool:
    """Missing values, or numbers tsreport counts as missing (inf, beyond float32)."""
    if not _is_numeric(series):
        return bool(series.isna().any())
    values = _as_float(series)
    return bool((~np.isfinite(values) | (np.abs(values) > np.finfo(np.float32).max)).any())


def _looks_like_dates(series: pd.Series) -> bool:
    """True when the column holds datetimes, or text that parses as dates."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return True
    if _is_numeric(series) or pd.api.types.is_timedelta64_dtype(series.dtype):
        # Integers parse as nanosecond timestamps: every id column would be a date.
        return False
    values = series.dropna()
    if values.empty:
        return False
    counts = values.astype(str).value_counts(sort=False)
    if pd.to_numeric(pd.Series(counts.index), errors="coerce").notna().all():
        # Numbers stored as text ("2019", "17") are ids or years, not time stamps.
        return False
    texts = pd.Index(counts.index.astype(str))
    # dateutil reads "Jan", "Monday", "now" and "today" as dates, filling the
    # rest from the current day; a time stamp always has a digit somewhere.
    has_digit = np.asarray(texts.str.contains(r"\d", regex=True), dtype=bool)
    probe = slice(0, DATE_PROBE_SIZE)
    probe_parsed = _parse_dates(texts[probe]).notna().to_numpy() & has_digit[probe]
    if probe_parsed.mean() < DATE_PARSE_SHARE / 2:
        return False
    parsed = _parse_dates(texts).notna().to_numpy() & has_digit
    return bool(counts.to_numpy()[parsed].sum() >= DATE_PARSE_SHARE * counts.sum())


def _parse_dates(values: pd.Index) -> pd.Series:
    """Parse text as datetimes, NaT where it fails.

    The format is inferred from the first value; when that leaves more than a
    few values unparsed, each value is parsed on its own, because exporters
    often write midnight as a bare date next to full time stamps.
    """
    texts = pd.Series(values, dtype=object)
    parsed = _to_datetime(texts, date_format=None)
    if parsed.isna().mean() > 1 - DATE_PARSE_SHARE:
        parsed = parsed.where(parsed.notna(), _to_datetime(texts, date_format="mixed"))
    return parsed


def _to_datetime(texts: pd.Series, *, date_format: str | None) -> pd.Series:
    """``pd.to_datetime`` that gives NaT instead of raising or warning."""
    with warnings.catch_warnings():
        # pandas warns when it falls back to dateutil; expected for text that
        # is not dates at all.
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(texts, errors="coerce", format=date_format)
        except (TypeError, ValueError, OverflowError):
            # Mixed time zones and similar oddities: treat as not dates.
            return pd.Series(pd.NaT, index=texts.index, dtype="datetime64[ns]")
    return pd.Series(parsed, index=texts.index)


# ------------------------------------------------------------ time and group roles


def _name_words(name: str) -> list[str]:
    """``storeId`` / ``store_id`` / ``Store ID`` -> [store, id]."""
    return [word.lower() for word in re.split(r"[^0-9A-Za-z]+|(?<=[a-z])(?=[A-Z])", name) if word]


def _id_like_name(name: str) -> bool:
    return any(word in _ID_WORDS for word in _name_words(name))


def _time_like_name(name: str) -> bool:
    words = _name_words(name)
    return bool(words) and (words[-1] in _TIME_WORDS or "_".join(words) in ("time_idx", "time_index", "time_step"))


def _block_codes(values: np.ndarray) -> np.ndarray | None:
    """Series number of each row when every value fills one contiguous block of at least two rows on average.

    None when a value comes back after another (a calendar or a flag, not an id), when there is
    one block only, or when the blocks average fewer than two rows.
    """
    changes = np.r_[True, values[1:] != values[:-1]]
    blocks = int(changes.sum())
    if blocks < 2 or blocks > len(values) / 2 or blocks != np.unique(values).size:
        return None
    return np.cumsum(changes) - 1


def _within(codes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by series, file order kept within each: (values, same-series mask of each step, firsts)."""
    if (codes[1:] >= codes[:-1]).all():  # contiguous blocks, or one series: already in order
        ordered, series = values, codes
    else:
        order = np.argsort(codes, kind="stable")
        ordered, series = values[order], codes[order]
    same = series[1:] == series[:-1]
    firsts = ordered[np.r_[True, ~same]]
    return ordered, same, firsts


def _counter_reason(values: np.ndarray, codes: np.ndarray, name: str, integer_dtype: bool = True) -> str | None:
    """Why ``values`` is a step counter of the series ``codes`` numbers; None when it is not one.

    A counter increases strictly within each series, in file order, and either steps by one
    constant (integer columns only: a float ramp is as likely a measurement), restarts at the
    same 0 or 1 in every series, or is named like a time step. A measurement that happens to
    be integer (a count) does none of these.
    """
    ordered, same, firsts = _within(codes, values)
    steps = np.diff(ordered)[same]
    if steps.size < MIN_COUNTER_STEPS or (steps <= 0).any():
        return None
    series = int(firsts.size)
    in_each = " within each series" if series > 1 else ""
    restarts = series > 1 and bool((firsts == firsts[0]).all()) and int(firsts[0]) in (0, 1)
    if (steps == steps[0]).all() and (restarts or integer_dtype or _time_like_name(name)):
        if restarts:
            start = int(firsts[0])
            return (
                f"integers {start}, {start + int(steps[0])}, {start + 2 * int(steps[0])}, ... restarting in each series"
            )
        return f"integers increasing by {int(steps[0])} at every row{in_each}"
    if restarts:
        reason = f"integers increasing within each series, each starting at {int(firsts[0])}"
    elif _time_like_name(name):
        reason = f"named like a time step, and increasing{in_each or ' at every row'}"
    else:
        return None
    usual = int(np.bincount(steps).argmax()) if steps.max() < 1_000_000 else int(np.median(steps))
    uneven = int((steps != usual).sum())
    return f"{reason}; {uneven} uneven step(s): a window may span a gap as if the rows were consecutive"


def _unique_within_but_repeated(codes: np.ndarray, values: pd.Series) -> bool:
    """True when ``values`` never repeats within a series but repeats across series (times of parallel series)."""
    if values.isna().any():
        return False
    pairs = pd.DataFrame({"series": codes, "value": values.to_numpy()})
    return not pairs.duplicated().any() and bool(pairs["value"].duplicated().any())


@dataclass
class _Candidate:
    """A column that could be the series id, and the evidence for it."""

    name: str
    codes: np.ndarray
    position: int
    evidence: str | None = None
    counter: str | None = None  # the step counter that confirmed it
    counter_reason: str | None = None

    @property
    def series(self) -> int:
        return int(self.codes.max()) + 1


def _find_roles(
    frame: pd.DataFrame, date_columns: list[str], text_columns: list[str], integers: dict[str, np.ndarray]
) -> tuple[_Roles, list[str]]:
    """Recognise the time and group columns (see :func:`draft_schema`, Notes); return them and ignored text columns."""
    date_column = date_columns[0] if date_columns else None
    text_group, ignored_text = _find_group_column(frame, text_columns)

    def counter_reason(name: str, codes: np.ndarray) -> str | None:
        return _counter_reason(integers[name], codes, name, pd.api.types.is_integer_dtype(frame[name].dtype))

    candidates: list[_Candidate] = []
    if text_group is not None:
        codes = pd.factorize(frame[text_group].astype(str), sort=False)[0]
        candidates.append(_Candidate(text_group, codes, 0))
    block_ids = {name: codes for name, values in integers.items() if (codes := _block_codes(values)) is not None}
    candidates += [_Candidate(name, codes, 1 + index) for index, (name, codes) in enumerate(block_ids.items())]

    for candidate in candidates:
        blocks = f"integer values in {candidate.series} contiguous blocks" if candidate.position else "repeated text"
        if date_column is not None:
            if _unique_within_but_repeated(candidate.codes, frame[date_column]):
                candidate.evidence = (
                    f"series id: {blocks}, and the times in {_comment_name(date_column)} repeat across series, "
                    "never within one"
                )
            continue
        for name, values in integers.items():
            if name == candidate.name or name in block_ids:
                continue
            reason = counter_reason(name, candidate.codes)
            if reason and np.unique(values).size < values.size:
                candidate.evidence = f"series id: {blocks}, and {_comment_name(name)} starts over in each"
                candidate.counter, candidate.counter_reason = name, reason
                break

    roles = _Roles()
    confirmed = [candidate for candidate in candidates if candidate.evidence]
    whole = np.zeros(len(frame), dtype=np.int64)
    if confirmed:
        # The coarsest partition that keeps each series' times unique is the series; a finer
        # one would cut series into pieces.
        chosen: _Candidate | None = min(confirmed, key=lambda c: (c.series, c.position))
    else:
        single_time = date_column or next(
            (name for name in integers if name not in block_ids and counter_reason(name, whole)), None
        )
        chosen = None
        if text_group is not None:
            text_codes = candidates[0].codes
            interleaved = bool((text_codes[1:] < text_codes[:-1]).any())
            if single_time is not None and interleaved and not frame[single_time].duplicated().any():
                # Values that alternate along one series with unique times are a state or a
                # category of each row (up/down, weekday names), not a series id.
                roles.text_note = (
                    f"# not the group: {_comment_name(text_group)} alternates along one series whose times in "
                    f"{_comment_name(single_time)} never repeat; set group: {_comment_text(text_group)} if it "
                    "does number separate series"
                )
            else:
                chosen = candidates[0]
                chosen.evidence = "series id: repeated text values; windows never cross series"
        named = [c for c in candidates if c.position and _id_like_name(c.name)]
        if chosen is None and named and single_time is None:
            chosen = named[0]
            chosen.evidence = (
                f"series id: named like an id, with integer values in {chosen.series} contiguous blocks; "
                "check it, as no time column confirms it"
            )
    if chosen is not None:
        roles.group, roles.group_codes = chosen.name, chosen.codes
        roles.group_comment = chosen.evidence + ("" if chosen.position == 0 else "; not an input field")
        if chosen.position == 0:
            ignored_text = [name for name in text_columns if name != chosen.name]
        elif text_group is not None:
            ignored_text = text_columns
    codes = roles.group_codes if roles.group_codes is not None else whole

    if date_column is not None:
        roles.time, roles.time_comment = date_column, "rows are ordered by it within each series"
        for name in integers:
            reason = name != roles.group and counter_reason(name, codes)
            if reason:
                roles.notes[name] = (
                    f"counts the steps of each series ({reason}): remove this field unless the model sees it"
                )
    else:
        counter = chosen.counter if chosen is not None and chosen.counter else None
        reason = chosen.counter_reason if counter else None
        if counter is None:
            for name in integers:
                if name != roles.group and (reason := counter_reason(name, codes)):
                    counter = name
                    break
        if counter is not None:
            roles.time = counter
            roles.time_comment = f"step counter: {reason}; rows are ordered by it; not an input field"

    for name, block_codes in block_ids.items():
        if name in (roles.group, roles.time):
            continue
        if roles.time is None or _id_like_name(name):
            series = int(block_codes.max()) + 1
            roles.notes[name] = (
                f"its values fill {series} contiguous blocks, like a series id: if it numbers separate series, "
                f"set group: {_comment_text(name)} and remove this field"
            )
    return roles, ignored_text


def _find_group_column(frame: pd.DataFrame, text_columns: list[str]) -> tuple[str | None, list[str]]:
    """Return the first text column with repeated values, and the text columns left over."""
    group_column = None
    for name in text_columns:
        distinct = frame[name].nunique(dropna=True)
        if 0 < distinct < len(frame) / 2:
            group_column = name
            break
    ignored = [name for name in text_columns if name != group_column]
    return group_column, ignored


def _constant_within(series: pd.Series, codes: np.ndarray | None) -> bool:
    """True when the column holds one value per series (a label of the whole series)."""
    if codes is None:
        return False
    labels = series.astype(str).where(series.notna(), None)
    return bool(pd.DataFrame({"series": codes, "label": labels}).groupby("series")["label"].nunique().max() <= 1)


# -------------------------------------------------------------------- time format


def _time_advice(frame: pd.DataFrame, roles: _Roles, source: str) -> _TimeAdvice:
    """Say how ``explain`` will read a text time column, and set ``time_format`` where that settles it."""
    if roles.time is None:
        return _TimeAdvice()
    raw = frame[roles.time]
    if _is_numeric(raw) or pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return _TimeAdvice()
    present = raw.dropna()
    if len(present) < len(raw):
        rows = np.flatnonzero(raw.isna().to_numpy())
        return _TimeAdvice(
            lines=[
                f"# EDIT: {_comment_name(roles.time)} is empty at {len(rows)} row(s), first {row_label(int(rows[0]))}; "
                "explain needs a time on every row: fill or remove those rows"
            ]
        )
    text = present.astype(str).str.strip()
    unique = pd.Series(text.unique())
    readings: dict[str, pd.Series] = {}
    for candidate in CANDIDATE_FORMATS:
        parsed = pd.to_datetime(unique, format=candidate, errors="coerce")
        if parsed.notna().all() and not any(parsed.equals(other) for other in readings.values()):
            readings[candidate] = parsed
    try:
        parse_times(raw, column=roles.time, source=source, time_format=None, row_label=row_label)
    except DataError as error:
        refused = error
    else:
        refused = None
    if len(readings) == 1 and _reads_with(raw, next(iter(readings)), roles.time, source):
        # One format reads every value (13/01/2020: day first). Set it even where explain would read the
        # column alone, so that the schema says how its dates are written.
        (chosen,) = readings
        return _TimeAdvice(chosen, f"every value reads as {_comment_text(chosen)}{_day_first_example(chosen, unique)}")
    if len(readings) >= 2:
        return _ambiguous_advice(raw, text, unique, readings, roles, source)
    if refused is not None:
        return _TimeAdvice(lines=[f"# EDIT: explain refuses this time column as it is: {_comment_text(str(refused))}"])
    return _TimeAdvice()


def _reads_with(raw: pd.Series, time_format: str, column: str, source: str) -> bool:
    """Whether explain reads the time column with this ``time_format`` (the draft never sets one it would refuse)."""
    try:
        parse_times(raw, column=column, source=source, time_format=time_format, row_label=row_label)
    except DataError:
        return False
    return True


def _day_first_example(time_format: str, unique: pd.Series) -> str:
    """``: '13/01/2020' is 13 January`` for a day-first format with a day above 12; else empty."""
    if not time_format.startswith("%d"):
        return ""
    parsed = pd.to_datetime(unique, format=time_format)
    late = np.flatnonzero((parsed.dt.day > 12).to_numpy())
    if not late.size:
        return ""
    when = parsed.iloc[int(late[0])]
    return f" (day first: {_comment_text(repr(unique.iloc[int(late[0])]))} is {when.day} {when:%B})"


def _ambiguous_advice(
    raw: pd.Series, text: pd.Series, unique: pd.Series, readings: dict[str, pd.Series], roles: _Roles, source: str
) -> _TimeAdvice:
    """Day/month order that no value settles: pick the reading with evenly spaced times in file order, if one."""
    codes = roles.group_codes if roles.group_codes is not None else np.zeros(len(text), dtype=np.int64)
    even = []
    for candidate, parsed in readings.items():
        per_row = text.map(dict(zip(unique, parsed)))
        if _evenly_spaced(pd.DatetimeIndex(per_row), codes):
            even.append(candidate)
    names = list(readings)[:2]
    sample = _comment_text(repr(unique.iloc[0]))
    if len(even) == 1 and _reads_with(raw, even[0], str(roles.time), source):
        (chosen,) = even
        other = next(name for name in names if name != chosen) if chosen in names else names[0]
        return _TimeAdvice(
            chosen,
            f"CHECK: no value tells day from month ({sample}); with {_comment_text(chosen)} the times are evenly "
            f"spaced in file order, with {_comment_text(other)} they are not. Change it if that is wrong",
        )
    choices = " or ".join(_yaml_value(name) for name in names)
    return _TimeAdvice(
        lines=[
            f"# EDIT (required): no value tells day from month ({sample}); uncomment the next line with "
            f"{choices}, as your dates are written",
            f"# time_format: {_yaml_value(names[0])}",
        ]
    )


def _evenly_spaced(times: pd.DatetimeIndex, codes: np.ndarray) -> bool:
    """True when the times increase in file order within each series by one constant, or by whole months."""
    order = np.argsort(codes, kind="stable")
    ordered = times[order]
    same = codes[order][1:] == codes[order][:-1]
    nanoseconds = ordered.asi8
    steps = np.diff(nanoseconds)[same]
    if steps.size < 2 or (steps <= 0).any():
        return False
    if (steps == steps[0]).all():
        return True
    months = np.diff(ordered.year.to_numpy() * 12 + ordered.month.to_numpy())[same]
    same_day = bool((ordered.day == ordered.day[0]).all()) and bool((ordered == ordered.normalize()).all())
    return same_day and bool((months == months[0]).all()) and months[0] > 0


def _duplicate_times(frame: pd.DataFrame, roles: _Roles) -> str | None:
    """A comment when two rows of one series share a time (explain refuses that)."""
    if roles.time is None:
        return None
    codes = roles.group_codes if roles.group_codes is not None else np.zeros(len(frame), dtype=np.int64)
    pairs = pd.DataFrame({"series": codes, "time": frame[roles.time].astype(str).to_numpy()})
    repeats = np.flatnonzero(pairs.duplicated(keep="first").to_numpy())
    if not repeats.size:
        return None
    second = int(repeats[0])
    same = (pairs["series"] == pairs["series"].iloc[second]) & (pairs["time"] == pairs["time"].iloc[second])
    first = int(np.flatnonzero(same.to_numpy())[0])
    where = "in one series " if roles.group else ""
    if roles.group is not None:
        fix = "aggregate or remove the duplicates"
    elif (separator := _separating_column(frame, roles.time)) is not None:
        also = " and remove it from fields" if _is_numeric(frame[separator]) else ""
        fix = f"if the rows are several series, set group: {_comment_text(separator)}{also} (it tells them apart)"
    else:
        fix = "set group to the column that tells the series apart, or aggregate the duplicates"
    return (
        f"# EDIT: {row_label(first)} and {row_label(second)} share the time "
        f"{_comment_text(repr(pairs['time'].iloc[first]))} {where}and explain refuses that; {fix}"
    )


def _separating_column(frame: pd.DataFrame, time: str) -> str | None:
    """A text or integer column with repeated values that gives every time once per value; id-like names first."""
    rows = len(frame)
    candidates = [
        name
        for name in frame.columns
        if name != time
        and (not _is_numeric(frame[name]) or _integer_values(frame[name]) is not None)
        and 2 <= frame[name].nunique(dropna=False) <= rows / 2
    ]
    candidates.sort(key=lambda name: not _id_like_name(name))  # stable: frame order within each kind
    times = frame[time].astype(str).to_numpy()
    for name in candidates:
        pairs = pd.DataFrame({"series": frame[name].astype(str).to_numpy(), "time": times})
        if not pairs.duplicated().any():
            return name
    return None


# ------------------------------------------------------------------ fields, target


def _one_hot_prefix(name: str) -> str | None:
    """The prefix of ``dow_0`` / ``color_red`` style names; None for other names."""
    prefix, separator, suffix = name.rpartition("_")
    if not separator or not prefix or not suffix:
        return None
    return prefix


def _find_one_hot_groups(
    frame: pd.DataFrame, numeric_columns: list[str], *, exclude: str | None
) -> dict[str, list[str]]:
    """Map prefix -> columns for each set of numeric columns that one-hot encodes a category.

    A set qualifies when it has at least two columns sharing a prefix, every
    value is 0 or 1 (missing allowed), and every row without missing values
    has exactly one 1. Columns keep the frame's order.
    """
    candidates: dict[str, list[str]] = {}
    for name in numeric_columns:
        prefix = _one_hot_prefix(name)
        if prefix is None or name == exclude:
            continue
        values = _as_float(frame[name])
        present = values[~np.isnan(values)]
        # A prefix can also hold a count or a flag (dow_count, dow_is_weekend);
        # only 0/1 columns can be part of the encoding, so test those together.
        if present.size and np.isin(present, (0.0, 1.0)).all():
            candidates.setdefault(prefix, []).append(name)

    groups: dict[str, list[str]] = {}
    for prefix, names in candidates.items():
        if len(names) < 2:
            continue
        block = np.column_stack([_as_float(frame[name]) for name in names])
        complete = ~np.isnan(block).any(axis=1)
        if complete.any() and (block[complete].sum(axis=1) == 1.0).all():
            groups[prefix] = names
    return groups


def _guess_target(numeric_columns: list[str], one_hot: dict[str, list[str]]) -> str:
    """The last numeric column, preferring one outside any one-hot group."""
    in_groups = {name for names in one_hot.values() for name in names}
    outside = [name for name in numeric_columns if name not in in_groups]
    return (outside or numeric_columns)[-1]


def _infer_task(series: pd.Series, name: str) -> tuple[str, str]:
    """Return ("regression" | "classification", a comment saying why)."""
    if not _is_numeric(series):
        return (
            "classification",
            f"target {_comment_name(name)} is not numeric: class labels",
        )
    values = _as_float(series)
    values = values[~np.isnan(values)]
    distinct = np.unique(values).size
    integer_valued = bool(values.size) and bool(np.isfinite(values).all() and (values == np.round(values)).all())
    if integer_valued and distinct <= MAX_CLASSES:
        return (
            "classification",
            f"target {_comment_name(name)} holds {distinct} distinct integers: class labels; "
            "pass --task regression if it is a quantity",
        )
    reason = "many distinct values" if integer_valued else "non-integer values"
    return "regression", f"target {_comment_name(name)} has {reason}"


def _choose_task(series: pd.Series, name: str, task: str | None, horizon: int | None) -> tuple[str, str]:
    """The task as given, implied by --horizon, or inferred from the target; with a comment."""
    if task is not None:
        return task, "as given"
    if horizon is not None:
        return "regression", "a horizon was given: a forecaster"
    return _infer_task(series, name)


def _draft_classes(series: pd.Series, name: str, source: str) -> tuple[list[Any] | None, str]:
    """The label values found in the target, sorted, for ``classes``; with a comment."""
    present = series.dropna()
    if _is_numeric(series) and not pd.api.types.is_bool_dtype(series.dtype):
        values = _as_float(present)
        if not np.isfinite(values).all() or (values != np.round(values)).any():
            raise DataError(
                f"{source}: the target column {name!r} holds non-integer numbers, not class labels; "
                "use --task regression, or choose the label column with --target COL."
            )
        labels: list[Any] = sorted({int(value) for value in values})
    else:
        labels = sorted({value.item() if isinstance(value, np.generic) else value for value in present}, key=str)
        labels = [label if isinstance(label, (bool, int, float)) else str(label) for label in labels]
    if len(labels) > MAX_DRAFT_CLASSES:
        raise DataError(
            f"{source}: the target column {name!r} holds {len(labels):,} distinct values, more than "
            f"{MAX_DRAFT_CLASSES:,} classes; use --task regression, or choose the label column with --target COL."
        )
    if len(labels) < 2:
        shown = _comment_text(repr(labels[0])) if labels else "none"
        return None, f"only one label value ({shown}) in the data: list every class, in the model's output order"
    return labels, (
        "label values found in the data, sorted: the model's output k must be classes[k]; "
        "reorder to match training and add any class the data lacks"
    )


def _build_fields(
    frame: pd.DataFrame,
    numeric_columns: list[str],
    one_hot: dict[str, list[str]],
    target: str,
    notes: dict[str, str],
) -> list[_DraftField]:
    """One field per one-hot group and per remaining numeric column, in frame order."""
    group_of = {name: prefix for prefix, names in one_hot.items() for name in names if name in numeric_columns}
    single_names = {name for name in numeric_columns if name not in group_of}
    taken = set(single_names)
    fields: list[_DraftField] = []
    for name in numeric_columns:
        prefix = group_of.get(name)
        if prefix is not None:
            columns = one_hot[prefix]
            if name != columns[0]:
                continue
            field_name = _unique_name(prefix, taken)
            taken.add(field_name)
            fields.append(
                _DraftField(
                    field_name,
                    list(columns),
                    categorical=True,
                    comments=[f"one-hot: the {len(columns)} columns are perturbed as one block"],
                )
            )
            continue
        draft = _DraftField(name, [name], scale_hint=_scale_hint(frame[name]))
        values = frame[name]
        if values.isna().all():
            draft.comments.append("warning: empty column, carries no information")
        elif values.nunique(dropna=True) <= 1:
            draft.comments.append("warning: constant column, carries no information")
        if name in notes:
            draft.comments.append(notes[name])
        if name == target:
            draft.comments.append("the target: the model sees its history")
        fields.append(draft)
    return fields


def _scale_hint(series: pd.Series) -> tuple[float, float] | None:
    """This file's mean and std of a numeric column, for a commented-out ``scale``; None when undefined."""
    if not _is_numeric(series):
        return None
    values = _as_float(series)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return None
    mean, std = float(values.mean()), float(values.std())
    if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
        return None
    return mean, std


def _unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_onehot``/``base_onehot2``... when a field already has that name."""
    if base not in taken:
        return base
    candidate = f"{base}_onehot"
    counter = 2
    while candidate in taken:
        candidate = f"{base}_onehot{counter}"
        counter += 1
    return candidate


# -------------------------------------------------------------------------- window


def _shortest_series(frame: pd.DataFrame, group_column: str | None) -> tuple[int, Hashable | None]:
    """Length of the shortest series and its group value (None without a group)."""
    if group_column is None:
        return len(frame), None
    sizes = frame.groupby(group_column, dropna=True, sort=False).size()
    shortest = sizes.idxmin()
    return int(sizes[shortest]), shortest


def _choose_window(
    window: int | None,
    series_length: int,
    shortest_name: Hashable | None,
    horizon: int | None,
    group_column: str | None,
    source: str,
    channels: int,
    per_series_label: bool = False,
) -> tuple[int, str]:
    """Validate the given window or guess one; return it with a comment."""
    if group_column is None:
        series = f"the series has {series_length} rows"
    else:
        series = f"the shortest series ({group_column} = {shortest_name!s}) has {series_length} rows"
    # Regression needs the H rows after the window as truth; classification
    # labels a window by its own last row, so T rows give one window.
    extra_rows = horizon or 0
    largest_cells = max(1, MAX_WINDOW_CELLS // max(channels, 1))
    if window is None:
        if per_series_label:
            window = series_length
            comment = f"guessed: the label is constant within each series, so a window is a whole series; {series}"
        else:
            window = min(MAX_WINDOW, max(MIN_WINDOW, series_length // 4))
            comment = f"guessed: {series}; a quarter of that, kept within [{MIN_WINDOW}, {MAX_WINDOW}]"
        if window > min(largest_cells, MAX_STEPS):
            window = min(largest_cells, MAX_STEPS)
            comment += f"; capped at {window} so that window x {channels} channels fits tsreport's limit"
        given = False
    else:
        if not _is_count(window) or window < 1:
            raise DataError(f"{source}: the window must be a positive integer; got {window!r}.")
        window = int(window)
        comment = f"as given; {series}"
        given = True
        if window * channels > MAX_WINDOW_CELLS:
            raise DataError(
                f"{source}: a window of {window} steps x {channels} channels holds {window * channels:,} values, "
                f"above tsreport's limit of {MAX_WINDOW_CELLS:,}; choose --window {largest_cells} or less."
            )
    if not given and window + extra_rows > series_length >= MIN_WINDOW + extra_rows:
        window = series_length - extra_rows
        comment += f"; shortened to {window} to leave room for the horizon"
    if window + extra_rows > series_length:
        largest = series_length - extra_rows
        needed = f"a window of {window}" + (f" plus a horizon of {extra_rows}" if extra_rows else "")
        fix = (
            f"choose a window of at most {largest} (--window {largest})"
            if given and largest >= 1
            else "the data needs longer series"
        )
        raise DataError(f"{source}: {needed} needs {window + extra_rows} rows, but {series}; {fix}.")
    return window, _comment_text(comment)


# ----------------------------------------------------------------------- output


def _yaml_value(value: object) -> str:
    """Dump one value (scalar or list) as flow-style YAML on a single line."""
    text = yaml.safe_dump(
        value,
        default_flow_style=True,
        width=math.inf,
        allow_unicode=True,
        sort_keys=False,
    )
    text = text.removesuffix("\n...\n").rstrip("\n")
    if any(mark in text for mark in _YAML_LINE_BREAKS):
        # Names with line breaks come out on several lines in plain or single
        # quotes; double quotes escape them and keep the line (and any
        # trailing comment) intact.
        text = yaml.safe_dump(
            value,
            default_flow_style=True,
            default_style='"',
            width=math.inf,
            allow_unicode=True,
            sort_keys=False,
        ).rstrip("\n")
    return text


def _comment_text(text: str) -> str:
    """Make free text safe to put after a ``#``.

    A raw line break would end the comment, and control characters are not
    allowed in a YAML stream at all, so both are written as escapes.
    """
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def _comment_name(name: object) -> str:
    """A column name as it reads in a comment: JSON-quoted, line breaks escaped."""
    return _comment_text(json.dumps(str(name), ensure_ascii=False))


def _comment_names(names: Sequence[str]) -> str:
    """Several names for a comment, eliding a long tail."""
    shown = ", ".join(_comment_name(name) for name in names[:MAX_NAMES_IN_COMMENT])
    hidden = len(names) - MAX_NAMES_IN_COMMENT
    return shown + (f" and {hidden} more" if hidden > 0 else "")


def _line(key: str, value: object, comment: str | None = None, indent: str = "") -> str:
    """``key: value  # comment`` with the value dumped safely."""
    text = f"{indent}{key}: {_yaml_value(value)}"
    return f"{text}  # {comment}" if comment else text


def _number(value: float) -> float:
    """A statistic rounded to 6 significant digits, for a comment."""
    return float(f"{value:.6g}")


def _scale_text(hint: tuple[float, float]) -> str:
    return _yaml_value({"mean": _number(hint[0]), "std": _number(hint[1])})


def _render(
    *,
    source: str,
    task: str,
    task_comment: str,
    roles: _Roles,
    advice: _TimeAdvice,
    duplicate_note: str | None,
    window: int,
    window_comment: str,
    horizon: int | None,
    horizon_comment: str | None,
    target: str,
    target_scale: tuple[float, float] | None,
    guessed_target: bool,
    target_is_field: bool,
    classes: list[Any] | None,
    classes_comment: str | None,
    columns_with_gaps: list[str],
    fields: list[_DraftField],
    ignored_time: list[str],
    ignored_text: list[str],
) -> str:
    """Write the schema as commented YAML, keys in CONTRACT section 3 order."""
    lines = [
        f"# Draft schema inferred from {_comment_text(source)} by `tsreport schema`.",
        "# Check every line against how the model was trained before using it; lines marked EDIT must change.",
        _line("version", 1),
        _line("task", task, task_comment),
    ]
    if roles.time is not None:
        lines.append(_line("time", roles.time, roles.time_comment))
    else:
        lines.append("# time: no date column or step counter found; rows are used in file order")
    if advice.time_format is not None:
        lines.append(_line("time_format", advice.time_format, advice.comment))
    lines += advice.lines
    if duplicate_note:
        lines.append(duplicate_note)
    if ignored_time:
        lines.append(f"# ignored date columns: {_comment_names(ignored_time)}")
    if roles.group is not None:
        lines.append(_line("group", roles.group, roles.group_comment))
    if ignored_text:
        lines.append(f"# ignored text columns: {_comment_names(ignored_text)}")
    if roles.text_note:
        lines.append(roles.text_note)
    lines.append(_line("window", window, window_comment))
    lines.append(_line("stride", 1, "step between consecutive windows"))
    if horizon is not None:
        lines.append(_line("horizon", horizon, horizon_comment))
    if guessed_target:
        lines.append("# target: guessed (last numeric column); pass --target COL to choose")
    if target_is_field:
        target_comment = "also an input field: autoregressive models see the target's history"
    elif task == "classification":
        target_comment = "the label of a window is this column at its last row; not an input field"
    else:
        target_comment = "not an input field"
    lines.append(_line("target", target, target_comment))
    if target_scale is not None:
        scaled = _yaml_value(
            {"column": target, "scale": {"mean": _number(target_scale[0]), "std": _number(target_scale[1])}}
        )
        lines.append(
            f"# target: {scaled}  # if the model predicts standardised values: use the training data's mean and "
            "std (these are this file's)"
        )
    if task == "classification":
        if classes is not None:
            lines.append(_line("classes", classes, classes_comment))
        else:
            lines.append(f"# classes: {classes_comment}")
    else:
        lines.append("# output: {quantiles: [0.1, 0.5, 0.9]}  # only if the model's last output axis holds quantiles")
    lines.append(_line("layout", "btc", "model input: btc (batch,time,channels) | bct | flat"))
    if columns_with_gaps:
        lines.append(
            _line(
                "missing",
                "ffill",
                f"missing values in {_comment_names(columns_with_gaps)}; or drop (skip windows with gaps)",
            )
        )
    else:
        lines.append(_line("missing", "error", "no missing values; error | drop | ffill"))
    lines.append(
        _line(
            "baseline",
            "mean",
            "reference input for occlusion/gradients: mean | median | zero",
        )
    )
    lines += [
        "# fields: the model's input channels, in this order. If the model was trained on standardised",
        "# inputs, uncomment each field's scale line and put the training data's mean and std there",
        "# (the numbers shown are this file's).",
        "fields:",
    ]
    for draft in fields:
        comment = "; ".join(draft.comments) or None
        lines.append(_line("name", draft.name, comment, indent="  - "))
        lines.append(_line("columns", draft.columns, indent="    "))
        if draft.categorical:
            lines.append(_line("kind", "categorical", indent="    "))
        elif draft.scale_hint is not None:
            lines.append(f"    # scale: {_scale_text(draft.scale_hint)}")
    return "\n".join(lines) + "\n"
