"""Outputs that CI systems show natively: ``summary.md`` (``--format markdown``) and ``junit.xml``
(``--format junit``), issue 10.

One real run of the toy case (y(t+1) = 3·a(t), fields a, b, noise, w) with the full battery gives
the baseline results.json. In it the planted nonlinear control does not run (no model learns it to
R² 0.9 in 40 epochs), so no output may say that every check passed. The other cases are synthetic
edits of a copy of it in which every control ran (:func:`edited`: the run as a schema with a single
numeric field to plant would give it, linear control only), so each test knows exactly what it changed. junit.xml is read back with ``junitparser`` and validated with
``xmlschema`` against the Jenkins xUnit plugin's JUnit schema (tests/data/junit-10.xsd).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import junitparser
import models
import pytest
import torch
import xmlschema
from helpers import explain, results

from tsreport.render.junit import render_junit
from tsreport.render.markdown import render_summary_markdown

XSD = Path(__file__).parent / "data" / "junit-10.xsd"
CHECKS = ("sanity_randomization", "sanity_positive_control")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One real run with the full battery, writing results.json, summary.md and junit.xml; every check passes."""
    folder = tmp_path_factory.mktemp("ci-outputs")
    data, schema = models.write_case(folder)
    model = models.save_torchscript(models.LastStepLinear(), folder / "model.pt")
    # The positive control stops training at a time limit; on a busy machine that limit, not the
    # seed, would decide its verdict. A limit it never reaches keeps the run a known answer.
    config = folder / "config.yaml"
    config.write_text("sanity_positive_control: {seconds: 600}\n")
    case = {"data": data, "schema": schema, "model": model, "out": folder / "out"}
    # One thread: the machine's few cores are shared, and oversubscribed threads slow training tenfold.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # Seed 1: the positive control's fresh copy of the linear model learns within its epochs.
        result = explain(
            case, "--samples", "30", "--seed", "1", "--config", config, "--format", "json,markdown,junit", "--quiet"
        )
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    yield {"out": case["out"], "results": results(case["out"])}


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(XSD)


def edited(run: dict[str, Any]) -> dict[str, Any]:
    """A copy of the run's results in which every check ran in full and passed: the positive control
    planted only its linear control (as for a schema with one numeric field), which every method passed."""
    data = copy.deepcopy(run["results"])
    control = data["analyses"]["sanity_positive_control"]
    control["controls"] = {kind: c for kind, c in control["controls"].items() if c.get("verdict") != "skipped"}
    assert list(control["controls"]) == ["linear"]
    assert all(m["verdict"] == m["linear"]["verdict"] == "pass" for m in control["methods"].values())
    return data


def parse_junit(text: str, tmp_path: Path) -> junitparser.JUnitXml:
    path = tmp_path / "junit.xml"
    path.write_text(text, encoding="utf-8")
    return junitparser.JUnitXml.fromfile(str(path))


def cases(xml: junitparser.JUnitXml) -> dict[tuple[str, str], junitparser.TestCase]:
    return {(case.classname, case.name): case for suite in xml for case in suite}


def outcome(case: junitparser.TestCase) -> str:
    kinds = {type(r).__name__ for r in case.result}
    return {"Failure": "failure", "Skipped": "skipped", "Error": "error"}.get(next(iter(kinds), ""), "passed")


def expected_outcomes(data: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Worked out from the results dict alone: what each junit testcase must say. A planted control that
    did not run, for one method or for all, is not a pass: the method's testcase is skipped."""
    expected = {}
    for check in CHECKS:
        entry = data["analyses"].get(check)
        if entry is None or entry["status"] != "ok":
            expected[(f"tsreport.sanity.{check}", "all methods")] = "skipped"
            continue
        skipped_controls = {k for k, c in (entry.get("controls") or {}).items() if c.get("verdict") == "skipped"}
        for method, verdict in entry["methods"].items():
            parts = {k: v["verdict"] for k, v in verdict.items() if isinstance(v, dict) and "verdict" in v}
            outcome = {"pass": "passed", "fail": "failure"}.get(verdict["verdict"], "skipped")
            if outcome == "passed" and ("skipped" in parts.values() or skipped_controls):
                outcome = "skipped"
            expected[(f"tsreport.sanity.{check}", method)] = outcome
    for name, entry in data["analyses"].items():
        expected[("tsreport.analyses", name)] = {"ok": "passed", "skipped": "skipped", "failed": "error"}[
            entry["status"]
        ]
    return expected


def table_rows(text: str, heading_prefix: str) -> list[list[str]]:
    """The cells of the table under the heading that starts with ``heading_prefix`` (escaped pipes kept)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading_prefix)) + 3
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


# ---------------------------------------------------------------- junit.xml


def test_junit_written_by_the_run_parses_with_counts_from_the_results(run: dict, tmp_path: Path) -> None:
    data = run["results"]
    xml = junitparser.JUnitXml.fromfile(str(run["out"] / "junit.xml"))
    expected = expected_outcomes(data)
    got = {key: outcome(case) for key, case in cases(xml).items()}
    assert got == expected
    # 2 checks x 4 gradient/occlusion methods + one testcase per analysis, attention skipped (no attention).
    assert len(expected) == 8 + len(data["analyses"])
    assert expected[("tsreport.analyses", "attention")] == "skipped"
    assert xml.tests == len(expected)
    assert xml.failures == 0 and xml.errors == 0
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == {"tsreport.sanity", "tsreport.analyses"}
    # The nonlinear control did not run: each method passed the linear one only, which is not a pass.
    assert (suites["tsreport.sanity"].tests, suites["tsreport.sanity"].skipped) == (8, 4)
    nonlinear = data["analyses"]["sanity_positive_control"]["controls"]["nonlinear"]
    assert nonlinear["verdict"] == "skipped"
    [skipped] = cases(xml)[("tsreport.sanity.sanity_positive_control", "occlusion")].result
    assert skipped.message == f"the nonlinear control did not run: {nonlinear['reason']}; the linear control passed"
    assert all(outcome == "passed" for (suite, _), outcome in got.items() if suite.endswith("randomization"))
    assert (suites["tsreport.analyses"].tests, suites["tsreport.analyses"].skipped) == (len(data["analyses"]), 1)
    [skipped] = cases(xml)[("tsreport.analyses", "attention")].result
    assert skipped.message == data["analyses"]["attention"]["reason"]
    assert cases(xml)[("tsreport.analyses", "sanity_positive_control")].time == pytest.approx(
        data["analyses"]["sanity_positive_control"]["seconds"], abs=1e-3
    )
    assert (run["out"] / "junit.xml").read_text(encoding="utf-8") == render_junit(data)


def test_junit_validates_against_the_jenkins_schema(run: dict, schema: xmlschema.XMLSchema) -> None:
    schema.validate(str(run["out"] / "junit.xml"))


def test_failed_check_is_a_failure_not_run_is_skipped_failed_analysis_is_an_error(
    run: dict, schema: xmlschema.XMLSchema, tmp_path: Path
) -> None:
    data = edited(run)
    randomization = data["analyses"]["sanity_randomization"]
    randomization["verdict"] = "fail"
    randomization["methods"]["saliency"]["verdict"] = "fail"
    randomization["methods"]["saliency"]["final"]["spearman"] = 0.93
    randomization["methods"]["saliency"]["final"]["field_rank_tau"] = 1.0
    randomization["methods"]["occlusion"] = {"verdict": "skipped", "reason": "no gradients"}
    data["analyses"]["sanity_positive_control"] = {
        "status": "skipped",
        "reason": "the reference LSTM reached R² 0.12 < 0.9 in 40 epochs",
        "seconds": 1.5,
    }
    data["analyses"]["shap"] = {
        "status": "failed",
        "reason": "numbers not finite\x00\x1b in <field> & co",
        "seconds": 0,
    }
    text = render_junit(data)
    schema.validate(text)
    xml = parse_junit(text, tmp_path)
    got = {key: outcome(case) for key, case in cases(xml).items()}
    assert got == expected_outcomes(data)
    assert got[("tsreport.sanity.sanity_randomization", "saliency")] == "failure"
    assert got[("tsreport.sanity.sanity_randomization", "occlusion")] == "skipped"
    assert got[("tsreport.sanity.sanity_positive_control", "all methods")] == "skipped"
    assert got[("tsreport.analyses", "shap")] == "error"
    assert (xml.tests, xml.failures, xml.errors) == (len(got), 1, 1)
    suites = {suite.name: suite for suite in xml}
    assert suites["tsreport.sanity"].skipped == 2
    assert suites["tsreport.analyses"].skipped == 2  # attention and the positive control
    [failure] = cases(xml)[("tsreport.sanity.sanity_randomization", "saliency")].result
    assert failure.message == (
        "the explanation barely changed after randomising the model's weights (spearman 0.93 > 0.5, "
        "field_rank_tau 1.00 > 0.5)"
    )
    [error] = cases(xml)[("tsreport.analyses", "shap")].result
    assert error.message == "numbers not finite\\x00\\x1b in <field> & co"  # illegal XML characters written out
    [skipped] = cases(xml)[("tsreport.sanity.sanity_positive_control", "all methods")].result
    assert skipped.message == "skipped: the reference LSTM reached R² 0.12 < 0.9 in 40 epochs"


def test_junit_of_a_run_without_sanity_checks(run: dict, schema: xmlschema.XMLSchema, tmp_path: Path) -> None:
    data = edited(run)
    for check in CHECKS:
        del data["analyses"][check]
        data["sanity"][check] = {"status": "skipped", "reason": "not requested (--analyses)"}
    text = render_junit(data)
    schema.validate(text)
    got = {key: outcome(case) for key, case in cases(parse_junit(text, tmp_path)).items()}
    assert got[("tsreport.sanity.sanity_randomization", "all methods")] == "skipped"
    assert got == expected_outcomes(data)


# ---------------------------------------------------------------- summary.md


def test_summary_md_written_by_the_run_says_what_the_results_say(run: dict) -> None:
    data = run["results"]
    text = (run["out"] / "summary.md").read_text(encoding="utf-8")
    assert text == render_summary_markdown(data)
    lines = text.splitlines()
    assert len(lines) < 60
    # The nonlinear control did not run, so not every check passed (the cover says so too).
    assert lines[0] == "# tsreport: ⚠️ passed 4 of 8 checks in full; 4 not run in full"
    nonlinear = data["analyses"]["sanity_positive_control"]["controls"]["nonlinear"]["reason"]
    checks = table_rows(text, "## Sanity checks")
    assert len(checks) == 8
    assert checks[:4] == [
        [
            "positive control",
            method,
            "⚪ not run in full",
            f"the nonlinear control did not run: {nonlinear}; the linear control passed",
        ]
        for method in ("occlusion", "gradient\\_x\\_input", "integrated\\_gradients", "saliency")
    ]
    assert all(row[:1] + row[2:] == ["model randomisation", "✅ passed", ""] for row in checks[4:])
    # Once every control ran (here: the run with its linear control only), it says so.
    assert render_summary_markdown(edited(run)).splitlines()[0] == "# tsreport: ✅ passed every check"
    # Ranking: the order of results.json, with the combined shares.
    assert data["ranking_source"] == "combined"
    share = data["analyses"]["combined"]["share"]
    ranking = table_rows(text, "## Headline ranking (by combined)")
    assert [row[1] for row in ranking] == data["ranking"]
    assert [row[2] for row in ranking] == [f"{share[field]:.1%}" for field in data["ranking"]]
    assert ranking[0][1:] == ["a", "100.0%"]
    # Performance: the overall metrics, to 4 significant digits.
    overall = data["analyses"]["performance"]["overall"]
    metrics = table_rows(text, "## Performance")
    assert {row[0]: row[1] for row in metrics} == {name: f"{value:.4g}" for name, value in overall.items()}
    # Skipped analyses with their reason; no warnings.
    reason = data["analyses"]["attention"]["reason"]
    assert f"- `attention` **skipped**: {reason}" in lines
    assert lines[lines.index("## Warnings") + 1] == "None."


def test_passed_every_check_only_when_every_check_ran(run: dict) -> None:
    data = edited(run)
    data["analyses"]["sanity_positive_control"] = {"status": "skipped", "reason": "no gradients", "seconds": 0}
    data["sanity"]["sanity_positive_control"] = {"status": "skipped", "reason": "skipped: no gradients"}
    text = render_summary_markdown(data)
    assert "passed every check" not in text
    assert text.splitlines()[0] == "# tsreport: ⚠️ passed the 4 checks that ran; 1 not run"
    rows = table_rows(text, "## Sanity checks")
    assert rows[0] == ["positive control", "all methods", "⚪ not run", "skipped: no gradients"]

    data = edited(run)
    data["analyses"]["sanity_randomization"]["methods"]["saliency"] = {"verdict": "skipped", "reason": "no gradients"}
    text = render_summary_markdown(data)
    assert text.splitlines()[0] == "# tsreport: ⚠️ passed the 7 checks that ran; 1 not run"
    assert table_rows(text, "## Sanity checks")[0] == ["model randomisation", "saliency", "⚪ not run", "no gradients"]

    data = edited(run)
    for check in CHECKS:
        del data["analyses"][check]
    assert render_summary_markdown(data).splitlines()[0] == "# tsreport: ⚠️ no sanity check ran"


def test_failed_check_is_named_with_its_reason(run: dict) -> None:
    data = edited(run)
    control = data["analyses"]["sanity_positive_control"]
    control["methods"]["occlusion"]["linear"] = {"verdict": "fail", "ranks": {"b": 3}, "ranking": ["a", "w", "b"]}
    control["methods"]["occlusion"]["verdict"] = "fail"
    text = render_summary_markdown(data)
    assert text.splitlines()[0] == "# tsreport: ❌ failed 1 of 8 checks"
    assert table_rows(text, "## Sanity checks")[0] == [
        "positive control",
        "occlusion",
        "❌ failed",
        "linear control: planted field ranked b #3",
    ]


def test_summary_stays_under_60_lines_with_50_fields_and_20_warnings(run: dict) -> None:
    data = edited(run)
    fields = [f"field|{i}\nsecond line" if i % 7 == 0 else f"f{i}" for i in range(50)]
    data["fields"] = fields
    data["ranking"] = fields
    data["analyses"]["combined"]["share"] = {field: 1 / 50 for field in fields}
    data["warnings"] = [f"Warning {i}: something about <b>{'x' * 300}</b>\nand more" for i in range(20)]
    for i in range(12):
        data["analyses"][f"extra_{i}"] = {"status": "failed", "reason": f"reason {i}"}
    data["analyses"]["performance"]["overall"].update({f"metric_{i}": float(i) for i in range(10)})
    text = render_summary_markdown(data)
    lines = text.splitlines()
    assert len(lines) < 60
    assert "| | ... and 43 more | |" in lines
    assert "- ... and 16 more (see results.json)" in lines
    assert "- ... and 9 more (see results.json)" in lines  # 12 failed + attention skipped, 4 shown
    ranking = table_rows(text, "## Headline ranking")
    assert all(len(row) == 3 for row in ranking)  # a "|" or newline in a field name never splits a row
    assert ranking[0][1] == "field\\|0 second line"
    assert "<b>" not in text  # user text cannot inject HTML
    assert all(len(line) < 400 for line in lines)
