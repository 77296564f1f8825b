"""One verdict logic (tsreport/verdicts.py) for the three outputs that say what was checked: the HTML/PDF
cover, summary.md and junit.xml must agree on every case (issue 10: "passed every check" only when every
check ran and passed).

Each case is a results.json dict (as much of it as the outputs read) with two methods and both checks;
for each, the cover's flag (``check_verdicts(...)["all_passed"]`` and the cover's own sentence),
summary.md's first line and junit.xml's sanity counts are asserted, and then that they agree with each
other testcase by testcase.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import junitparser
import pytest
import xmlschema

from tsreport.analyses import NAMES
from tsreport.render.filters import check_verdicts as cover_check_verdicts
from tsreport.render.html import environment
from tsreport.render.junit import render_junit
from tsreport.render.markdown import escape, render_summary_markdown
from tsreport.verdicts import FAILED, NOT_RUN, PASSED, check_outcomes, check_verdicts, overall_verdict

XSD = Path(__file__).parent / "data" / "junit-10.xsd"
METHODS = ("occlusion", "gradient_x_input")
COVER = (
    '{% import "_macros.html" as m with context %}{% set schema = report.inputs.schema %}'
    '{% include "sections/summary.html" %}'
)
COVER_ALL_PASSED = "both ran, and every method passed both"
NO_LEARN = "neither a fresh copy of your architecture (R² 0.10) nor the reference LSTM (R² 0.41) reached R² 0.9"


def all_pass() -> dict[str, Any]:
    """Every analysis ran; both checks ran for both methods, the positive control with both planted controls."""
    analyses: dict[str, Any] = {name: {"status": "ok", "seconds": 0.5} for name in NAMES}
    analyses["performance"] = {
        "status": "ok", "seconds": 0.5, "task": "regression", "windows": 10, "overall": {"r2": 0.9, "mae": 1.0},
        "persistence": None,
    }  # fmt: skip
    analyses["faithfulness"] = {"status": "ok", "agreement": {"mean_tau": 0.8}, "ranking": ["occlusion"]}
    analyses["sanity_randomization"] = {
        "status": "ok",
        "seconds": 1.0,
        "verdict": "pass",
        "thresholds": {"max_spearman": 0.5, "max_field_rank_tau": 0.5},
        "methods": {m: {"verdict": "pass", "final": {"spearman": 0.1, "field_rank_tau": 0.0}} for m in METHODS},
    }
    analyses["sanity_positive_control"] = {
        "status": "ok",
        "seconds": 2.0,
        "verdict": "pass",
        "controls": {"linear": {"fields": ["a"], "r2": 0.99}, "nonlinear": {"fields": ["a", "b"], "r2": 0.95}},
        "methods": {
            m: {
                "linear": {"verdict": "pass", "ranks": {"a": 1}},
                "nonlinear": {"verdict": "pass", "ranks": {"a": 1, "b": 2}},
                "verdict": "pass",
            }
            for m in METHODS
        },
    }
    return {
        "tsreport_version": "0.1.0",
        "results_version": 1,
        "run": {"seed": 0, "seconds": 3.0},
        "analyses": analyses,
        "ranking": ["a", "b"],
        "ranking_source": "combined",
        "sanity": {},
        "warnings": [],
        "inputs": {"schema": {"target": {"column": "y"}}},
    }


def one_method_fails(data: dict) -> None:
    check = data["analyses"]["sanity_randomization"]
    check["verdict"] = "fail"
    check["methods"]["gradient_x_input"] = {"verdict": "fail", "final": {"spearman": 0.93, "field_rank_tau": 1.0}}


def positive_control_not_requested(data: dict) -> None:
    del data["analyses"]["sanity_positive_control"]
    data["sanity"]["sanity_positive_control"] = {"status": "skipped", "reason": "not requested (--analyses)"}


def randomisation_skipped(data: dict) -> None:
    data["analyses"]["sanity_randomization"] = {"status": "skipped", "reason": "the model has no parameters"}


def randomisation_failed(data: dict) -> None:
    data["analyses"]["sanity_randomization"] = {"status": "failed", "reason": "RuntimeError: boom"}


def nonlinear_skipped_inside_one_method(data: dict) -> None:
    method = data["analyses"]["sanity_positive_control"]["methods"]["occlusion"]
    method["nonlinear"] = {"verdict": "skipped", "reason": "the model has no gradient"}


def nonlinear_control_did_not_run(data: dict) -> None:
    """The real toy run's case: no model learned the nonlinear target, so it ran for no method."""
    check = data["analyses"]["sanity_positive_control"]
    check["controls"]["nonlinear"].update(verdict="skipped", reason=NO_LEARN)
    for method in check["methods"].values():
        del method["nonlinear"]


def randomisation_ran_positive_control_did_not(data: dict) -> None:
    data["analyses"]["sanity_positive_control"] = {
        "status": "skipped",
        "reason": f"{NO_LEARN}; {NO_LEARN}",
        "seconds": 4.0,
    }


def one_method_skipped_by_randomisation(data: dict) -> None:
    data["analyses"]["sanity_randomization"]["methods"]["occlusion"] = {"verdict": "skipped", "reason": "no gradients"}


def randomisation_tested_no_method(data: dict) -> None:
    for method in METHODS:
        data["analyses"]["sanity_randomization"]["methods"][method] = {"verdict": "skipped", "reason": "no gradients"}


def fails_linear_while_nonlinear_did_not_run(data: dict) -> None:
    nonlinear_control_did_not_run(data)
    check = data["analyses"]["sanity_positive_control"]
    check["verdict"] = "fail"
    check["methods"]["occlusion"]["linear"] = {"verdict": "fail", "ranks": {"a": 3}}
    check["methods"]["occlusion"]["verdict"] = "fail"


def no_check_requested(data: dict) -> None:
    positive_control_not_requested(data)
    del data["analyses"]["sanity_randomization"]
    data["sanity"]["sanity_randomization"] = {"status": "skipped", "reason": "not requested (--analyses)"}


#: (change, all_passed, summary.md's first line, junit sanity suite (tests, failures, skipped)).
CASES: dict[str, tuple[Callable[[dict], None], bool, str, tuple[int, int, int]]] = {
    "all-pass": (lambda data: None, True, "✅ passed every check", (4, 0, 0)),
    "one-method-fails": (one_method_fails, False, "❌ failed 1 of 4 checks", (4, 1, 0)),
    "positive-control-not-requested": (
        positive_control_not_requested,
        False,
        "⚠️ passed the 2 checks that ran; 1 not run",
        (3, 0, 1),
    ),
    "randomisation-skipped-with-reason": (
        randomisation_skipped,
        False,
        "⚠️ passed the 2 checks that ran; 1 not run",
        (3, 0, 1),
    ),
    "randomisation-analysis-failed": (
        randomisation_failed,
        False,
        "⚠️ passed the 2 checks that ran; 1 not run",
        (3, 0, 1),
    ),
    "planted-control-skipped-inside-a-method": (
        nonlinear_skipped_inside_one_method,
        False,
        "⚠️ passed 3 of 4 checks in full; 1 not run in full",
        (4, 0, 1),
    ),
    "planted-control-ran-for-no-method": (
        nonlinear_control_did_not_run,
        False,
        "⚠️ passed 2 of 4 checks in full; 2 not run in full",
        (4, 0, 2),
    ),
    "randomisation-ran-positive-control-did-not": (
        randomisation_ran_positive_control_did_not,
        False,
        "⚠️ passed the 2 checks that ran; 1 not run",
        (3, 0, 1),
    ),
    "a-method-not-run-by-randomisation": (
        one_method_skipped_by_randomisation,
        False,
        "⚠️ passed the 3 checks that ran; 1 not run",
        (4, 0, 1),
    ),
    "randomisation-tested-no-method": (
        randomisation_tested_no_method,
        False,
        "⚠️ passed the 2 checks that ran; 2 not run",
        (4, 0, 2),
    ),
    "fails-linear-while-nonlinear-did-not-run": (
        fails_linear_while_nonlinear_did_not_run,
        False,
        "❌ failed 1 of 4 checks (1 not run in full)",
        (4, 1, 1),
    ),
    "no-check-requested": (no_check_requested, False, "⚠️ no sanity check ran", (2, 0, 2)),
}


def results_for(case: str) -> dict[str, Any]:
    data = all_pass()
    CASES[case][0](data)
    return data


def cover_text(report: dict[str, Any]) -> str:
    html = environment().from_string(COVER).render(report=report, figures={}, tables={})

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    parser = Text()
    parser.feed(html)
    return re.sub(r"\s+", " ", "".join(parser.parts)).strip()


def junit_sanity(report: dict[str, Any], tmp_path: Path) -> tuple[junitparser.TestSuite, dict[tuple[str, str], Any]]:
    text = render_junit(report)
    xmlschema.XMLSchema(XSD).validate(text)
    path = tmp_path / "junit.xml"
    path.write_text(text, encoding="utf-8")
    suites = {suite.name: suite for suite in junitparser.JUnitXml.fromfile(str(path))}
    suite = suites["tsreport.sanity"]
    return suite, {(case.classname.rsplit(".", 1)[-1], case.name): case for case in suite}


def junit_outcome(case: junitparser.TestCase) -> str:
    kinds = [type(result).__name__ for result in case.result]
    return {"Failure": FAILED, "Skipped": NOT_RUN}.get(kinds[0], "?") if kinds else PASSED


def markdown_rows(text: str) -> dict[tuple[str, str], tuple[str, str]]:
    labels = {"model randomisation": "sanity_randomization", "positive control": "sanity_positive_control"}
    lines = text.splitlines()
    start = lines.index("## Sanity checks") + 3
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        check, method, result, reason = (cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1])
        rows[(labels[check], method.replace("\\_", "_"))] = (result.split(" ", 1)[1], reason)
    return rows


@pytest.mark.parametrize("case", list(CASES))
def test_cover_summary_md_and_junit_agree(case: str, tmp_path: Path) -> None:
    _, all_passed, first_line, (tests, failures, skipped) = CASES[case]
    report = results_for(case)
    verdicts = check_verdicts(report)

    # The cover: its flag, and the sentence it says only with that flag.
    assert cover_check_verdicts is check_verdicts  # the template reads the same function
    assert verdicts["all_passed"] is all_passed
    cover = cover_text(report)
    assert (COVER_ALL_PASSED in cover) is all_passed

    # summary.md: its first line.
    summary = render_summary_markdown(report)
    assert summary.splitlines()[0] == f"# tsreport: {first_line}"
    assert (first_line == "✅ passed every check") is all_passed

    # junit.xml: the sanity suite's counts.
    suite, testcases = junit_sanity(report, tmp_path)
    assert (suite.tests, suite.failures, suite.skipped) == (tests, failures, skipped)
    assert (suite.failures == 0 and suite.skipped == 0) is all_passed

    # And testcase by testcase: the cover's method verdicts, summary.md's rows and junit's testcases.
    rows = markdown_rows(summary)
    outcomes = check_outcomes(report)
    assert len(outcomes) == len(rows) == len(testcases) == tests
    for outcome in outcomes:
        key = (outcome.check, outcome.method or "all methods")
        result, reason = rows[key]
        assert result == (f"{outcome.outcome} in full" if outcome.partial else outcome.outcome)
        assert reason == escape(outcome.reason or "")  # escaped and cut to 200 characters
        assert junit_outcome(testcases[key]) == outcome.outcome
        if outcome.outcome != PASSED:
            assert testcases[key].result[0].message == outcome.reason
        check = next(c for c in verdicts["checks"] if c["name"] == outcome.check)
        if check["verdict"] == "not run":  # the cover names the check and why
            assert f"{check['title'].capitalize()} not run: {check['reason']}" in cover
        if outcome.method is None:
            assert check["verdict"] == "not run"
        else:
            assert {"pass": PASSED, "fail": FAILED, "not run": NOT_RUN}[
                check["methods"][outcome.method]["outcome"]
            ] == (outcome.outcome)
    failed_in_junit = {method for (_, method), case in testcases.items() if junit_outcome(case) == FAILED}
    assert set(verdicts["failed"]) == failed_in_junit
    if all_passed:
        assert verdicts["passed_every_check"] == list(METHODS)
    for method in verdicts["passed_every_check"]:
        assert all(junit_outcome(testcases[(check, method)]) == PASSED for check, m in testcases if m == method)


def test_a_planted_control_that_did_not_run_is_not_a_pass_and_every_output_names_it(tmp_path: Path) -> None:
    """The case that set the outputs apart: the cover said that occlusion did not pass in full, while
    summary.md said "passed every check" and junit.xml had no skipped testcase."""
    report = results_for("planted-control-skipped-inside-a-method")
    verdicts = check_verdicts(report)
    assert verdicts["passed_every_check"] == ["gradient_x_input"]
    assert verdicts["passed_what_ran"] == ["occlusion"]
    cover = cover_text(report)
    assert "For occlusion, not run: nonlinear control: the model has no gradient." in cover
    assert "Passed every check that ran, but not every check ran in full for them: occlusion." in cover
    reason = "the nonlinear control did not run: the model has no gradient; the linear control passed"
    assert markdown_rows(render_summary_markdown(report))[("sanity_positive_control", "occlusion")] == (
        "not run in full",
        reason,
    )
    _, testcases = junit_sanity(report, tmp_path)
    [skipped] = testcases[("sanity_positive_control", "occlusion")].result
    assert type(skipped).__name__ == "Skipped" and skipped.message == reason


def test_a_control_that_ran_for_no_method_is_named_once_on_the_cover_and_per_method_elsewhere(tmp_path: Path) -> None:
    report = results_for("planted-control-ran-for-no-method")
    cover = cover_text(report)
    assert f"But the nonlinear control did not run: {NO_LEARN}." in cover
    assert "For occlusion" not in cover  # the cover says it once, for the check
    assert check_verdicts(report)["passed_what_ran"] == list(METHODS)
    _, testcases = junit_sanity(report, tmp_path)
    for method in METHODS:
        [skipped] = testcases[("sanity_positive_control", method)].result
        assert skipped.message == f"the nonlinear control did not run: {NO_LEARN}; the linear control passed"


def test_a_control_that_ran_for_no_method_wins_over_a_pass_recorded_for_it() -> None:
    """A method's own 'pass' for a control that did not run cannot make it a pass."""
    report = all_pass()
    report["analyses"]["sanity_positive_control"]["controls"]["nonlinear"].update(verdict="skipped", reason="x")
    verdicts = check_verdicts(report)
    assert not verdicts["all_passed"]
    assert overall_verdict(check_outcomes(report)) == "passed 2 of 4 checks in full; 2 not run in full"


def test_a_failure_keeps_its_figures_and_names_what_did_not_run() -> None:
    report = results_for("fails-linear-while-nonlinear-did-not-run")
    [failed] = [o for o in check_outcomes(report) if o.outcome == FAILED]
    assert (failed.check, failed.method) == ("sanity_positive_control", "occlusion")
    assert failed.reason == f"linear control: planted field ranked a #3; the nonlinear control did not run: {NO_LEARN}"
    report = results_for("one-method-fails")
    [failed] = [o for o in check_outcomes(report) if o.outcome == FAILED]
    assert failed.reason == (
        "the explanation barely changed after randomising the model's weights (spearman 0.93 > 0.5, "
        "field_rank_tau 1.00 > 0.5)"
    )


def test_verdicts_need_no_renderer() -> None:
    """tsreport.verdicts works on a results.json dict alone: no jinja2, no matplotlib."""
    import subprocess
    import sys

    code = (
        "import sys, tsreport.verdicts as v; v.sanity_verdicts({});"
        "print(sorted(m for m in ('jinja2', 'matplotlib', 'torch') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_the_verdicts_are_read_only() -> None:
    report = results_for("planted-control-skipped-inside-a-method")
    before = copy.deepcopy(report)
    check_verdicts(report)
    render_summary_markdown(report)
    render_junit(report)
    assert report == before
