"""`tsreport history`: how a model's explanation moved across past runs, read from their results.json files.

A nightly audit job writes one results.json per run; ``history`` reads them all and shows drift
at a glance: each field's share of the importance over time, the performance metrics over time,
the verdicts and the run where each one changed, and a flag on each run whose ranking moved.

Finding the runs
    Each argument is a results.json, or a folder searched *recursively* for files named
    ``results.json`` (so ``runs/2026-01-01/results.json`` and ``runs/2026/01/01/out/results.json``
    are both found). Hidden folders (a name starting with ``.``) are skipped: tsreport stages a run
    in ``.NAME.tsreport-*`` beside its ``--out``, and a half-written staging folder is not a run.
    A file reached twice (given twice, or given and also inside a given folder) counts once.

Order
    By ``run.started`` (ISO 8601; a time without a zone is taken as UTC), ties by path.

Compatibility
    Every run must have the same set of fields (their order may differ): a field's share only
    means something beside the same other fields, and one mismatched run in a folder would
    otherwise bend every trend line silently. A run with other fields is an error naming its file
    and the fields that differ. Across tsreport versions of the same ``results_version`` (or an
    older one), unknown keys are ignored and optional ones may be missing: a run without
    performance has no metrics, one without sanity checks has no verdicts, and so on.

Field shares
    A field's share is its part of the run's total importance (the analysis's ``share``, or its
    positive ``field_importance`` normalised to sum to 1). They are taken from one analysis for
    the whole history, so that runs compare like with like: ``combined`` when it is ``ok`` in at
    least as many runs as ``permutation``, else ``permutation``. A run where that analysis is
    not ``ok`` has no shares, and is left out of the movement measure.

Ranking movement
    The total variation distance between a run's share vector and the previous run's that has
    shares: ``movement = 0.5 * sum(|share_now - share_before|)`` over the fields. It is the part of
    the importance that moved to other fields, in [0, 1]: 0.1 means a tenth of the importance
    changed hands. A run is flagged when ``movement > threshold`` (default 0.1). Unlike a change of
    rank in the top 3, it does not fire when two fields of nearly equal share swap places by noise,
    and it does fire when a field takes over importance without changing the order. Each run
    carries its movement, the fields that moved most and whether its top 3 changed, so that a
    reader sees the numbers behind a flag.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import reprlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tsreport import __version__, numeric
from tsreport.exceptions import InputError, RenderError, UsageError
from tsreport.results import load_results

HISTORY_VERSION = 1
DEFAULT_THRESHOLD = 0.1
RESULTS_NAME = "results.json"
SHARE_SOURCES = ("combined", "permutation")
TOP = 3
VERDICTS = ("pass", "fail")
#: Beyond this many runs, the charts label the x axis with run numbers only (dates would overlap).
DATED_TICKS_MAX = 16
#: Beyond this many runs, the trend lines have no dot per run.
MARKED_RUNS_MAX = 60
#: Fields drawn as their own line in the share chart; the rest are summed into one "other" line.
PLOTTED_FIELDS = 7

MEASURE = "total_variation"
MEASURE_TEXT = (
    "total variation distance between the field shares of a run and of the previous run that has shares: "
    "0.5 × Σ|share now − share before|, the part of the importance that moved to other fields (0 to 1)"
)


# ---------------------------------------------------------------- finding and loading the runs


def find_results(folder: Path) -> list[Path]:
    """Every ``results.json`` under ``folder`` (recursively, hidden folders skipped), sorted by path."""
    found: list[Path] = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        if RESULTS_NAME in files:
            found.append(Path(root) / RESULTS_NAME)
    return sorted(found)


def _started(path: Path, data: dict[str, Any]) -> dt.datetime:
    run = data.get("run")
    started = run.get("started") if isinstance(run, dict) else None
    try:
        moment = dt.datetime.fromisoformat(started) if isinstance(started, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise InputError(
            f"{path} has no valid run.started (got {reprlib.repr(started)}); the runs are ordered by it. "
            "Give results.json files written by tsreport explain."
        )
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _fields(path: Path, data: dict[str, Any]) -> list[str]:
    fields = data.get("fields")
    if not isinstance(fields, list) or not fields or not all(isinstance(name, str) for name in fields):
        raise InputError(
            f"{path} has no valid 'fields' list (got {reprlib.repr(fields)}); "
            "give results.json files written by tsreport explain."
        )
    return fields


#: What a history reads from each analysis entry; the rest (heatmaps, samples, curves) is dropped on load.
_ENTRY_KEYS = ("status", "reason", "verdict", "share", "field_importance", "overall")


def _slim(data: dict[str, Any]) -> dict[str, Any]:
    """The parts of a results.json a history reads, so that a year of nightly runs fits in memory."""
    analyses = {}
    for name, entry in (data.get("analyses") or {}).items():
        if not isinstance(entry, dict):
            continue
        slim = {key: entry[key] for key in _ENTRY_KEYS if key in entry}
        quantiles = entry.get("quantiles")
        if isinstance(quantiles, dict):
            slim["quantiles"] = {key: quantiles[key] for key in ("mean_pinball", "coverage") if key in quantiles}
        analyses[name] = slim
    kept = {
        key: data[key]
        for key in ("tsreport_version", "results_version", "fields", "ranking", "sanity", "warnings")
        if key in data
    }
    run = data.get("run") if isinstance(data.get("run"), dict) else {}
    inputs = data.get("inputs") if isinstance(data.get("inputs"), dict) else {}
    return {
        **kept,
        "run": {key: run[key] for key in ("started", "seconds") if key in run},
        "inputs": {
            role: {"sha256": inputs[role].get("sha256")}
            for role in ("model", "data")
            if isinstance(inputs.get(role), dict)
        },
        "analyses": analyses,
    }


def collect_runs(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Load the results.json of past runs, oldest first.

    Parameters
    ----------
    paths : sequence of str or Path
        results.json files, or folders searched recursively for ``results.json`` (hidden folders
        skipped). A file reached twice counts once.

    Returns
    -------
    list of dict
        One ``{"path": str, "started": datetime, "results": dict}`` per run, ordered by
        ``run.started`` then path; ``results`` holds only the parts of the results.json that a
        history reads (statuses, verdicts, shares, importances, metrics, hashes, warnings).

    Raises
    ------
    UsageError
        A path does not exist.
    InputError
        A file is not a readable tsreport results.json (the message names it), a folder holds
        none, a run's fields differ from the others', or fewer than 2 runs were found.
    """
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = find_results(path)
            if not found:
                raise InputError(
                    f"{path} holds no {RESULTS_NAME} (searched it and its subfolders, hidden ones skipped); "
                    "give the results.json files of past runs, or a folder of their output folders."
                )
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise UsageError(f"{path} does not exist; give results.json files of past runs, or a folder of them.")
    seen: set[Path] = set()
    runs: list[dict[str, Any]] = []
    for path in files:
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        data = load_results(path)
        runs.append({"path": str(path), "started": _started(path, data), "results": _slim(data)})
        del data  # a full results.json holds heatmaps and samples: keep only what a history reads
    if len(runs) < 2:
        shown = f" ({runs[0]['path']})" if runs else ""
        raise InputError(
            f"tsreport history needs at least 2 runs; found {len(runs)}{shown}. Give two or more results.json "
            "files, or a folder that holds the output folders of past runs."
        )
    runs.sort(key=lambda run: (run["started"], run["path"]))
    first = runs[0]
    expected = set(_fields(Path(first["path"]), first["results"]))
    for run in runs[1:]:
        fields = set(_fields(Path(run["path"]), run["results"]))
        if fields != expected:
            extra = ", ".join(sorted(fields - expected)) or "none"
            missing = ", ".join(sorted(expected - fields)) or "none"
            raise InputError(
                f"{run['path']} has other fields than {first['path']} (extra: {extra}; missing: {missing}); "
                "a history compares runs of the same fields: leave out the runs of the other schema."
            )
    return runs


# ---------------------------------------------------------------- what each run says


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _ok(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("status") == "ok" and isinstance(entry.get("field_importance"), dict)


def choose_source(runs: Sequence[dict[str, Any]]) -> str | None:
    """The analysis the shares come from: the first of SHARE_SOURCES that is ok in the most runs."""
    counts = {
        source: sum(_ok((run["results"].get("analyses") or {}).get(source)) for run in runs) for source in SHARE_SOURCES
    }
    best = max(SHARE_SOURCES, key=lambda source: counts[source])  # max keeps the first on ties
    return best if counts[best] else None


def field_shares(entry: Any, fields: Sequence[str]) -> dict[str, float] | None:
    """Each field's share of the analysis's total importance (sums to 1); None when there is none.

    The entry's ``share`` when it has one, else its ``field_importance``, normalised by
    :func:`tsreport.numeric.shares` (a negative or missing importance counts as none).
    """
    if not _ok(entry):
        return None
    raw = entry.get("share") if isinstance(entry.get("share"), dict) else entry["field_importance"]
    found = numeric.shares({field: _number(raw.get(field)) for field in fields})
    if not any(found.values()):
        return None  # no positive importance: nothing to rank or to compare
    return found


def performance_metrics(results: dict[str, Any]) -> dict[str, float | None]:
    """The run's overall metrics (mae, rmse, r2; accuracy, log_loss, ...; quantile heads add
    mean_pinball and coverage); empty when performance did not run or was not ok."""
    entry = (results.get("analyses") or {}).get("performance")
    if not isinstance(entry, dict) or entry.get("status") != "ok":
        return {}
    metrics: dict[str, float | None] = {}
    overall = entry.get("overall")
    if isinstance(overall, dict):
        for name, value in overall.items():
            if value is None or _number(value) is not None:
                metrics[str(name)] = _number(value)
    quantiles = entry.get("quantiles")
    if isinstance(quantiles, dict):
        for name in ("mean_pinball", "coverage"):
            if name in quantiles and (quantiles[name] is None or _number(quantiles[name]) is not None):
                metrics[name] = _number(quantiles[name])
    return metrics


def run_verdicts(results: dict[str, Any]) -> dict[str, str]:
    """Each check's verdict: the sanity checks (``pass``/``fail``/``skipped``) and their per-method
    verdicts (``sanity_randomization[occlusion]``), then any other analysis with a pass/fail verdict."""
    verdicts: dict[str, str] = {}
    sanity = results.get("sanity") if isinstance(results.get("sanity"), dict) else {}
    for name, entry in sanity.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("status"), str):
            continue
        verdicts[name] = entry["status"]
        methods = entry.get("methods")
        if isinstance(methods, dict):
            for method, verdict in methods.items():
                if isinstance(verdict, str):
                    verdicts[f"{name}[{method}]"] = verdict
    for name, entry in (results.get("analyses") or {}).items():
        if name in sanity or not isinstance(entry, dict):
            continue
        verdict = next((entry[key] for key in ("verdict", "status") if entry.get(key) in VERDICTS), None)
        if verdict is not None:
            verdicts[name] = verdict
    return verdicts


def run_statuses(results: dict[str, Any]) -> dict[str, str]:
    """Each analysis's status (ok / skipped / failed)."""
    return {
        name: entry["status"]
        for name, entry in (results.get("analyses") or {}).items()
        if isinstance(entry, dict) and isinstance(entry.get("status"), str)
    }


def _sha(results: dict[str, Any], role: str) -> str | None:
    entry = (results.get("inputs") or {}).get(role)
    value = entry.get("sha256") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


def _union(mappings: Iterable[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for mapping in mappings:
        keys.update(dict.fromkeys(mapping))
    return list(keys)


def _changes(runs: list[dict[str, Any]], key: str, names: list[str]) -> list[dict[str, Any]]:
    """Each value of ``run[key]`` that differs from the previous run's, at the run where it changed."""
    changes = []
    for before, after in zip(runs, runs[1:]):
        for name in names:
            old, new = before[key].get(name), after[key].get(name)
            if "[" in name and (old is None or new is None):
                continue  # a method's verdict comes and goes with its check's, whose change is listed
            if old != new:
                changes.append(
                    {
                        "run": after["run"],
                        "started": after["started"],
                        "path": after["path"],
                        "check" if key == "verdicts" else "analysis": name,
                        "old": old,
                        "new": new,
                        **({"flipped": old in VERDICTS and new in VERDICTS} if key == "verdicts" else {}),
                    }
                )
    return changes


def _common_folder(paths: Sequence[str]) -> str | None:
    """The folder every run's results.json lies under (as given), so that tables show short paths."""
    try:
        folder = os.path.commonpath([os.path.dirname(path) for path in paths])
    except ValueError:  # absolute and relative paths mixed, or different drives
        return None
    return folder if folder not in ("", ".") else None


# ---------------------------------------------------------------- the history


def build_history(
    runs: Sequence[dict[str, Any]], *, threshold: float = DEFAULT_THRESHOLD, source: str | None = None
) -> dict[str, Any]:
    """The content of history.json: the runs in time order, their trends, changes and flags.

    Parameters
    ----------
    runs : sequence of dict
        From :func:`collect_runs` (``path``, ``started``, ``results``), oldest first.
    threshold : float
        A run is flagged when its ranking movement (see the module docstring) is above this,
        in [0, 1).
    source : str, optional
        The analysis the field shares come from; by default :func:`choose_source`.

    Returns
    -------
    dict
        ``runs`` (one entry per run: its identity, ``shares``, ``ranking``, ``movement``,
        ``largest_moves``, ``top3_changed``, ``flagged``, ``metrics``, ``verdicts``, ``statuses``),
        ``trends`` (per field and per metric, one value per run), ``verdict_changes``,
        ``status_changes``, ``flagged`` (run numbers) and a one-line ``summary``.
    """
    _check_threshold(threshold)
    if len(runs) < 2:
        raise InputError(f"tsreport history needs at least 2 runs; got {len(runs)}.")
    fields = list(runs[0]["results"]["fields"])
    source = source if source is not None else choose_source(runs)
    history = _history_document(_run_entries(runs, fields, source, threshold), fields, source, threshold)
    history["summary"] = summary(history)
    return history


def _check_threshold(threshold: Any) -> None:
    """Refuse a threshold that is not a number in [0, 1)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
        raise UsageError(
            f"The history threshold must be a number in [0, 1) (the part of the importance that moved); "
            f"got {threshold!r}."
        )


def _run_entries(
    runs: Sequence[dict[str, Any]], fields: list[str], source: str | None, threshold: float
) -> list[dict[str, Any]]:
    """One entry per run, each compared with the latest earlier run that has shares."""
    entries: list[dict[str, Any]] = []
    previous_with_shares: dict[str, Any] | None = None
    for number, run in enumerate(runs, start=1):
        entry = _run_entry(number, run, fields, source, entries[-1] if entries else None)
        if entry["shares"] is None:
            entry["note"] = _no_shares_note(run["results"], source)
        elif previous_with_shares is not None:
            entry.update(_movement(entry, previous_with_shares, fields, threshold))
        if entry["shares"] is not None:
            previous_with_shares = entry
        entries.append(entry)
    return entries


def _run_entry(
    number: int, run: dict[str, Any], fields: list[str], source: str | None, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """What one run says (identity, shares, ranking, metrics, verdicts), not yet compared with an earlier run."""
    results = run["results"]
    started = run["started"]
    shares = field_shares((results.get("analyses") or {}).get(source), fields) if source else None
    if shares is not None:
        ranking = sorted(fields, key=lambda field: -shares[field])  # stable: ties keep the fields' order
    else:
        ranking = [field for field in results.get("ranking") or [] if field in fields]
    return {
        "run": number,
        "path": run["path"],
        "started": started.isoformat() if isinstance(started, dt.datetime) else str(started),
        "tsreport_version": results.get("tsreport_version"),
        "results_version": results.get("results_version"),
        "seconds": _number((results.get("run") or {}).get("seconds")),
        "model_sha256": _sha(results, "model"),
        "data_sha256": _sha(results, "data"),
        "model_changed": previous is not None and _sha(results, "model") != previous["model_sha256"],
        "data_changed": previous is not None and _sha(results, "data") != previous["data_sha256"],
        "share_source": source if shares is not None else None,
        "shares": shares,
        "ranking": ranking,
        "compared_with": None,
        "movement": None,
        "largest_moves": [],
        "top3_changed": None,
        "flagged": False,
        "note": None,
        "metrics": performance_metrics(results),
        "verdicts": run_verdicts(results),
        "statuses": run_statuses(results),
        "warnings": len(results.get("warnings") or []),
    }


def _no_shares_note(results: dict[str, Any], source: str | None) -> str:
    """Why a run has no field shares: the share source's status in it, or that no source ran at all."""
    if not source:
        return "no field shares: neither combined nor permutation ran"
    status = ((results.get("analyses") or {}).get(source) or {}).get("status")
    return f"no field shares: {source} is {status or 'not in this run'}"


def _movement(entry: dict[str, Any], before: dict[str, Any], fields: list[str], threshold: float) -> dict[str, Any]:
    """How far a run's shares moved since ``before`` (the previous run with shares), and whether that flags it."""
    now, then = entry["shares"], before["shares"]
    deltas = {field: now[field] - then[field] for field in fields}
    movement = round(0.5 * sum(abs(delta) for delta in deltas.values()), 6)  # as shown, so as judged
    largest = sorted(fields, key=lambda field: -abs(deltas[field]))[:TOP]
    return {
        "compared_with": before["run"],
        "movement": movement,
        "largest_moves": [
            {"field": f, "old": round(then[f], 6), "new": round(now[f], 6), "change": round(deltas[f], 6)}
            for f in largest
            if deltas[f] != 0
        ],
        "top3_changed": entry["ranking"][:TOP] != before["ranking"][:TOP],
        "flagged": movement > threshold,
    }


def _history_document(
    entries: list[dict[str, Any]], fields: list[str], source: str | None, threshold: float
) -> dict[str, Any]:
    """history.json around the run entries: the measure, the trends, the changes and the flagged runs."""
    metrics = _union(entry["metrics"] for entry in entries)
    checks = _union(entry["verdicts"] for entry in entries)
    return {
        "history_version": HISTORY_VERSION,
        "tsreport_version": __version__,
        "measure": {"name": MEASURE, "text": MEASURE_TEXT, "threshold": threshold, "source": source},
        "fields": fields,
        "folder": _common_folder([entry["path"] for entry in entries]),
        "metrics": metrics,
        "checks": checks,
        "runs": entries,
        "trends": {
            "shares": {
                field: [entry["shares"][field] if entry["shares"] else None for entry in entries] for field in fields
            },
            "metrics": {metric: [entry["metrics"].get(metric) for entry in entries] for metric in metrics},
            "movement": [entry["movement"] for entry in entries],
        },
        "verdict_changes": _changes(entries, "verdicts", checks),
        "status_changes": _changes(entries, "statuses", _union(entry["statuses"] for entry in entries)),
        "flagged": [entry["run"] for entry in entries if entry["flagged"]],
    }


def summary(history: dict[str, Any]) -> str:
    """One sentence: how many runs over which dates, where the ranking moved, how many verdicts flipped."""
    runs = history["runs"]
    threshold = history["measure"]["threshold"]
    span = f"{len(runs)} runs from {runs[0]['started'][:10]} to {runs[-1]['started'][:10]}"
    flagged = [run for run in runs if run["flagged"]]
    if flagged:
        where = ", ".join(f"run {run['run']} ({run['started'][:10]}, {run['movement']:.2f})" for run in flagged)
        moved = f"the ranking moved beyond {threshold:g} at {where}"
    elif history["measure"]["source"] is None:
        moved = "no run has field shares (neither combined nor permutation ran), so ranking movement is not measured"
    else:
        moved = f"the ranking never moved beyond {threshold:g}"
    flips = sum(change["flipped"] for change in history["verdict_changes"])
    verdicts = f"{flips} verdict flip{'' if flips == 1 else 's'}" if flips else "no verdict flipped"
    return f"{span}: {moved}; {verdicts}."


# ---------------------------------------------------------------- charts


def _x_axis(axis: Any, runs: Sequence[dict[str, Any]]) -> None:
    numbers = [run["run"] for run in runs]
    if len(runs) <= DATED_TICKS_MAX:
        axis.set_xticks(numbers, [f"{run['run']}\n{run['started'][5:10]}" for run in runs])
    else:
        from matplotlib.ticker import MaxNLocator

        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlim(numbers[0] - 0.5, numbers[-1] + 0.5)


def _mark_flagged(axis: Any, runs: Sequence[dict[str, Any]], *, label: bool) -> None:
    for index, run in enumerate(run for run in runs if run["flagged"]):
        axis.axvspan(
            run["run"] - 0.5,
            run["run"] + 0.5,
            color="#E69F00",
            alpha=0.18,
            lw=0,
            label="ranking moved" if label and index == 0 else None,
        )


def _marker(runs: Sequence[dict[str, Any]]) -> str | None:
    """Dots on the lines while each run can be told apart; beyond that the dots would make a thick line."""
    return "o" if len(runs) <= MARKED_RUNS_MAX else None


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def share_trend_svg(history: dict[str, Any]) -> str:
    """Lines of each field's share per run (the largest fields; the rest summed), flagged runs shaded."""
    from tsreport.render import plots

    plt = plots._pyplot()
    runs = history["runs"]
    numbers = [run["run"] for run in runs]
    shares = history["trends"]["shares"]
    peak = {field: max((v for v in values if v is not None), default=0.0) for field, values in shares.items()}
    order = sorted(shares, key=lambda field: -peak[field])
    shown = order if len(order) <= PLOTTED_FIELDS + 1 else order[:PLOTTED_FIELDS]
    rest = [field for field in order if field not in shown]
    figure, axis = plt.subplots(figsize=(7.2, 3.2))
    _mark_flagged(axis, runs, label=True)
    styles = ["-", "--", "-.", ":"]
    for index, field in enumerate(shown):
        axis.plot(
            numbers,
            [_nan(v) for v in shares[field]],
            marker=_marker(runs),
            ms=3.5,
            lw=1.6,
            ls=styles[index // len(plots.OKABE_ITO) % len(styles)],
            color=plots.OKABE_ITO[index % len(plots.OKABE_ITO)],
            label=field,
        )
    if rest:
        summed = [
            None if any(shares[f][i] is None for f in rest) else sum(shares[f][i] for f in rest)
            for i in range(len(runs))
        ]
        axis.plot(
            numbers,
            [_nan(v) for v in summed],
            marker=_marker(runs),
            ms=3,
            lw=1.2,
            color="#888888",
            label=f"{len(rest)} others (summed)",
        )
    axis.set_ylim(0, 1.02)
    axis.yaxis.set_major_formatter(plt.FuncFormatter(lambda value, _: f"{value:.0%}"))
    axis.set_ylabel(f"share of {history['measure']['source']} importance")
    axis.set_xlabel("run (oldest first; month-day)" if len(runs) <= DATED_TICKS_MAX else "run (oldest first)")
    _x_axis(axis, runs)
    axis.grid(axis="y", color=plots.GRID, lw=0.6)
    axis.set_axisbelow(True)
    axis.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return plots._to_svg(figure)


def movement_svg(history: dict[str, Any]) -> str:
    """Bars of each run's ranking movement against the previous run, the threshold dashed."""
    from tsreport.render import plots

    plt = plots._pyplot()
    runs = history["runs"]
    threshold = history["measure"]["threshold"]
    figure, axis = plt.subplots(figsize=(7.2, 2.2))
    values = [run["movement"] or 0.0 for run in runs]
    colours = [plots.OKABE_ITO[3] if run["flagged"] else plots.OKABE_ITO[0] for run in runs]
    axis.bar([run["run"] for run in runs], values, color=colours, width=0.7)
    axis.axhline(threshold, color=plots.INK, lw=1, ls="--", label=f"threshold {threshold:g}")
    for run in runs:
        if run["flagged"]:
            axis.annotate(
                "moved", (run["run"], run["movement"]), ha="center", va="bottom", fontsize=8, color=plots.OKABE_ITO[3]
            )
    axis.set_ylim(0, max(max(values), threshold) * 1.25 or 1.0)
    axis.set_ylabel("movement (TVD)")
    _x_axis(axis, runs)
    axis.grid(axis="y", color=plots.GRID, lw=0.6)
    axis.set_axisbelow(True)
    axis.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return plots._to_svg(figure)


def metrics_svg(history: dict[str, Any]) -> str:
    """One small panel per performance metric over the runs, flagged runs shaded."""
    from tsreport.render import plots

    plt = plots._pyplot()
    runs = history["runs"]
    metrics = history["metrics"]
    figure, axes = plt.subplots(len(metrics), 1, figsize=(7.2, 1.35 * len(metrics) + 0.7), sharex=True, squeeze=False)
    numbers = [run["run"] for run in runs]
    for index, (axis, metric) in enumerate(zip(axes[:, 0], metrics)):
        _mark_flagged(axis, runs, label=index == 0)
        axis.plot(
            numbers,
            [_nan(v) for v in history["trends"]["metrics"][metric]],
            marker=_marker(runs),
            ms=3.5,
            color=plots.INK,
        )
        axis.set_ylabel(metric, rotation=0, ha="right", va="center")
        axis.grid(axis="y", color=plots.GRID, lw=0.6)
        axis.yaxis.set_major_locator(plt.MaxNLocator(3))
        if index == 0 and any(run["flagged"] for run in runs):
            axis.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    _x_axis(axes[-1, 0], runs)
    axes[-1, 0].set_xlabel("run (oldest first; month-day)" if len(runs) <= DATED_TICKS_MAX else "run (oldest first)")
    return plots._to_svg(figure)


def history_figures(history: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Charts as {id: {svg, uri, alt}}, made from the history alone."""
    from tsreport.render import plots

    figures: dict[str, dict[str, str]] = {}
    runs = history["runs"]
    flagged = ", ".join(str(n) for n in history["flagged"]) or "none"

    def add(figure_id: str, svg: str, alt: str) -> None:
        figures[figure_id] = {"svg": svg, "uri": plots.svg_data_uri(svg), "alt": alt}

    if history["measure"]["source"] is not None:
        last = runs[-1]
        top = ", ".join(f"{f} {last['shares'][f]:.0%}" for f in last["ranking"][:TOP]) if last["shares"] else "none"
        add(
            "shares",
            share_trend_svg(history),
            f"Line chart of each field's share of the {history['measure']['source']} importance in each of "
            f"{len(runs)} runs, oldest first; runs where the ranking moved are shaded ({flagged}). "
            f"In the latest run: {top}.",
        )
        add(
            "movement",
            movement_svg(history),
            f"Bar chart of how much of the importance moved since the previous run, with the threshold "
            f"{history['measure']['threshold']:g} dashed; runs above it: {flagged}.",
        )
    if history["metrics"]:
        add(
            "metrics",
            metrics_svg(history),
            f"Line charts, one per metric ({', '.join(history['metrics'])}), of the model's performance in each run, "
            "oldest first.",
        )
    return figures


# ---------------------------------------------------------------- HTML and the files


def render_history_html(history: dict[str, Any], templates: str | Path | None = None) -> str:
    """The self-contained history.html (no JavaScript, no external request).

    ``templates``: a folder whose ``history.html`` / ``history.css`` override the bundled ones.
    """
    import jinja2

    from tsreport.render.html import environment

    env = environment(templates)
    try:
        return env.get_template("history.html").render(history=history, figures=history_figures(history))
    except jinja2.TemplateError as error:
        raise RenderError(f"Rendering history.html failed in a template: {error}") from None


def history_json(history: dict[str, Any]) -> str:
    return json.dumps(history, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def history_files(
    paths: Sequence[str | Path], *, threshold: float = DEFAULT_THRESHOLD, templates: str | Path | None = None
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Everything ``tsreport history`` writes: the history and {file name: bytes} for ``--out``
    (history.json and history.html), to be written as one whole run (``output.OutputFolder.commit``)."""
    history = build_history(collect_runs(paths), threshold=threshold)
    return history, {
        "history.json": history_json(history).encode("utf-8"),
        "history.html": render_history_html(history, templates).encode("utf-8"),
    }
