"""The HTML report: structure (parsed, not string-searched), escaping, offline, templates, round trip."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import models
import pytest
from helpers import explain, results, run_cli

from tsreport.render.html import render_html
from tsreport.results import Report


class Page(HTMLParser):
    """Collects what the tests look at: section ids, headings, tags and their URLs, text."""

    def __init__(self) -> None:
        super().__init__()
        self.section_ids: list[str] = []
        self.tags: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.images: list[dict[str, str | None]] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self._heading = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append(tag)
        if tag == "section" and attributes.get("id"):
            self.section_ids.append(attributes["id"])
        if tag == "img":
            self.images.append(attributes)
        for name in ("src", "href", "action", "data", "poster"):
            if attributes.get(name):
                self.urls.append((tag, name, attributes[name]))
        self._heading = tag in ("h1", "h2", "h3")

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3"):
            self._heading = False

    def handle_data(self, data):
        self.text.append(data)
        if self._heading and data.strip():
            self.headings.append(data.strip())


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """One run of the whole default battery (HTML and PDF), shared by the tests that read it."""
    folder = tmp_path_factory.mktemp("full")
    data, schema = models.write_case(folder)
    model = models.save_torchscript(models.TinyLSTM(), folder / "model.pt")
    case = {"model": model, "data": data, "schema": schema, "out": folder / "out"}
    result = explain(case, "--seed", "7", "--samples", "60", "--format", "html,pdf")
    assert result.exit_code == 0, result.output
    return case


FAST = ("--analyses", "performance,permutation", "--samples", "30")


def test_report_has_every_section_and_is_self_contained(full):
    case = full
    page = parse(case["out"] / "report.html")
    assert page.section_ids == [
        "summary", "headline", "inputs", "performance", "permutation", "occlusion", "gradient_x_input",
        "integrated_gradients", "saliency", "sensitivity", "shap", "combined", "attention", "faithfulness",
        "predictions", "sanity_randomization", "sanity_positive_control", "warnings", "appendix",
    ]  # fmt: skip
    for heading in ("Summary", "What drives this model", "Inputs and run", "Model performance",
                    "Permutation importance", "Occlusion", "Gradient × input", "Integrated gradients",
                    "Saliency", "Sensitivity", "Combined attribution", "Warnings"):  # fmt: skip
        assert heading in page.headings
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    # Every URL is an embedded image or an in-page anchor: no request of any kind.
    for tag, attribute, url in page.urls:
        assert url.startswith("data:image/svg+xml;base64,") or url.startswith("#"), (tag, attribute, url)
    assert len(page.images) >= 2
    for image in page.images:
        assert image.get("alt"), "every figure needs alt text"
        svg = base64.b64decode(image["src"].split(",", 1)[1]).decode()
        assert "<svg" in svg
        # Namespaces name, they do not fetch; what could fetch is href/src/url() to a non-anchor.
        assert not re.search(r'(?:href|src)="(?!#|data:)|url\((?!#)', svg)
    text = " ".join(page.text)
    assert results(case["out"])["inputs"]["model"]["sha256"] in text
    (case["out"] / "figures").is_dir()


def test_user_strings_are_escaped(tmp_path):
    hostile = '<script>alert("x")</script>'
    frame = models.make_frame()
    frame = frame.rename(columns={"b": hostile})
    fields = models.make_schema()["fields"]
    fields[1] = {"name": f"b {hostile}", "columns": [hostile]}
    data, schema = models.write_case(tmp_path, frame, fields=fields)
    model = models.save_torchscript(models.LastStepLinear(), tmp_path / "m.pt")
    out = tmp_path / "out"
    assert explain({"model": model, "data": data, "schema": schema, "out": out}, "--samples", "20").exit_code == 0
    page = parse(out / "report.html")
    assert "script" not in page.tags
    assert f"b {hostile}" in " ".join(page.text)  # shown as text, not markup


def test_results_round_trip_and_re_render_without_the_model(case):
    assert explain(case, "--analyses", "performance,permutation,occlusion,combined").exit_code == 0
    saved = json.loads((case["out"] / "results.json").read_text())
    report = Report.from_dict(saved)
    assert report.to_dict() == saved
    case["model"].unlink()  # rendering needs only results.json
    html = render_html(report)
    page = Page()
    page.feed(html)
    assert "permutation" in page.section_ids


def test_results_json_follows_the_contract(full):
    case = full
    data = results(case["out"])
    assert data["results_version"] == 1 and data["tsreport_version"]
    assert set(data["run"]) >= {"started", "seconds", "seed", "device", "argv", "versions"}
    assert data["run"]["seed"] == 7 and set(data["run"]["versions"]) >= {"python", "torch", "captum", "shap"}
    assert set(data["inputs"]) == {"model", "data", "schema"}
    assert data["inputs"]["data"]["rows"] == 120 and len(data["inputs"]["data"]["sha256"]) == 64
    assert data["inputs"]["schema"]["stride"] == 1  # defaults filled in
    assert data["windows"] == {
        **data["windows"],
        "total": 104,
        "explained": 60,
        "window": 8,
        "horizon": 1,
        "channels": 6,
    }
    assert data["fields"] == ["a", "b", "noise", "w"]
    for name, entry in data["analyses"].items():
        expected = "skipped" if name == "attention" else "ok"  # a TorchScript LSTM has no attention layer
        assert entry["status"] == expected and entry["seconds"] >= 0, name
    assert data["ranking_source"] == "combined" and len(data["ranking"]) == 4
    assert set(data["sanity"]) == {"sanity_randomization", "sanity_positive_control"}
    assert all(check["status"] in ("pass", "fail") for check in data["sanity"].values())
    assert data["settings"]["analysis_params"]["permutation"] == {"n_repeats": 5}
    assert "NaN" not in (case["out"] / "results.json").read_text()


def test_user_templates_override_bundled_ones_by_file_name(case, tmp_path):
    folder = tmp_path / "brand" / "sections"
    folder.mkdir(parents=True)
    (folder / "permutation.html").write_text('<section id="permutation"><h2>ACME importance</h2></section>\n')
    assert explain(case, *FAST, "--templates", tmp_path / "brand").exit_code == 0
    page = parse(case["out"] / "report.html")
    assert "ACME importance" in page.headings
    assert "Model performance" in page.headings  # the rest still comes from the bundled templates


def test_config_file_settings_and_flags_win(case, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("seed: 3\nsamples: 20\nanalyses: [permutation]\npermutation: {n_repeats: 3}\n")
    assert explain(case, "--config", config, "--seed", "4").exit_code == 0
    data = results(case["out"])
    assert data["run"]["seed"] == 4  # the flag wins over the file
    assert data["windows"]["explained"] == 20
    assert len(data["analyses"]["permutation"]["repeats"]["a"]) == 3


def test_analyses_option_selects(case):
    assert explain(case, "--analyses", "performance").exit_code == 0
    assert list(results(case["out"])["analyses"]) == ["performance"]
    assert results(case["out"])["ranking"] == []


def test_pdf_holds_the_sections(full):
    case = full
    pypdf = pytest.importorskip("pypdf")
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(case["out"] / "report.pdf").pages)
    for title in ("Summary", "Model performance", "Permutation importance"):
        assert title in text


def test_fail_on_warning_exits_1_with_the_report_written(tmp_path):
    frame = models.make_frame(groups=2, length=40)
    short = models.make_frame(groups=1, length=5).assign(series="tiny")
    data, schema = models.write_case(tmp_path, frame=__import__("pandas").concat([frame, short]))
    model = models.save_torchscript(models.LastStepLinear(), tmp_path / "m.pt")
    case = {"model": model, "data": data, "schema": schema, "out": tmp_path / "out"}
    assert explain(case, *FAST).exit_code == 0
    assert any("tiny" in w for w in results(tmp_path / "out")["warnings"])
    result = explain(case, *FAST, "--fail-on", "warning")
    assert result.exit_code == 1
    assert (tmp_path / "out" / "report.html").is_file()


def test_help_documents_exit_codes():
    result = run_cli("explain", "--help")
    assert result.exit_code == 0
    assert "Exit codes" in result.output and "4  internal" in result.output


@pytest.mark.parametrize("url", ["http://example.invalid/x.png", "file:///etc/hostname", "x.png"])
def test_pdf_refuses_anything_but_data_uris(url):
    pytest.importorskip("weasyprint")
    from tsreport.exceptions import RenderError
    from tsreport.render.pdf import render_pdf

    with pytest.raises(RenderError):
        render_pdf(f'<html><body><p>x</p><img src="{url}" alt="x"></body></html>')
