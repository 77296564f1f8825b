"""The Report: everything a run found, and results.json, its serialised form.

results.json is the source of truth: the HTML and PDF are rendered from a
Report, and a saved results.json can be re-rendered without the model.

RESULTS_VERSION log (add a line when the format grows):

1. First version: run, inputs, windows, fields, analyses (performance,
   permutation), ranking (+ ranking_source), sanity, warnings, settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from tsreport import __version__
from tsreport.exceptions import InputError

RESULTS_VERSION = 1


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
    def from_dict(cls, data: dict[str, Any]) -> Report:
        version = data.get("results_version")
        if not isinstance(version, int) or version > RESULTS_VERSION:
            raise InputError(
                f"results.json has results_version {version!r}; this tsreport reads versions up to "
                f"{RESULTS_VERSION}. Upgrade tsreport."
            )
        return cls(
            run=data["run"],
            inputs=data["inputs"],
            windows=data["windows"],
            fields=list(data["fields"]),
            analyses=data["analyses"],
            ranking=list(data.get("ranking", [])),
            ranking_source=data.get("ranking_source"),
            sanity=data.get("sanity", {}),
            warnings=list(data.get("warnings", [])),
            settings=data.get("settings", {}),
            tsreport_version=data.get("tsreport_version", "unknown"),
            results_version=version,
        )

    def to_json(self) -> str:
        return json.dumps(_no_nan(self.to_dict()), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> Report:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputError(f"Cannot read results file {path}: {error}") from None
        if not isinstance(data, dict) or "analyses" not in data:
            raise InputError(f"{path} is not a tsreport results.json (no 'analyses').")
        return cls.from_dict(data)


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
