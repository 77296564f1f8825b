"""The field schema (CONTRACT §3): parse, fill defaults, validate against the data.

A field is a named group of input channels (one column, or several such as a
one-hot weekday). Every analysis reports per field, so the schema is the
vocabulary of the whole report.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsreport import safeload
from tsreport.exceptions import SchemaError

TASKS = ("regression", "classification")
LAYOUTS = ("btc", "bct", "flat")
MISSING = ("error", "drop", "ffill")
BASELINES = ("mean", "median", "zero")
KINDS = ("numeric", "categorical")

_TOP_KEYS = (
    "version", "task", "time", "group", "window", "stride", "horizon", "target", "layout",
    "missing", "baseline", "fields", "classes", "time_format", "output",
)  # fmt: skip
_OUTPUT_KEYS = ("quantiles", "explain")
_FIELD_KEYS = ("name", "columns", "kind", "scale", "baseline")
_TARGET_KEYS = ("column", "scale")
_SCALE_KEYS = ("mean", "std")

#: Largest ``window`` and ``horizon`` (time steps), and ``stride``: far beyond any real model,
#: low enough that a typo cannot ask for terabytes.
MAX_STEPS = 100_000
MAX_STRIDE = 1_000_000_000
#: Largest window × channels: 1 MiB of float32 per window, so that the 512 windows explained by
#: default hold 512 MiB per copy (analyses keep a few copies).
MAX_WINDOW_CELLS = 262_144
_STEPS_MEANING = {
    "window": "A window holds this many time steps of every channel, and the explained windows are all in memory.",
    "horizon": "Each window's truth and prediction hold this many steps, and they are all in memory.",
    "stride": "A stride longer than any series is surely a typo.",
}
_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 40, 40, 4, 4, 3


@dataclasses.dataclass(frozen=True)
class Scale:
    """The standardisation the model was trained with: model value = (raw - mean) / std."""

    mean: float
    std: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}


@dataclasses.dataclass(frozen=True)
class Field:
    """One named input field, owning one or more consecutive input channels."""

    name: str
    columns: tuple[str, ...]
    kind: str = "numeric"
    scale: Scale | None = None
    baseline: str | float | None = None  # None: the schema's default

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": list(self.columns),
            "kind": self.kind,
            "scale": self.scale.to_dict() if self.scale else None,
            "baseline": self.baseline,
        }


@dataclasses.dataclass(frozen=True)
class Target:
    column: str
    scale: Scale | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "scale": self.scale.to_dict() if self.scale else None}


@dataclasses.dataclass(frozen=True)
class Output:
    """The model's last output axis when it holds quantiles (CONTRACT §3 ``output``).

    ``explain`` is what the attributions explain: one of ``quantiles`` (a float), or
    ``"interval"``, the width between the highest and the lowest quantile (what drives
    uncertainty).
    """

    quantiles: tuple[float, ...]
    explain: float | str

    @property
    def point_index(self) -> int:
        """The quantile used as the point forecast (performance, predictions): the one nearest 0.5."""
        return min(range(len(self.quantiles)), key=lambda i: (abs(self.quantiles[i] - 0.5), i))

    @property
    def explain_index(self) -> int | None:
        """Index of the explained quantile; None when the interval width is explained."""
        return None if self.explain == "interval" else self.quantiles.index(float(self.explain))

    def to_dict(self) -> dict[str, Any]:
        return {"quantiles": list(self.quantiles), "explain": self.explain}


@dataclasses.dataclass(frozen=True)
class Schema:
    """A parsed schema with every default filled in."""

    task: str
    window: int
    target: Target
    fields: tuple[Field, ...]
    version: int = 1
    time: str | None = None
    group: str | None = None
    stride: int = 1
    horizon: int = 1
    layout: str = "btc"
    missing: str = "error"
    baseline: str | float = "mean"
    classes: tuple[Any, ...] | None = None  # classification: label values in the model's output order
    source: str = "schema"
    time_format: str | None = None  # strptime format of the time column; None: unambiguous ISO-like only
    output: Output | None = None  # regression: the model's last output axis holds these quantiles

    @property
    def columns(self) -> list[str]:
        """The input channels' columns, in the model's channel order."""
        return [column for field in self.fields for column in field.columns]

    @property
    def channels(self) -> int:
        return len(self.columns)

    @property
    def field_names(self) -> list[str]:
        return [field.name for field in self.fields]

    def channel_slices(self) -> dict[str, slice]:
        """Each field's channels as a slice of the channel axis."""
        slices, start = {}, 0
        for field in self.fields:
            slices[field.name] = slice(start, start + len(field.columns))
            start += len(field.columns)
        return slices

    def field_baseline(self, field: Field) -> str | float:
        return self.baseline if field.baseline is None else field.baseline

    def to_dict(self) -> dict[str, Any]:
        """The schema as understood, defaults filled in (for results.json)."""
        return {
            "version": self.version,
            "task": self.task,
            "time": self.time,
            "group": self.group,
            "window": self.window,
            "stride": self.stride,
            "horizon": self.horizon if self.task == "regression" else None,
            "target": self.target.to_dict(),
            "layout": self.layout,
            "missing": self.missing,
            "baseline": self.baseline,
            "classes": list(self.classes) if self.classes is not None else None,
            "fields": [field.to_dict() for field in self.fields],
            "time_format": self.time_format,
            "output": self.output.to_dict() if self.output else None,
        }


def _closest(name: str, options: list[str], n: int = 3) -> str:
    close = difflib.get_close_matches(name, options, n=n, cutoff=0.5)
    if not close:
        close = [o for o in options if name.lower() in o.lower() or o.lower() in name.lower()][:n]
    return ", ".join(repr(c) for c in close)


def _show(value: Any) -> str:
    """A value as it appears in a message: one line, at most a few dozen characters."""
    return _SHORT.repr(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _got(value: Any) -> str:
    """``got VALUE (its type)``: what a type error shows of the value it refuses."""
    if value is None:
        return "got nothing (null)"
    if isinstance(value, (bool, np.bool_)):
        kind = "a boolean"
    elif isinstance(value, str):
        kind = "a string"
        try:
            float(value)
            kind += ": write the number without quotes"
        except ValueError:
            pass
    elif _is_int(value):
        kind = "an integer"
    elif _is_number(value):
        kind = "a number with a fraction" if math.isfinite(value) and value != int(value) else "a float"
    elif isinstance(value, Mapping):
        kind = "a mapping"
    elif isinstance(value, list):
        kind = "a list"
    else:
        kind = f"a {type(value).__name__}"
    plain = value.item() if isinstance(value, np.generic) else value  # 8.0, not np.float64(8.0) (numpy 2 repr)
    return f"got {_show(plain)} ({kind})"


def _unknown_key(where: str, key: Any, valid: tuple[str, ...]) -> SchemaError:
    close = difflib.get_close_matches(str(key)[:100], valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    shown = str(key) if len(str(key)) <= 60 else f"{str(key)[:30]}...{str(key)[-20:]}"
    return SchemaError(f"{where}: unknown key '{shown}'.{hint} Valid keys: {', '.join(valid)}.")


def _check_keys(value: Mapping[Any, Any], valid: tuple[str, ...], where: str) -> None:
    for key in value:
        if key not in valid:
            raise _unknown_key(where, key, valid)


def load_schema(path: str | Path) -> Schema:
    """Read and parse a YAML or JSON schema file, within :data:`tsreport.safeload.SCHEMA_LIMITS`."""
    path = Path(path)
    load = safeload.load_json if path.suffix.lower() == ".json" else safeload.load_yaml
    raw = load(path, role="schema", limits=safeload.SCHEMA_LIMITS, error=SchemaError)
    return parse_schema(raw, source=str(path))


def _scale_number(value: Mapping[str, Any], key: str, default: float, where: str) -> float:
    number = value.get(key, default)
    if not _is_number(number):
        raise SchemaError(f"{where}: 'scale: {key}' must be a number; {_got(number)}.")
    return float(number)


def _scale(value: Any, where: str) -> Scale | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SchemaError(f"{where}: 'scale' must be a mapping {{mean: .., std: ..}}; {_got(value)}.")
    _check_keys(value, _SCALE_KEYS, f"{where}, scale")
    mean = _scale_number(value, "mean", 0.0, where)
    std = _scale_number(value, "std", 1.0, where)
    if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
        raise SchemaError(f"{where}: scale needs a finite mean and a positive std; got mean={mean}, std={std}.")
    return Scale(mean, std)


def _int_in(raw: Mapping[str, Any], key: str, default: int, low: int, high: int, where: str) -> int:
    value = raw.get(key, default)
    if not _is_int(value) or value < low:
        raise SchemaError(f"{where}: '{key}' must be an integer in [{low}, {high}]; {_got(value)}.")
    if value > high:
        raise SchemaError(
            f"{where}: '{key}' must be an integer in [{low}, {high}]; got {_show(value)}. {_STEPS_MEANING[key]} "
            "Check the value."
        )
    return int(value)


def _choice(raw: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...], where: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or value not in choices:
        raise SchemaError(f"{where}: '{key}' must be one of {', '.join(choices)}; {_got(value)}.")
    return value


def _baseline(value: Any, where: str) -> str | float:
    if _is_number(value) and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and value in BASELINES:
        return value
    raise SchemaError(f"{where}: 'baseline' must be one of {', '.join(BASELINES)} or a finite number; {_got(value)}.")


def _column_name(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    """An optional column name (``time``, ``group``)."""
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise SchemaError(f"{where}: '{key}' must be a column name (a string); {_got(value)}.")
    return value


def _version(raw: Mapping[str, Any], where: str) -> None:
    version = raw.get("version", 1)
    if not _is_int(version) or version != 1:
        raise SchemaError(f"{where}: 'version' must be 1 (the only schema version); {_got(version)}.")


def _target(value: Any, task: str, where: str) -> Target:
    if isinstance(value, str):
        target = Target(value)
    elif isinstance(value, Mapping):
        _check_keys(value, _TARGET_KEYS, f"{where}, target")
        if "column" not in value:
            raise SchemaError(f"{where}: target needs a 'column' (a column name).")
        if not isinstance(value["column"], str):
            raise SchemaError(f"{where}: 'target: column' must be a column name (a string); {_got(value['column'])}.")
        target = Target(value["column"], _scale(value.get("scale"), f"{where}, target"))
    else:
        raise SchemaError(f"{where}: 'target' must be a column name or {{column: .., scale: ..}}; {_got(value)}.")
    if task == "classification" and target.scale is not None:
        raise SchemaError(f"{where}: a classification target takes no 'scale'; remove it.")
    return target


def _classes(value: Any, task: str, where: str) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if task != "classification":
        raise SchemaError(f"{where}: 'classes' applies to classification only; remove it.")
    if not isinstance(value, list):
        raise SchemaError(f"{where}: 'classes' must be a list of label values; {_got(value)}.")
    for position, label in enumerate(value, start=1):
        if not (isinstance(label, (str, bool)) or (_is_number(label) and math.isfinite(label))):
            shown = _got(label).removeprefix("got ")
            raise SchemaError(
                f"{where}: 'classes' must list label values (strings, numbers or booleans); item #{position} is {shown}."
            )
    if len(value) < 2 or len(set(map(str, value))) != len(value):
        raise SchemaError(f"{where}: 'classes' must list at least two distinct label values.")
    return tuple(value)


def _columns_hint(columns: Any) -> str:
    """For a nested list of names, the flat list the user probably meant."""
    if not isinstance(columns, list):
        return ""
    flat: list[Any] = []
    stack = list(reversed(columns))
    while stack and len(flat) <= 20:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    if flat and len(flat) <= 20 and not stack and all(isinstance(c, str) for c in flat):
        return f" Write it flat: columns: [{', '.join(flat)}]."
    return ""


def _field_columns(item: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    columns = item.get("columns", [name])
    if isinstance(columns, str):
        columns = [columns]
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise SchemaError(
            f"{where}: 'columns' must be a non-empty list of column names (strings); {_got(columns)}."
            + _columns_hint(columns)
        )
    return tuple(columns)


def _field(item: Any, position: int, where: str) -> Field:
    if isinstance(item, str):  # shorthand: a bare column name is a one-column field
        item = {"name": item, "columns": [item]}
    if not isinstance(item, Mapping):
        raise SchemaError(
            f"{where}: field #{position} must be a column name or a mapping with name and columns; {_got(item)}."
        )
    name = item.get("name")
    fwhere = f"{where}, field #{position}" + (f" '{name}'" if isinstance(name, str) and name else "")
    _check_keys(item, _FIELD_KEYS, fwhere)
    if name is None:
        raise SchemaError(f"{fwhere}: 'name' is missing.")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"{fwhere}: 'name' must be a non-empty string (the field's name); {_got(name)}.")
    field_baseline = item.get("baseline")
    return Field(
        name=name,
        columns=_field_columns(item, name, fwhere),
        kind=_choice(item, "kind", "numeric", KINDS, fwhere),
        scale=_scale(item.get("scale"), fwhere),
        baseline=None if field_baseline is None else _baseline(field_baseline, fwhere),
    )


def _fields(value: Any, where: str) -> tuple[Field, ...]:
    if not isinstance(value, list) or not value:
        hint = " Write each field as a list item: - {name: .., columns: [..]}." if isinstance(value, Mapping) else ""
        raise SchemaError(f"{where}: 'fields' must be a non-empty list of fields; {_got(value)}.{hint}")
    fields: list[Field] = []
    seen_names: set[str] = set()
    for position, item in enumerate(value, start=1):
        field = _field(item, position, where)
        if field.name in seen_names:
            raise SchemaError(f"{where}: the field name '{field.name}' is used twice; names must be unique.")
        seen_names.add(field.name)
        fields.append(field)
    return tuple(fields)


def _check_column_owners(fields: tuple[Field, ...], time: str | None, group: str | None, where: str) -> None:
    """Each input channel belongs to one field, and neither time nor group is a model input."""
    owner: dict[str, str] = {}
    for field in fields:
        for column in field.columns:
            if column in owner:
                raise SchemaError(
                    f"{where}: column '{column}' is used twice (fields '{owner[column]}' and "
                    f"'{field.name}'); each input channel belongs to one field."
                )
            owner[column] = field.name
    for key, column in (("time", time), ("group", group)):
        if column is not None and column in owner:
            raise SchemaError(
                f"{where}: column '{column}' is both the {key} column and in field "
                f"'{owner[column]}'; a {key} column cannot be a model input."
            )
    if time is not None and time == group:
        raise SchemaError(f"{where}: 'time' and 'group' name the same column '{time}'.")


def _check_window_cells(window: int, fields: tuple[Field, ...], where: str) -> None:
    channels = sum(len(field.columns) for field in fields)
    if window * channels > MAX_WINDOW_CELLS:
        raise SchemaError(
            f"{where}: a window of {window} steps × {channels} channels holds {window * channels:,} values, above "
            f"the limit of {MAX_WINDOW_CELLS:,} (1 MiB of float32 per window, so that 512 explained windows fit in "
            "512 MiB). Use a shorter window or fewer columns."
        )


def _time_format(raw: Mapping[str, Any], where: str) -> str | None:
    time_format = raw.get("time_format")
    if time_format is not None:
        if not isinstance(time_format, str) or "%" not in time_format:
            raise SchemaError(
                f"{where}: 'time_format' must be a strptime format such as \"%d/%m/%Y\"; {_got(time_format)}."
            )
        if raw.get("time") is None:
            raise SchemaError(f"{where}: 'time_format' needs a 'time' column; set 'time' or remove 'time_format'.")
    return time_format


def _output(value: Any, task: str, where: str) -> Output | None:
    """Parse ``output: {quantiles: [0.1, 0.5, 0.9], explain: median | 0.9 | interval}``."""
    if value is None:
        return None
    if task != "regression":
        raise SchemaError(f"{where}: 'output' (quantile heads) applies to regression only; remove it.")
    if not isinstance(value, Mapping):
        raise SchemaError(f"{where}: 'output' must be a mapping such as {{quantiles: [0.1, 0.5, 0.9]}}; {_got(value)}.")
    for key in value:
        if key not in _OUTPUT_KEYS:
            raise _unknown_key(f"{where}, output", key, _OUTPUT_KEYS)
    quantiles = value.get("quantiles")
    if (
        not isinstance(quantiles, list)
        or not quantiles
        or not all(isinstance(q, (int, float)) and not isinstance(q, bool) and 0 < q < 1 for q in quantiles)
    ):
        raise SchemaError(
            f"{where}: 'output: quantiles' must be a list of numbers strictly between 0 and 1, in the order of "
            f"the model's last output axis; {_got(quantiles)}."
        )
    quantiles_t = tuple(float(q) for q in quantiles)
    if len(set(quantiles_t)) != len(quantiles_t) or list(quantiles_t) != sorted(quantiles_t):
        raise SchemaError(f"{where}: 'output: quantiles' must be distinct and increasing; got {_show(quantiles)}.")
    explain = value.get("explain", "median")
    if explain == "median":
        if 0.5 not in quantiles_t:
            raise SchemaError(
                f"{where}: 'output' explains the median by default, but 0.5 is not among the quantiles "
                f"{list(quantiles_t)}; set 'explain' to one of them or to 'interval'."
            )
        return Output(quantiles_t, 0.5)
    if explain == "interval":
        if len(quantiles_t) < 2:
            raise SchemaError(f"{where}: 'output: explain: interval' needs at least two quantiles.")
        return Output(quantiles_t, "interval")
    if isinstance(explain, (int, float)) and not isinstance(explain, bool) and float(explain) in quantiles_t:
        return Output(quantiles_t, float(explain))
    raise SchemaError(
        f"{where}: 'output: explain' must be median, interval or one of the quantiles {list(quantiles_t)}; "
        f"{_got(explain)}."
    )


def parse_schema(raw: Any, *, source: str = "schema") -> Schema:
    """Turn a loaded YAML/JSON mapping into a :class:`Schema`, checking its structure.

    Every value of the wrong type is refused with a message naming the key and the expected
    type. Checks that need the data (columns exist, are numeric, ...) are in
    :func:`validate_against`.
    """
    where = f"Schema {source}"
    if not isinstance(raw, Mapping):
        raise SchemaError(f"{where} must be a mapping with keys such as task, window, target, fields; {_got(raw)}.")
    _check_keys(raw, _TOP_KEYS, where)
    _version(raw, where)
    for required in ("window", "target", "fields"):
        if required not in raw:
            raise SchemaError(f"{where}: the required key '{required}' is missing.")
    task = _choice(raw, "task", "regression", TASKS, where)
    window = _int_in(raw, "window", 0, 1, MAX_STEPS, where)
    stride = _int_in(raw, "stride", 1, 1, MAX_STRIDE, where)
    horizon = _int_in(raw, "horizon", 1, 1, MAX_STEPS, where)
    layout = _choice(raw, "layout", "btc", LAYOUTS, where)
    missing = _choice(raw, "missing", "error", MISSING, where)
    baseline = _baseline(raw.get("baseline", "mean"), where)
    time, group = _column_name(raw, "time", where), _column_name(raw, "group", where)
    target = _target(raw["target"], task, where)
    classes = _classes(raw.get("classes"), task, where)
    fields = _fields(raw["fields"], where)
    _check_column_owners(fields, time, group, where)
    _check_window_cells(window, fields, where)
    return Schema(
        version=1,
        task=task,
        time=time,
        group=group,
        window=window,
        stride=stride,
        horizon=horizon,
        target=target,
        layout=layout,
        missing=missing,
        baseline=baseline,
        fields=fields,
        classes=classes,
        source=source,
        time_format=_time_format(raw, where),
        output=_output(raw.get("output"), task, where),
    )


def validate_against(schema: Schema, frame: pd.DataFrame, data_source: str) -> None:
    """Check the schema against the data frame: columns exist and are usable.

    Raises :class:`SchemaError` naming the column and the closest existing names.
    """
    where = f"Schema {schema.source}"
    available = [str(c) for c in frame.columns]
    needed: list[tuple[str, str]] = [(c, f"field '{f.name}'") for f in schema.fields for c in f.columns]
    needed.append((schema.target.column, "target"))
    if schema.time:
        needed.append((schema.time, "time"))
    if schema.group:
        needed.append((schema.group, "group"))
    for column, role in needed:
        if column not in frame.columns:
            close = _closest(column, available)
            hint = f" Closest existing columns: {close}." if close else ""
            raise SchemaError(
                f"{where}: column '{column}' ({role}) is not in {data_source}.{hint} "
                "Fix the name in the schema (tsreport schema DATA prints a draft)."
            )
    for field in schema.fields:
        for column in field.columns:
            _check_numeric(frame, column, f"field '{field.name}'", data_source)
    if schema.task == "regression":
        _check_numeric(frame, schema.target.column, "target", data_source)


def row_label(position: int) -> str:
    """A data row's 0-based position as users count it: data row n is line n + 1 of the CSV."""
    return f"row {position + 1} (line {position + 2})"


def _check_numeric(frame: pd.DataFrame, column: str, role: str, data_source: str) -> None:
    series = frame[column]
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna() & series.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SchemaError(
            f"Column '{column}' ({role}) in {data_source} is not numeric: {row_label(row)} holds "
            f"{series.iloc[row]!r}. Encode it as numbers (e.g. one-hot columns as a categorical "
            "field) or remove it from the schema."
        )
