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


def build_figures(report: Report) -> dict[str, dict[str, Any]]:
    """Charts as {id: {svg, uri, alt}}, made from the Report alone."""
    figures: dict[str, dict[str, Any]] = {}

    def add(figure_id: str, svg: str, alt: str) -> None:
        figures[figure_id] = {"svg": svg, "uri": plots.svg_data_uri(svg), "alt": alt}

    perf = report.analyses.get("performance", {})
    if perf.get("status") == "ok":
        target = report.inputs["schema"]["target"]["column"]
        if perf["task"] == "regression":
            scatter = perf.get("scatter") or {}
            if scatter.get("actual"):
                add(
                    "performance_scatter",
                    plots.scatter_actual_predicted(scatter["actual"], scatter["predicted"], unit=target),
                    f"Scatter of predicted against actual {target} at horizon step 1 for "
                    f"{len(scatter['actual'])} windows; points near the dashed diagonal are accurate.",
                )
            if len(perf.get("per_step", [])) > 1:
                add(
                    "performance_steps",
                    plots.step_metric([s["mae"] for s in perf["per_step"]], ylabel=f"MAE ({target})"),
                    "Mean absolute error at each horizon step.",
                )
        elif perf.get("confusion"):
            add(
                "performance_confusion",
                plots.confusion_matrix(perf["confusion"], perf["classes"]),
                "Confusion matrix: counts of windows by actual class (rows) and predicted class (columns).",
            )
    perm = report.analyses.get("permutation", {})
    if perm.get("status") == "ok":
        names = report.fields
        values = [perm["field_importance"].get(n) for n in names]
        intervals = [perm["interval"].get(n, [None, None]) for n in names]
        loss = "MSE (target units²)" if perm["loss"] == "mse" else "log loss"
        order = sorted(names, key=lambda n: -(perm["field_importance"].get(n) or 0.0))
        add(
            "permutation_bars",
            plots.field_bars(
                names, values, xlabel=f"increase in {loss} when the field is shuffled", intervals=intervals
            ),
            "Bar chart of permutation importance per field with 95% intervals; most important first: "
            + ", ".join(order[:5])
            + ".",
        )
    for name in ATTRIBUTION_SECTIONS:
        entry = report.analyses.get(name, {})
        if entry.get("status") != "ok":
            continue
        title = ATTRIBUTION_SECTIONS[name]
        names = report.fields
        importance = entry["field_importance"]
        order = sorted(names, key=lambda n: -(importance.get(n) or 0.0))
        unit = "normalised attribution (each window's peak = 1)" if name == "combined" else "mean |attribution|"
        add(
            f"{name}_bars",
            plots.field_bars(names, [importance.get(n) for n in names], xlabel=f"{unit}, summed over time"),
            f"Bar chart of {title} importance per field; most important first: {', '.join(order[:5])}.",
        )
        profile = entry["time_profile"]
        peak = max(range(len(profile)), key=lambda i: profile[i] or 0.0) - (len(profile) - 1)
        add(
            f"{name}_time",
            plots.time_profile(profile, ylabel=unit.split(" (")[0]),
            f"{title} summed over fields at each time step of the window; the largest is at step {peak} "
            "(0 = the last input step).",
        )
        add(
            f"{name}_heatmap",
            plots.heatmap(entry["heatmap"], names, label=unit.split(" (")[0]),
            f"Heatmap of {title} by field (rows) and time step (columns), averaged over the explained windows.",
        )
    sens = report.analyses.get("sensitivity", {})
    if sens.get("status") == "ok":
        names = report.fields
        headline = [
            (sens["effects"][n].get("shift") or sens["effects"][n].get("switch") or {}).get("mean") for n in names
        ]
        add(
            "sensitivity_bars",
            plots.signed_bars(names, headline, xlabel=f"mean change of the prediction ({sens['units']})"),
            "Bar chart of the mean signed change of the prediction when each numeric field is raised by one "
            "standard deviation, or each categorical field switched to its most frequent other category.",
        )
    shap_entry = report.analyses.get("shap", {})
    if shap_entry.get("status") == "ok":
        names = report.fields
        importance = shap_entry["field_importance"]
        order = ", ".join(sorted(names, key=lambda n: -(importance.get(n) or 0.0))[:5])
        add(
            "shap_bars",
            plots.field_bars(names, [importance.get(n) for n in names], xlabel="mean |Shapley value| over windows"),
            f"Bar chart of each field's mean absolute Shapley value; most important first: {order}.",
        )
        if shap_entry["values"]["phi"]:
            add(
                "shap_beeswarm",
                plots.shap_beeswarm(
                    names, shap_entry["values"]["phi"], shap_entry["values"]["field_value"], xlabel="Shapley value"
                ),
                f"Beeswarm of the Shapley value of each field (rows, most important on top) in "
                f"{len(shap_entry['values']['phi'])} windows (points), coloured from dark blue (low) to yellow "
                "(high) by the field's mean value in the window; points right of zero raised the output.",
            )
    attention = report.analyses.get("attention", {})
    if attention.get("status") == "ok" and attention.get("layers"):
        layers = attention["layers"]
        peaks = []
        for layer in layers[: plots.ATTENTION_LAYERS_PLOTTED]:
            weights = [v or 0.0 for v in layer["last_step"]]
            if weights:
                peaks.append(f"{layer['name']} at step {weights.index(max(weights)) - (len(weights) - 1)}")
        add(
            "attention_last_step",
            plots.attention_last_step(layers),
            "Bar charts, one row per attention layer, of how much the last position attends to each position "
            "(0 = the last), averaged over heads and windows, with uniform attention dashed, beside each layer's "
            "query × key attention map. The largest weight is: " + "; ".join(peaks) + ".",
        )
    preds = report.analyses.get("predictions", {})
    if preds.get("status") == "ok":
        target = report.inputs["schema"]["target"]["column"]
        task = report.inputs["schema"]["task"]
        for index, window in enumerate(preds["windows"]):
            where = f" in {window['group']}" if window["group"] else ""
            add(
                f"predictions_{index}",
                plots.prediction_window(
                    window,
                    preds["fields_shown"],
                    report.fields,
                    target=target,
                    task=task,
                    categorical=preds.get("categorical_fields", []),
                ),
                f"Window ending {window['end_time']}{where} ({window['kind']}): its input fields over time, "
                f"the prediction against the actual value, and its attribution map by field and time step.",
            )
    faith = report.analyses.get("faithfulness", {})
    if faith.get("status") == "ok":
        add(
            "faithfulness_curves",
            plots.deletion_curves(
                faith["fractions"], faith["curves"], ylabel=f"mean |change of output| ({faith['units']})"
            ),
            "Deletion curves: the mean change of the output as more of each window's most-attributed cells are set "
            f"to the baseline, per method, against a random order; best area under the curve: {faith['ranking'][0]}.",
        )
        agreement = faith["agreement"]
        if len(agreement["methods"]) > 1:
            add(
                "faithfulness_agreement",
                plots.agreement_matrix(agreement["methods"], agreement["tau"]),
                "Matrix of Kendall's tau between the field rankings of every pair of methods (1 = same order).",
            )
    randomisation = report.analyses.get("sanity_randomization", {})
    if randomisation.get("status") == "ok":
        add(
            "sanity_randomization_cascade",
            plots.randomisation_cascade(
                randomisation["curves"], "field_rank_tau", ylabel="field-ranking agreement (tau)"
            ),
            "Agreement between the trained model's field ranking and the ranking after randomising more and more "
            "layers, per method; a method that depends on the model falls towards 0.",
        )
    return figures


ATTRIBUTION_SECTIONS = {
    "combined": "combined attribution",
    "occlusion": "occlusion",
    "gradient_x_input": "gradient × input",
    "integrated_gradients": "integrated gradients",
    "saliency": "saliency",
}


def render_html(report: Report, *, templates: str | Path | None = None, figures: dict | None = None) -> str:
    """The self-contained HTML report (no JavaScript, no external request)."""
    env = environment(templates)
    figures = build_figures(report) if figures is None else figures
    try:
        return env.get_template("report.html").render(
            report=report.to_dict(), figures=figures, tables=report_tables(report)
        )
    except jinja2.TemplateError as error:
        raise RenderError(f"Rendering the HTML report failed in a template: {error}") from None
