"""Reading a time column without guessing: ISO-8601, one unambiguous format, or the schema's ``time_format``.

pandas' ``format="mixed"`` parses every string on its own, so ``01/02/2020`` becomes 2 January
in one row and ``13/01/2020`` 13 January in the next, and rows come out misordered without a
word. Here a column is parsed with one format for every row: ISO-8601 when every value is
ISO-8601, else the one common format that reads every value. Day/month strings that two formats
read differently, a column mixing formats, or times with and without a UTC offset are a
:class:`DataError` naming the column, a conflicting pair of rows and the ``time_format`` to set.
Times with an offset are converted to UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from tsreport.exceptions import DataError

# Non-ISO formats tried when a column is not ISO-8601; each is tried on every value.
CANDIDATE_FORMATS = tuple(
    f"{date}{clock}"
    for date in (
        "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%m-%d-%Y", "%d.%m.%Y", "%m.%d.%Y", "%Y/%m/%d",
        "%d/%m/%y", "%m/%d/%y", "%Y%m%d", "%d %b %Y", "%b %d %Y", "%d-%b-%Y",
    )
    for clock in ("", " %H:%M", " %H:%M:%S")
)  # fmt: skip
_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d\d(?::?\d\d)?)$")  # after a clock time
_ISO = re.compile(
    r"^\d{4}-\d{2}(?:-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d\d(?::?\d\d)?)?)?)?$"
)


def parse_times(
    raw: pd.Series, *, column: str, source: str, time_format: str | None, row_label: Callable[[int], str]
) -> pd.Series:
    """Parse a time column: numbers stay numbers, strings become datetimes (UTC when they carry an offset).

    Raises
    ------
    DataError
        A value that does not match ``time_format``; or, without it, day/month ambiguity,
        mixed formats, or a mix of times with and without a UTC offset.
    """
    if pd.api.types.is_bool_dtype(raw):
        raise DataError(f"Time column '{column}' in {source} holds true/false values; it needs dates or numbers.")
    if pd.api.types.is_numeric_dtype(raw) and time_format is None:
        return raw
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw
    text = raw.astype(str).str.strip()
    if time_format is not None:
        return _with_format(text, time_format, column=column, source=source, row_label=row_label)
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all() and not text.str.fullmatch(r"\d{8}").all():
        return numbers
    iso = text.str.fullmatch(_ISO.pattern)
    if iso.all():
        return _iso(text, column=column, source=source, row_label=row_label)
    return _one_format(text, iso, column=column, source=source, row_label=row_label)


def format_times(times: pd.Series | np.ndarray) -> np.ndarray:
    """Display strings for parsed times: dates alone when every time is midnight, else date and time."""
    series = pd.Series(times)
    if not (pd.api.types.is_datetime64_any_dtype(series) or isinstance(series.dtype, pd.DatetimeTZDtype)):
        return np.array([_number_text(v) for v in series], dtype=object)
    naive = series.dt.tz_localize(None) if isinstance(series.dtype, pd.DatetimeTZDtype) else series
    suffix = "Z" if isinstance(series.dtype, pd.DatetimeTZDtype) else ""
    if (naive == naive.dt.normalize()).all() and not suffix:
        pattern = "%Y-%m-%d"
    elif (naive.dt.microsecond == 0).all():
        pattern = "%Y-%m-%d %H:%M:%S"
    else:
        pattern = "%Y-%m-%d %H:%M:%S.%f"
    return np.array([f"{t}{suffix}" for t in naive.dt.strftime(pattern)], dtype=object)


def _number_text(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _with_format(
    text: pd.Series, time_format: str, *, column: str, source: str, row_label: Callable[[int], str]
) -> pd.Series:
    parsed = pd.to_datetime(text, format=time_format, errors="coerce", utc="%z" in time_format or "%Z" in time_format)
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"Time column '{column}' in {source} holds {text.iloc[row]!r} at {row_label(row)}, which does not match "
            f"the schema's time_format {time_format!r} ({int(bad.sum())} such rows); fix the value or 'time_format'."
        )
    return parsed


def _iso(text: pd.Series, *, column: str, source: str, row_label: Callable[[int], str]) -> pd.Series:
    has_offset = text.str.contains(_OFFSET.pattern).to_numpy()
    if has_offset.any() and not has_offset.all():
        aware, naive = int(np.flatnonzero(has_offset)[0]), int(np.flatnonzero(~has_offset)[0])
        raise DataError(
            f"Time column '{column}' in {source} mixes times with a UTC offset ({text.iloc[aware]!r} at "
            f"{row_label(aware)}) and without one ({text.iloc[naive]!r} at {row_label(naive)}), so their order is "
            "unknown; write every time with its offset, or every time in one zone without offsets."
        )
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=bool(has_offset.all()))
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"Time column '{column}' in {source} holds {text.iloc[row]!r} at {row_label(row)}, which is not a valid "
            "date/time; fix the value, or set 'time_format' in the schema."
        )
    return parsed


def _one_format(
    text: pd.Series, iso: pd.Series, *, column: str, source: str, row_label: Callable[[int], str]
) -> pd.Series:
    unique = pd.Series(text.unique())
    readable = {}
    for candidate in CANDIDATE_FORMATS:
        parsed = pd.to_datetime(unique, format=candidate, errors="coerce")
        if parsed.notna().any():
            readable[candidate] = parsed
    complete: dict[str, pd.Series] = {}
    for fmt, parsed in readable.items():
        # Formats that read every value alike (01/01/2020 day- or month-first) are one reading.
        if parsed.notna().all() and not any(parsed.equals(other) for other in complete.values()):
            complete[fmt] = parsed
    if len(complete) == 1:
        (fmt,) = complete
        return pd.to_datetime(text, format=fmt)
    if len(complete) > 1:
        first, second = list(complete)[:2]
        differ = np.flatnonzero((complete[first] != complete[second]).to_numpy())
        value = unique.iloc[int(differ[0])] if differ.size else unique.iloc[0]
        row = int(np.flatnonzero((text == value).to_numpy())[0])
        formats = " or ".join(f'"{f}"' for f in list(complete)[:2])
        raise DataError(
            f"Time column '{column}' in {source} is ambiguous: {value!r} at {row_label(row)} reads as "
            f"{complete[first].iloc[int(differ[0]) if differ.size else 0]:%Y-%m-%d} with {first} and as "
            f"{complete[second].iloc[int(differ[0]) if differ.size else 0]:%Y-%m-%d} with {second}, and no value "
            f"tells them apart; set time_format: {formats} in the schema."
        )
    # No single format reads every value: show two rows written in different formats.
    best = max(readable, key=lambda f: int(readable[f].notna().sum()), default=None)
    if best is not None or iso.any():
        if iso.any() and (best is None or int(iso.sum()) >= int(readable[best].notna().sum())):
            inside = iso.to_numpy()
            described = "ISO-8601 (YYYY-MM-DD)"
        else:
            ok = set(unique[readable[best].notna().to_numpy()])
            inside = text.isin(ok).to_numpy()
            described = best
        a, b = int(np.flatnonzero(inside)[0]), int(np.flatnonzero(~inside)[0])
        raise DataError(
            f"Time column '{column}' in {source} mixes date formats: {text.iloc[a]!r} at {row_label(a)} is "
            f"{described}, but {text.iloc[b]!r} at {row_label(b)} is not; write every time in one format, and "
            "set 'time_format' in the schema if it is not ISO-8601."
        )
    raise DataError(
        f"Time column '{column}' in {source} holds {text.iloc[0]!r} at {row_label(0)}, which is not a date/time "
        "tsreport recognises; set 'time_format' (a strptime format such as \"%d/%m/%Y %H:%M\") in the schema."
    )
