"""The PDF report and the print layout: text (pypdf), contents with page numbers, bookmarks, the
attached results.json, data:-only fetching; and the HTML's contents list and size (parsed, not
string-searched)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import models
import pytest
from helpers import explain, results

pypdf = pytest.importorskip("pypdf")
pytest.importorskip("weasyprint")

# Fast analyses, still with combined (the cover's chart), a sanity verdict and a skipped section.
ANALYSES = (
    "performance,permutation,occlusion,gradient_x_input,saliency,sensitivity,combined,attention,"
    "faithfulness,sanity_randomization"
)
MAX_HTML_BYTES = 5 * 1024 * 1024


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class Structure(HTMLParser):
    """Elements with ids, the contents list's links, and each section's h2 text without its badges."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.section_ids: list[str] = []
        self.contents: list[tuple[str, str]] = []  # (href, link text without the status note)
        self.titles: dict[str, str] = {}  # section id -> h2 text without badges
        self.print_only_images: list[dict[str, str | None]] = []
        self._stack: list[tuple[str, set[str]]] = []
        self._section: str | None = None
        self._text: list[str] | None = None
        self._link: tuple[str, list[str]] | None = None

    def _inside(self, css_class: str) -> bool:
        return any(css_class in classes for _, classes in self._stack)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        if attributes.get("id"):
            self.ids.append(attributes["id"])
        if tag == "section" and attributes.get("id"):
            self.section_ids.append(attributes["id"])
            self._section = attributes["id"]
        if tag == "img" and self._inside("print-only"):
            self.print_only_images.append(attributes)
        if tag in ("img", "br", "meta", "hr"):
            return
        self._stack.append((tag, classes))
        if tag == "h2" and self._section and self._section not in self.titles:
            self._text = []
        if tag == "a" and self._inside("contents"):
            self._link = (attributes["href"], [])

    def handle_endtag(self, tag):
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break
        if tag == "section":
            self._section = None
        if tag == "h2" and self._text is not None:
            self.titles[self._section] = squash("".join(self._text))
            self._text = None
        if tag == "a" and self._link is not None:
            self.contents.append((self._link[0], squash("".join(self._link[1]))))
            self._link = None

    def handle_data(self, data):
        if self._text is not None and not self._inside("badge"):
            self._text.append(data)
        if self._link is not None and not self._inside("contents-status"):
            self._link[1].append(data)


def parse(html: str) -> Structure:
    page = Structure()
    page.feed(html)
    return page


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One toy run rendered to HTML and PDF, read back with pypdf."""
    folder = tmp_path_factory.mktemp("pdf")
    data, schema = models.write_case(folder)
    model = models.save_torchscript(models.LastStepLinear(), folder / "model.pt")
    case = {"model": model, "data": data, "schema": schema, "out": folder / "out"}
    result = explain(case, "--format", "html,pdf", "--analyses", ANALYSES, "--quiet")
    assert result.exit_code == 0, result.output
    reader = pypdf.PdfReader(case["out"] / "report.pdf")
    pages = [squash(page.extract_text()) for page in reader.pages]
    html = (case["out"] / "report.html").read_text(encoding="utf-8")
    return {"out": case["out"], "reader": reader, "pages": pages, "html": html, "structure": parse(html)}


def test_the_cover_holds_the_title_inputs_summary_verdicts_and_headline_chart(rendered):
    cover = rendered["pages"][0]
    data = results(rendered["out"])
    assert "Why does this model predict what it does?" in cover
    assert "model.pt" in cover and "data.csv" in cover and data["run"]["started"][:10] in cover
    for phrase in ("Summary", "What drives the model", "How well it predicts", "Sanity checks",
                   "Model randomisation", "Do the methods agree?"):  # fmt: skip
        assert phrase in cover, phrase
    assert data["sanity"]["sanity_randomization"]["status"].upper() in cover  # the verdict badge
    assert "combined attribution per field" in cover  # the headline chart's caption
    # The chart on the cover is the headline chart, an embedded SVG with alt text.
    images = rendered["structure"].print_only_images
    assert len(images) == 1 and images[0]["src"].startswith("data:image/svg+xml;base64,") and images[0]["alt"]


def test_every_section_title_is_in_the_pdf_after_the_contents(rendered):
    # The body starts on the contents page, after its last entry (the appendix) and that entry's page number.
    last_entry = rendered["structure"].contents[-1][1]
    assert last_entry.startswith("Appendix")
    after_contents = re.split(re.escape(last_entry) + r"[ .]*\d+", rendered["pages"][1], maxsplit=1)[1]
    body = " ".join([after_contents, *rendered["pages"][2:]])
    titles = rendered["structure"].titles
    assert set(titles) == set(rendered["structure"].section_ids)
    for section_id, title in titles.items():
        if section_id != "summary":  # the summary is on the cover
            assert title in body, title
    assert "Summary" in rendered["pages"][0]


def test_contents_page_numbers_point_at_the_sections(rendered):
    pages = rendered["pages"]
    assert pages[1].startswith("Contents")
    for _, title in rendered["structure"].contents:
        match = re.search(re.escape(title) + r"(?: \(\w+\))?[ .]*(\d+)", pages[1])
        assert match, f"{title!r} has no page number on the contents page: {pages[1]}"
        page = int(match.group(1))
        assert title in pages[page - 1], f"{title!r} is not on page {page}"


def test_footer_numbers_every_page(rendered):
    total = len(rendered["pages"])
    assert total >= 5
    for number, text in enumerate(rendered["pages"], start=1):
        assert f"page {number} of {total}" in text
    assert "model.pt" in rendered["pages"][1]  # the running header names the model file


def test_bookmarks_are_the_section_titles_with_subsections_below(rendered):
    reader = rendered["reader"]
    outline = reader.outline
    top = [item.title for item in outline if not isinstance(item, list)]
    children = [child.title for item in outline if isinstance(item, list) for child in item]
    titles = [rendered["structure"].titles[href[1:]] for href, _ in rendered["structure"].contents]
    # One level-1 bookmark per section, in order; a badge (skipped, pass, fail) may follow the title.
    assert len(top) == len(titles)
    for bookmark, title in zip(top, titles):
        assert bookmark == title or bookmark.startswith(title + " "), (bookmark, title)
    assert "Fields" in children and "Do the methods agree?" in children  # h3 at level 2
    assert not any("Why does this model" in t or t == "Contents" for t in top + children)
    # Each bookmark opens the page its section's heading is on.
    items = [item for item in outline if not isinstance(item, list)]
    for item, title in zip(items, titles):
        assert title in rendered["pages"][reader.get_destination_page_number(item)], title


def test_results_json_and_the_tables_are_attached_to_the_pdf(rendered):
    attachments = rendered["reader"].attachments
    tables = sorted((rendered["out"] / "tables").glob("*.csv"))
    assert [t.name for t in tables] == [
        "combined_time.csv", "gradient_x_input_time.csv", "occlusion_time.csv", "performance_per_group.csv",
        "saliency_time.csv",
    ]  # fmt: skip
    assert sorted(attachments) == sorted(["results.json", *(t.name for t in tables)])
    (content,) = attachments["results.json"]
    assert content == (rendered["out"] / "results.json").read_bytes()
    assert json.loads(content)["results_version"] == 1
    for table in tables:
        assert attachments[table.name] == [table.read_bytes()]


def test_contents_links_point_at_the_sections(rendered):
    structure = rendered["structure"]
    hrefs = [href for href, _ in structure.contents]
    assert all(href.startswith("#") for href in hrefs)
    assert [href[1:] for href in hrefs] == structure.section_ids  # every section, in order, nothing else
    assert len(set(structure.ids)) == len(structure.ids)  # anchors are unambiguous
    for href, text in structure.contents:
        assert text == structure.titles[href[1:]], "a contents entry differs from its section's heading"


def test_a_template_that_fetches_anything_fails_with_exit_4_and_writes_nothing(tmp_path):
    templates = tmp_path / "brand" / "sections"
    templates.mkdir(parents=True)
    (templates / "performance.html").write_text(
        '<section id="performance"><h2>Performance</h2><img src="http://example.invalid/x.png" alt="x"></section>\n'
    )
    data, schema = models.write_case(tmp_path)
    model = models.save_torchscript(models.LastStepLinear(), tmp_path / "model.pt")
    out = tmp_path / "out"
    case = {"model": model, "data": data, "schema": schema, "out": out}
    result = explain(case, "--analyses", "performance", "--format", "html,pdf", "--templates", tmp_path / "brand")
    assert result.exit_code == 4, result.output
    assert "example.invalid" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []  # no report.html, report.pdf or results.json


def test_html_stays_under_5_mb_with_every_window_explained(tmp_path):
    frame = models.make_frame(groups=4, length=800)
    data, schema = models.write_case(tmp_path, frame=frame)
    model = models.save_torchscript(models.LastStepLinear(), tmp_path / "model.pt")
    case = {"model": model, "data": data, "schema": schema, "out": tmp_path / "out"}
    analyses = "performance,permutation,occlusion,gradient_x_input,saliency,shap,combined,predictions"
    result = explain(case, "--samples", "all", "--analyses", analyses, "--quiet")
    assert result.exit_code == 0, result.output
    assert results(case["out"])["windows"]["explained"] > 3000
    size = (case["out"] / "report.html").stat().st_size
    assert size < MAX_HTML_BYTES, f"report.html is {size / 1e6:.1f} MB"
