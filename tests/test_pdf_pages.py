"""A PDF a reviewer reads: the main body in at most 12 pages for the bundled example and for a 100-step window,
long tables shortened in an appendix (and in full in the HTML's <details> and in tables/*.csv)."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import models
import pytest
from helpers import explain, results, run_cli

from tsreport.render.tables import APPENDIX_ROWS, report_tables, tables_csv
from tsreport.results import Report

pypdf = pytest.importorskip("pypdf")
pytest.importorskip("weasyprint")

MAX_MAIN_PAGES = 12
MAX_PAGES = 16
WINDOW = 100
HORIZON = 3
GROUPS = 14  # more series than a table shows inline: the per-series table goes to the appendix too


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def read_pdf(path: Path) -> dict:
    reader = pypdf.PdfReader(path)
    pages = [squash(page.extract_text()) for page in reader.pages]
    outline = [item for item in reader.outline if not isinstance(item, list)]
    appendix = [item for item in outline if item.title.startswith("Appendix")]
    return {
        "reader": reader,
        "pages": pages,
        "appendix_page": reader.get_destination_page_number(appendix[0]) + 1 if appendix else None,
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`tsreport demo --format html,pdf`: the bundled example, the full battery."""
    out = tmp_path_factory.mktemp("demo") / "out"
    result = run_cli("demo", "--out", out, "--format", "html,pdf", "--quiet")
    assert result.exit_code == 0, result.output
    return {"out": out, **read_pdf(out / "report.pdf")}


@pytest.fixture(scope="module")
def long_window(tmp_path_factory):
    """A 100-step window, a 3-step horizon and 14 series, through the full battery."""
    folder = tmp_path_factory.mktemp("window100")
    frame = models.make_frame(groups=GROUPS, length=WINDOW + HORIZON + 25)
    data, schema = models.write_case(folder, frame=frame, window=WINDOW, horizon=HORIZON)
    model = models.save_torchscript(models.TinyLSTM(horizon=HORIZON), folder / "model.pt")
    case = {"model": model, "data": data, "schema": schema, "out": folder / "out"}
    result = explain(case, "--format", "html,pdf", "--samples", "128", "--quiet")
    assert result.exit_code == 0, result.output
    html = (case["out"] / "report.html").read_text(encoding="utf-8")
    return {"out": case["out"], "html": html, **read_pdf(case["out"] / "report.pdf")}


@pytest.mark.parametrize("run", ["demo", "long_window"])
def test_the_main_body_fits_in_12_pages_and_the_whole_pdf_in_16(run, request):
    pdf = request.getfixturevalue(run)
    assert len(pdf["pages"]) <= MAX_PAGES, f"{len(pdf['pages'])} pages"
    # The appendix starts on a page of its own, right after the main body.
    assert pdf["appendix_page"] is not None, "no appendix bookmark"
    assert pdf["appendix_page"] <= MAX_MAIN_PAGES + 1, f"the main body runs to page {pdf['appendix_page'] - 1}"
    # Every section is still in the main body, in order.
    body = " ".join(pdf["pages"][1 : pdf["appendix_page"] - 1])
    for title in ("What drives this model", "Inputs and run", "Model performance", "Occlusion",
                  "Individual predictions", "Sanity check: model randomisation", "Warnings"):  # fmt: skip
        assert title in body, title


def test_the_pdf_holds_no_long_table_in_full(long_window):
    pdf = long_window
    text = " ".join(pdf["pages"])
    # Per-step tables: the appendix shows the last steps of each, and says where the rest is.
    assert f"Last {APPENDIX_ROWS} of {WINDOW} rows (the steps nearest the prediction)" in text
    assert "tables/occlusion_time.csv" in text
    body = " ".join(pdf["pages"][: pdf["appendix_page"] - 1])
    assert "step (0 = last)" not in body  # the main body points to the appendix instead
    assert "in the appendix" in body
    # The per-series table has more rows than fit inline: shortened in the appendix as well.
    assert f"First {APPENDIX_ROWS} of {GROUPS} rows" in text
    assert "tables/performance_per_group.csv" in text


class Details(HTMLParser):
    """Rows of the table inside each <details id=...>."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, int] = {}
        self._open: str | None = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "details":
            self._open = attributes.get("id")
            self.rows[self._open] = 0
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._open and self._in_body:
            self.rows[self._open] += 1

    def handle_endtag(self, tag):
        if tag == "details":
            self._open = None
        elif tag == "tbody":
            self._in_body = False


def test_the_html_keeps_every_row_folded_in_details(long_window):
    page = Details()
    page.feed(long_window["html"])
    assert "<script" not in long_window["html"]
    for method in ("occlusion", "gradient_x_input", "integrated_gradients", "saliency", "combined"):
        assert page.rows[f"table-{method}_time"] == WINDOW, method
    assert page.rows["table-performance_per_group"] == GROUPS
    # Short tables stay inline: the 3-step horizon tables are not folded.
    assert "table-performance_per_step" not in page.rows
    assert "table-combined_per_step" not in page.rows


def test_tables_csv_round_trip_the_numbers_of_results_json(long_window):
    out = long_window["out"]
    data = results(out)
    files = tables_csv(Report.from_dict(data))
    # The run wrote exactly these files beside results.json, with these contents.
    written = {str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in (out / "tables").glob("*.csv")}
    assert written == files
    fields = data["fields"]
    for method in ("occlusion", "combined", "shap"):
        entry = data["analyses"][method]
        if "heatmap" in entry:
            rows = list(csv.reader(io.StringIO(files[f"tables/{method}_time.csv"])))
            assert rows[0] == ["step", *fields, "all fields"]
            assert [int(r[0]) for r in rows[1:]] == list(range(-WINDOW + 1, 1))
            assert [[float(v) for v in r[1:-1]] for r in rows[1:]] == entry["heatmap"]  # exact: repr round-trips
            assert [float(r[-1]) for r in rows[1:]] == entry["time_profile"]
        rows = list(csv.reader(io.StringIO(files[f"tables/{method}_per_step.csv"])))
        assert len(rows) == 1 + HORIZON
        assert [[float(r[1 + i]) for i in range(len(fields))] for r in rows[1:]] == [
            [step[f] for f in fields] for step in entry["per_step"]
        ]
    rows = list(csv.DictReader(io.StringIO(files["tables/performance_per_group.csv"])))
    per_group = data["analyses"]["performance"]["per_group"]
    assert [r["series"] for r in rows] == list(per_group)
    for row in rows:
        assert float(row["MAE"]) == per_group[row["series"]]["mae"]
        assert int(row["windows"]) == per_group[row["series"]]["windows"]
    per_step = data["analyses"]["performance"]["per_step"]
    rows = list(csv.DictReader(io.StringIO(files["tables/performance_per_step.csv"])))
    assert [float(r["RMSE"]) for r in rows] == [s["rmse"] for s in per_step]


def test_a_missing_value_is_an_empty_cell_and_names_are_quoted():
    report = {
        "fields": ["a, the first", 'b "quoted"'],
        "inputs": {"schema": {"group": "store"}},
        "analyses": {
            "occlusion": {"status": "ok", "heatmap": [[1.0, None], [0.5, 0.25]], "time_profile": [1.0, 0.75]},
            "performance": {"status": "skipped", "reason": "x"},
        },
    }
    files = tables_csv(report)
    assert list(files) == ["tables/occlusion_time.csv"]
    assert files["tables/occlusion_time.csv"] == (
        'step,"a, the first","b ""quoted""",all fields\n-1,1.0,,1.0\n0,0.5,0.25,0.75\n'
    )
    table = report_tables(report)["occlusion_time"]
    assert table.folded and not table.long and table.shortened(1) == ([[0, 0.5, 0.25, 0.75]], 1)


def test_the_appendix_excerpt_caps_rows_and_columns():
    fields = [f"f{i}" for i in range(20)]
    heatmap = [[float(t * 100 + i) for i in range(20)] for t in range(30)]
    report = {
        "fields": fields,
        "analyses": {"saliency": {"status": "ok", "heatmap": heatmap, "time_profile": [0.0] * 30}},
    }
    table = report_tables(report)["saliency_time"]
    excerpt = table.excerpt(rows=8, columns=12)
    assert excerpt["columns"] == ["step", *fields[:11]] and excerpt["columns_left_out"] == 10
    assert excerpt["rows_left_out"] == 22 and [row[0] for row in excerpt["rows"]] == list(range(-7, 1))
    assert excerpt["rows"][-1] == [0, *heatmap[-1][:11]]
