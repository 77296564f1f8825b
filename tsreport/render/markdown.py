"""``summary.md``: a short GitHub-flavoured markdown summary of one run, for a CI job summary or a
merge-request comment (``tsreport explain --format markdown``).

Rendered from the results.json dict alone (``Report.to_dict()``), like every other renderer: it
never calls the model. Whatever the run, the summary stays under :data:`MAX_LINES` lines: long lists
are cut to their first few items and a "... and N more" line (the full figures are in results.json).

It says, in this order: the verdict (each sanity check x method passed, failed or not run, with the
reason; "passed every check" only when every check ran and passed), the headline ranking with the
combined shares, the main performance metrics, the analyses that were skipped or failed with their
reasons, and the warnings. The verdicts come from :mod:`tsreport.verdicts`, the one verdict logic that
the HTML/PDF cover and junit.xml read too: a method that passed one planted control while the other
did not run is "not run in full", never "passed".
"""

from __future__ import annotations

import math
import re
from typing import Any

from tsreport import numeric
from tsreport.verdicts import (
    EVERY_CHECK_PASSED,
    FAILED,
    NOT_RUN,
    PASSED,
    CheckOutcome,
    check_outcomes,
    overall_verdict,
)

#: The summary never reaches this many lines.
MAX_LINES = 60
#: The sanity checks, in report order, and how a reviewer reads their names in the table.
SANITY_CHECKS = {
    "sanity_randomization": "model randomisation",
    "sanity_positive_control": "positive control",
}
#: The most rows each part shows before "... and N more".
MAX_CHECK_ROWS = 8
MAX_RANKING_ROWS = 8
MAX_METRIC_ROWS = 6
MAX_ANALYSIS_ROWS = 5
MAX_WARNING_ROWS = 5
#: User text (field names, reasons, warnings) is cut to this many characters.
MAX_TEXT = 200

# ---------------------------------------------------------------- text helpers

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")


def escape(text: Any, limit: int = MAX_TEXT) -> str:
    """User text made inert in GitHub markdown: one line, HTML and markdown syntax escaped, cut.

    A field named ``a|b`` must not split a table row, and a warning with a newline must not end a
    list item, so newlines become spaces and ``|`` is escaped.
    """
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    # "<" could open an HTML tag and "&name;" is an entity; ">" only matters at a line's start,
    # where user text never is, so "a -> b" stays readable.
    text = _ENTITY.sub("&amp;", text).replace("<", "&lt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any) -> str:
    """A metric as a reviewer reads it: 4 significant digits, or n/a."""
    return f"{value:.4g}" if _is_number(value) else "n/a"


def _more(count: int) -> str:
    return f"... and {count} more"


# ---------------------------------------------------------------- parts


def _heading(results: dict[str, Any], outcomes: list[CheckOutcome]) -> list[str]:
    verdict = overall_verdict(outcomes)
    mark = "✅" if verdict == EVERY_CHECK_PASSED else ("❌" if verdict.startswith("failed") else "⚠️")
    lines = [f"# tsreport: {mark} {verdict}"]
    inputs = results.get("inputs") or {}
    windows = results.get("windows") or {}
    run = results.get("run") or {}
    facts = []
    model = inputs.get("model") or {}
    if model.get("path"):
        facts.append(f"model `{escape(_base_name(model['path']), 80)}`")
    data = inputs.get("data") or {}
    if data.get("path"):
        facts.append(f"data `{escape(_base_name(data['path']), 80)}`")
    if _is_number(windows.get("explained")) and _is_number(windows.get("total")):
        facts.append(f"{windows['explained']} of {windows['total']} windows explained")
    if run.get("seed") is not None:
        facts.append(f"seed {escape(run['seed'], 40)}")
    if results.get("tsreport_version"):
        facts.append(f"tsreport {escape(results['tsreport_version'], 40)}")
    if facts:
        lines += ["", " · ".join(facts)]
    return lines


def _base_name(path: str) -> str:
    return re.split(r"[\\/]", str(path))[-1] or str(path)


def _checks(outcomes: list[CheckOutcome]) -> list[str]:
    lines = ["", "## Sanity checks", "| check | method | result | reason |", "|---|---|---|---|"]
    severity = {FAILED: 0, NOT_RUN: 1, PASSED: 2}
    ordered = sorted(outcomes, key=lambda o: severity[o.outcome])  # stable: report order within a kind
    shown = ordered[:MAX_CHECK_ROWS] if len(ordered) <= MAX_CHECK_ROWS else ordered[: MAX_CHECK_ROWS - 1]
    for outcome in shown:
        mark = {PASSED: "✅", FAILED: "❌", NOT_RUN: "⚪"}[outcome.outcome]
        result = f"{outcome.outcome} in full" if outcome.partial else outcome.outcome
        lines.append(
            f"| {SANITY_CHECKS[outcome.check]} | {escape(outcome.method or 'all methods', 60)} | "
            f"{mark} {result} | {escape(outcome.reason or '')} |"
        )
    if len(shown) < len(ordered):
        rest = ordered[len(shown) :]
        kinds = ", ".join(
            f"{sum(o.outcome == kind for o in rest)} {kind}"
            for kind in severity
            if any(o.outcome == kind for o in rest)
        )
        lines.append(f"| {_more(len(rest))} | | {kinds} | |")
    return lines


def _ranking(results: dict[str, Any]) -> list[str]:
    ranking = [field for field in results.get("ranking") or [] if isinstance(field, str)]
    source = results.get("ranking_source")
    if not ranking:
        return ["", "## Headline ranking", "No ranking: neither `combined` nor `permutation` ran."]
    entry = (results.get("analyses") or {}).get(source) or {}
    shares = entry.get("share") if isinstance(entry.get("share"), dict) else _shares(entry.get("field_importance"))
    lines = [
        "",
        f"## Headline ranking (by {escape(source or 'unknown', 60)})",
        "| # | field | share |",
        "|---:|---|---:|",
    ]
    shown = ranking if len(ranking) <= MAX_RANKING_ROWS else ranking[: MAX_RANKING_ROWS - 1]
    for rank, field in enumerate(shown, start=1):
        share = shares.get(field) if shares else None
        lines.append(f"| {rank} | {escape(field, 80)} | {f'{share:.1%}' if _is_number(share) else 'n/a'} |")
    if len(shown) < len(ranking):
        lines.append(f"| | {_more(len(ranking) - len(shown))} | |")
    return lines


def _shares(importance: Any) -> dict[str, float | None]:
    """An entry's ``field_importance`` normalised by :func:`tsreport.numeric.shares` (for one without ``share``):
    a negative importance counts as none, as in the analyses' own shares; a missing one shows as n/a."""
    if not isinstance(importance, dict):
        return {}
    return numeric.shares(
        {field: value if _is_number(value) else None for field, value in importance.items()}, unknown="unknown"
    )


def _performance(results: dict[str, Any]) -> list[str]:
    entry = (results.get("analyses") or {}).get("performance")
    if not isinstance(entry, dict) or entry.get("status") != "ok" or not isinstance(entry.get("overall"), dict):
        return []
    metrics = [(name, value) for name, value in entry["overall"].items() if not isinstance(value, (dict, list))]
    if not metrics:
        return []
    persistence = entry.get("persistence") if isinstance(entry.get("persistence"), dict) else None
    windows = f" over {entry['windows']} windows" if _is_number(entry.get("windows")) else ""
    lines = ["", f"## Performance{windows}"]
    if persistence:
        lines += ["| metric | model | persistence |", "|---|---:|---:|"]
    else:
        lines += ["| metric | value |", "|---|---:|"]
    shown = metrics if len(metrics) <= MAX_METRIC_ROWS else metrics[: MAX_METRIC_ROWS - 1]
    for name, value in shown:
        row = f"| {escape(name, 40)} | {number(value)} |"
        if persistence:
            row += f" {number(persistence.get(name))} |"
        lines.append(row)
    if len(shown) < len(metrics):
        lines.append(f"| {_more(len(metrics) - len(shown))} | |" + (" |" if persistence else ""))
    return lines


def _not_ok(results: dict[str, Any]) -> list[str]:
    entries = [
        (name, entry.get("status"), entry.get("reason"))
        for name, entry in (results.get("analyses") or {}).items()
        if isinstance(entry, dict) and entry.get("status") in ("skipped", "failed")
    ]
    if not entries:
        return []
    entries.sort(key=lambda item: item[1] != "failed")  # failed first, then skipped, report order within
    lines = ["", "## Analyses skipped or failed"]
    shown = entries if len(entries) <= MAX_ANALYSIS_ROWS else entries[: MAX_ANALYSIS_ROWS - 1]
    for name, status, reason in shown:
        lines.append(f"- `{escape(name, 60)}` **{status}**: {escape(reason or 'no reason given')}")
    if len(shown) < len(entries):
        lines.append(f"- {_more(len(entries) - len(shown))} (see results.json)")
    return lines


def _warnings(results: dict[str, Any]) -> list[str]:
    warnings = [w for w in results.get("warnings") or [] if w]
    if not warnings:
        return ["", "## Warnings", "None."]
    lines = ["", f"## Warnings ({len(warnings)})"]
    shown = warnings if len(warnings) <= MAX_WARNING_ROWS else warnings[: MAX_WARNING_ROWS - 1]
    lines += [f"- {escape(warning)}" for warning in shown]
    if len(shown) < len(warnings):
        lines.append(f"- {_more(len(warnings) - len(shown))} (see results.json)")
    return lines


def render_summary_markdown(results: dict[str, Any]) -> str:
    """``summary.md`` for a results.json dict (``Report.to_dict()``).

    Parameters
    ----------
    results : dict
        The run's results.json, parsed.

    Returns
    -------
    str
        GitHub-flavoured markdown, fewer than :data:`MAX_LINES` lines, ending in a newline.
    """
    outcomes = check_outcomes(results)
    lines = _heading(results, outcomes)
    lines += _checks(outcomes)
    lines += _ranking(results)
    lines += _performance(results)
    lines += _not_ok(results)
    lines += _warnings(results)
    lines += ["", "_All figures: `results.json`._"]
    if len(lines) >= MAX_LINES:  # cannot happen with the row limits above; a guard, not a layout
        lines = lines[: MAX_LINES - 2] + ["", "_Cut to fit; see `results.json`._"]
    return "\n".join(lines) + "\n"


def files(report: Any, context: Any) -> dict[str, bytes]:
    """The markdown format (render.registry): summary.md."""
    return {"summary.md": render_summary_markdown(context.get("results")).encode("utf-8")}
