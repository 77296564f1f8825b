"""The report's long tables as data: per time step, per horizon step and per series.

One definition serves every rendering: the HTML shows each table in full (a long
one folded inside ``<details>``), the PDF shortens the long ones in its appendix,
and :func:`tables_csv` writes each in full as a CSV file beside ``results.json``
(``tables/<name>.csv``), so nothing the PDF leaves out is lost. Everything comes
from the Report alone, like the rest of the rendering.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Mapping
from typing import Any

#: A table with more rows than this is long: folded in the HTML, shortened in the PDF's appendix.
INLINE_ROWS = 12
#: ... or with more columns than this (a per-step table over a long horizon).
INLINE_COLUMNS = 10
#: Rows of a long table that the PDF's appendix shows.
APPENDIX_ROWS = 8
#: Columns that fit across a printed page; the appendix leaves the rest to the CSV file.
APPENDIX_COLUMNS = 12


def attribution_titles() -> dict[str, str]:
    """The analyses whose time × field map and per-step importances get tables (every attribution map,
    from the registry, and the Shapley values' per-step table), and the name a reader knows them by."""
    from tsreport.analyses import ATTRIBUTION_MAP, REGISTRY

    return {spec.name: spec.title for spec in REGISTRY if spec.kind == ATTRIBUTION_MAP or spec.name == "shap"}


@dataclasses.dataclass(frozen=True)
class Table:
    """One table of numbers.

    Attributes
    ----------
    name : str
        File stem: the table is written to ``tables/<name>.csv``.
    title : str
        What it holds, for a heading.
    section : str
        The analysis (report section) it belongs to.
    columns : list of str
        Column headings; the CSV's header row.
    formats : list of str
        Per column, how a report shows it: "text", "number", "percent" (a share) or "step".
    rows : list of list
        Raw values, None where missing.
    tail : bool
        When shortened, keep the last rows (the time steps nearest the prediction), not the first.
    folded : bool
        Always folded in the HTML and shown only in the PDF's appendix, whatever its length
        (the numbers behind a chart that the report already shows).
    """

    name: str
    title: str
    section: str
    columns: list[str]
    formats: list[str]
    rows: list[list[Any]]
    tail: bool = False
    folded: bool = False

    @property
    def path(self) -> str:
        return f"tables/{self.name}.csv"

    @property
    def long(self) -> bool:
        return len(self.rows) > INLINE_ROWS or len(self.columns) > INLINE_COLUMNS

    @property
    def collapsed(self) -> bool:
        """Folded inside ``<details>`` in the HTML, and in the PDF's appendix rather than its body."""
        return self.folded or self.long

    def shortened(self, limit: int = APPENDIX_ROWS) -> tuple[list[list[Any]], int]:
        """At most ``limit`` rows (the last ones for a ``tail`` table) and how many were left out."""
        if len(self.rows) <= limit:
            return self.rows, 0
        kept = self.rows[-limit:] if self.tail else self.rows[:limit]
        return kept, len(self.rows) - limit

    def excerpt(self, rows: int = APPENDIX_ROWS, columns: int = APPENDIX_COLUMNS) -> dict[str, Any]:
        """What the PDF's appendix prints: at most ``rows`` rows (see :meth:`shortened`) and the first
        ``columns`` columns, with how many of each were left out."""
        kept, rows_left_out = self.shortened(rows)
        return {
            "columns": self.columns[:columns],
            "formats": self.formats[:columns],
            "rows": [row[:columns] for row in kept],
            "rows_left_out": rows_left_out,
            "columns_left_out": max(0, len(self.columns) - columns),
        }


def report_tables(report: Any) -> dict[str, Table]:
    """Every long-form table of a report (a Report or its results.json dict), by name, in report order."""
    data = report.to_dict() if hasattr(report, "to_dict") else report
    analyses: Mapping[str, Any] = data.get("analyses") or {}
    fields = list(data.get("fields") or [])
    schema = ((data.get("inputs") or {}).get("schema")) or {}
    tables: list[Table] = []

    perf = analyses.get("performance") or {}
    if perf.get("status") == "ok" and perf.get("task", "regression") == "regression":
        metrics = ["mae", "rmse", "r2"]
        if len(perf.get("per_step") or []) > 1:
            tables.append(
                Table(
                    "performance_per_step",
                    "Model performance by horizon step",
                    "performance",
                    ["step", "MAE", "RMSE", "R²"],
                    ["step", "number", "number", "number"],
                    [[h + 1] + [step.get(k) for k in metrics] for h, step in enumerate(perf["per_step"])],
                )
            )
        quantiles = perf.get("quantiles") or {}
        if len(quantiles.get("per_step") or []) > 1:
            tables.append(
                Table(
                    "performance_quantiles_per_step",
                    "Quantile loss and coverage by horizon step",
                    "performance",
                    ["step", "mean pinball loss", "coverage"],
                    ["step", "number", "percent"],
                    [[h + 1, s.get("mean_pinball"), s.get("coverage")] for h, s in enumerate(quantiles["per_step"])],
                )
            )
        if perf.get("per_group"):
            group = schema.get("group") or "series"
            tables.append(
                Table(
                    "performance_per_group",
                    f"Model performance by series ({group})",
                    "performance",
                    [str(group), "windows", "MAE", "RMSE", "R²"],
                    ["text", "number", "number", "number", "number"],
                    [[name, m.get("windows")] + [m.get(k) for k in metrics] for name, m in perf["per_group"].items()],
                )
            )

    titles = attribution_titles()
    for name, entry in analyses.items():
        if name not in titles or (entry or {}).get("status") != "ok":
            continue
        title = titles[name]
        heatmap = entry.get("heatmap")
        profile = entry.get("time_profile") or []
        if heatmap:
            window = len(heatmap)
            tables.append(
                Table(
                    f"{name}_time",
                    f"{title} by time step and field",
                    name,
                    ["step", *fields, "all fields"],
                    ["step"] + ["number"] * (len(fields) + 1),
                    [
                        [index - window + 1, *row, profile[index] if index < len(profile) else None]
                        for index, row in enumerate(heatmap)
                    ],
                    tail=True,
                    folded=True,
                )
            )
        per_step = entry.get("per_step") or []
        if len(per_step) > 1:
            share = name == "combined"  # combined's per-step values are each step's shares (they sum to 1)
            tables.append(
                Table(
                    f"{name}_per_step",
                    f"{title} by horizon step" + (" (share of each step)" if share else ""),
                    name,
                    ["step", *fields],
                    ["step"] + ["percent" if share else "number"] * len(fields),
                    [[h + 1] + [step.get(field) for field in fields] for h, step in enumerate(per_step)],
                )
            )
    return {table.name: table for table in tables}


def tables_csv(report: Any) -> dict[str, str]:
    """Each of the report's tables as CSV text, by the path it is written to ("tables/<name>.csv").

    Every row in full and every number at full precision (``repr`` of the float);
    a missing value is an empty cell. Field and series names are written as given:
    the csv module quotes them where needed.
    """
    files: dict[str, str] = {}
    for table in report_tables(report).values():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(table.columns)
        for row in table.rows:
            writer.writerow(["" if value is None else value for value in row])
        files[table.path] = buffer.getvalue()
    return files
