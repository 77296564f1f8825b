"""The renderers' registry (tsreport.render.registry): one renderer per --format, chosen by name,
written in a fixed order, sharing what they have in common (the HTML is rendered once for html
and pdf), and a new format is one module and one registry line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import models
import pytest

from tsreport import analyses, output
from tsreport.config import FORMATS, build_config
from tsreport.pipeline import explain as run_pipeline
from tsreport.render import registry
from tsreport.render.registry import NAMES, RenderContext, Renderer


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A small run with a map (figures), a table (tables/*.csv) and a sanity verdict."""
    folder = tmp_path_factory.mktemp("case")
    data, schema = models.write_case(folder)
    model = models.save_torchscript(models.LastStepLinear(), folder / "model.pt")
    values = {"analyses": "performance,gradient_x_input,sanity_randomization", "samples": "16", "quiet": True}
    return run_pipeline(model, data, schema, build_config({}, values, analysis_names=analyses.NAMES))


@pytest.fixture()
def no_pdf(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, bytes]]]:
    """render_pdf replaced by a stub that records what it was given (WeasyPrint is slow; tests/test_pdf.py runs it)."""
    from tsreport.render import pdf

    calls: list[tuple[str, dict[str, bytes]]] = []

    def fake_pdf(html: str, *, attachments: dict[str, bytes] | None = None) -> bytes:
        calls.append((html, dict(attachments or {})))
        return b"%PDF stub"

    monkeypatch.setattr(pdf, "render_pdf", fake_pdf)
    return calls


def test_the_format_names_are_the_registry_lines() -> None:
    assert NAMES == ("html", "pdf", "json", "markdown", "junit")
    assert tuple(FORMATS) == NAMES  # config.FORMATS is the registry's list (the --format error names them)
    for renderer in registry.RENDERERS:
        assert callable(renderer.function()), renderer.entry
        assert set(renderer.needs) <= set(registry.PRODUCTS), renderer.name


def test_every_format_writes_its_files_in_a_fixed_order(report: Any, no_pdf: list) -> None:
    files = output.report_files(report, ("junit", "markdown", "pdf", "html"), None)
    names = list(files)
    tables = [n for n in names if n.startswith("tables/")]
    figures = [n for n in names if n.startswith("figures/")]
    assert tables and figures
    assert names == ["results.json", *tables, *figures, "report.html", "report.pdf", "summary.md", "junit.xml"]


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        (("json",), set()),
        (("html",), {"figures", "report.html"}),
        (("pdf",), {"figures", "report.pdf"}),  # the PDF's figures are written, its HTML is not
        (("markdown",), {"summary.md"}),
        (("junit",), {"junit.xml"}),
    ],
)
def test_json_is_always_written_and_each_format_adds_only_its_files(
    report: Any, no_pdf: list, formats: tuple[str, ...], expected: set[str]
) -> None:
    files = output.report_files(report, formats, None)
    kinds = {name.split("/")[0] for name in files if "/" in name} | {name for name in files if "/" not in name}
    assert kinds == {"results.json", "tables"} | expected


def test_each_renderer_writes_the_bytes_of_its_render_function(report: Any, no_pdf: list) -> None:
    from tsreport.render.html import build_figures, render_html
    from tsreport.render.junit import render_junit
    from tsreport.render.markdown import render_summary_markdown
    from tsreport.render.tables import tables_csv

    files = output.report_files(report, NAMES, None)
    figures = build_figures(report)
    html = render_html(report, figures=figures)
    assert files["results.json"] == report.to_json().encode("utf-8")
    assert {n: d for n, d in files.items() if n.startswith("tables/")} == {
        n: t.encode("utf-8") for n, t in tables_csv(report).items()
    }
    assert {n: d for n, d in files.items() if n.startswith("figures/")} == {
        f"figures/{k}.svg": f["svg"].encode("utf-8") for k, f in figures.items()
    }
    assert files["report.html"] == html.encode("utf-8")
    assert files["summary.md"] == render_summary_markdown(report.to_dict()).encode("utf-8")
    assert files["junit.xml"] == render_junit(report.to_dict()).encode("utf-8")
    # The PDF prints that same HTML, with results.json and every table attached (by file name).
    ((printed, attachments),) = no_pdf
    assert printed == html
    assert list(attachments) == ["results.json", *(Path(n).name for n in tables_csv(report))]
    assert attachments["results.json"] == files["results.json"]


def test_html_and_pdf_share_one_rendering_of_the_html_and_figures(
    report: Any, no_pdf: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tsreport.render import html

    counts = {"render_html": 0, "build_figures": 0}
    for name in counts:
        original = getattr(html, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(html, name, counted)
    output.report_files(report, ("html", "pdf"), None)
    assert counts == {"render_html": 1, "build_figures": 1}
    assert len(no_pdf) == 1


def fake_files(report: Any, context: RenderContext) -> dict[str, bytes]:
    """A test format: one line per analysis, from the shared results dict."""
    results = context.get("results")
    return {"analyses.txt": "\n".join(sorted(results["analyses"])).encode()}


def sneaky_files(report: Any, context: RenderContext) -> dict[str, bytes]:
    return {"sneaky.html": context.get("html").encode()}


def test_a_new_format_is_one_function_and_one_registry_line(report: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    line = Renderer("fake", f"{__name__}:fake_files", needs=("results",))
    monkeypatch.setattr(registry, "RENDERERS", (*registry.RENDERERS, line))
    files = output.report_files(report, ("fake",), None)
    assert list(files)[0] == "results.json"
    assert files["analyses.txt"] == "\n".join(sorted(report.to_dict()["analyses"])).encode()
    assert "report.html" not in files and "summary.md" not in files


def test_a_renderer_reads_only_what_its_line_declares(report: Any) -> None:
    line = Renderer("sneaky", f"{__name__}:sneaky_files", needs=("results",))
    with pytest.raises(RuntimeError, match="'html', which its registry line does not list in needs"):
        registry.render(report, ("sneaky",), renderers=(line,))


def test_two_renderers_may_not_write_one_file_differently(report: Any) -> None:
    first = Renderer("first", f"{__name__}:fake_files", needs=("results",))
    second = Renderer("second", f"{__name__}:second_files", needs=())
    with pytest.raises(RuntimeError, match="'second' and an earlier one wrote different analyses.txt"):
        registry.render(report, ("first", "second"), renderers=(first, second))


def second_files(report: Any, context: RenderContext) -> dict[str, bytes]:
    return {"analyses.txt": b"other"}
