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

from tsreport.exceptions import DataError, SchemaError

# Non-ISO formats tried when a column is not ISO-8601. Those with day and month as numbers are
# only ever used to name the time_format to set (see ``_refuse_day_month``).
CANDIDATE_FORMATS = tuple(
    f"{date}{clock}"
    for date in (
        "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%m-%d-%Y", "%d.%m.%Y", "%m.%d.%Y",
        "%d/%m/%y", "%m/%d/%y", "%d-%m-%y", "%m-%d-%y", "%d.%m.%y", "%m.%d.%y",
        "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d",
        "%d %b %Y", "%d-%b-%Y", "%d-%b-%y", "%b %d %Y", "%b %d, %Y", "%d %B %Y", "%B %d %Y", "%B %d, %Y",
    )
    for clock in ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f")
)  # fmt: skip
#: Candidates are tried on this many distinct values first (see ``_one_format``).
_SAMPLE = 2000
_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d\d(?::?\d\d)?)$")  # after a clock time
_ISO = re.compile(r"^\d{4}-\d{2}(?:-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d\d(?::?\d\d)?)?)?)?$")


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
    try:
        parsed = pd.to_datetime(
            text, format=time_format, errors="coerce", utc="%z" in time_format or "%Z" in time_format
        )
    except ValueError as error:  # a directive strptime does not know, such as %Q
        raise SchemaError(
            f"The schema's time_format {time_format!r} is not a strptime format ({error}); use the codes of Python's "
            'datetime.strptime, e.g. "%d/%m/%Y %H:%M".'
        ) from None
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"Time column '{column}' in {source} holds {text.iloc[row]!r} at {row_label(row)}, which does not match "
            f"the schema's time_format {time_format!r} ({_rows(int(bad.sum()))} in all); fix the value or 'time_format'."
        )
    return parsed


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


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
    """The one candidate format that reads every value, refusing day/month strings and mixed formats."""
    unique = pd.Series(text.unique())
    # Every candidate is tried on a sample first; only those that read all of it are tried on every
    # value, so a column of a million distinct times costs one or two full parses, not forty.
    sample = unique.iloc[:_SAMPLE]
    hits: dict[str, int] = {}
    for candidate in CANDIDATE_FORMATS:
        count = int(pd.to_datetime(sample, format=candidate, errors="coerce").notna().sum())
        if count:
            hits[candidate] = count
    readings: dict[str, pd.Series] = {}
    for fmt in (f for f, count in hits.items() if count == len(sample)):
        parsed = pd.to_datetime(unique, format=fmt, errors="coerce")
        # Formats that read every value alike (01/01/2020 day- or month-first) are one reading.
        if parsed.notna().all() and not any(parsed.equals(other) for other in readings.values()):
            readings[fmt] = parsed
    if len(readings) == 1 and not _day_month(next(iter(readings))):
        return pd.to_datetime(text, format=next(iter(readings)))
    if readings and all(_day_month(fmt) for fmt in readings):
        _refuse_day_month(text, unique, readings, column=column, source=source, row_label=row_label)
    if len(readings) > 1:
        shown = " or ".join(f'"{f}"' for f in readings)
        raise DataError(
            f"Time column '{column}' in {source} reads differently with {shown}; tsreport does not guess: "
            f"set time_format in the schema to the one it is written in."
        )
    # No single format reads every value: show two rows written in different formats.
    best = max(hits, key=lambda f: hits[f], default=None)
    best_read = pd.to_datetime(unique, format=best, errors="coerce").notna() if best else None
    if best is not None or iso.any():
        if iso.any() and (best_read is None or int(iso.sum()) >= int(best_read.sum())):
            inside = iso.to_numpy()
            described = "ISO-8601 (YYYY-MM-DD)"
        else:
            inside = text.isin(set(unique[best_read.to_numpy()])).to_numpy()
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


def _day_month(fmt: str) -> bool:
    """A format whose date starts with day and month as numbers, in an order that is only a convention."""
    return re.match(r"%[dm][/.-]%[dm]", fmt) is not None


def _swapped(fmt: str) -> str:
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def _refuse_day_month(
    text: pd.Series,
    unique: pd.Series,
    readings: dict[str, pd.Series],
    *,
    column: str,
    source: str,
    row_label: Callable[[int], str],
) -> None:
    """Numeric day/month dates are never read without ``time_format``, even when a day above 12 would tell.

    One stray row must not decide the order of a whole column: in month-first dates that fall on
    days 1-12 (monthly data, say), a single mistyped '13/01/2020' would otherwise make every row
    read day first. The message names two rows that conflict and the ``time_format`` to set.
    """

    def row_of(index: int) -> int:
        return int(np.flatnonzero((text == unique.iloc[index]).to_numpy())[0])

    def shown(index: int) -> str:
        return f"{unique.iloc[index]!r} at {row_label(row_of(index))}"

    first = next(iter(readings))
    day_first = first if first.startswith("%d") else _swapped(first)
    month_first = _swapped(day_first)
    if len(readings) == 1 and first == day_first:
        other = pd.to_datetime(unique, format=month_first, errors="coerce")
        only, only_name = readings[first], "day first"
    elif len(readings) == 1:
        other = pd.to_datetime(unique, format=day_first, errors="coerce")
        only, only_name = readings[first], "month first"
    else:
        _refuse_either_way(unique, readings, day_first, month_first, shown, column=column, source=source)
        return
    either = np.flatnonzero((other.notna() & (other != only)).to_numpy())
    single = np.flatnonzero(other.isna().to_numpy())
    a = int(either[0]) if either.size else 0
    b = int(single[0]) if single.size and int(single[0]) != a else (1 if len(unique) > 1 else 0)
    pair = (
        f"{shown(a)} reads day first or month first, and {shown(b)} only {only_name}"
        if either.size
        else f"{shown(a)} and {shown(b)} read only {only_name}"
    )
    raise DataError(
        f"Time column '{column}' in {source} holds numeric day/month dates, which tsreport does not read without "
        f"'time_format': {pair}. If every date is {only_name}, set time_format: \"{first}\" in the schema."
    )


def _refuse_either_way(
    unique: pd.Series,
    readings: dict[str, pd.Series],
    day_first: str,
    month_first: str,
    shown: Callable[[int], str],
    *,
    column: str,
    source: str,
) -> None:
    """Both orders read every value: name two rows whose order flips between the readings."""
    days = readings.get(day_first, pd.to_datetime(unique, format=day_first, errors="coerce"))
    months = readings.get(month_first, pd.to_datetime(unique, format=month_first, errors="coerce"))
    order = np.argsort(days.to_numpy(), kind="stable")
    flips = np.flatnonzero(np.diff(months.to_numpy()[order]) < np.timedelta64(0))
    if flips.size:
        a, b = int(order[flips[0]]), int(order[flips[0] + 1])
    else:
        differ = np.flatnonzero((days != months).to_numpy())
        a, b = int(differ[0]), int(differ[1]) if differ.size > 1 else 0
    spacing = {fmt: _irregularity(parsed) for fmt, parsed in ((day_first, days), (month_first, months))}
    likely = min(spacing, key=spacing.get) if spacing[day_first] != spacing[month_first] else None
    choices = [day_first, month_first] if likely != month_first else [month_first, day_first]
    hint = " (likely: it spaces the times more evenly)" if likely else ""
    raise DataError(
        f"Time column '{column}' in {source} has dates that read day first or month first: {shown(a)} and "
        f"{shown(b)} are {_day(days, a)} and {_day(days, b)} read day first, {_day(months, a)} and "
        f'{_day(months, b)} read month first. tsreport does not guess: set time_format: "{choices[0]}"{hint} or '
        f'"{choices[1]}" in the schema.'
    )


def _day(parsed: pd.Series, index: int) -> str:
    return f"{parsed.iloc[index]:%Y-%m-%d}"


def _irregularity(parsed: pd.Series) -> int:
    """How many different gaps separate the sorted distinct times (1 for an evenly spaced series).

    Calendar months (28 to 31 days) and years (365 or 366 days) count as even steps: monthly
    data read one way is as regular as daily data read the other, and then neither is likely.
    """
    times = np.sort(parsed.dropna().unique())
    if times.size < 2:
        return 0
    gaps = np.diff(times).astype("timedelta64[s]").astype(np.int64)
    days = gaps / 86_400
    if np.all(days == np.round(days)) and (np.all((days >= 28) & (days <= 31)) or np.all(np.isin(days, (365, 366)))):
        return 1
    return int(np.unique(gaps).size)


def parse_one(text: str, time_format: str | None) -> pd.Timestamp | None:
    """One time written by a user (``--explain-at``), read as the column is: with ``time_format``, or
    as ISO-8601; in UTC when it carries an offset. None when it is neither."""
    text = text.strip()
    if time_format is not None:
        fmt, utc = time_format, "%z" in time_format or "%Z" in time_format
    elif _ISO.fullmatch(text):
        fmt, utc = "ISO8601", _OFFSET.search(text) is not None
    else:
        return None
    parsed = pd.to_datetime(pd.Series([text]), format=fmt, errors="coerce", utc=utc).iloc[0]
    if pd.isna(parsed):
        return None
    return parsed.tz_convert("UTC").tz_localize(None) if parsed.tzinfo is not None else parsed
