"""HTML report: the Report rendered through the Jinja2 templates in ``templates/``.

No HTML is built in Python: the templates get the Report's dict plus the
charts (SVG data URIs) made here from it. Autoescape is on for every template,
so field and column names from users are always escaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from tsreport.exceptions import RenderError, UsageError
from tsreport.render import plots
from tsreport.render.filters import FILTERS, check_verdicts
from tsreport.render.tables import APPENDIX_COLUMNS, APPENDIX_ROWS, report_tables
from tsreport.results import Report


def bundled_templates() -> Path:
    """The installed templates folder (``tsreport/templates``), or the source tree's ``templates/``."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "templates", package_dir.parent / "templates"):
        if (candidate / "report.html").is_file():
            return candidate
    raise RenderError("The report templates are missing from the installation; reinstall tsreport (pip install .).")


def environment(user_templates: str | Path | None = None) -> jinja2.Environment:
    folders = []
    if user_templates is not None:
        user_templates = Path(user_templates)
        if not user_templates.is_dir():
            raise UsageError(f"--templates {user_templates} is not a folder of templates.")
        folders.append(str(user_templates))
    folders.append(str(bundled_templates()))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        autoescape=jinja2.select_autoescape(["html", "htm", "xml"], default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        extensions=["jinja2.ext.do"],
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.globals["check_verdicts"] = check_verdicts
    env.globals["appendix_rows"] = APPENDIX_ROWS
    env.globals["appendix_columns"] = APPENDIX_COLUMNS
    env.tests["startingwith"] = lambda value, prefix: str(value).startswith(prefix)
    return env


def _add_registry(env: jinja2.Environment) -> None:
    """What the report's templates ask the analysis registry: each analysis's title, section and
    description, and the methods the headline's rank table shows. Only for the report: the registry
    imports torch, which `tsreport history` does without."""
    from tsreport import analyses

    env.globals["analysis_specs"] = analyses.BY_NAME
    env.globals["headline_methods"] = analyses.headline_methods()


def build_figures(report: Report) -> dict[str, dict[str, Any]]:
    """Charts as {id: {svg, uri, alt}}, made from the Report alone: each analysis's spec draws its own."""
    from tsreport.analyses import REGISTRY

    figures: dict[str, dict[str, Any]] = {}
    for spec in REGISTRY:
        entry = report.analyses.get(spec.name, {})
        if spec.figures is None or entry.get("status") != "ok":
            continue
        for figure_id, svg, alt in spec.figures(report, spec, entry):
            figures[figure_id] = {"svg": svg, "uri": plots.svg_data_uri(svg), "alt": alt}
    return figures


def render_html(report: Report, *, templates: str | Path | None = None, figures: dict | None = None) -> str:
    """The self-contained HTML report (no JavaScript, no external request)."""
    env = environment(templates)
    _add_registry(env)
    figures = build_figures(report) if figures is None else figures
    try:
        return env.get_template("report.html").render(
            report=report.to_dict(), figures=figures, tables=report_tables(report)
        )
    except jinja2.TemplateError as error:
        raise RenderError(f"Rendering the HTML report failed in a template: {error}") from None
