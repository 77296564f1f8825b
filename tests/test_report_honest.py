"""Honest verdicts: the summary (the PDF's cover) lists each check as passed, failed or not run, with the reason,
and says that everything passed, or that there are no warnings, only when that is the whole truth."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser

import models
import pytest
from helpers import explain, results

from tsreport.analyses import NAMES
from tsreport.render.filters import check_verdicts
from tsreport.render.html import environment

SUMMARY = (
    '{% import "_macros.html" as m with context %}{% set schema = report.inputs.schema %}'
    '{% include "sections/summary.html" %}'
)
METHODS = ("occlusion", "gradient_x_input")
EVERYTHING_PASSED = "both ran, and every method passed both"
PASSED_EVERY_CHECK = "Methods that passed every check"


def passing_check(name: str) -> dict:
    entry = {"status": "ok", "verdict": "pass", "methods": {m: {"verdict": "pass"} for m in METHODS}}
    if name == "sanity_positive_control":
        entry["controls"] = {"linear": {"verdict": "pass"}, "nonlinear": {"verdict": "pass"}}
        for method in METHODS:
            entry["methods"][method].update({"linear": {"verdict": "pass"}, "nonlinear": {"verdict": "pass"}})
    return entry


def everything_ran() -> dict:
    """A report (results.json's shape, as much as the summary reads) in which every analysis ran and passed."""
    analyses = {name: {"status": "ok"} for name in NAMES}
    analyses["performance"] = {
        "status": "ok", "task": "regression", "windows": 10, "overall": {"r2": 0.9, "mae": 1.0}, "persistence": None,
    }  # fmt: skip
    analyses["faithfulness"] = {"status": "ok", "agreement": {"mean_tau": 0.8}, "ranking": ["occlusion"]}
    for name in ("sanity_randomization", "sanity_positive_control"):
        analyses[name] = passing_check(name)
    return {
        "analyses": analyses,
        "ranking": [],
        "warnings": [],
        "sanity": {},
        "inputs": {"schema": {"target": {"column": "y"}}},
    }


def summary_text(report: dict) -> str:
    html = environment().from_string(SUMMARY).render(report=report, figures={}, tables={})
    return text_of(html)


def text_of(html: str) -> str:
    class Text(HTMLParser):
        parts: list[str] = []

        def handle_data(self, data):
            self.parts.append(data)

    parser = Text()
    parser.parts = []
    parser.feed(html)
    return re.sub(r"\s+", " ", "".join(parser.parts)).strip()


def test_everything_passed_is_said_only_when_every_check_ran_and_passed():
    report = everything_ran()
    verdicts = check_verdicts(report)
    assert verdicts["all_passed"] and verdicts["complete"]
    assert verdicts["passed_every_check"] == list(METHODS)
    text = summary_text(report)
    assert EVERYTHING_PASSED in text
    assert "Model randomisation pass: passed occlusion, gradient x input." in text
    assert "Planted positive control pass: passed occlusion, gradient x input." in text
    assert f"{PASSED_EVERY_CHECK}: occlusion, gradient x input." in text
    assert "Warnings: none." in text


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            lambda a: a.pop("sanity_positive_control"),
            "Planted positive control not run: not requested (--analyses).",
        ),
        (
            lambda a: a.update(
                sanity_positive_control={
                    "status": "skipped",
                    "reason": "the schema has no numeric field to plant a target on",
                }
            ),
            "Planted positive control not run: the schema has no numeric field to plant a target on.",
        ),
        (
            lambda a: a.update(sanity_randomization={"status": "failed", "reason": "RuntimeError: boom."}),
            "Model randomisation not run: it failed: RuntimeError: boom.",
        ),
    ],
    ids=["not-requested", "skipped", "errored"],
)
def test_a_check_that_did_not_run_is_on_the_cover_with_its_reason_and_nothing_claims_a_full_pass(change, line):
    report = everything_ran()
    change(report["analyses"])
    verdicts = check_verdicts(report)
    assert not verdicts["all_passed"] and not verdicts["complete"] and verdicts["passed_every_check"] == []
    text = summary_text(report)
    assert line in text
    assert EVERYTHING_PASSED not in text and PASSED_EVERY_CHECK not in text and "passed every check:" not in text
    assert "Passed every check that ran, but not every check ran in full for them: occlusion, gradient x input." in text
    assert "Warnings: none raised, but not everything ran or passed: see above." in text
    assert "Warnings: none." not in text


def test_a_control_or_a_method_that_did_not_run_inside_a_check_is_named_too():
    report = everything_ran()
    control = report["analyses"]["sanity_positive_control"]
    control["controls"]["nonlinear"] = {"verdict": "skipped", "reason": "the reference LSTM reached R² 0.41 < 0.9."}
    randomisation = report["analyses"]["sanity_randomization"]
    randomisation["methods"]["saliency"] = {"verdict": "skipped", "reason": "the model has no gradient"}
    text = summary_text(report)
    assert "But the nonlinear control did not run: the reference LSTM reached R² 0.41 < 0.9." in text
    assert "not run saliency (the model has no gradient)." in text
    assert not check_verdicts(report)["all_passed"]
    assert EVERYTHING_PASSED not in text and PASSED_EVERY_CHECK not in text


def test_a_failed_method_is_named_and_no_check_claims_a_pass_for_it():
    report = everything_ran()
    randomisation = report["analyses"]["sanity_randomization"]
    randomisation["verdict"] = "fail"
    randomisation["methods"]["gradient_x_input"] = {"verdict": "fail"}
    text = summary_text(report)
    assert "Model randomisation fail: passed occlusion; failed gradient x input." in text
    assert f"{PASSED_EVERY_CHECK}: occlusion." in text  # it did pass both, in full
    assert "Failed a check, read with caution: gradient x input." in text
    assert EVERYTHING_PASSED not in text


def test_analyses_that_did_not_run_are_listed_with_their_reason():
    report = everything_ran()
    report["analyses"]["attention"] = {"status": "skipped", "reason": "the model has no attention layers."}
    del report["analyses"]["shap"]
    text = summary_text(report)
    assert "Not run: attention (skipped: the model has no attention layers)." in text
    assert "Not requested (--analyses): shap." in text
    assert "Warnings: none raised, but not everything ran or passed" in text
    # Warnings, when there are some, are counted whatever else happened.
    with_warning = copy.deepcopy(report)
    with_warning["warnings"] = ["one"]
    assert "Warnings: 1." in summary_text(with_warning)


def test_the_cover_of_a_run_without_the_positive_control_says_not_run(tmp_path):
    """End to end: the PDF's first page, for a run whose --analyses leaves the positive control out."""
    pypdf = pytest.importorskip("pypdf")
    pytest.importorskip("weasyprint")
    data, schema = models.write_case(tmp_path)
    model = models.save_torchscript(models.LastStepLinear(), tmp_path / "model.pt")
    case = {"model": model, "data": data, "schema": schema, "out": tmp_path / "out"}
    analyses = "performance,occlusion,gradient_x_input,sanity_randomization"
    result = explain(case, "--analyses", analyses, "--samples", "40", "--format", "html,pdf", "--quiet")
    assert result.exit_code == 0, result.output
    data = results(case["out"])
    assert data["sanity"]["sanity_randomization"]["status"] == "pass" and not data["warnings"]
    reader = pypdf.PdfReader(case["out"] / "report.pdf")
    cover = re.sub(r"\s+", " ", reader.pages[0].extract_text()).replace(" :", ":")  # a badge's padding
    assert "Planted positive control NOT RUN: not requested (--analyses)." in cover
    assert "Model randomisation PASS" in cover
    assert "passed every check:" not in cover.lower() and EVERYTHING_PASSED not in cover
    assert "Passed every check that ran, but not every check ran in full for them" in cover
    assert "Warnings: none raised, but not everything ran or passed" in cover
    html = text_of((case["out"] / "report.html").read_text(encoding="utf-8"))
    assert "No warnings. Not everything ran or passed, though" in html
