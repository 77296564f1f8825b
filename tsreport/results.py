"""The Report: everything a run found, and results.json, its serialised form.

results.json is the source of truth: the HTML and PDF are rendered from a
Report, and a saved results.json can be re-rendered without the model. This
module owns it: the :class:`Report`, :data:`RESULTS_VERSION`, reading a saved
file back (:func:`load_results`, :meth:`Report.load`; ``tsreport diff`` and
``tsreport history`` read through them) and its JSON Schema,
``tsreport/schemas/results.schema.json`` (:func:`results_schema`).

RESULTS_VERSION log. The version is bumped when a key changes meaning or moves;
a new key is compatible (every reader treats an absent key as unknown) and is
logged here without a bump.

1. tsreport 0.1.0: ``tsreport_version``, ``results_version``, ``run`` (started,
   seconds, seed, device, argv, versions), ``inputs`` (model, data, schema: path
   and sha256 each), ``windows`` (total, explained, window, horizon, channels,
   groups, dropped, first_end, last_end), ``fields``, ``analyses`` (performance,
   permutation with ``interval``), ``ranking`` + ``ranking_source``, ``sanity``,
   ``warnings``, ``settings``. Added since, as new keys, without a bump:

   - the attribution battery: occlusion, gradient_x_input, integrated_gradients,
     saliency, sensitivity and combined entries (``field_importance``,
     ``time_profile``, ``heatmap``, ``field_direction``, ``notes``), later
     ``tsr``;
   - faithfulness, sanity_randomization and sanity_positive_control entries
     (their ``verdict`` beside ``status``; the top-level ``sanity`` block filled
     from them), ``share`` in the attribution entries;
   - predictions, attention and shap entries;
   - issue 9 (real inputs): ``analyses.performance.quantiles``,
     ``analyses.permutation.loss: pinball``, ``analyses.combined.per_step``,
     ``analyses.predictions.windows[].interval``,
     ``analyses.sanity_positive_control.controls.<kind>.trained`` and
     ``user_architecture_r2``;
   - issue 10 (audit jobs): nothing in results.json (the manifest and tables/
     sit beside it);
   - issue 11: the JSON Schema, which every reader now checks;
   - issue 12: ``run.engine`` (batch sizes used, the ``--batch-size auto`` probe's figures, the
     executor and its worker count) and ``settings.workers`` / ``settings.scheduler``;
     ``settings.batch_size`` may be ``"auto"``.

   No key has changed meaning or moved, so no older layout needs upgrading in
   memory. (An ``ok`` entry holding a null among its numbers, written before
   issue 9 enforced CONTRACT §5's "an analysis whose numbers are not all finite
   is failed", is refused by the schema with the key's path.)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import reprlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from tsreport import __version__, safeload
from tsreport.exceptions import InputError

RESULTS_VERSION = 1
SCHEMA_FILE = "results.schema.json"


@dataclasses.dataclass
class Report:
    """One run's findings; :meth:`to_dict` is exactly results.json (CONTRACT §5)."""

    run: dict[str, Any]
    inputs: dict[str, Any]
    windows: dict[str, Any]
    fields: list[str]
    analyses: dict[str, dict[str, Any]]
    ranking: list[str]
    ranking_source: str | None
    sanity: dict[str, dict[str, Any]]
    warnings: list[str]
    settings: dict[str, Any]
    tsreport_version: str = __version__
    results_version: int = RESULTS_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "tsreport_version": self.tsreport_version,
            "results_version": self.results_version,
            "run": self.run,
            "inputs": self.inputs,
            "windows": self.windows,
            "fields": list(self.fields),
            "analyses": self.analyses,
            "ranking": list(self.ranking),
            "ranking_source": self.ranking_source,
            "sanity": self.sanity,
            "warnings": list(self.warnings),
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "results.json") -> Report:
        """A Report from a parsed results.json; a key a file lacks is empty (see :func:`load_results`)."""
        check_version(data, source)
        return cls(
            run=data.get("run", {}),
            inputs=data.get("inputs", {}),
            windows=data.get("windows", {}),
            fields=list(data.get("fields", [])),
            analyses=data["analyses"],
            ranking=list(data.get("ranking", [])),
            ranking_source=data.get("ranking_source"),
            sanity=data.get("sanity", {}),
            warnings=list(data.get("warnings", [])),
            settings=data.get("settings", {}),
            tsreport_version=data.get("tsreport_version", "unknown"),
            results_version=data["results_version"],
        )

    def to_json(self) -> str:
        return json.dumps(_no_nan(self.to_dict()), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> Report:
        """Read a results.json written by ``tsreport explain`` (see :func:`load_results`)."""
        return cls.from_dict(load_results(path), path)


def _no_nan(value: Any) -> Any:
    """Replace NaN/inf by None everywhere (results.json holds plain floats or null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _no_nan(value.item())
    return value


# ---------------------------------------------------------------- reading


def _json_syntax_message(path: Path, line: int | None, column: int | None, what: str) -> str:
    where = f"{path}:{line}:{column}" if line is not None else str(path)
    return f"{where}: {what}; not valid JSON: give a results.json written by tsreport."


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results.json written by ``tsreport explain``, as a dict.

    Bounded (:data:`tsreport.safeload.RESULTS_LIMITS`), then checked: it must be a
    tsreport results.json of a version this tsreport reads, and every key it holds
    must have the type :func:`results_schema` gives. A key it lacks is allowed (a
    file from another minor version); readers treat it as unknown.

    Raises
    ------
    InputError
        The file cannot be read, is not JSON, is not a tsreport results.json, was
        written by a newer tsreport (a ``results_version`` this one cannot read), or
        holds a key of the wrong type or a number that is not finite. The message is
        one line naming the file (and the key's path).
    """
    path = Path(path)
    data = safeload.load_json(
        path, role="results file", limits=safeload.RESULTS_LIMITS, error=InputError, syntax=_json_syntax_message
    )
    if not isinstance(data, dict) or not isinstance(data.get("analyses"), dict) or "results_version" not in data:
        raise InputError(f"{path} is not a tsreport results.json (no 'analyses' or 'results_version').")
    check_version(data, path)
    problem = first_problem(data, strict=False)
    if problem:
        raise InputError(f"{path}: {problem}")
    return data


def check_version(data: dict[str, Any], source: str | Path) -> None:
    """Refuse a ``results_version`` that is not an integer >= 1, or newer than :data:`RESULTS_VERSION`."""
    version = data.get("results_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"{source} has an invalid results_version {reprlib.repr(version)}; expected an integer >= 1.")
    if version > RESULTS_VERSION:
        raise InputError(
            f"{source} has results_version {version}; this tsreport reads versions up to {RESULTS_VERSION}. "
            "Upgrade tsreport."
        )


# ---------------------------------------------------------------- the JSON Schema


@functools.cache
def results_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of results.json, shipped as ``tsreport/schemas/results.schema.json``."""
    return json.loads(resources.files("tsreport.schemas").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


@functools.cache
def _validator() -> Any:
    # Imported here: only reading a results.json needs jsonschema, not `tsreport explain`.
    import jsonschema

    schema = results_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(data: Any, *, strict: bool = True) -> Iterator[str]:
    """Where ``data`` (a parsed results.json) breaks the schema, one line each, in document order.

    ``strict=False`` is how readers check: a missing key is allowed (see the module docstring). A NaN or
    Infinity anywhere is a problem too: Python's json module reads them, JSON has none.
    """
    found = [
        (_document_order(data, error.absolute_path), _describe(error))
        for error in _validator().iter_errors(data)
        if (strict or error.validator != "required") and not _non_finite(error.instance)
    ]
    found += [
        (_document_order(data, path), _describe_non_finite(path, value)) for path, value in _non_finite_numbers(data)
    ]
    for _, line in sorted(found):
        yield line


def first_problem(data: Any, *, strict: bool = True) -> str | None:
    """The first line of :func:`problems`, or None when ``data`` fits the schema."""
    return next(problems(data, strict=strict), None)


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _non_finite_numbers(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, float]]:
    """(path, value) of every NaN or Infinity; a plain walk, ~20x faster than a recursive schema rule."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite_numbers(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite_numbers(item, (*path, index))
    elif _non_finite(value):
        yield path, value


def _describe_non_finite(path: tuple, value: float) -> str:
    return f"{_where(path)}: expected a finite number, got {_show(value)} (JSON has no NaN or Infinity)"


def _document_order(data: Any, path: Any) -> list[int]:
    """Positions of each step of ``path`` within its parent: sorts errors as they appear in the file."""
    order = []
    for step in path:
        order.append(list(data).index(step) if isinstance(data, dict) else int(step))
        data = data[step]
    return order


_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}


def _show(value: Any) -> str:
    """A value as the file spells it (short)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return json.dumps(value) if value is None or isinstance(value, bool) else reprlib.repr(value)


def _where(path: Any) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or "the top level"


def _describe(error: Any) -> str:
    """One line: the JSON path of the problem, what was expected and what the file holds."""
    where, value = _where(error.absolute_path), error.instance
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{where}: expected {' or '.join(_TYPE_NAMES[name] for name in expected)}, got {_show(value)}"
    if error.validator == "enum":
        return f"{where}: expected one of {', '.join(map(str, error.validator_value))}; got {_show(value)}"
    if error.validator == "required":
        missing = next(key for key in error.validator_value if key not in value)
        return f"{where}: the key '{missing}' is missing"
    if error.validator == "minimum":
        return f"{where}: expected a number >= {error.validator_value}, got {_show(value)}"
    if error.validator == "pattern":
        return f"{where}: got {_show(value)}, which does not match {error.validator_value}"
    return f"{where}: {error.message}"
