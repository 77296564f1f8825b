"""The run: schema + data + model -> windows -> AnalysisContext -> analyses -> Report."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch

from tsreport import __version__, analyses
from tsreport.analyses._base import AnalysisContext, SkipAnalysis, child_rng, choose_explained, find_windows
from tsreport.config import RunConfig
from tsreport.data import baseline_values, build_windows, read_table
from tsreport.engine import Engine
from tsreport.exceptions import InputError, UsageError
from tsreport.model import LoadedModel, check_model, file_sha256, load_model
from tsreport.progress import Progress, capture_warnings, warning_phase
from tsreport.results import Report
from tsreport.schema import load_schema


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "tsreport": __version__}
    for name in ("torch", "numpy", "pandas", "captum", "shap", "jinja2", "matplotlib", "weasyprint"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_context(
    model_path: str | Path,
    data_path: str | Path,
    schema_path: str | Path,
    config: RunConfig,
    *,
    progress: Progress | Callable[[str], None] | None = None,
) -> tuple[AnalysisContext, LoadedModel, pd.DataFrame]:
    """Schema + data + model -> checked windows -> the AnalysisContext every analysis shares."""
    progress = Progress.of(progress)
    if config.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but CUDA is not available to torch here; use --device cpu.")
    with warning_phase("reading the data", inputs=True):
        schema = load_schema(schema_path)
        progress(f"reading {data_path}")
        frame = read_table(data_path)
        windows = build_windows(schema, frame, str(data_path))
    progress(f"{windows.count} windows of {schema.window} steps x {schema.channels} channels")

    with warning_phase("loading the model", inputs=True):
        loaded = load_model(
            model_path,
            model_class=config.model_class,
            model_kwargs=config.model_kwargs,
            trust_model=config.trust_model,
            device=config.device,
            max_size=config.max_model_size,
        )
    forward = Engine(
        loaded,
        layout=schema.layout,
        task=schema.task,
        horizon=schema.horizon,
        n_classes=len(windows.classes) if windows.classes is not None else None,
        device=config.device,
        batch_size=config.batch_size if isinstance(config.batch_size, int) else 256,
        quantiles=schema.output.quantiles if schema.output else None,
        explain_quantile=schema.output.explain_index if schema.output else None,
    )
    with warning_phase("checking the model", inputs=True):
        check_model(forward, windows, schema_source=schema.source)

    requested = find_windows(windows, config.explain_at, schema.group)
    explained = choose_explained(windows.count, config.samples, config.seed)
    if requested:  # windows the user names are always explained, whatever --samples drew
        explained = np.union1d(explained, np.fromiter(requested, dtype=np.int64))
    with warning_phase("checking the model", inputs=True):  # the probe runs the model too
        engine_info = configure_engine(forward, loaded, model_path, config, windows.inputs(explained[:16]), progress)
    ctx = AnalysisContext(
        schema=schema,
        windows=windows,
        forward=forward,
        config=config,
        explained=explained,
        explained_inputs=torch.from_numpy(windows.inputs(explained)),
        progress=progress,
        baseline=torch.from_numpy(baseline_values(schema, windows)),
        requested={int(np.searchsorted(explained, index)): text for index, text in requested.items()},
    )
    ctx.engine_info = engine_info
    return ctx, loaded, frame


#: Analyses that take gradients (the probe then also times forward + backward).
GRADIENT_ANALYSES = frozenset(
    {"gradient_x_input", "integrated_gradients", "saliency", "gradient_shap", "sanity_randomization",
     "sanity_positive_control"}
)  # fmt: skip


def configure_engine(
    engine: Engine,
    loaded: LoadedModel,
    model_path: str | Path,
    config: RunConfig,
    sample: np.ndarray,
    progress: Progress,
) -> dict[str, Any]:
    """Batch sizes (pinned or probed), then where chunks run (``--workers``, ``--scheduler``):
    what results.json records under ``run.engine``."""
    from tsreport.engine import executors
    from tsreport.engine.probe import WORKERS_MIN_GAIN, predicted_worker_gain, probe_batch_sizes, remembered
    from tsreport.engine.source import EngineSpec, ModelSource

    info: dict[str, Any] = {"batch_size": config.batch_size, "workers": config.workers, "scheduler": config.scheduler}
    windows = torch.from_numpy(np.ascontiguousarray(sample))
    names = {spec.name for spec in analyses.selected(config.analyses)}
    executor = executors.Executor()
    if config.scheduler:
        executor = executors.create(config.workers if isinstance(config.workers, int) else 1, config.scheduler)
    elif config.workers != 1:
        workers = config.workers if isinstance(config.workers, int) else (os.cpu_count() or 1)
        executor = executors.ProcessExecutor(workers) if workers > 1 else executor
    threads = executor.threads()
    saved_threads = torch.get_num_threads()
    if config.batch_size == "auto" and loaded.static_batch is None and windows.shape[0]:
        progress("probing batch sizes")
        try:
            if threads:  # probe as the workers will run: with their share of the threads
                torch.set_num_threads(threads)
            gradients = bool(names & GRADIENT_ANALYSES)
            key = {"model": loaded.sha256, "shape": list(windows.shape[1:]), "engine": repr(engine.shape),
                   "device": str(engine.device), "gradients": gradients}  # fmt: skip
            found = remembered(key, lambda: probe_batch_sizes(engine, windows, gradients=gradients))
        finally:
            torch.set_num_threads(saved_threads)
        engine.batch_size, engine.backward_batch_size = found.forward, found.backward
        info["probe"] = found.to_dict()
    if config.workers == "auto" and not config.scheduler:
        gain, figures = (0.0, {}) if executor.workers < 2 else predicted_worker_gain(engine, windows, executor.workers)
        info["workers_probe"] = figures
        if gain < WORKERS_MIN_GAIN:
            executor.close()
            executor = executors.Executor()
    info.update(
        forward_batch_size=engine.batch_size,
        backward_batch_size=engine.backward_batch_size,
        executor=executor.description,
        worker_count=executor.workers,
    )
    if executor.workers > 1:
        source = ModelSource.read(
            model_path, loaded.sha256, model_class=config.model_class, model_kwargs=dict(config.model_kwargs),
            trust_model=config.trust_model, max_size=config.max_model_size,
        )  # fmt: skip
        engine.spec = EngineSpec(
            source, engine.shape, str(engine.device), engine.batch_size, engine.backward_batch_size, executor.threads()
        )
        engine.executor = executor
    return info


def explain(
    model_path: str | Path,
    data_path: str | Path,
    schema_path: str | Path,
    config: RunConfig,
    *,
    argv: list[str] | None = None,
    progress: Progress | Callable[[str], None] | None = None,
) -> Report:
    """Run the selected analyses and return the Report (nothing is written here).

    ``progress``: a :class:`~tsreport.progress.Progress` (``Progress.create(quiet=..., verbose=...)``
    for the CLI), a plain message callback, or None for silence. Python warnings raised during the
    run are caught (:func:`~tsreport.progress.capture_warnings`): those about the model or the data
    end the report's ``warnings``, the rest reach stderr only with ``config.verbose``.
    """
    with capture_warnings(config.verbose) as caught:
        report = _explain(model_path, data_path, schema_path, config, argv=argv, progress=Progress.of(progress))
        report.warnings.extend(caught.sentences())
    return report


def _explain(
    model_path: str | Path,
    data_path: str | Path,
    schema_path: str | Path,
    config: RunConfig,
    *,
    argv: list[str] | None,
    progress: Progress,
) -> Report:
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.perf_counter()
    ctx, loaded, frame = build_context(model_path, data_path, schema_path, config, progress=progress)
    try:
        return _run_battery(
            ctx, loaded, frame, model_path, data_path, schema_path, config, argv, started, clock, progress
        )
    finally:
        if ctx.forward.executor is not None:
            ctx.forward.executor.close()


def _run_battery(
    ctx: AnalysisContext,
    loaded: LoadedModel,
    frame: pd.DataFrame,
    model_path: str | Path,
    data_path: str | Path,
    schema_path: str | Path,
    config: RunConfig,
    argv: list[str] | None,
    started: dt.datetime,
    clock: float,
    progress: Progress,
) -> Report:
    """Every selected analysis in registry order, then the Report of the run."""
    schema, windows = ctx.schema, ctx.windows
    warnings = list(loaded.notes) + data_warnings(ctx)
    selected = analyses.selected(config.analyses)
    results: dict[str, dict] = {}
    maps: dict[str, np.ndarray] = {}
    # Later analyses see the earlier ones' entries and maps, read-only; only this loop adds to them.
    ctx.results, ctx.field_maps = MappingProxyType(results), MappingProxyType(maps)
    for position, spec in enumerate(selected, start=1):
        with (
            progress.analysis(spec.name, position, len(selected)) as run,
            warning_phase(f"running analysis '{spec.name}'", analysis=spec.name),
        ):
            entry, result_maps, said = run_analysis(ctx, spec, config)
            run.finish(entry["status"], entry["seconds"])
        results[spec.name] = entry
        maps.update(result_maps)
        warnings.extend(said)

    ranking, ranking_source = _ranking(results, schema.field_names)
    engine = {**ctx.engine_info, **({"prefix_reuse": ctx.forward.prefix_info} if ctx.forward.prefix_info else {})}
    return Report(
        run={
            "started": started.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - clock, 3),
            "seed": config.seed,
            "device": config.device,
            "argv": list(argv if argv is not None else sys.argv),
            "versions": library_versions(),
            "engine": engine,
        },
        inputs={
            "model": {"path": str(model_path), "sha256": loaded.sha256, "format": loaded.format},
            "data": {"path": str(data_path), "sha256": file_sha256(data_path), "rows": int(len(frame))},
            "schema": {"path": str(schema_path), "sha256": file_sha256(schema_path), **schema.to_dict()},
        },
        windows={
            "total": windows.count,
            "explained": int(ctx.explained.shape[0]),
            "window": schema.window,
            "horizon": schema.horizon if schema.task == "regression" else None,
            "channels": schema.channels,
            "groups": len(windows.group_names),
            "dropped": windows.dropped,
            "first_end": windows.first_end,
            "last_end": windows.last_end,
        },
        fields=schema.field_names,
        analyses=results,
        ranking=ranking,
        ranking_source=ranking_source,
        sanity=sanity_summary(results),
        warnings=warnings,
        settings=config.to_dict(),
    )


def data_warnings(ctx: AnalysisContext) -> list[str]:
    """What cutting the data into windows left out or filled in."""
    windows, schema = ctx.windows, ctx.schema
    warnings = []
    if windows.short_groups:
        shown = ", ".join(f"'{g}'" for g in windows.short_groups[:5])
        more = f" and {len(windows.short_groups) - 5} more" if len(windows.short_groups) > 5 else ""
        warnings.append(
            f"{len(windows.short_groups)} series are shorter than one window plus horizon and give no "
            f"window: {shown}{more}."
        )
    if windows.dropped:
        unfilled = (
            " (gaps at the start of a series, where forward-filling has nothing to fill from)"
            if windows.unfilled
            else ""
        )
        warnings.append(
            f"{windows.dropped} windows touching missing or non-finite values were dropped{unfilled} "
            f"(missing: {schema.missing})."
        )
    elif windows.missing_cells and schema.missing == "ffill":
        warnings.append(f"{windows.missing_cells} missing or non-finite values were forward-filled (missing: ffill).")
    return warnings


def run_analysis(
    ctx: AnalysisContext, spec: analyses.AnalysisSpec, config: RunConfig
) -> tuple[dict[str, Any], dict[str, np.ndarray], list[str]]:
    """One analysis: (its results.json entry, its maps, its warnings for the report).

    A skip is ``skipped`` with the reason; numbers that are not all finite, or an exception (a bug,
    or a model the analysis cannot handle), are ``failed`` with a warning: one broken analysis
    must not sink the whole report. Bad input (InputError, UsageError) still stops the run.
    """
    begin = time.perf_counter()
    result_maps: dict[str, np.ndarray] = {}
    warnings: list[str] = []
    try:
        result = spec.run(ctx, config.params(spec.name), rng=child_rng(config.seed, spec.name))
        entry = {"status": "ok", "reason": None, **result.to_dict()}
        result_maps = dict(getattr(result, "maps", None) or {})
        warnings.extend(getattr(result, "warnings", ()))
        problem = non_finite(entry, ctx.schema.field_names)
        if problem:
            entry = {"status": "failed", "reason": problem}
            warnings.append(f"Analysis '{spec.name}' failed: {problem}")
    except SkipAnalysis as skip:
        entry = {"status": "skipped", "reason": str(skip)}
    except (InputError, UsageError):
        raise
    except Exception as error:
        if config.verbose:
            traceback.print_exc(file=sys.stderr)
        entry = {"status": "failed", "reason": f"{type(error).__name__}: {error}"}
        warnings.append(f"Analysis '{spec.name}' failed ({type(error).__name__}: {error}); please report it.")
    entry["seconds"] = round(time.perf_counter() - begin, 3)
    return entry, result_maps, warnings


# Numbers that may honestly be undefined inside an `ok` result: R² of a constant target, and the
# spread of a statistic over a single repeat. Every other null among numbers means a NaN or inf.
_MAY_BE_UNDEFINED = frozenset({"r2", "std", "interval"})
# Parts of a shown window that may be absent or have gaps: a classification window has no target
# history, and a regression one shows the gaps `missing: drop` allows in the target's history; a
# window has no attribution map when no map-making method ran.
_OPTIONAL_PARTS = frozenset({"target_history", "heatmap"})


def non_finite(entry: Any, fields: list[str], path: tuple[str, ...] = ()) -> str | None:
    """Why an `ok` analysis entry is not all finite numbers, naming the field; None when it is.

    A NaN or inf anywhere, or a null standing among numbers (a null in a list that holds
    numbers, in a mapping of numbers, or keyed by a field name): analyses
    turn NaN into null, so such a null is a number that was not finite.
    """
    where = "/".join(path)
    if isinstance(entry, float) and not math.isfinite(entry):
        return f"a non-finite number ({entry}) at {where}"
    if isinstance(entry, dict):
        # A mapping of numbers (metrics such as {mae, rmse, r2}): a null there is a number that was not finite.
        numbers = any(_is_number(v) for v in entry.values()) and all(v is None or _is_number(v) for v in entry.values())
        for key, value in entry.items():
            if (
                value is None
                and ((numbers and path) or key in fields)
                and key not in _MAY_BE_UNDEFINED | _OPTIONAL_PARTS
                and not set(path) & _MAY_BE_UNDEFINED
            ):
                named = f"field '{key}'" if key in fields else f"'{key}'"
                return (
                    f"{named} has no finite value in {where or 'the result'} (NaN or inf); check its data and baseline"
                )
            found = non_finite(value, fields, path + (str(key),))
            if found:
                return found
    elif isinstance(entry, list):
        numbers = any(_is_number(v) for v in entry)
        for index, value in enumerate(entry):
            if value is None and numbers and not set(path) & (_MAY_BE_UNDEFINED | {"target_history"}):
                field = next((p for p in reversed(path) if p in fields), None)
                named = f"field '{field}'" if field else where
                return f"{named} has a non-finite value at {where}/{index} (NaN or inf); check its data and baseline"
            found = non_finite(value, fields, path + (str(index),))
            if found:
                return found
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sanity_summary(results: dict[str, dict]) -> dict[str, dict]:
    """results.json's ``sanity`` block: each control's status pass | fail | skipped and its figures."""
    summary = {}
    for name in analyses.checks():
        entry = results.get(name)
        if entry is None:
            summary[name] = {"status": "skipped", "reason": "not requested (--analyses)"}
        elif entry["status"] == "ok":
            summary[name] = {
                "status": entry["verdict"],
                "methods": {m: v["verdict"] for m, v in entry["methods"].items()},
            }
        else:
            summary[name] = {"status": "skipped", "reason": f"{entry['status']}: {entry['reason']}"}
    return summary


def _ranking(results: dict[str, dict], fields: list[str]) -> tuple[list[str], str | None]:
    """Fields, most important first, from the best available ranking analysis."""
    for source in ("combined", "permutation"):
        entry = results.get(source)
        if entry and entry.get("status") == "ok" and entry.get("field_importance"):
            importance = entry["field_importance"]
            return sorted(fields, key=lambda f: -(importance.get(f) or 0.0)), source
    return [], None
