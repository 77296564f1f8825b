"""RunConfig: every setting of a run, with its default, in one frozen dataclass.

Settings come from three places, later ones winning: the defaults here, a
``--config`` YAML file, and the command-line flags. The resolved settings are
written into results.json so that a run can be audited and repeated.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tsreport import safeload
from tsreport.archive import DEFAULT_MAX_MODEL_SIZE, parse_size
from tsreport.exceptions import UsageError
from tsreport.render.registry import NAMES as FORMATS  # one renderer per --format


def analysis_defaults(selected: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """Every analysis's settings and their defaults, read from its spec's ``Params``.

    ``selected``: the --analyses of the run (None: the default battery); a few defaults depend on
    it (faithfulness draws the curves of every map the run makes). Unknown keys are rejected with
    the valid ones listed.
    """
    from tsreport.analyses import REGISTRY

    return {spec.name: spec.params.defaults(selected) for spec in REGISTRY}


FAIL_ON = ("never", "sanity", "warning")
DEVICES = ("cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of one ``tsreport explain`` run.

    ``analysis_params`` maps an analysis name to its resolved settings
    (defaults from :func:`analysis_defaults` updated by the config file).
    """

    out: str = "tsreport-report"
    formats: tuple[str, ...] = ("html",)
    analyses: tuple[str, ...] | None = None  # None: the full battery
    samples: int | None = 512  # None: every window
    explain_at: tuple[str, ...] = ()  # TIME[@GROUP] windows always explained and shown
    seed: int = 0
    device: str = "cpu"
    model_class: str | None = None
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    trust_model: bool = False
    fail_on: str = "never"
    templates: str | None = None
    # Windows per model call: "auto" probes this model on this machine (tsreport/engine/probe.py);
    # a number pins it, and with it bit-identical reruns.
    batch_size: int | str = "auto"
    workers: int | str = 1  # local worker processes ("auto": as the probe predicts)
    scheduler: str | None = None  # a dask.distributed scheduler address, or "local"
    max_model_size: int = DEFAULT_MAX_MODEL_SIZE  # bytes: a model file's size on disk and unzipped (archive.py)
    quiet: bool = False
    verbose: bool = False
    force: bool = False  # write into a non-empty --out that holds no earlier tsreport run (its files are kept)
    lock_timeout: float = 0.0  # seconds to wait for another run holding --out (0: fail at once, like terraform)
    analysis_params: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=analysis_defaults)

    def params(self, analysis: str) -> dict[str, Any]:
        """The resolved settings of one analysis (a copy)."""
        return dict(self.analysis_params.get(analysis, {}))

    def _listed(self, analysis: str) -> bool:
        """results.json lists the settings of the default battery, and of an opt-in analysis the run selects."""
        from tsreport.analyses import BY_NAME

        spec = BY_NAME.get(analysis)
        return spec is None or spec.default or (self.analyses is not None and analysis in self.analyses)

    def to_dict(self) -> dict[str, Any]:
        """The resolved settings, JSON-ready, for results.json."""
        return {
            "formats": list(self.formats),
            "analyses": list(self.analyses) if self.analyses is not None else None,
            "samples": self.samples,
            "explain_at": list(self.explain_at),
            "seed": self.seed,
            "device": self.device,
            "model_class": self.model_class,
            "model_kwargs": dict(self.model_kwargs),
            "trust_model": self.trust_model,
            "fail_on": self.fail_on,
            "batch_size": self.batch_size,
            "workers": self.workers,
            "scheduler": self.scheduler,
            "analysis_params": {k: dict(v) for k, v in self.analysis_params.items() if self._listed(k)},
        }


_OPTION_KEYS = {
    "out", "format", "analyses", "samples", "explain_at", "seed", "device", "model_class", "model_kwargs",
    "trust_model", "fail_on", "templates", "quiet", "verbose", "batch_size", "max_model_size", "force",
    "lock_timeout", "workers", "scheduler",
}  # fmt: skip


def _unknown(key: str, valid: list[str], where: str) -> UsageError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return UsageError(f"{where}: unknown key '{key}'.{hint} Valid keys: {', '.join(sorted(valid))}.")


def parse_formats(text: str | list[str]) -> tuple[str, ...]:
    items = text if isinstance(text, list) else [p.strip() for p in str(text).split(",")]
    items = [i for i in items if i]
    for item in items:
        if item not in FORMATS:
            raise UsageError(f"Invalid --format '{item}': choose from {', '.join(FORMATS)} (comma separated).")
    return tuple(dict.fromkeys(items)) or ("html",)


def parse_samples(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or str(value).strip() != str(number):
        raise UsageError(f"Invalid --samples '{value}': give a positive integer or 'all'.")
    return number


def parse_explain_at(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not item.strip() or item.strip().startswith("@"):
            raise UsageError(f"Invalid --explain-at {item!r}: write TIME or TIME@GROUP, e.g. 2024-03-01@north.")
    return tuple(item.strip() for item in items)


def parse_analyses(value: Any, valid: list[str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [p.strip() for p in str(value).split(",")]
    items = [str(i) for i in items if str(i)]
    for item in items:
        if item not in valid:
            close = difflib.get_close_matches(item, valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UsageError(f"Unknown analysis '{item}' in --analyses.{hint} Available analyses: {', '.join(valid)}.")
    if not items:
        raise UsageError("--analyses is empty: name at least one analysis.")
    return tuple(dict.fromkeys(items))


def parse_model_kwargs(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"Invalid --model-kwargs: not JSON ({error.msg} at character {error.pos}); "
            "give an object such as '{\"hidden\": 64}'."
        ) from None
    if not isinstance(parsed, dict):
        raise UsageError("Invalid --model-kwargs: give a JSON object such as '{\"hidden\": 64}'.")
    return parsed


def _choice(value: Any, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise UsageError(f"Invalid {option} '{value}': choose from {', '.join(choices)}.")
    return str(value)


def _positive_int(value: Any, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"Invalid {option} '{value}': give a positive integer.")
    return value


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``--config`` YAML file into a plain mapping (validated by :func:`build_config`).

    Syntax errors and duplicate keys are usage errors (exit 2); a file beyond
    :data:`tsreport.safeload.CONFIG_LIMITS` (size, nesting, alias expansion) is bad input (exit 3).
    """
    path = Path(path)
    data = safeload.load_yaml(path, role="config file", limits=safeload.CONFIG_LIMITS, error=UsageError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"Config file {path} must be a mapping of option names to values.")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(
    file_values: Mapping[str, Any],
    cli_values: Mapping[str, Any],
    *,
    analysis_names: list[str],
    config_path: str | None = None,
) -> RunConfig:
    """Merge defaults, a config file's values and command-line values into a RunConfig.

    ``cli_values`` holds only the options given on the command line (None = not given).
    """
    where = f"Config file {config_path}" if config_path else "Configuration"
    defaults = analysis_defaults()
    valid_keys = sorted(_OPTION_KEYS | set(defaults))
    given: dict[str, dict[str, Any]] = {}
    merged: dict[str, Any] = {}
    for key, value in file_values.items():
        if key in defaults:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise UsageError(f"{where}: '{key}' must be a mapping of settings.")
            for sub_key, sub_value in value.items():
                sub_key = str(sub_key).replace("-", "_")
                if sub_key not in defaults[key]:
                    valid = list(defaults[key])
                    if not valid:
                        raise UsageError(f"{where}: analysis '{key}' takes no settings.")
                    raise _unknown(sub_key, valid, f"{where}, section '{key}'")
                given.setdefault(key, {})[sub_key] = sub_value
        elif key in _OPTION_KEYS:
            merged[key] = value
        else:
            raise _unknown(key, valid_keys, where)
    for key, value in cli_values.items():
        if value is not None:
            merged[key] = value

    analyses = parse_analyses(merged.get("analyses"), analysis_names)
    analysis_params = {name: {**values, **given.get(name, {})} for name, values in analysis_defaults(analyses).items()}
    _check_analysis_params(analysis_params)

    return RunConfig(
        out=str(merged.get("out", RunConfig.out)),
        formats=parse_formats(merged.get("format", "html")),
        analyses=analyses,
        samples=parse_samples(merged.get("samples", 512)),
        explain_at=parse_explain_at(merged.get("explain_at")),
        seed=_seed(merged.get("seed", 0)),
        device=_choice(merged.get("device", "cpu"), DEVICES, "--device"),
        model_class=merged.get("model_class"),
        model_kwargs=parse_model_kwargs(merged.get("model_kwargs")),
        trust_model=bool(merged.get("trust_model", False)),
        fail_on=_choice(merged.get("fail_on", "never"), FAIL_ON, "--fail-on"),
        templates=merged.get("templates"),
        batch_size=_auto_or_positive(merged.get("batch_size", "auto"), "--batch-size"),
        workers=_auto_or_positive(merged.get("workers", 1), "--workers"),
        scheduler=_scheduler(merged.get("scheduler")),
        max_model_size=_size(merged.get("max_model_size", DEFAULT_MAX_MODEL_SIZE), "--max-model-size"),
        quiet=bool(merged.get("quiet", False)),
        verbose=bool(merged.get("verbose", False)),
        force=bool(merged.get("force", False)),
        lock_timeout=_seconds(merged.get("lock_timeout", 0.0), "--lock-timeout"),
        analysis_params=analysis_params,
    )


def _auto_or_positive(value: Any, option: str) -> int | str:
    """A positive integer, or ``auto`` (command-line values arrive as text)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise UsageError(f"Invalid {option} '{value}': give a positive integer or 'auto'.")
    return int(text)


def _scheduler(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if text != "local" and "://" not in text:
        raise UsageError(
            f"Invalid --scheduler '{value}': give a Dask scheduler address such as tcp://10.0.0.5:8786, or 'local'."
        )
    return text


def _size(value: Any, option: str) -> int:
    try:
        return parse_size(value)
    except ValueError:
        raise UsageError(f"Invalid {option} '{value}': give a size such as 500MB, 4GiB or a number of bytes.") from None


def _seconds(value: Any, option: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e9:
        raise UsageError(f"Invalid {option} '{value}': give a number of seconds, 0 or more.")
    return float(value)


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"Invalid --seed '{value}': give a non-negative integer.")
    return value


def _check_analysis_params(params: Mapping[str, Mapping[str, Any]]) -> None:
    """Validate the per-analysis settings (types and ranges), naming the setting and the fix."""
    from tsreport.analyses import REGISTRY

    for spec in REGISTRY:
        spec.params.validate(spec.name, params[spec.name])
