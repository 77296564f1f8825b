"""The renderers, one per ``--format``, each turning the one Report into files (coverage.py's shape).

A renderer is one module with one function, ``files(report, context) -> {relative path: bytes}``,
and one line in :data:`RENDERERS`. The line names the module lazily ("module:function"), so that
choosing formats imports nothing heavy (WeasyPrint, Jinja2) until that format is written.

What several renderers use is built once per run by the :class:`RenderContext` and shared: the
results.json bytes, the CSV tables, the figures and the HTML (the PDF is the HTML printed, so asking
for html and pdf renders the HTML once). A renderer's ``needs`` names the shared products it reads;
the context refuses any other, so the declaration stays true.

:func:`render` writes the chosen formats in the registry's order, the formats written whatever
``--format`` says (json: results.json and tables/*.csv) first.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Renderer:
    """One output format.

    name : the ``--format`` name.
    entry : "module:function"; the function takes (report, context) and returns {relative path: bytes}.
    needs : the shared products it reads from the context (:data:`PRODUCTS`).
    always : written whatever ``--format`` says.
    """

    name: str
    entry: str
    needs: tuple[str, ...] = ()
    always: bool = False

    def function(self) -> Callable[[Any, RenderContext], dict[str, bytes]]:
        module, _, attribute = self.entry.partition(":")
        return getattr(importlib.import_module(module), attribute)


@dataclass
class RenderContext:
    """One run's shared products, each built once on first use: ``context.get("html")``.

    templates : the ``--templates`` folder (None: the bundled ones).
    """

    report: Any
    templates: str | Path | None = None
    _built: dict[str, Any] = field(default_factory=dict)
    _allowed: tuple[str, ...] | None = None

    def get(self, product: str) -> Any:
        if self._allowed is not None and product not in self._allowed:
            raise RuntimeError(f"a renderer read {product!r}, which its registry line does not list in needs")
        if product not in self._built:  # built from the whole context: a product may use others
            self._built[product] = PRODUCTS[product](RenderContext(self.report, self.templates, self._built))
        return self._built[product]

    def reading(self, renderer: Renderer) -> RenderContext:
        """A view of this context that serves only ``renderer.needs`` (products built once are shared)."""
        return RenderContext(self.report, self.templates, self._built, renderer.needs)


def _results_json(context: RenderContext) -> bytes:
    return context.report.to_json().encode("utf-8")


def _results(context: RenderContext) -> dict[str, Any]:
    return context.report.to_dict()


def _tables(context: RenderContext) -> dict[str, bytes]:
    from tsreport.render.tables import tables_csv

    return {name: text.encode("utf-8") for name, text in tables_csv(context.report).items()}


def _figures(context: RenderContext) -> dict[str, dict[str, Any]]:
    from tsreport.render.html import build_figures

    return build_figures(context.report)


def _html(context: RenderContext) -> str:
    from tsreport.render.html import render_html

    return render_html(context.report, templates=context.templates, figures=context.get("figures"))


def _figure_files(context: RenderContext) -> dict[str, bytes]:
    return {f"figures/{name}.svg": figure["svg"].encode("utf-8") for name, figure in context.get("figures").items()}


# The products renderers share: name -> how to build it from the context (once per run).
PRODUCTS: dict[str, Callable[[RenderContext], Any]] = {
    "results.json": _results_json,  # bytes
    "results": _results,  # the Report's dict
    "tables": _tables,  # "tables/<name>.csv" -> bytes
    "figures": _figures,  # figure id -> {"svg": ..., ...} (render.html.build_figures)
    "figure files": _figure_files,  # "figures/<id>.svg" -> bytes
    "html": _html,  # the HTML report's text
}


def html_files(report: Any, context: RenderContext) -> dict[str, bytes]:
    """report.html and the figures/*.svg it shows (kept here while render/html.py is reworked)."""
    return {**context.get("figure files"), "report.html": context.get("html").encode("utf-8")}


# One line per format, in the order of --format's help; adding a format is one module and one line.
RENDERERS: tuple[Renderer, ...] = (
    Renderer("html", "tsreport.render.registry:html_files", needs=("figure files", "html")),
    Renderer("pdf", "tsreport.render.pdf:files", needs=("figure files", "html", "results.json", "tables")),
    Renderer("json", "tsreport.render.results_json:files", needs=("results.json", "tables"), always=True),
    Renderer("markdown", "tsreport.render.markdown:files", needs=("results",)),
    Renderer("junit", "tsreport.render.junit:files", needs=("results",)),
)

# The --format names (config.FORMATS).
NAMES: tuple[str, ...] = tuple(renderer.name for renderer in RENDERERS)


def chosen(formats: tuple[str, ...], renderers: tuple[Renderer, ...] | None = None) -> list[Renderer]:
    """The renderers to run for ``formats``, in writing order: those always written first, then the registry's."""
    every = RENDERERS if renderers is None else renderers
    picked = [renderer for renderer in every if renderer.always or renderer.name in formats]
    return sorted(picked, key=lambda renderer: not renderer.always)


def render(
    report: Any,
    formats: tuple[str, ...],
    templates: str | Path | None = None,
    *,
    renderers: tuple[Renderer, ...] | None = None,
) -> dict[str, bytes]:
    """Every file of the chosen formats, relative path -> bytes, in a fixed order.

    Two renderers may both write a shared file (html and pdf both write figures/*.svg); the
    bytes are then the same, built once.
    """
    context = RenderContext(report, templates)
    files: dict[str, bytes] = {}
    for renderer in chosen(formats, renderers):
        made: Mapping[str, bytes] = renderer.function()(report, context.reading(renderer))
        for name, data in made.items():
            if name in files and files[name] != data:
                raise RuntimeError(f"renderers {renderer.name!r} and an earlier one wrote different {name}")
            files[name] = data
    return files
