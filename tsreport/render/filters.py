"""Jinja2 filters (number formatting for tables and text), and the report's verdicts on its checks
(:func:`tsreport.verdicts.check_verdicts`, re-exported here for the templates)."""

from __future__ import annotations

import math
from typing import Any

from tsreport.verdicts import CHECKS, NOT_REQUESTED, check_verdicts


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

#: The cover's verdicts come from the one verdict logic that summary.md and junit.xml use too (check_verdicts is
#: a template global; see tsreport/verdicts.py).
__all__ = ["CHECKS", "FILTERS", "NOT_REQUESTED", "check_verdicts", "clause", "fmt", "pct", "ranked", "seconds"]
