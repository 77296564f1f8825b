"""The sanity checks' own sections badge them as tsreport.verdicts does (issue 11): the planted positive control's
section said PASS while one method's control did not run, where summary.md and junit.xml said "not run in full";
the model-randomisation section said PASS with a method it could not test.

The section badges are rendered from a Report (``Report.from_dict(...).to_dict()``, as ``render_html`` passes it),
for every case of tests/test_verdicts.py, and once end to end through ``render_html`` on a real run.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import models
import pytest
from test_verdicts import CASES, METHODS, results_for

from tsreport import analyses
from tsreport.config import build_config
from tsreport.pipeline import explain as run_pipeline
from tsreport.render.html import environment, render_html
from tsreport.results import Report
from tsreport.verdicts import FAILED, PASSED, check_outcomes, check_verdicts

CHECKS = ("sanity_positive_control", "sanity_randomization")
SECTION = (
    '{% import "_macros.html" as m with context %}{% set entry = report.analyses[name] %}'
    '{% include "sections/" ~ name ~ ".html" %}'
)
BADGE = re.compile(r'<span class="badge verdict-([a-z-]+)">([^<]*)</span>')


def with_section_keys(data: dict[str, Any]) -> dict[str, Any]:
    """The test_verdicts case plus the figures the two sections print (their templates are strict)."""
    data = copy.deepcopy(data)
    randomisation = data["analyses"].get("sanity_randomization") or {}
    if randomisation.get("status") == "ok":
        randomisation.update(layers=["lstm", "head"], windows=10)
        randomisation["thresholds"].update(max_top10_overlap=0.5, min_share_change=0.1)
        for result in randomisation["methods"].values():
            if result.get("verdict") != "skipped":
                result.update(trained_top_field="a", trained_top_field_share=0.6, changed_by=["spearman"])
                result["final"].update(top10_overlap=0.1, top_field_share=0.3)
    control = data["analyses"].get("sanity_positive_control") or {}
    if control.get("status") == "ok":
        control.update(windows=10, explained_windows=10)
        for planted in control["controls"].values():
            planted.setdefault("architecture", "your model's architecture")
    return {**data, "fields": ["a", "b"]}


def section_badges(html: str, name: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The verdict badges [(class, text)] in the section's heading, and each method row's verdict badge text."""
    section = html[html.index(f'<section id="{name}">') :]
    section = section[: section.index("</section>")]
    heading = section[: section.index("</h2>")]
    rows = {}
    for row in re.findall(r"<tr><td>([^<]*)</td><td>(.*?)</td>", section, flags=re.S):
        found = BADGE.search(row[1])
        if found:
            rows[row[0].replace(" ", "_")] = found.group(2)
    return BADGE.findall(heading), rows


def render_section(data: dict[str, Any], name: str) -> str:
    report = Report.from_dict(with_section_keys(data)).to_dict()
    figures = {"sanity_randomization_cascade": None}  # no chart: the section asks for it by name
    return environment().from_string(SECTION).render(report=report, name=name, figures=figures, tables={})


def heading_verdict(data: dict[str, Any], name: str) -> str | None:
    """The verdict badge's text in the section's heading."""
    badges, _ = section_badges(render_section(data, name), name)
    return badges[0][1] if badges else None


def one_method_not_run_by_the_positive_control(data: dict) -> None:
    """Both planted controls ran, but occlusion could explain neither control model: the entry still says pass."""
    skipped = {"verdict": "skipped", "reason": "the model has no gradient"}
    data["analyses"]["sanity_positive_control"]["methods"]["occlusion"] = {
        "linear": dict(skipped),
        "nonlinear": dict(skipped),
        "verdict": "skipped",
        "reason": "the model has no gradient",
    }


def test_a_positive_control_with_one_method_skipped_has_no_pass_badge() -> None:
    data = results_for("all-pass")
    one_method_not_run_by_the_positive_control(data)
    assert data["analyses"]["sanity_positive_control"]["verdict"] == "pass"  # what results.json says
    badges, rows = section_badges(render_section(data, "sanity_positive_control"), "sanity_positive_control")
    assert badges == [("not-run", "not run in full")]  # was [("pass", "pass")]
    assert rows == {"occlusion": "not run", "gradient_x_input": "pass"}


def test_a_control_that_did_not_run_for_one_method_is_not_run_in_full_for_it_and_for_the_check() -> None:
    data = results_for("planted-control-skipped-inside-a-method")
    badges, rows = section_badges(render_section(data, "sanity_positive_control"), "sanity_positive_control")
    assert badges == [("not-run", "not run in full")]
    assert rows == {"occlusion": "not run in full", "gradient_x_input": "pass"}  # occlusion was "pass"


def test_a_method_the_randomisation_could_not_test_keeps_the_check_from_passing() -> None:
    data = results_for("a-method-not-run-by-randomisation")
    badges, rows = section_badges(render_section(data, "sanity_randomization"), "sanity_randomization")
    assert badges == [("not-run", "not run in full")]  # was [("pass", "pass")]
    assert rows == {"occlusion": "not run", "gradient_x_input": "pass"}  # summary.md's word, not "skipped"


@pytest.mark.parametrize("case", list(CASES))
def test_each_section_badge_is_the_verdict_summary_md_and_junit_report(case: str) -> None:
    """pass only when every method's outcome is passed; fail when one failed; else not run (in full)."""
    data = results_for(case)
    outcomes = check_outcomes(data)
    for name in CHECKS:
        if (data["analyses"].get(name) or {}).get("status") != "ok":
            continue  # no verdict badge: the section shows the analysis's status and reason
        mine = [o.outcome for o in outcomes if o.check == name]
        expected = "fail" if FAILED in mine else ("pass" if all(o == PASSED for o in mine) else "not run")
        check = check_verdicts(data)["by_name"][name]
        assert check["outcome"] == expected
        shown = heading_verdict(data, name)
        assert shown == (f"{expected} in full" if check["in_part"] else expected)
        assert (shown == "pass") is all(o == PASSED for o in mine)


@pytest.fixture(scope="module")
def positive_control_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real run of both methods through the planted positive control (about 10 s: it trains the controls)."""
    folder = tmp_path_factory.mktemp("badges")
    data, schema = models.write_case(folder)
    model = models.save_torchscript(models.LastStepLinear(), folder / "model.pt")
    values = {"analyses": "occlusion,gradient_x_input,sanity_positive_control", "samples": "16", "quiet": True}
    report = run_pipeline(model, data, schema, build_config({}, values, analysis_names=analyses.NAMES))
    return report.to_dict()


def test_the_report_of_a_run_with_one_method_skipped_shows_no_pass_for_the_positive_control(
    positive_control_run: dict[str, Any],
) -> None:
    """End to end: report.html rendered from the Report of a real run, once as it ran, once with one method's
    controls marked as not run (as sanity.py writes them when a method cannot explain a control model)."""
    assert positive_control_run["analyses"]["sanity_positive_control"]["verdict"] == "pass"
    as_run = render_html(Report.from_dict(positive_control_run))
    badges, rows = section_badges(as_run, "sanity_positive_control")
    assert badges == [("pass", "pass")] and rows == dict.fromkeys(METHODS, "pass")

    skipped = copy.deepcopy(positive_control_run)
    one_method_not_run_by_the_positive_control(skipped)
    html = render_html(Report.from_dict(skipped))
    badges, rows = section_badges(html, "sanity_positive_control")
    assert badges == [("not-run", "not run in full")]
    assert rows == {"occlusion": "not run", "gradient_x_input": "pass"}
