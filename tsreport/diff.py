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
"""

from __future__ import annotations

import dataclasses
import json
import math
import reprlib
from pathlib import Path
from typing import Any

from tsreport import safeload
from tsreport.exceptions import InputError
from tsreport.results import RESULTS_VERSION

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
UNCOUNTED_SETTINGS = {"settings.formats": "output only", "settings.batch_size": "speed only"}


def uncounted_reason(key: str) -> str | None:
    """Why a differing input does not count as a change (None: it counts).

    A file's path says where it lives, its sha256 what it holds; only the latter moves the numbers.
    """
    if key.endswith(".path"):
        return "location only"
    return UNCOUNTED_SETTINGS.get(key)


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
    ``share``; shares are fractions of the analysis's total |importance|; intervals are
    the 95% intervals [low, high] where the analysis gives them."""

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
    def counts(self) -> dict[str, int]:
        """Counted changes per kind, in the order the summary names them."""
        flips = sum(v.flipped for v in self.verdicts)
        return {
            "verdicts_flipped": flips,
            "verdicts_changed": len(self.verdicts) - flips,
            "ranking": int(self.ranking.changed),
            "importance": len(self.importance),
            "metrics": len(self.metrics),
            "statuses": len(self.statuses),
            "inputs": sum(change.counted for change in self.inputs),
            "windows": len(self.windows),
            "fields": len(self.fields_added) + len(self.fields_removed) + int(self.fields_reordered),
            "warnings": len(self.warnings_added) + len(self.warnings_removed),
        }

    @property
    def change_count(self) -> int:
        return sum(self.counts.values())

    @property
    def summary(self) -> str:
        """The one-sentence verdict: "No change." or "3 changes: ranking top-3 changed, ..."."""
        counts = self.counts
        total = sum(counts.values())
        if not total:
            return "No change."
        parts = []
        for kind, count in counts.items():
            if not count:
                continue
            if kind == "ranking":
                parts.append(f"ranking top-{TOP} changed" if self.ranking.top3_changed else "ranking order changed")
            else:
                parts.append(_SUMMARY_PHRASES[kind](count))
        return f"{_plural(total, 'change')}: {', '.join(parts)}."

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``tsreport diff --format json``)."""
        return {
            "diff_version": DIFF_VERSION,
            "summary": self.summary,
            "changes": self.change_count,
            "counts": self.counts,
            "fail_on_change": bool(self.fail_reasons),
            "fail_reasons": list(self.fail_reasons),
            "threshold": self.threshold,
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
    "inputs": lambda n: f"{_plural(n, 'input')} changed",
    "windows": lambda n: f"{_plural(n, 'window count')} changed",
    "fields": lambda n: f"{_plural(n, 'field change')}",
    "warnings": lambda n: f"{_plural(n, 'warning')} added or removed",
}


def _importance_dict(change: ImportanceChange) -> dict[str, Any]:
    data = dataclasses.asdict(change)
    for key in ("old_interval", "new_interval"):
        data[key] = list(data[key]) if data[key] is not None else None
    return data


# ---------------------------------------------------------------- loading


def _json_syntax_message(path: Path, line: int | None, column: int | None, what: str) -> str:
    detail = f"{what} at line {line}, column {column}" if line is not None else what
    return f"{path} is not valid JSON ({detail}); give a results.json written by tsreport."


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results.json written by ``tsreport explain``.

    Raises
    ------
    InputError
        The file cannot be read, is not JSON, is not a tsreport results.json, or was written
        by a newer tsreport (a ``results_version`` this one cannot read). The message names
        the file.
    """
    path = Path(path)
    data = safeload.load_json(
        path, role="results file", limits=safeload.RESULTS_LIMITS, error=InputError, syntax=_json_syntax_message
    )
    if not isinstance(data, dict) or not isinstance(data.get("analyses"), dict) or "results_version" not in data:
        raise InputError(f"{path} is not a tsreport results.json (no 'analyses' or 'results_version').")
    version = data["results_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"{path} has an invalid results_version {reprlib.repr(version)}; expected an integer >= 1.")
    if version > RESULTS_VERSION:
        raise InputError(
            f"{path} has results_version {version}; this tsreport reads versions up to {RESULTS_VERSION}. "
            "Upgrade tsreport."
        )
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
        analysis's total |importance| moved by more than this.

    Returns
    -------
    DiffResult
        Only what differs; wall-clock fields are ignored.
    """
    old_fields = list(old.get("fields") or [])
    new_fields = list(new.get("fields") or [])
    common = set(old_fields) & set(new_fields)
    old_analyses = old.get("analyses") or {}
    new_analyses = new.get("analyses") or {}
    importance, rules, within_noise = _importance(old_analyses, new_analyses, threshold)
    return DiffResult(
        inputs=tuple(_inputs(old, new)),
        windows=tuple(_value_changes(_flatten(old.get("windows") or {}), _flatten(new.get("windows") or {}))),
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
    """Equal, with floats compared to a relative 1e-9 (last-bit noise across machines)."""
    if isinstance(old, bool) or isinstance(new, bool):
        return old is new
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return math.isclose(old, new, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new))
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(_same(old[k], new[k]) for k in old)
    return old == new


def _value_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[ValueChange]:
    keys = list(old) + [key for key in new if key not in old]
    changes = []
    for key in keys:
        before, after = old.get(key), new.get(key)
        if not _same(before, after):
            name = f"{prefix}{key}"
            changes.append(ValueChange(name, before, after))
    return changes


def _inputs(old: dict[str, Any], new: dict[str, Any]) -> list[ValueChange]:
    """Versions, run seed/device, input files and schema, resolved settings."""
    changes = _value_changes(
        {k: old.get(k) for k in ("tsreport_version", "results_version")},
        {k: new.get(k) for k in ("tsreport_version", "results_version")},
    )
    changes += _value_changes(_flatten(old.get("run") or {}), _flatten(new.get("run") or {}), "run.")
    changes += _value_changes(_flatten(old.get("inputs") or {}), _flatten(new.get("inputs") or {}))
    # settings.seed / settings.device repeat run.seed / run.device: report the change once.
    reported = {(c.key.removeprefix("run."), repr(c.old), repr(c.new)) for c in changes if c.key.startswith("run.")}
    for change in _value_changes(_flatten(old.get("settings") or {}), _flatten(new.get("settings") or {}), "settings."):
        if (change.key.removeprefix("settings."), repr(change.old), repr(change.new)) not in reported:
            changes.append(change)
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
    """The analysis's ``share`` dict, or each |importance| over the total."""
    share = entry.get("share")
    if isinstance(share, dict):
        return {field: _number(value) for field, value in share.items()}
    importance = {field: _number(value) for field, value in entry["field_importance"].items()}
    total = sum(abs(value) for value in importance.values() if value is not None)
    return {
        field: (abs(value) / total if value is not None and total > 0 else None) for field, value in importance.items()
    }


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


def format_text(result: DiffResult) -> str:
    """The diff for a reviewer in a terminal: the one-sentence verdict, then one heading per kind."""
    lines = [result.summary]
    if result.fail_reasons:
        lines.append("Fails --fail-on-change: " + "; ".join(result.fail_reasons) + ".")

    if result.verdicts:
        lines += ["", "Verdicts"]
        lines += _table(
            [
                (
                    f"{v.where}.{v.name}",
                    f"{v.old or '(none)'} -> {v.new or '(none)'}" + ("  FLIPPED" if v.flipped else ""),
                )
                for v in result.verdicts
            ]
        )

    ranking = result.ranking
    if ranking.changed or ranking.old_source != ranking.new_source:
        source = ranking.new_source if ranking.old_source == ranking.new_source else None
        lines += ["", f"Ranking (by {source})" if source else "Ranking"]
        if ranking.old_source != ranking.new_source:
            lines.append(f"  taken from {ranking.old_source or '(none)'} -> {ranking.new_source or '(none)'}")
        if ranking.changed:
            lines += _table(
                [("old:", ", ".join(ranking.old) or "(none)"), ("new:", ", ".join(ranking.new) or "(none)")]
            )
            lines.append(
                f"  top-{TOP} changed" if ranking.top3_changed else f"  top-{TOP} unchanged; the order below it changed"
            )
            lines += _table(
                [(move.field, f"#{move.old_rank or '-'} -> #{move.new_rank or '-'}") for move in ranking.moves],
                indent="    ",
            )

    if result.importance:
        lines += ["", "Importance beyond noise"]
        by_analysis: dict[str, list[ImportanceChange]] = {}
        for change in result.importance:
            by_analysis.setdefault(change.analysis, []).append(change)
        for name, changes in by_analysis.items():
            lines.append(f"  {name} ({result.rules.get(name, '')})")
            rows = []
            for change in changes:
                if change.rule == "interval":
                    right = (
                        f"{_num(change.old)}{_interval_text(change.old_interval)} -> "
                        f"{_num(change.new)}{_interval_text(change.new_interval)}"
                    )
                else:
                    delta = (
                        change.new_share - change.old_share
                        if change.old_share is not None and change.new_share is not None
                        else None
                    )
                    right = f"share {_num(change.old_share)} -> {_num(change.new_share)} ({_signed(delta)})"
                rows.append((change.field, right))
            lines += _table(rows, indent="    ")

    if result.metrics:
        lines += ["", "Metrics"]
        lines += _table(
            [
                (
                    f"{m.analysis}.{m.metric}",
                    f"{_num(m.old)} -> {_num(m.new)} ({_signed(m.change)}, {_signed(m.relative_change, percent=True)})",
                )
                for m in result.metrics
            ]
        )

    if result.statuses:
        lines += ["", "Analyses"]
        lines += _table(
            [
                (
                    s.analysis,
                    f"{s.old or '(not run)'} -> {s.new or '(not run)'}" + (f": {s.reason}" if s.reason else ""),
                )
                for s in result.statuses
            ]
        )

    if result.inputs:
        lines += ["", "Inputs"]
        lines += _table(
            [
                (
                    c.key,
                    f"{_show(c.old)} -> {_show(c.new)}"
                    + ("" if c.counted else f"  ({uncounted_reason(c.key)}, not counted)"),
                )
                for c in result.inputs
            ]
        )

    if result.windows:
        lines += ["", "Windows"]
        lines += _table([(c.key, f"{_show(c.old)} -> {_show(c.new)}") for c in result.windows])

    if result.fields_added or result.fields_removed or result.fields_reordered:
        lines += ["", "Fields"]
        lines += [f"  + {field}" for field in result.fields_added]
        lines += [f"  - {field}" for field in result.fields_removed]
        if result.fields_reordered:
            lines.append("  order of the common fields changed")

    if result.warnings_added or result.warnings_removed:
        lines += ["", "Warnings"]
        lines += [f"  + {warning}" for warning in result.warnings_added]
        lines += [f"  - {warning}" for warning in result.warnings_removed]

    if result.within_noise:
        lines += ["", "Within noise (not counted)"]
        lines += _table([(name, ", ".join(fields)) for name, fields in result.within_noise.items()])
    return "\n".join(lines) + "\n"
