"""`tsreport diff`: what changed between two runs, read from their results.json files.

Compared: the inputs (file hashes and paths, the schema as understood, versions,
seed, the resolved settings), the window counts, the fields, the ranking, each
analysis's status and per-field importance, the overall performance metrics,
pass/fail verdicts (sanity checks, or any analysis entry carrying one) and the
warnings. Wall-clock fields (``run.started``, ``seconds``, ``run.argv``) are
ignored: two runs of the same inputs and seed give "No change."

An importance change counts only when it is beyond noise:

- where both runs carry a 95% ``interval`` for the field (``permutation``), when
  the two intervals do not overlap;
- otherwise, when the field's share of the analysis's total importance moved by
  more than ``threshold`` (default 0.05).

Changes that trip ``--fail-on-change``: the top-3 of the ranking changed, or a
verdict flipped between pass and fail.

Result changes and settings changes are kept apart. Results: verdicts, ranking,
importance beyond noise, metrics, analysis statuses, windows, fields, warnings; only
these are counted in ``changes`` and the first summary line. Settings and inputs: the
options the user gave (shown as typed, from ``run.argv`` when the run recorded its
command line, else the resolved value written the way a user types it: ``--samples
all``, not ``(none)``), the input files, the schema and the versions. A seed-only
change is a settings change: "No change in results."
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import math
from typing import Any

from tsreport import numeric
from tsreport.results import load_results as load_results  # diff reads through it; kept importable from here

DIFF_VERSION = 1
DEFAULT_THRESHOLD = 0.05
TOP = 3

#: Keys that differ between any two runs (wall clock, command line); never compared.
IGNORED_KEYS = frozenset({"started", "seconds", "argv"})
VERDICTS = ("pass", "fail")
INTERVAL_RULE = "beyond noise when the 95% intervals of the two runs do not overlap"


def share_rule(threshold: float) -> str:
    return f"beyond noise when the field's share of the total importance moved by more than {threshold:g}"


# ---------------------------------------------------------------- result types


@dataclasses.dataclass(frozen=True)
class ValueChange:
    """One compared value that differs: ``key`` is dotted (``data.sha256``, ``run.seed``,
    ``schema.fields[price].scale.mean``); ``None`` stands for absent. ``counted`` is False for
    what cannot change the numbers (see :func:`uncounted_reason`)."""

    key: str
    old: Any
    new: Any

    @property
    def counted(self) -> bool:
        return uncounted_reason(self.key) is None


#: Settings that never change results.json numbers: the renderings written, a speed knob.
UNCOUNTED_SETTINGS = {
    "settings.formats": "output only",
    "settings.batch_size": "speed only",
    "settings.batch_size_used": "speed only",
    "settings.workers": "speed only",
    "settings.scheduler": "speed only",
}
#: Numbers of two runs are equal within (relative, absolute): last-bit noise across machines, or,
#: when the batch sizes or the workers differ, float32 round-off (about 6e-8 relative per operation,
#: so that no sum or mean of a run's numbers moves by 1e-5).
EXACT = (1e-9, 1e-12)
ROUNDOFF = (1e-5, 1e-7)
_TOLERANCE: contextvars.ContextVar[tuple[float, float]] = contextvars.ContextVar("tolerance", default=EXACT)
#: run.engine keys whose difference means float32 round-off may differ (CONTRACT: batch size is a speed knob).
ROUNDOFF_NOTE = (
    "Numbers compared to float32 round-off (relative {relative:g}): the runs used different batch sizes or workers."
)
ENGINE_KEYS = ("forward_batch_size", "backward_batch_size", "worker_count")


def uncounted_reason(key: str) -> str | None:
    """Why a differing input does not count as a change (None: it counts).

    A file's path says where it lives, its sha256 what it holds; only the latter moves the numbers.
    """
    if key.endswith(".path"):
        return "location only"
    return UNCOUNTED_SETTINGS.get(key)


@dataclasses.dataclass(frozen=True)
class SettingChange:
    """One run setting that differs (resolved values compared; ``None`` stands for absent).

    ``key`` is dotted as in results.json (``settings.samples``,
    ``settings.analysis_params.permutation.n_repeats``); ``option`` is how the user names it
    (``--samples``, ``permutation.n_repeats`` in ``--config``); ``old_text``/``new_text`` are the
    values as the user typed them (see :func:`setting_texts`). ``counted`` is False for what
    cannot change the numbers (the renderings written, a speed knob).
    """

    key: str
    option: str
    old: Any
    new: Any
    old_text: str
    new_text: str

    @property
    def counted(self) -> bool:
        return uncounted_reason(self.key) is None


@dataclasses.dataclass(frozen=True)
class RankMove:
    """A field whose 1-based rank differs (``None``: not ranked in that run)."""

    field: str
    old_rank: int | None
    new_rank: int | None


@dataclasses.dataclass(frozen=True)
class RankingDiff:
    """Both rankings (most important first), the analysis each was taken from, and the moves."""

    old: tuple[str, ...]
    new: tuple[str, ...]
    old_source: str | None
    new_source: str | None
    moves: tuple[RankMove, ...]

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def top3_changed(self) -> bool:
        return self.old[:TOP] != self.new[:TOP]


@dataclasses.dataclass(frozen=True)
class StatusChange:
    """An analysis whose status differs (ok / skipped / failed; ``None``: not in that run)."""

    analysis: str
    old: str | None
    new: str | None
    reason: str | None


@dataclasses.dataclass(frozen=True)
class ImportanceChange:
    """A field's importance in one analysis moved beyond noise. ``rule`` is ``interval`` or
    ``share``; shares are fractions of the analysis's total importance (:func:`tsreport.numeric.shares`);
    intervals are the 95% intervals [low, high] where the analysis gives them."""

    analysis: str
    field: str
    rule: str
    old: float | None
    new: float | None
    old_share: float | None
    new_share: float | None
    old_interval: tuple[float, float] | None
    new_interval: tuple[float, float] | None


@dataclasses.dataclass(frozen=True)
class MetricChange:
    """An overall metric that differs; ``relative_change`` is None when the old value is 0."""

    analysis: str
    metric: str
    old: float | None
    new: float | None
    change: float | None
    relative_change: float | None


@dataclasses.dataclass(frozen=True)
class VerdictChange:
    """A pass/fail verdict that differs; ``where`` is ``sanity`` or ``analyses``. ``flipped``:
    pass -> fail or fail -> pass (other changes, e.g. pass -> skipped, are reported but do not
    trip ``--fail-on-change``)."""

    name: str
    where: str
    old: str | None
    new: str | None

    @property
    def flipped(self) -> bool:
        return self.old in VERDICTS and self.new in VERDICTS and self.old != self.new


@dataclasses.dataclass(frozen=True)
class DiffResult:
    """Everything that differs between an old and a new results.json.

    ``rules`` maps each analysis whose importances were compared to the rule used;
    ``within_noise`` maps an analysis to the fields whose importance differs but not beyond
    noise (reported, not counted).
    """

    inputs: tuple[ValueChange, ...]
    windows: tuple[ValueChange, ...]
    fields_added: tuple[str, ...]
    fields_removed: tuple[str, ...]
    fields_reordered: bool
    ranking: RankingDiff
    statuses: tuple[StatusChange, ...]
    importance: tuple[ImportanceChange, ...]
    rules: dict[str, str]
    within_noise: dict[str, tuple[str, ...]]
    metrics: tuple[MetricChange, ...]
    verdicts: tuple[VerdictChange, ...]
    warnings_added: tuple[str, ...]
    warnings_removed: tuple[str, ...]
    threshold: float = DEFAULT_THRESHOLD
    settings: tuple[SettingChange, ...] = ()
    tolerance: tuple[float, float] = EXACT  # (relative, absolute) to which numbers are compared

    @property
    def fail_reasons(self) -> tuple[str, ...]:
        """Why ``--fail-on-change`` trips (empty: it does not)."""
        reasons = []
        if self.ranking.top3_changed:
            reasons.append(
                f"the top-{TOP} ranking changed ({', '.join(self.ranking.old[:TOP])} -> "
                f"{', '.join(self.ranking.new[:TOP])})"
            )
        reasons += [f"verdict {v.name} flipped ({v.old} -> {v.new})" for v in self.verdicts if v.flipped]
        return tuple(reasons)

    @property
    def result_counts(self) -> dict[str, int]:
        """Result changes per kind, in the order the summary names them (settings and inputs apart)."""
        flips = sum(v.flipped for v in self.verdicts)
        return {
            "verdicts_flipped": flips,
            "verdicts_changed": len(self.verdicts) - flips,
            "ranking": int(self.ranking.changed),
            "importance": len(self.importance),
            "metrics": len(self.metrics),
            "statuses": len(self.statuses),
            "windows": len(self.windows),
            "fields": len(self.fields_added) + len(self.fields_removed) + int(self.fields_reordered),
            "warnings": len(self.warnings_added) + len(self.warnings_removed),
        }

    @property
    def counts(self) -> dict[str, int]:
        """Every kind: the result kinds, then ``inputs`` and ``settings`` (those that can move numbers)."""
        counts = self.result_counts
        counts["inputs"] = sum(change.counted for change in self.inputs)
        counts["settings"] = sum(change.counted for change in self.settings)
        return counts

    @property
    def change_count(self) -> int:
        """Result changes only: a settings or input change is not a change in the results."""
        return sum(self.result_counts.values())

    @property
    def settings_change_count(self) -> int:
        """Settings and inputs that differ and can move the numbers (paths, formats, speed knobs aside)."""
        return sum(change.counted for change in self.settings) + sum(change.counted for change in self.inputs)

    @property
    def summary(self) -> str:
        """The one-sentence verdict on the results: "No change.", "No change in results." or
        "3 result changes: ranking top-3 changed, ..."."""
        counts = self.result_counts
        total = sum(counts.values())
        if not total:
            return "No change in results." if self.settings or self.inputs else "No change."
        parts = []
        for kind, count in counts.items():
            if not count:
                continue
            if kind == "ranking":
                parts.append(f"ranking top-{TOP} changed" if self.ranking.top3_changed else "ranking order changed")
            else:
                parts.append(_SUMMARY_PHRASES[kind](count))
        return f"{_plural(total, 'result change')}: {', '.join(parts)}."

    @property
    def settings_summary(self) -> str | None:
        """The settings and inputs that differ, by name (None: none differ)."""
        names = [change.option for change in self.settings] + [change.key for change in self.inputs]
        if not names:
            return None
        shown = names if len(names) <= 6 else [*names[:5], f"and {len(names) - 5} more"]
        return f"Settings and inputs: {len(names)} changed ({', '.join(shown)}); not counted as result changes."

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``tsreport diff --format json``)."""
        return {
            "diff_version": DIFF_VERSION,
            "summary": self.summary,
            "settings_summary": self.settings_summary,
            "changes": self.change_count,
            "result_changes": self.change_count,
            "settings_changes": self.settings_change_count,
            "counts": self.counts,
            "sections": {
                "results": [
                    "verdicts",
                    "ranking",
                    "importance",
                    "metrics",
                    "statuses",
                    "windows",
                    "fields",
                    "warnings",
                ],
                "settings_and_inputs": ["settings", "inputs"],
            },
            "settings": [{**dataclasses.asdict(change), "counted": change.counted} for change in self.settings],
            "fail_on_change": bool(self.fail_reasons),
            "fail_reasons": list(self.fail_reasons),
            "threshold": self.threshold,
            "number_tolerance": {"relative": self.tolerance[0], "absolute": self.tolerance[1]},
            "inputs": [{**dataclasses.asdict(change), "counted": change.counted} for change in self.inputs],
            "windows": [dataclasses.asdict(change) for change in self.windows],
            "fields": {
                "added": list(self.fields_added),
                "removed": list(self.fields_removed),
                "reordered": self.fields_reordered,
            },
            "ranking": {
                "old": list(self.ranking.old),
                "new": list(self.ranking.new),
                "old_source": self.ranking.old_source,
                "new_source": self.ranking.new_source,
                "changed": self.ranking.changed,
                "top3_changed": self.ranking.top3_changed,
                "moves": [dataclasses.asdict(move) for move in self.ranking.moves],
            },
            "statuses": [dataclasses.asdict(change) for change in self.statuses],
            "importance": [_importance_dict(change) for change in self.importance],
            "rules": dict(self.rules),
            "within_noise": {name: list(fields) for name, fields in self.within_noise.items()},
            "metrics": [dataclasses.asdict(change) for change in self.metrics],
            "verdicts": [{**dataclasses.asdict(change), "flipped": change.flipped} for change in self.verdicts],
            "warnings": {"added": list(self.warnings_added), "removed": list(self.warnings_removed)},
        }


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


_SUMMARY_PHRASES = {
    "verdicts_flipped": lambda n: f"{_plural(n, 'verdict')} flipped",
    "verdicts_changed": lambda n: f"{_plural(n, 'verdict')} changed",
    "importance": lambda n: f"{_plural(n, 'importance')} beyond noise",
    "metrics": lambda n: f"{_plural(n, 'metric')} changed",
    "statuses": lambda n: f"{_plural(n, 'analysis status', 'analysis statuses')} changed",
    "windows": lambda n: f"{_plural(n, 'window count')} changed",
    "fields": lambda n: f"{_plural(n, 'field change')}",
    "warnings": lambda n: f"{_plural(n, 'warning')} added or removed",
}


def _importance_dict(change: ImportanceChange) -> dict[str, Any]:
    data = dataclasses.asdict(change)
    for key in ("old_interval", "new_interval"):
        data[key] = list(data[key]) if data[key] is not None else None
    return data


# ---------------------------------------------------------------- comparing


def diff_results(old: dict[str, Any], new: dict[str, Any], *, threshold: float = DEFAULT_THRESHOLD) -> DiffResult:
    """Compare two results.json dicts (CONTRACT §5).

    Parameters
    ----------
    old, new : dict
        The parsed results.json of the earlier and the later run.
    threshold : float
        An importance without 95% intervals changed beyond noise when its share of the
        analysis's total importance (a negative importance counts as none) moved by more than this.

    Returns
    -------
    DiffResult
        Only what differs; wall-clock fields are ignored.
    """
    tolerance = ROUNDOFF if _engines_differ(old, new) else EXACT
    token = _TOLERANCE.set(tolerance)
    try:
        return _diff(old, new, threshold, tolerance)
    finally:
        _TOLERANCE.reset(token)


def _engines_differ(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the two runs used different batch sizes or workers (numbers then differ by round-off)."""
    old_engine = (old.get("run") or {}).get("engine") or {}
    new_engine = (new.get("run") or {}).get("engine") or {}
    old_settings, new_settings = old.get("settings") or {}, new.get("settings") or {}
    return any(old_engine.get(key) != new_engine.get(key) for key in ENGINE_KEYS) or any(
        old_settings.get(key) != new_settings.get(key) for key in ("batch_size", "workers", "scheduler")
    )


def _diff(old: dict[str, Any], new: dict[str, Any], threshold: float, tolerance: tuple[float, float]) -> DiffResult:
    old_fields = list(old.get("fields") or [])
    new_fields = list(new.get("fields") or [])
    common = set(old_fields) & set(new_fields)
    old_analyses = old.get("analyses") or {}
    new_analyses = new.get("analyses") or {}
    importance, rules, within_noise = _importance(old_analyses, new_analyses, threshold)
    return DiffResult(
        inputs=tuple(_inputs(old, new)),
        windows=tuple(_pair_changes(old.get("windows") or {}, new.get("windows") or {})),
        fields_added=tuple(f for f in new_fields if f not in old_fields),
        fields_removed=tuple(f for f in old_fields if f not in new_fields),
        fields_reordered=[f for f in old_fields if f in common] != [f for f in new_fields if f in common],
        ranking=_ranking(old, new),
        statuses=tuple(_statuses(old_analyses, new_analyses)),
        importance=tuple(importance),
        rules=rules,
        within_noise=within_noise,
        metrics=tuple(_metrics(old_analyses, new_analyses)),
        verdicts=tuple(_verdicts(old, new)),
        warnings_added=tuple(w for w in new.get("warnings") or [] if w not in (old.get("warnings") or [])),
        warnings_removed=tuple(w for w in old.get("warnings") or [] if w not in (new.get("warnings") or [])),
        threshold=threshold,
        settings=tuple(_settings(old, new)),
        tolerance=tolerance,
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {dotted key: leaf}; a list of named dicts (schema fields) is keyed by name."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            if key in IGNORED_KEYS:
                continue
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        names = [item.get("name") for item in value]
        if all(isinstance(name, str) for name in names) and len(set(names)) == len(names):
            flat = {f"{prefix} order": names}
            for name, item in zip(names, value):
                flat.update(_flatten({k: v for k, v in item.items() if k != "name"}, f"{prefix}[{name}]"))
            return flat
    return {prefix: value}


def _same(old: Any, new: Any) -> bool:
    """Equal, with floats compared to the diff's tolerance (:data:`EXACT` or :data:`ROUNDOFF`)."""
    if isinstance(old, bool) or isinstance(new, bool):
        return old is new
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        relative, absolute = _TOLERANCE.get()
        return math.isclose(old, new, rel_tol=relative, abs_tol=absolute)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new))
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(_same(old[k], new[k]) for k in old)
    return old == new


def _pair_changes(old: Any, new: Any, prefix: str = "") -> list[ValueChange]:
    """The leaves that differ between two nested values, each under one dotted key.

    Both sides are walked together, so a key is listed once even where one side holds an empty
    dict and the other a filled one (flattening each side alone listed ``model_kwargs`` {} ->
    (none) and ``model_kwargs.hidden`` (none) -> 8: the same change twice). A list of named dicts
    (schema fields) is compared by name, with its order as one key.
    """
    if isinstance(old, dict) and isinstance(new, dict) and (old or new):
        changes: list[ValueChange] = []
        for key in _union(old, new):
            if key in IGNORED_KEYS:
                continue
            changes += _pair_changes(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return changes
    old_names, new_names = _names(old), _names(new)
    if old_names is not None and new_names is not None:
        changes = [] if old_names == new_names else [ValueChange(f"{prefix} order", old_names, new_names)]
        old_items = {item["name"]: item for item in old}
        new_items = {item["name"]: item for item in new}
        for name in _union(old_items, new_items):
            before = {k: v for k, v in (old_items.get(name) or {}).items() if k != "name"} or None
            after = {k: v for k, v in (new_items.get(name) or {}).items() if k != "name"} or None
            changes += _pair_changes(before, after, f"{prefix}[{name}]")
        return changes
    return [] if _same(old, new) else [ValueChange(prefix, old, new)]


def _names(value: Any) -> list[str] | None:
    """The names of a non-empty list of dicts with unique string names (else None)."""
    if not (isinstance(value, list) and value and all(isinstance(item, dict) for item in value)):
        return None
    names = [item.get("name") for item in value]
    if all(isinstance(name, str) for name in names) and len(set(names)) == len(names):
        return names
    return None


#: run.* keys that are settings (reported once, under settings, as --seed / --device).
RUN_SETTINGS = ("seed", "device")
#: run.* keys that are neither inputs nor settings: how the work ran (the batch sizes used are a setting).
RUN_IGNORED = ("engine",)


def _inputs(old: dict[str, Any], new: dict[str, Any]) -> list[ValueChange]:
    """Versions, input files and schema; the run's settings (seed, device, ...) are in _settings."""
    changes = _pair_changes(
        {k: old.get(k) for k in ("tsreport_version", "results_version")},
        {k: new.get(k) for k in ("tsreport_version", "results_version")},
    )
    old_run = {k: v for k, v in (old.get("run") or {}).items() if k not in RUN_SETTINGS + RUN_IGNORED}
    new_run = {k: v for k, v in (new.get("run") or {}).items() if k not in RUN_SETTINGS + RUN_IGNORED}
    changes += _pair_changes(old_run, new_run, "run")
    changes += _pair_changes(old.get("inputs") or {}, new.get("inputs") or {})
    return changes


# ---------------------------------------------------------------- settings as typed

#: results.json ``settings`` key -> the ``tsreport explain`` option that sets it.
OPTIONS = {
    "formats": "--format",
    "analyses": "--analyses",
    "samples": "--samples",
    "explain_at": "--explain-at",
    "seed": "--seed",
    "device": "--device",
    "model_class": "--model-class",
    "model_kwargs": "--model-kwargs",
    "trust_model": "--trust-model",
    "fail_on": "--fail-on",
    "batch_size": "--batch-size",
    "workers": "--workers",
    "scheduler": "--scheduler",
}
#: Options that take no value.
FLAGS = frozenset({"--trust-model", "--force", "--quiet", "--verbose", "--help"})
#: How a resolved None reads, per setting (what the user types for it).
NONE_AS_TYPED = {"samples": "all", "analyses": "all (the full battery)"}


def typed_options(argv: Any) -> dict[str, str] | None:
    """The options of a recorded ``tsreport explain`` (or ``demo``) command line, as typed.

    Returns None when ``argv`` is not such a command line (absent, or another program's: a run
    started in-process records its host's argv), so the caller falls back to resolved values.
    A repeated option's values are joined with ", "; a flag reads ``on``.
    """
    if not (isinstance(argv, list) and len(argv) >= 2 and all(isinstance(a, str) for a in argv)):
        return None
    if argv[1] not in ("explain", "demo"):
        return None
    typed: dict[str, str] = {}
    tokens = iter(argv[2:])
    for token in tokens:
        if token == "--":
            break
        if not token.startswith("--"):
            continue
        name, equals, value = token.partition("=")
        if name in FLAGS:
            typed[name] = "on"
            continue
        if not equals:
            value = next(tokens, "")
        typed[name] = f"{typed[name]}, {value}" if name in typed else value
    return typed


def _resolved_text(key: str, value: Any) -> str:
    """A resolved setting written the way a user types it."""
    if value is None:
        return NONE_AS_TYPED.get(key, "(none)")
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value):
        return ",".join(str(item) for item in value) if value else "(none)"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def setting_texts(key: str, value: Any, typed: dict[str, str] | None) -> str:
    """``value`` of setting ``key`` as the user gave it: the typed text when the run's command line
    carries the option, else the resolved value (from ``--config`` or the default) written sensibly."""
    option = OPTIONS.get(key)
    if typed is not None and option in typed:
        return typed[option]
    return _resolved_text(key, value)


def _run_settings(results: dict[str, Any]) -> dict[str, Any]:
    """The resolved settings; results without a ``settings`` block still have run.seed/run.device."""
    settings = dict(results.get("settings") or {})
    run = results.get("run") or {}
    for key in RUN_SETTINGS:
        if key not in settings and key in run:
            settings[key] = run[key]
    engine = run.get("engine") or {}
    if "forward_batch_size" in engine:  # what --batch-size auto chose, or the pinned size
        settings["batch_size_used"] = (
            f"{engine['forward_batch_size']} forward, {engine.get('backward_batch_size')} backward"
        )
    return settings


def _settings(old: dict[str, Any], new: dict[str, Any]) -> list[SettingChange]:
    """Each setting that differs, once: top-level settings whole (``model_kwargs`` is one value, as
    typed), per-analysis parameters (``--config``) one by one."""
    old_settings, new_settings = _run_settings(old), _run_settings(new)
    old_typed = typed_options((old.get("run") or {}).get("argv"))
    new_typed = typed_options((new.get("run") or {}).get("argv"))
    changes = []
    for key in _union(old_settings, new_settings):
        before, after = old_settings.get(key), new_settings.get(key)
        if key == "analysis_params":
            for change in _pair_changes(before or {}, after or {}):
                changes.append(
                    SettingChange(
                        f"settings.analysis_params.{change.key}",
                        change.key,
                        change.old,
                        change.new,
                        _resolved_text(change.key, change.old),
                        _resolved_text(change.key, change.new),
                    )
                )
            continue
        if _same(before, after):
            continue
        changes.append(
            SettingChange(
                f"settings.{key}",
                OPTIONS.get(key, key),
                before,
                after,
                setting_texts(key, before, old_typed),
                setting_texts(key, after, new_typed),
            )
        )
    return changes


def _ranking(old: dict[str, Any], new: dict[str, Any]) -> RankingDiff:
    old_order = tuple(old.get("ranking") or [])
    new_order = tuple(new.get("ranking") or [])
    old_rank = {field: i + 1 for i, field in enumerate(old_order)}
    new_rank = {field: i + 1 for i, field in enumerate(new_order)}
    fields = list(new_order) + [f for f in old_order if f not in new_rank]
    moves = tuple(
        RankMove(field, old_rank.get(field), new_rank.get(field))
        for field in fields
        if old_rank.get(field) != new_rank.get(field)
    )
    return RankingDiff(old_order, new_order, old.get("ranking_source"), new.get("ranking_source"), moves)


def _verdict(entry: Any) -> str | None:
    """An entry's pass/fail verdict (its ``verdict``, else its ``status`` when that is pass/fail)."""
    if not isinstance(entry, dict):
        return None
    for key in ("verdict", "status"):
        if entry.get(key) in VERDICTS:
            return entry[key]
    return None


def _has_verdict(entry: Any) -> bool:
    return isinstance(entry, dict) and (entry.get("verdict") in VERDICTS or entry.get("status") in VERDICTS)


def _verdicts(old: dict[str, Any], new: dict[str, Any]) -> list[VerdictChange]:
    """Sanity checks (by status), then any analysis entry carrying a pass/fail verdict."""
    changes: list[VerdictChange] = []
    seen: set[str] = set()
    old_sanity, new_sanity = old.get("sanity") or {}, new.get("sanity") or {}
    for name in _union(old_sanity, new_sanity):
        seen.add(name)
        before, after = old_sanity.get(name), new_sanity.get(name)
        before_status = before.get("status") if isinstance(before, dict) else None
        after_status = after.get("status") if isinstance(after, dict) else None
        if before_status != after_status:
            changes.append(VerdictChange(name, "sanity", before_status, after_status))
    old_analyses, new_analyses = old.get("analyses") or {}, new.get("analyses") or {}
    for name in _union(old_analyses, new_analyses):
        before, after = old_analyses.get(name), new_analyses.get(name)
        if name in seen or not (_has_verdict(before) or _has_verdict(after)):
            continue
        if _verdict(before) != _verdict(after):
            changes.append(VerdictChange(name, "analyses", _verdict(before), _verdict(after)))
    return changes


def _union(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return list(old) + [name for name in new if name not in old]


def _status(entry: Any) -> str | None:
    return entry.get("status") if isinstance(entry, dict) else None


def _statuses(old: dict[str, Any], new: dict[str, Any]) -> list[StatusChange]:
    changes = []
    for name in _union(old, new):
        before, after = old.get(name), new.get(name)
        if _status(before) in VERDICTS or _status(after) in VERDICTS:
            continue  # a pass/fail status is a verdict, compared in _verdicts
        if _status(before) != _status(after) or (before is None) != (after is None):
            reason = after.get("reason") if isinstance(after, dict) else None
            changes.append(StatusChange(name, _status(before), _status(after), reason))
    return changes


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _shares(entry: dict[str, Any]) -> dict[str, float | None]:
    """The analysis's ``share`` dict, or its ``field_importance`` normalised by :func:`tsreport.numeric.shares`
    (a negative importance counts as none, as in the analyses' own shares; a null one has an unknown share)."""
    share = entry.get("share")
    if isinstance(share, dict):
        return {field: _number(value) for field, value in share.items()}
    importance = {field: _number(value) for field, value in entry["field_importance"].items()}
    return numeric.shares(importance, unknown="unknown")


def _interval(entry: dict[str, Any], field: str) -> tuple[float, float] | None:
    intervals = entry.get("interval")
    bounds = intervals.get(field) if isinstance(intervals, dict) else None
    if isinstance(bounds, (list, tuple)) and len(bounds) == 2:
        low, high = _number(bounds[0]), _number(bounds[1])
        if low is not None and high is not None:
            return (min(low, high), max(low, high))
    return None


def _importance(
    old: dict[str, Any], new: dict[str, Any], threshold: float
) -> tuple[list[ImportanceChange], dict[str, str], dict[str, tuple[str, ...]]]:
    changes: list[ImportanceChange] = []
    rules: dict[str, str] = {}
    within_noise: dict[str, tuple[str, ...]] = {}
    for name in _union(old, new):
        before, after = old.get(name), new.get(name)
        if not (isinstance(before, dict) and isinstance(after, dict)):
            continue
        if not (isinstance(before.get("field_importance"), dict) and isinstance(after.get("field_importance"), dict)):
            continue
        if _status(before) not in (None, "ok") or _status(after) not in (None, "ok"):
            continue  # a status change is reported as such; the numbers of a skipped run mean nothing
        old_share, new_share = _shares(before), _shares(after)
        used: set[str] = set()
        quiet: list[str] = []
        for field in before["field_importance"]:
            if field not in after["field_importance"]:
                continue  # reported as a removed field
            old_value = _number(before["field_importance"][field])
            new_value = _number(after["field_importance"][field])
            old_interval, new_interval = _interval(before, field), _interval(after, field)
            if old_interval is not None and new_interval is not None:
                rule = "interval"
                beyond = old_interval[1] < new_interval[0] or new_interval[1] < old_interval[0]
            else:
                rule = "share"
                a, b = old_share.get(field), new_share.get(field)
                beyond = (a is None) != (b is None) or (a is not None and b is not None and abs(b - a) > threshold)
            used.add(rule)
            if (old_value is None) != (new_value is None):
                beyond = True  # a value that became null (or stopped being null) always counts
            if beyond:
                changes.append(
                    ImportanceChange(
                        name,
                        field,
                        rule,
                        old_value,
                        new_value,
                        old_share.get(field),
                        new_share.get(field),
                        old_interval,
                        new_interval,
                    )
                )
            elif not _same(old_value, new_value):
                quiet.append(field)
        if used:
            texts = [INTERVAL_RULE if rule == "interval" else share_rule(threshold) for rule in sorted(used)]
            rules[name] = "; otherwise ".join(texts) if len(texts) > 1 else texts[0]
        if quiet:
            within_noise[name] = tuple(quiet)
    return changes, rules, within_noise


def _metrics(old: dict[str, Any], new: dict[str, Any]) -> list[MetricChange]:
    """Every analysis's ``overall`` metrics (performance: mae, rmse, r2; accuracy, log_loss)."""
    changes = []
    for name in _union(old, new):
        before, after = old.get(name), new.get(name)
        before_overall = before.get("overall") if isinstance(before, dict) else None
        after_overall = after.get("overall") if isinstance(after, dict) else None
        if not (isinstance(before_overall, dict) or isinstance(after_overall, dict)):
            continue
        old_flat = _flatten(before_overall or {})
        new_flat = _flatten(after_overall or {})
        for metric in _union(old_flat, new_flat):
            a, b = old_flat.get(metric), new_flat.get(metric)
            if _same(a, b) or not (_number(a) is not None or _number(b) is not None):
                continue
            a, b = _number(a), _number(b)
            change = b - a if a is not None and b is not None else None
            relative = change / abs(a) if change is not None and a != 0 else None
            changes.append(MetricChange(name, metric, a, b, change, relative))
    return changes


# ---------------------------------------------------------------- text


def _show(value: Any, width: int = 60) -> str:
    """A value as a reviewer reads it: hashes shortened, absent as '(none)', long values cut."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        text = value[:12] + "…" if len(value) == 64 and all(c in "0123456789abcdef" for c in value) else value
    elif isinstance(value, float):
        text = _num(value)
    else:
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict, bool)) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _num(value: float | None) -> str:
    return "(none)" if value is None else f"{value:.4g}"


def _signed(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:+.1f}%" if percent else f"{value:+.4g}"


def _interval_text(bounds: tuple[float, float] | None) -> str:
    return "" if bounds is None else f" [{_num(bounds[0])}, {_num(bounds[1])}]"


def _table(rows: list[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max((len(left) for left, _ in rows), default=0)
    return [f"{indent}{left.ljust(width)}  {right}".rstrip() for left, right in rows]


RESULTS_HEADING = "=== Result changes ==="
SETTINGS_HEADING = "=== Settings and inputs (not result changes) ==="


def format_text(result: DiffResult) -> str:
    """The diff for a reviewer in a terminal: the one-sentence verdict on the results, the settings
    and inputs that differ, then one heading per kind: result changes first, then (under their own
    heading) the settings as the user typed them and the inputs."""
    lines = [result.summary]
    if result.settings_summary:
        lines.append(result.settings_summary)
    if result.tolerance != EXACT:
        lines.append(ROUNDOFF_NOTE.format(relative=result.tolerance[0]))
    if result.fail_reasons:
        lines.append("Fails --fail-on-change: " + "; ".join(result.fail_reasons) + ".")
    changes = [line for section in _RESULT_SECTIONS for line in section(result)]
    if changes and (result.settings or result.inputs):
        changes = ["", RESULTS_HEADING, *changes]
    return "\n".join(lines + changes + _text_settings_and_inputs(result)) + "\n"


def _text_verdicts(result: DiffResult) -> list[str]:
    if not result.verdicts:
        return []
    rows = [
        (f"{v.where}.{v.name}", f"{v.old or '(none)'} -> {v.new or '(none)'}" + ("  FLIPPED" if v.flipped else ""))
        for v in result.verdicts
    ]
    return ["", "Verdicts", *_table(rows)]


def _text_ranking(result: DiffResult) -> list[str]:
    ranking = result.ranking
    if not (ranking.changed or ranking.old_source != ranking.new_source):
        return []
    source = ranking.new_source if ranking.old_source == ranking.new_source else None
    lines = ["", f"Ranking (by {source})" if source else "Ranking"]
    if ranking.old_source != ranking.new_source:
        lines.append(f"  taken from {ranking.old_source or '(none)'} -> {ranking.new_source or '(none)'}")
    if ranking.changed:
        lines += _table([("old:", ", ".join(ranking.old) or "(none)"), ("new:", ", ".join(ranking.new) or "(none)")])
        lines.append(
            f"  top-{TOP} changed" if ranking.top3_changed else f"  top-{TOP} unchanged; the order below it changed"
        )
        lines += _table(
            [(move.field, f"#{move.old_rank or '-'} -> #{move.new_rank or '-'}") for move in ranking.moves],
            indent="    ",
        )
    return lines


def _importance_text(change: ImportanceChange) -> str:
    if change.rule == "interval":
        return (
            f"{_num(change.old)}{_interval_text(change.old_interval)} -> "
            f"{_num(change.new)}{_interval_text(change.new_interval)}"
        )
    delta = (
        change.new_share - change.old_share if change.old_share is not None and change.new_share is not None else None
    )
    return f"share {_num(change.old_share)} -> {_num(change.new_share)} ({_signed(delta)})"


def _text_importance(result: DiffResult) -> list[str]:
    if not result.importance:
        return []
    lines = ["", "Importance beyond noise"]
    by_analysis: dict[str, list[ImportanceChange]] = {}
    for change in result.importance:
        by_analysis.setdefault(change.analysis, []).append(change)
    for name, changes in by_analysis.items():
        lines.append(f"  {name} ({result.rules.get(name, '')})")
        lines += _table([(change.field, _importance_text(change)) for change in changes], indent="    ")
    return lines


def _text_metrics(result: DiffResult) -> list[str]:
    if not result.metrics:
        return []
    rows = [
        (
            f"{m.analysis}.{m.metric}",
            f"{_num(m.old)} -> {_num(m.new)} ({_signed(m.change)}, {_signed(m.relative_change, percent=True)})",
        )
        for m in result.metrics
    ]
    return ["", "Metrics", *_table(rows)]


def _text_statuses(result: DiffResult) -> list[str]:
    if not result.statuses:
        return []
    rows = [
        (s.analysis, f"{s.old or '(not run)'} -> {s.new or '(not run)'}" + (f": {s.reason}" if s.reason else ""))
        for s in result.statuses
    ]
    return ["", "Analyses", *_table(rows)]


def _text_windows(result: DiffResult) -> list[str]:
    if not result.windows:
        return []
    return ["", "Windows", *_table([(c.key, f"{_show(c.old)} -> {_show(c.new)}") for c in result.windows])]


def _text_fields(result: DiffResult) -> list[str]:
    if not (result.fields_added or result.fields_removed or result.fields_reordered):
        return []
    lines = ["", "Fields"]
    lines += [f"  + {field}" for field in result.fields_added]
    lines += [f"  - {field}" for field in result.fields_removed]
    if result.fields_reordered:
        lines.append("  order of the common fields changed")
    return lines


def _text_warnings(result: DiffResult) -> list[str]:
    if not (result.warnings_added or result.warnings_removed):
        return []
    lines = ["", "Warnings"]
    lines += [f"  + {warning}" for warning in result.warnings_added]
    lines += [f"  - {warning}" for warning in result.warnings_removed]
    return lines


def _text_within_noise(result: DiffResult) -> list[str]:
    if not result.within_noise:
        return []
    rows = [(name, ", ".join(fields)) for name, fields in result.within_noise.items()]
    return ["", "Within noise (not counted)", *_table(rows)]


# The result sections of the text diff, in order; each gives its lines, or none when nothing changed.
_RESULT_SECTIONS = (
    _text_verdicts,
    _text_ranking,
    _text_importance,
    _text_metrics,
    _text_statuses,
    _text_windows,
    _text_fields,
    _text_warnings,
    _text_within_noise,
)


def _text_changes(changes: list[Any], key: Any, old: Any, new: Any) -> list[tuple[str, str]]:
    """Rows of setting or input changes: old -> new, and why a change is not counted."""
    return [
        (
            key(c),
            f"{_show(old(c))} -> {_show(new(c))}"
            + ("" if c.counted else f"  ({uncounted_reason(c.key)}, not counted)"),
        )
        for c in changes
    ]


def _text_settings_and_inputs(result: DiffResult) -> list[str]:
    if not (result.settings or result.inputs):
        return []
    lines = ["", SETTINGS_HEADING]
    if result.settings:
        rows = _text_changes(result.settings, lambda c: c.option, lambda c: c.old_text, lambda c: c.new_text)
        lines += ["", "Settings (as typed)", *_table(rows)]
    if result.inputs:
        rows = _text_changes(result.inputs, lambda c: c.key, lambda c: c.old, lambda c: c.new)
        lines += ["", "Inputs", *_table(rows)]
    return lines


# ---------------------------------------------------------------- markdown

#: The markdown summary never reaches this many lines.
MARKDOWN_MAX_LINES = 60
MARKDOWN_RESULT_ROWS = 22
MARKDOWN_SETTING_ROWS = 12


def _result_rows(result: DiffResult) -> list[tuple[str, str, str, str]]:
    """(what, old, new, note) for each result change, most serious first."""
    rows = [
        (f"verdict {v.where}.{v.name}", v.old or "(none)", v.new or "(none)", "**flipped**" if v.flipped else "")
        for v in result.verdicts
    ]
    ranking = result.ranking
    if ranking.changed:
        rows.append(
            (
                "ranking",
                ", ".join(ranking.old[:5]) or "(none)",
                ", ".join(ranking.new[:5]) or "(none)",
                f"top-{TOP} changed" if ranking.top3_changed else f"below the top-{TOP}",
            )
        )
    for change in result.importance:
        if change.rule == "interval":
            old = f"{_num(change.old)}{_interval_text(change.old_interval)}"
            new = f"{_num(change.new)}{_interval_text(change.new_interval)}"
            note = "intervals do not overlap"
        else:
            old, new = f"share {_num(change.old_share)}", f"share {_num(change.new_share)}"
            note = f"share moved > {result.threshold:g}"
        rows.append((f"importance {change.analysis}: {change.field}", old, new, note))
    rows += [
        (
            f"metric {m.analysis}.{m.metric}",
            _num(m.old),
            _num(m.new),
            f"{_signed(m.change)} ({_signed(m.relative_change, percent=True)})",
        )
        for m in result.metrics
    ]
    rows += [
        (f"analysis {s.analysis}", s.old or "(not run)", s.new or "(not run)", s.reason or "") for s in result.statuses
    ]
    rows += [(f"windows {c.key}", _show(c.old), _show(c.new), "") for c in result.windows]
    rows += [(f"field {field}", "(none)", "added", "") for field in result.fields_added]
    rows += [(f"field {field}", "present", "removed", "") for field in result.fields_removed]
    if result.fields_reordered:
        rows.append(("fields", "", "", "order of the common fields changed"))
    rows += [("warning", "", "added", warning) for warning in result.warnings_added]
    rows += [("warning", "", "removed", warning) for warning in result.warnings_removed]
    return rows


def _markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]], limit: int) -> list[str]:
    from tsreport.render.markdown import escape

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    shown = rows if len(rows) <= limit else rows[: limit - 1]
    for row in shown:
        cells = [escape(cell, 120) for cell in row]
        cells[-1] = row[-1] if row[-1] == "**flipped**" else cells[-1]
        lines.append("| " + " | ".join(cells) + " |")
    if len(shown) < len(rows):
        lines.append(f"| ... and {len(rows) - len(shown)} more (see `--format json`) |" + " |" * (len(header) - 1))
    return lines


def format_markdown(result: DiffResult) -> str:
    """The diff as GitHub-flavoured markdown, for a CI job summary or a merge-request comment
    (``tsreport diff --format markdown``): the verdict, then result changes and settings/inputs
    changes in two tables; fewer than :data:`MARKDOWN_MAX_LINES` lines whatever the diff."""
    from tsreport.render.markdown import escape

    mark = "❌" if result.fail_reasons else ("✅" if not result.change_count else "⚠️")
    lines = [f"### tsreport diff: {mark} {escape(result.summary)}"]
    if result.fail_reasons:
        lines += ["", "**Fails `--fail-on-change`:** " + escape("; ".join(result.fail_reasons), 400) + "."]
    rows = _result_rows(result)
    if rows:
        lines += ["", "#### Result changes"]
        lines += _markdown_table(("what", "old", "new", "note"), rows, MARKDOWN_RESULT_ROWS)
    if result.within_noise:
        quiet = "; ".join(f"{name}: {', '.join(fields)}" for name, fields in result.within_noise.items())
        lines += ["", f"Within noise (not counted): {escape(quiet, 300)}"]
    settings = [
        (c.option, c.old_text, c.new_text, "" if c.counted else f"{uncounted_reason(c.key)}, not counted")
        for c in result.settings
    ]
    settings += [
        (c.key, _show(c.old), _show(c.new), "" if c.counted else f"{uncounted_reason(c.key)}, not counted")
        for c in result.inputs
    ]
    if settings:
        lines += ["", "#### Settings and inputs (not result changes)"]
        lines += _markdown_table(("setting or input", "old", "new", "note"), settings, MARKDOWN_SETTING_ROWS)
    return "\n".join(lines) + "\n"
