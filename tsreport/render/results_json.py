"""The json format, written on every run: results.json (every number) and tables/*.csv (each table in full)."""

from __future__ import annotations

from typing import Any


def files(report: Any, context: Any) -> dict[str, bytes]:
    """results.json, then the report's tables as CSV (render.tables.tables_csv)."""
    return {"results.json": context.get("results.json"), **context.get("tables")}
