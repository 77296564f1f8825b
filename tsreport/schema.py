"""The field schema (CONTRACT §3): parse, fill defaults, validate against the data.

A field is a named group of input channels (one column, or several such as a
one-hot weekday). Every analysis reports per field, so the schema is the
vocabulary of the whole report.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

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


def _unknown_key(where: str, key: Any, valid: tuple[str, ...]) -> SchemaError:
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return SchemaError(f"{where}: unknown key '{key}'.{hint} Valid keys: {', '.join(valid)}.")


def load_schema(path: str | Path) -> Schema:
    """Read and parse a YAML or JSON schema file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SchemaError(f"Cannot read schema {path}: {error.strerror}.") from None
    except UnicodeDecodeError:
        raise SchemaError(f"Schema {path} is not UTF-8 text; save it as YAML or JSON.") from None
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            raw = yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise SchemaError(f"Schema {path} is not valid YAML/JSON: {error}") from None
    return parse_schema(raw, source=str(path))


def _scale(value: Any, where: str) -> Scale | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SchemaError(f"{where}: 'scale' must be a mapping {{mean: .., std: ..}}; got {value!r}.")
    for key in value:
        if key not in _SCALE_KEYS:
            raise _unknown_key(f"{where}, scale", key, _SCALE_KEYS)
    try:
        mean = float(value.get("mean", 0.0))
        std = float(value.get("std", 1.0))
    except (TypeError, ValueError):
        raise SchemaError(f"{where}: scale mean and std must be numbers; got {dict(value)!r}.") from None
    if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
        raise SchemaError(f"{where}: scale needs a finite mean and a positive std; got mean={mean}, std={std}.")
    return Scale(mean, std)


def _int_in(raw: Mapping[str, Any], key: str, default: int, low: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SchemaError(f"{where}: '{key}' must be an integer >= {low}; got {value!r}.")
    return value


def _choice(raw: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...], where: str) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise SchemaError(f"{where}: '{key}' must be one of {', '.join(choices)}; got {value!r}.")
    return value


def _baseline(value: Any, where: str) -> str | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if value in BASELINES:
        return value
    raise SchemaError(f"{where}: 'baseline' must be one of {', '.join(BASELINES)} or a number; got {value!r}.")


def _output(value: Any, task: str, where: str) -> Output | None:
    """Parse ``output: {quantiles: [0.1, 0.5, 0.9], explain: median | 0.9 | interval}``."""
    if value is None:
        return None
    if task != "regression":
        raise SchemaError(f"{where}: 'output' (quantile heads) applies to regression only; remove it.")
    if not isinstance(value, Mapping):
        raise SchemaError(f"{where}: 'output' must be a mapping such as {{quantiles: [0.1, 0.5, 0.9]}}; got {value!r}.")
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
            f"the model's last output axis; got {quantiles!r}."
        )
    quantiles_t = tuple(float(q) for q in quantiles)
    if len(set(quantiles_t)) != len(quantiles_t) or list(quantiles_t) != sorted(quantiles_t):
        raise SchemaError(f"{where}: 'output: quantiles' must be distinct and increasing; got {quantiles!r}.")
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
        f"got {explain!r}."
    )


def parse_schema(raw: Any, *, source: str = "schema") -> Schema:
    """Turn a loaded YAML/JSON mapping into a :class:`Schema`, checking its structure.

    Checks that need the data (columns exist, are numeric, ...) are in
    :func:`validate_against`.
    """
    where = f"Schema {source}"
    if not isinstance(raw, Mapping):
        raise SchemaError(f"{where} must be a mapping with keys such as task, window, target, fields.")
    for key in raw:
        if key not in _TOP_KEYS:
            raise _unknown_key(where, key, _TOP_KEYS)
    version = raw.get("version", 1)
    if version != 1:
        raise SchemaError(f"{where}: 'version' must be 1 (the only schema version); got {version!r}.")
    for required in ("window", "target", "fields"):
        if required not in raw:
            raise SchemaError(f"{where}: the required key '{required}' is missing.")
    task = _choice(raw, "task", "regression", TASKS, where)
    window = _int_in(raw, "window", 0, 1, where)
    stride = _int_in(raw, "stride", 1, 1, where)
    horizon = _int_in(raw, "horizon", 1, 1, where)
    layout = _choice(raw, "layout", "btc", LAYOUTS, where)
    missing = _choice(raw, "missing", "error", MISSING, where)
    baseline = _baseline(raw.get("baseline", "mean"), where)
    for key in ("time", "group"):
        if raw.get(key) is not None and not isinstance(raw.get(key), str):
            raise SchemaError(f"{where}: '{key}' must be a column name; got {raw.get(key)!r}.")

    target_raw = raw["target"]
    if isinstance(target_raw, str):
        target = Target(target_raw)
    elif isinstance(target_raw, Mapping):
        for key in target_raw:
            if key not in _TARGET_KEYS:
                raise _unknown_key(f"{where}, target", key, _TARGET_KEYS)
        if not isinstance(target_raw.get("column"), str):
            raise SchemaError(f"{where}: target needs a 'column' (a column name).")
        target = Target(target_raw["column"], _scale(target_raw.get("scale"), f"{where}, target"))
    else:
        raise SchemaError(f"{where}: 'target' must be a column name or {{column: .., scale: ..}}.")
    if task == "classification" and target.scale is not None:
        raise SchemaError(f"{where}: a classification target takes no 'scale'; remove it.")

    classes = raw.get("classes")
    if classes is not None:
        if task != "classification":
            raise SchemaError(f"{where}: 'classes' applies to classification only; remove it.")
        if not isinstance(classes, list) or len(classes) < 2 or len(set(map(str, classes))) != len(classes):
            raise SchemaError(f"{where}: 'classes' must list at least two distinct label values.")
        classes = tuple(classes)

    fields_raw = raw["fields"]
    if not isinstance(fields_raw, list) or not fields_raw:
        raise SchemaError(f"{where}: 'fields' must be a non-empty list of fields.")
    fields: list[Field] = []
    seen_names: set[str] = set()
    for position, item in enumerate(fields_raw, start=1):
        if isinstance(item, str):  # shorthand: a bare column name is a one-column field
            item = {"name": item, "columns": [item]}
        if not isinstance(item, Mapping):
            raise SchemaError(f"{where}: field #{position} must be a mapping with name and columns.")
        name = item.get("name")
        fwhere = f"{where}, field #{position}" + (f" '{name}'" if name else "")
        for key in item:
            if key not in _FIELD_KEYS:
                raise _unknown_key(fwhere, key, _FIELD_KEYS)
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{fwhere}: 'name' is missing.")
        if name in seen_names:
            raise SchemaError(f"{where}: the field name '{name}' is used twice; names must be unique.")
        seen_names.add(name)
        columns = item.get("columns", [name])
        if isinstance(columns, str):
            columns = [columns]
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            raise SchemaError(f"{fwhere}: 'columns' must be a non-empty list of column names.")
        kind = _choice(item, "kind", "numeric", KINDS, fwhere)
        field_baseline = item.get("baseline")
        fields.append(
            Field(
                name=name,
                columns=tuple(columns),
                kind=kind,
                scale=_scale(item.get("scale"), fwhere),
                baseline=None if field_baseline is None else _baseline(field_baseline, fwhere),
            )
        )
    owner: dict[str, str] = {}
    for field in fields:
        for column in field.columns:
            if column in owner:
                raise SchemaError(
                    f"{where}: column '{column}' is used twice (fields '{owner[column]}' and "
                    f"'{field.name}'); each input channel belongs to one field."
                )
            owner[column] = field.name
    for key in ("time", "group"):
        column = raw.get(key)
        if column is not None and column in owner:
            raise SchemaError(
                f"{where}: column '{column}' is both the {key} column and in field "
                f"'{owner[column]}'; a {key} column cannot be a model input."
            )
    if raw.get("time") is not None and raw.get("time") == raw.get("group"):
        raise SchemaError(f"{where}: 'time' and 'group' name the same column '{raw['time']}'.")
    time_format = raw.get("time_format")
    if time_format is not None:
        if not isinstance(time_format, str) or "%" not in time_format:
            raise SchemaError(
                f"{where}: 'time_format' must be a strptime format such as \"%d/%m/%Y\"; got {time_format!r}."
            )
        if raw.get("time") is None:
            raise SchemaError(f"{where}: 'time_format' needs a 'time' column; set 'time' or remove 'time_format'.")
    output = _output(raw.get("output"), task, where)

    return Schema(
        version=1,
        task=task,
        time=raw.get("time"),
        group=raw.get("group"),
        window=window,
        stride=stride,
        horizon=horizon,
        target=target,
        layout=layout,
        missing=missing,
        baseline=baseline,
        fields=tuple(fields),
        classes=classes,
        source=source,
        time_format=time_format,
        output=output,
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
