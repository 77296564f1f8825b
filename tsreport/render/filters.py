"""Jinja2 filters (number formatting for tables and text) and the report's verdicts on its checks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits; '–' for missing values."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "–"
    if number == 0:
        return "0"
    magnitude = abs(number)
    if magnitude >= 10 ** (digits + 3) or magnitude < 10 ** -(digits + 1):
        return f"{number:.{digits - 1}e}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(magnitude))))
    return f"{number:,.{decimals}f}"


def pct(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{100 * float(value):.{digits}f}%"


def seconds(value: Any) -> str:
    if value is None:
        return "–"
    value = float(value)
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def clause(text: Any) -> str:
    """A reason as a clause to go inside a sentence: its own closing full stop removed."""
    return str(text).strip().rstrip(".")


def ranked(mapping: dict[str, Any]) -> list[str]:
    """Keys by value, largest first; missing values last; ties keep their order."""
    return sorted(mapping, key=lambda key: (mapping[key] is None, -(mapping[key] or 0.0)))


FILTERS = {"fmt": fmt, "pct": pct, "seconds": seconds, "ranked": ranked, "clause": clause}

#: The sanity checks, in the order the report lists them, with the names a reader sees.
CHECKS = {"sanity_randomization": "model randomisation", "sanity_positive_control": "planted positive control"}
NOT_REQUESTED = "not requested (--analyses)"


def check_verdicts(report: Mapping[str, Any]) -> dict[str, Any]:
    """What was checked, from results.json alone: each sanity check passed, failed or not run, and why.

    Returns
    -------
    dict with
        ``checks``: one dict per check in :data:`CHECKS` order: ``name``, ``title``,
        ``verdict`` ("pass" | "fail" | "not run"), ``reason`` (why not run, else None),
        ``methods`` ({method: {"verdict": "pass" | "fail" | "not run", "reason"}}) and
        ``notes`` (parts of a check that did not run, e.g. one of the planted controls);
        ``passed_every_check``: methods that every check tested, fully, and passed;
        ``passed_what_ran``: methods that passed every check that tested them, but not every check did;
        ``failed``: methods that failed a check;
        ``all_passed``: every check ran in full, for every method, and passed: the only case in which a
        report may say that everything passed;
        ``not_run``: [(analysis, status, reason)] for analyses that were skipped or failed, and
        ``not_requested``: the analyses left out by --analyses (the checks excepted: they are in ``checks``);
        ``complete``: every check passed and nothing at all was left out.
    """
    analyses = report.get("analyses") or {}
    sanity = report.get("sanity") or {}
    checks = []
    for name, title in CHECKS.items():
        entry = analyses.get(name)
        check: dict[str, Any] = {"name": name, "title": title, "verdict": "not run", "reason": None, "methods": {}}
        check["notes"] = []
        if entry is None:
            check["reason"] = (sanity.get(name) or {}).get("reason") or NOT_REQUESTED
        elif entry.get("status") != "ok":
            reason = entry.get("reason") or "no reason was recorded"
            check["reason"] = reason if entry.get("status") == "skipped" else f"it failed: {reason}"
        else:
            check["verdict"] = "fail" if entry.get("verdict") == "fail" else "pass"
            for kind, control in (entry.get("controls") or {}).items():
                if control.get("verdict") == "skipped":
                    check["notes"].append(f"the {kind} control did not run: {control.get('reason')}")
            for method, result in (entry.get("methods") or {}).items():
                verdict = result.get("verdict")
                reason = result.get("reason")
                skipped_parts = [
                    f"{kind} control: {part.get('reason')}"
                    for kind, part in result.items()
                    if isinstance(part, Mapping) and part.get("verdict") == "skipped"
                ]
                if verdict == "skipped":
                    reason = reason or "; ".join(skipped_parts) or "no reason was recorded"
                    check["methods"][method] = {"verdict": "not run", "reason": reason, "partial": []}
                else:
                    check["methods"][method] = {"verdict": verdict, "reason": None, "partial": skipped_parts}
        checks.append(check)

    methods: list[str] = []
    for check in checks:
        methods += [m for m in check["methods"] if m not in methods]
    failed = [m for m in methods if any(c["methods"].get(m, {}).get("verdict") == "fail" for c in checks)]
    fully_passed = [
        m
        for m in methods
        if all(c["methods"].get(m, {}).get("verdict") == "pass" and not c["methods"][m]["partial"] for c in checks)
        and not any(c["notes"] for c in checks)
    ]
    passed_what_ran = [
        m
        for m in methods
        if m not in failed
        and m not in fully_passed
        and any(c["methods"].get(m, {}).get("verdict") == "pass" for c in checks)
    ]
    all_passed = bool(checks) and all(
        c["verdict"] == "pass"
        and not c["notes"]
        and c["methods"]
        and all(v["verdict"] == "pass" and not v["partial"] for v in c["methods"].values())
        for c in checks
    )
    not_run = [
        (name, entry.get("status"), entry.get("reason") or "no reason was recorded")
        for name, entry in analyses.items()
        if name not in CHECKS and entry.get("status") != "ok"
    ]
    not_requested = [name for name in _all_analyses() if name not in analyses and name not in CHECKS]
    return {
        "checks": checks,
        "passed_every_check": fully_passed,
        "passed_what_ran": passed_what_ran,
        "failed": failed,
        "all_passed": all_passed,
        "not_run": not_run,
        "not_requested": not_requested,
        "complete": all_passed and not not_run and not not_requested,
    }


def _all_analyses() -> list[str]:
    """Every analysis this tsreport can run (the registry imports torch: only when a report is rendered)."""
    from tsreport.analyses import NAMES

    return list(NAMES)
