"""Draft a field schema (CONTRACT section 3) from a data frame.

This backs ``tsreport schema DATA``: it looks at the columns of a table and
writes a YAML schema a user can review and edit, rather than type from
scratch. Every guess it makes is said in a YAML comment next to the key it
affects, so that the draft explains itself.
"""

from __future__ import annotations

import difflib
import json
import math
import warnings
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import yaml

from tsreport.exceptions import DataError

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
# Names listed in one comment before it says "and N more".
MAX_NAMES_IN_COMMENT = 8
# Characters YAML treats as line breaks: a value holding one must be double-quoted.
_YAML_LINE_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")


@dataclass
class _DraftField:
    """One entry of ``fields`` and the comment that goes with it."""

    name: str
    columns: list[str]
    categorical: bool = False
    comments: list[str] = field(default_factory=list)


def draft_schema(
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    window: int | None = None,
    source: str = "data",
) -> str:
    """Return a draft schema as YAML text (CONTRACT section 3) inferred from a data frame.

    Parameters
    ----------
    frame : pandas.DataFrame
        The data as read from the user's file, one row per time step.
    target : str, optional
        The column the model predicts. When omitted, the last numeric column
        that is not part of a one-hot group is used, and a comment says so.
    window : int, optional
        Time steps the model sees. When omitted, a quarter of the shortest
        series, kept within [2, 48].
    source : str, default "data"
        Where the frame came from (the file path); named in comments and
        error messages.

    Returns
    -------
    str
        YAML text, keys in the order of CONTRACT section 3, with comments
        explaining each guess. ``yaml.safe_load`` of it gives the schema.

    Raises
    ------
    DataError
        If the frame has no columns, no rows, duplicate column names or no
        numeric column; if ``target`` is not a column (the message lists the
        closest names) or holds dates; or if ``window`` is not a positive
        integer or, with the horizon for regression, does not fit in the
        shortest series.

    Notes
    -----
    The rules, in the order they are applied:

    - time: a datetime column, or the first text column whose non-null
      values parse as dates for at least 95%. Integer columns are never
      taken as dates.
    - group: the first other text column with repeated values (fewer
      distinct values than half the rows).
    - one-hot groups: numeric columns sharing the prefix before their last
      ``_`` (``dow_0`` ... ``dow_6``), holding only 0 and 1, and summing to 1
      on every complete row, become one categorical field named after the
      prefix.
    - every other numeric column (booleans included) is one numeric field;
      the target stays an input field because autoregressive models see its
      history.
    - task: classification when the target is text, or holds at most 10
      distinct integers; regression otherwise.
    """
    _check_frame(frame, source)
    columns = [str(name) for name in frame.columns]
    # Work on string labels throughout: the schema names columns as text and
    # a CSV header is text, whatever labels the frame was built with.
    frame = frame.set_axis(columns, axis="columns")

    if target is not None and target not in columns:
        raise DataError(_missing_column_message(target, columns, source))

    date_columns = [name for name in columns if _looks_like_dates(frame[name])]
    if target in date_columns:
        raise DataError(
            f"{source}: the target column {target!r} holds dates; choose a numeric or label column with --target COL."
        )
    time_column = _first_or_none(date_columns)
    extra_time_columns = date_columns[1:]
    text_columns = [
        name for name in columns if not _is_numeric(frame[name]) and name not in date_columns and name != target
    ]
    group_column, ignored_text = _find_group_column(frame, text_columns)

    numeric_columns = [name for name in columns if _is_numeric(frame[name])]
    if not numeric_columns:
        raise DataError(
            f"{source}: no numeric column found, so there is nothing to feed the model; "
            f"the columns are {_names_for_message(columns)}."
        )

    guessed_target = target is None
    one_hot = _find_one_hot_groups(frame, numeric_columns, exclude=target)
    if target is None:
        target = _guess_target(numeric_columns, one_hot)
        if any(target in group for group in one_hot.values()):
            one_hot = _find_one_hot_groups(frame, numeric_columns, exclude=target)

    task, task_comment = _infer_task(frame[target], target)
    horizon = 1 if task == "regression" else None

    fields = _build_fields(frame, numeric_columns, one_hot, target)

    series_length, shortest_name = _shortest_series(frame, group_column)
    window, window_comment = _choose_window(window, series_length, shortest_name, horizon, group_column, source)

    field_columns = [name for draft in fields for name in draft.columns]
    columns_with_gaps = [name for name in field_columns if frame[name].isna().any()]

    return _render(
        source=source,
        task=task,
        task_comment=task_comment,
        time_column=time_column,
        group_column=group_column,
        window=window,
        window_comment=window_comment,
        horizon=horizon,
        target=target,
        guessed_target=guessed_target,
        target_is_field=target in field_columns,
        columns_with_gaps=columns_with_gaps,
        fields=fields,
        ignored_time=extra_time_columns,
        ignored_text=ignored_text,
    )


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


# ------------------------------------------------------------------ column roles


def _is_numeric(series: pd.Series) -> bool:
    """True for int, float and bool columns (complex numbers are not model input)."""
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_complex_dtype(series.dtype)


def _as_float(series: pd.Series) -> np.ndarray:
    """The values of a numeric column as float64, missing values as NaN."""
    # Going through Float64 copes with numpy bools and pandas' nullable dtypes alike.
    return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


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
            f"target {_comment_name(name)} holds {distinct} distinct integers: class labels",
        )
    reason = "many distinct values" if integer_valued else "non-integer values"
    return "regression", f"target {_comment_name(name)} has {reason}"


def _build_fields(
    frame: pd.DataFrame,
    numeric_columns: list[str],
    one_hot: dict[str, list[str]],
    target: str,
) -> list[_DraftField]:
    """One field per one-hot group and per remaining numeric column, in frame order."""
    group_of = {name: prefix for prefix, names in one_hot.items() for name in names}
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
        draft = _DraftField(name, [name])
        values = frame[name]
        if values.isna().all():
            draft.comments.append("warning: empty column, carries no information")
        elif values.nunique(dropna=True) <= 1:
            draft.comments.append("warning: constant column, carries no information")
        if name == target:
            draft.comments.append("the target: the model sees its history")
        fields.append(draft)
    return fields


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
) -> tuple[int, str]:
    """Validate the given window or guess one; return it with a comment."""
    if group_column is None:
        series = f"the series has {series_length} rows"
    else:
        series = f"the shortest series ({group_column} = {shortest_name!s}) has {series_length} rows"
    # Regression needs the H rows after the window as truth; classification
    # labels a window by its own last row, so T rows give one window.
    extra_rows = horizon or 0
    if window is None:
        window = min(MAX_WINDOW, max(MIN_WINDOW, series_length // 4))
        comment = f"guessed: {series}; a quarter of that, kept within [{MIN_WINDOW}, {MAX_WINDOW}]"
        given = False
    else:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise DataError(f"{source}: the window must be a positive integer; got {window!r}.")
        window = int(window)
        comment = f"as given; {series}"
        given = True
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


def _render(
    *,
    source: str,
    task: str,
    task_comment: str,
    time_column: str | None,
    group_column: str | None,
    window: int,
    window_comment: str,
    horizon: int | None,
    target: str,
    guessed_target: bool,
    target_is_field: bool,
    columns_with_gaps: list[str],
    fields: list[_DraftField],
    ignored_time: list[str],
    ignored_text: list[str],
) -> str:
    """Write the schema as commented YAML, keys in CONTRACT section 3 order."""
    lines = [
        f"# Draft schema inferred from {_comment_text(source)} by `tsreport schema`.",
        "# Check every line against how the model was trained before using it.",
        _line("version", 1),
        _line("task", task, task_comment),
    ]
    if time_column is not None:
        lines.append(_line("time", time_column, "rows are ordered by it within each series"))
    else:
        lines.append("# time: no date column found; rows are used in file order")
    if ignored_time:
        lines.append(f"# ignored date columns: {_comment_names(ignored_time)}")
    if group_column is not None:
        lines.append(_line("group", group_column, "series id; windows never cross series"))
    if ignored_text:
        lines.append(f"# ignored text columns: {_comment_names(ignored_text)}")
    lines.append(_line("window", window, window_comment))
    lines.append(_line("stride", 1, "step between consecutive windows"))
    if horizon is not None:
        lines.append(_line("horizon", horizon, "steps predicted after each window"))
    if guessed_target:
        lines.append("# target: guessed (last numeric column); pass --target COL to choose")
    if target_is_field:
        target_comment = "also an input field: autoregressive models see the target's history"
    else:
        target_comment = "not an input field: it is not numeric"
    lines.append(_line("target", target, target_comment))
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
        "# fields: the model's input channels, in this order. Add",
        "# scale: {mean: .., std: ..} to a field if the model was trained on scaled inputs.",
        "fields:",
    ]
    for draft in fields:
        comment = "; ".join(draft.comments) or None
        lines.append(_line("name", draft.name, comment, indent="  - "))
        lines.append(_line("columns", draft.columns, indent="    "))
        if draft.categorical:
            lines.append(_line("kind", "categorical", indent="    "))
    return "\n".join(lines) + "\n"


def _first_or_none(names: list[str]) -> str | None:
    """The first name of a list, None when empty."""
    return names[0] if names else None
