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

#: Per-analysis settings and their defaults. An analysis reads its own block;
#: unknown keys are rejected with the valid ones listed.
ANALYSIS_DEFAULTS: dict[str, dict[str, Any]] = {
    "performance": {},
    "permutation": {"n_repeats": 5},
    "occlusion": {"size": 4, "stride": None},
    "gradient_x_input": {"tsr": False, "tsr_threshold": 1.0},
    "integrated_gradients": {
        "n_steps": 50,
        "method": "gausslegendre",
        "internal_batch_size": None,
        "tsr": False,
        "tsr_threshold": 1.0,
    },
    "saliency": {"tsr": False, "tsr_threshold": 1.0},
    "sensitivity": {"delta": 0.1},
    "shap": {"max_exact_fields": 10, "n_samples": 2000},
    "combined": {"methods": ["occlusion", "gradient_x_input"]},
    "attention": {},
    "sanity_randomization": {
        "windows": 64,
        "max_stages": 6,
        "max_spearman": 0.5,
        "max_top10_overlap": 0.5,
        "min_share_change": 0.5,
        "max_field_rank_tau": 0.5,
    },
    "sanity_positive_control": {"windows": 1024, "explain_windows": 128, "epochs": 40, "seconds": 120, "min_r2": 0.9},
    "predictions": {"max_fields": 8},
    "faithfulness": {
        "step": 0.05,
        "max_fraction": 0.5,
        "max_windows": 256,
        "methods": ["occlusion", "gradient_x_input", "integrated_gradients", "saliency", "combined"],
    },
}

IG_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")

FORMATS = ("html", "pdf", "json", "markdown", "junit")
FAIL_ON = ("never", "sanity", "warning")
DEVICES = ("cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of one ``tsreport explain`` run.

    ``analysis_params`` maps an analysis name to its resolved settings
    (defaults from :data:`ANALYSIS_DEFAULTS` updated by the config file).
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
    batch_size: int = 256  # best or within 1.2x of best throughput for LSTM, Transformer and CNN (bench/)
    max_model_size: int = DEFAULT_MAX_MODEL_SIZE  # bytes: a model file's size on disk and unzipped (archive.py)
    quiet: bool = False
    verbose: bool = False
    force: bool = False  # write into a non-empty --out that holds no earlier tsreport run (its files are kept)
    lock_timeout: float = 0.0  # seconds to wait for another run holding --out (0: fail at once, like terraform)
    analysis_params: Mapping[str, Mapping[str, Any]] = dataclasses.field(
        default_factory=lambda: {name: dict(values) for name, values in ANALYSIS_DEFAULTS.items()}
    )

    def params(self, analysis: str) -> dict[str, Any]:
        """The resolved settings of one analysis (a copy)."""
        return dict(self.analysis_params.get(analysis, {}))

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
            "analysis_params": {k: dict(v) for k, v in self.analysis_params.items()},
        }


_OPTION_KEYS = {
    "out", "format", "analyses", "samples", "explain_at", "seed", "device", "model_class", "model_kwargs",
    "trust_model", "fail_on", "templates", "quiet", "verbose", "batch_size", "max_model_size", "force",
    "lock_timeout",
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
    valid_keys = sorted(_OPTION_KEYS | set(ANALYSIS_DEFAULTS))
    analysis_params = {name: dict(values) for name, values in ANALYSIS_DEFAULTS.items()}
    merged: dict[str, Any] = {}
    for key, value in file_values.items():
        if key in ANALYSIS_DEFAULTS:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise UsageError(f"{where}: '{key}' must be a mapping of settings.")
            for sub_key, sub_value in value.items():
                sub_key = str(sub_key).replace("-", "_")
                if sub_key not in ANALYSIS_DEFAULTS[key]:
                    valid = list(ANALYSIS_DEFAULTS[key])
                    if not valid:
                        raise UsageError(f"{where}: analysis '{key}' takes no settings.")
                    raise _unknown(sub_key, valid, f"{where}, section '{key}'")
                analysis_params[key][sub_key] = sub_value
        elif key in _OPTION_KEYS:
            merged[key] = value
        else:
            raise _unknown(key, valid_keys, where)
    for key, value in cli_values.items():
        if value is not None:
            merged[key] = value

    _check_analysis_params(analysis_params)

    return RunConfig(
        out=str(merged.get("out", RunConfig.out)),
        formats=parse_formats(merged.get("format", "html")),
        analyses=parse_analyses(merged.get("analyses"), analysis_names),
        samples=parse_samples(merged.get("samples", 512)),
        explain_at=parse_explain_at(merged.get("explain_at")),
        seed=_seed(merged.get("seed", 0)),
        device=_choice(merged.get("device", "cpu"), DEVICES, "--device"),
        model_class=merged.get("model_class"),
        model_kwargs=parse_model_kwargs(merged.get("model_kwargs")),
        trust_model=bool(merged.get("trust_model", False)),
        fail_on=_choice(merged.get("fail_on", "never"), FAIL_ON, "--fail-on"),
        templates=merged.get("templates"),
        batch_size=_positive_int(merged.get("batch_size", 256), "batch_size"),
        max_model_size=_size(merged.get("max_model_size", DEFAULT_MAX_MODEL_SIZE), "--max-model-size"),
        quiet=bool(merged.get("quiet", False)),
        verbose=bool(merged.get("verbose", False)),
        force=bool(merged.get("force", False)),
        lock_timeout=_seconds(merged.get("lock_timeout", 0.0), "--lock-timeout"),
        analysis_params=analysis_params,
    )


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


def _optional_positive_int(value: Any, option: str) -> None:
    if value is not None:
        _positive_int(value, option)


def _check_analysis_params(params: Mapping[str, Mapping[str, Any]]) -> None:
    """Validate the per-analysis settings (types and ranges), naming the setting and the fix."""
    _positive_int(params["permutation"]["n_repeats"], "permutation n_repeats")
    _positive_int(params["occlusion"]["size"], "occlusion size")
    _optional_positive_int(params["occlusion"]["stride"], "occlusion stride")
    _positive_int(params["integrated_gradients"]["n_steps"], "integrated_gradients n_steps")
    _optional_positive_int(
        params["integrated_gradients"]["internal_batch_size"], "integrated_gradients internal_batch_size"
    )
    _choice(params["integrated_gradients"]["method"], IG_METHODS, "integrated_gradients method")
    for method in ("gradient_x_input", "integrated_gradients", "saliency"):
        if not isinstance(params[method]["tsr"], bool):
            raise UsageError(f"Invalid {method} tsr '{params[method]['tsr']}': give true or false.")
        threshold = params[method]["tsr_threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
            raise UsageError(f"Invalid {method} tsr_threshold '{threshold}': give a number >= 0 (1 = the mean).")
    delta = params["sensitivity"]["delta"]
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta <= 10:
        raise UsageError(f"Invalid sensitivity delta '{delta}': give a number in (0, 10], e.g. 0.1.")
    _positive_int(params["predictions"]["max_fields"], "predictions max_fields")
    faith = params["faithfulness"]
    if not (isinstance(faith["step"], (int, float)) and 0 < faith["step"] <= 0.5):
        raise UsageError(f"Invalid faithfulness step '{faith['step']}': give a fraction in (0, 0.5], e.g. 0.05.")
    if not (isinstance(faith["max_fraction"], (int, float)) and faith["step"] <= faith["max_fraction"] <= 1):
        raise UsageError(f"Invalid faithfulness max_fraction '{faith['max_fraction']}': give a fraction in [step, 1].")
    _positive_int(faith["max_windows"], "faithfulness max_windows")
    max_exact = params["shap"]["max_exact_fields"]
    if isinstance(max_exact, bool) or not isinstance(max_exact, int) or not 0 <= max_exact <= 20:
        raise UsageError(
            f"Invalid shap max_exact_fields '{max_exact}': give an integer in [0, 20] (exact Shapley values "
            "evaluate 2^fields coalitions per window; 0 always samples), e.g. 10."
        )
    _positive_int(params["shap"]["n_samples"], "shap n_samples")
    methods = params["combined"]["methods"]
    valid = ("occlusion", "gradient_x_input", "integrated_gradients", "saliency")
    if not isinstance(methods, list) or not methods or any(m not in valid for m in methods):
        raise UsageError(f"Invalid combined methods {methods!r}: give a list drawn from {', '.join(valid)}.")
