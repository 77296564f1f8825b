"""results.json has one owner (tsreport/results.py) and one JSON Schema (tsreport/schemas/results.schema.json).

The schema describes results.json as written; readers (``Report.load``, ``diff``, ``history``) check every
key a file holds against it, allow a missing one (another minor version) and refuse NaN/Infinity, a wrong
type or a newer ``results_version`` in one line naming the file and the key's JSON path.
tests/conftest.py validates, strictly, every results.json that tsreport writes during the tests.
"""

from __future__ import annotations

import configparser
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import models
import pytest
from conftest import _results_json_problems
from helpers import explain, results, run_cli

from tsreport import diff
from tsreport.exceptions import InputError
from tsreport.results import RESULTS_VERSION, Report, first_problem, load_results, problems, results_schema

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "expected"
#: What tests/golden/make_golden.py strips from the golden files (wall clock, machine, location).
STRIPPED = {"started", "seconds", "argv", "versions", "path", "model_class"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One fresh run of the whole default battery on the toy case (read-only: tests edit deep copies)."""
    folder = tmp_path_factory.mktemp("schema-run")
    data, schema = models.write_case(folder)
    model = models.save_torchscript(models.LastStepLinear(), folder / "model.pt")
    case = {"model": model, "data": data, "schema": schema, "out": folder / "out"}
    result = explain(case, "--samples", "24", "--format", "json", "--quiet")
    assert result.exit_code in (0, 1), result.output
    return {"path": case["out"] / "results.json", "data": results(case["out"])}


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))  # allow_nan: writes NaN and Infinity as Python's json module does
    return path


def refused(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        Report.load(path)
    assert caught.value.exit_code == 3
    return str(caught.value)


# ---------------------------------------------------------------- the schema itself


def test_the_schema_is_draft_2020_12_and_ships_in_the_package() -> None:
    schema = results_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert (ROOT / "tsreport" / "schemas" / "results.schema.json").is_file()
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert "tsreport.schemas" in setup["options"]["packages"].split()
    assert setup["options.package_data"]["tsreport.schemas"] == "*.json"


def test_the_schema_requires_every_key_the_report_writes() -> None:
    written = Report({}, {}, {}, [], {}, [], None, {}, [], {}).to_dict()
    assert sorted(results_schema()["required"]) == sorted(written)


# ---------------------------------------------------------------- what it accepts


def test_a_fresh_run_fits_strictly(run: dict) -> None:
    assert list(problems(run["data"])) == []
    assert {"ok"} <= {entry["status"] for entry in run["data"]["analyses"].values()}


@pytest.mark.parametrize("name", sorted(path.stem for path in GOLDEN.glob("*.json")))
def test_the_golden_files_fit_and_lack_only_what_make_golden_strips(name: str) -> None:
    data = json.loads((GOLDEN / f"{name}.json").read_text())
    assert list(problems(data, strict=False)) == []
    missing = {line.rsplit("'", 2)[1] for line in problems(data)}
    assert all(line.endswith("is missing") for line in problems(data))
    assert missing and missing <= STRIPPED


def test_report_load_round_trips(run: dict) -> None:
    report = Report.load(run["path"])
    assert report.to_dict() == json.loads(run["path"].read_text())
    assert isinstance(report, Report) and report.results_version == RESULTS_VERSION


def test_diff_and_history_read_through_results_py() -> None:
    from tsreport import history

    assert diff.load_results is load_results and history.load_results is load_results


def test_an_older_version_1_file_without_the_later_keys_reads(run: dict, tmp_path: Path) -> None:
    # results_version 1 as tsreport 0.1.0 first wrote it: performance and permutation only, no settings,
    # no sanity figures; every key added since is absent. No key moved, so nothing is upgraded.
    old = copy.deepcopy(run["data"])
    old["analyses"] = {name: old["analyses"][name] for name in ("performance", "permutation")}
    old["analyses"]["performance"].pop("quantiles")
    for key in ("settings", "sanity"):
        del old[key]
    path = write(tmp_path / "old.json", old)
    report = Report.load(path)
    assert report.settings == {} and report.sanity == {} and list(report.analyses) == ["performance", "permutation"]
    result = run_cli("diff", path, run["path"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- what it refuses, in one line


def test_a_wrong_type_names_the_file_and_the_json_path(run: dict, tmp_path: Path) -> None:
    bad = copy.deepcopy(run["data"])
    bad["analyses"]["occlusion"]["field_importance"]["a"] = "x"
    path = write(tmp_path / "r.json", bad)
    assert refused(path) == f"{path}: analyses.occlusion.field_importance.a: expected a number, got 'x'"


def test_nan_and_infinity_are_refused_wherever_they_are(run: dict, tmp_path: Path) -> None:
    bad = copy.deepcopy(run["data"])
    bad["analyses"]["combined"]["heatmap"][2][1] = float("nan")
    path = write(tmp_path / "nan.json", bad)
    assert "NaN" in path.read_text()
    assert refused(path) == (
        f"{path}: analyses.combined.heatmap[2][1]: expected a finite number, got NaN (JSON has no NaN or Infinity)"
    )
    bad = copy.deepcopy(run["data"])
    bad["analyses"]["performance"]["scatter"]["actual"][0] = float("-inf")  # an analysis's own figures too
    path = write(tmp_path / "inf.json", bad)
    assert refused(path) == (
        f"{path}: analyses.performance.scatter.actual[0]: expected a finite number, got -Infinity "
        "(JSON has no NaN or Infinity)"
    )


def test_a_null_among_the_field_importances_is_refused(run: dict, tmp_path: Path) -> None:
    bad = copy.deepcopy(run["data"])
    bad["analyses"]["permutation"]["field_importance"]["b"] = None
    path = write(tmp_path / "null.json", bad)
    assert refused(path) == f"{path}: analyses.permutation.field_importance.b: expected a number, got null"


def test_nulls_the_code_writes_on_purpose_are_allowed(run: dict) -> None:
    allowed = copy.deepcopy(run["data"])
    allowed["ranking_source"] = None
    allowed["windows"]["horizon"] = None  # classification
    allowed["analyses"]["occlusion"]["heatmap"] = None
    allowed["analyses"]["occlusion"]["field_direction"] = None
    allowed["analyses"]["permutation"]["std"]["a"] = None  # one repeat: no spread
    allowed["analyses"]["performance"]["overall"]["r2"] = None  # constant target
    assert list(problems(allowed)) == []


def test_statuses_and_verdicts_are_enums(run: dict, tmp_path: Path) -> None:
    for where, value, line in (
        (("analyses", "shap", "status"), "done", "analyses.shap.status: expected one of ok, skipped, failed; got 'done'"),
        (("sanity", "sanity_randomization", "status"), "ok", "sanity.sanity_randomization.status: expected one of "
         "pass, fail, skipped; got 'ok'"),
        (("analyses", "sanity_randomization", "verdict"), "maybe", "analyses.sanity_randomization.verdict: "
         "expected one of pass, fail; got 'maybe'"),
    ):  # fmt: skip
        bad = copy.deepcopy(run["data"])
        entry = bad
        for key in where[:-1]:
            entry = entry[key]
        entry[where[-1]] = value
        assert first_problem(bad, strict=False) == line


def test_a_skipped_or_failed_analysis_says_why(run: dict) -> None:
    bad = copy.deepcopy(run["data"])
    bad["analyses"]["attention"] = {"status": "skipped", "reason": None, "seconds": 0.0}
    assert first_problem(bad) == "analyses.attention.reason: expected a string, got null"


def test_the_reader_allows_a_missing_key_but_the_writer_check_does_not(run: dict) -> None:
    lacking = copy.deepcopy(run["data"])
    del lacking["analyses"]["occlusion"]["seconds"]
    del lacking["warnings"]
    assert first_problem(lacking, strict=False) is None
    assert list(problems(lacking)) == [  # a key missing from an object comes before the object's own problems
        "the top level: the key 'warnings' is missing",
        "analyses.occlusion: the key 'seconds' is missing",
    ]


def test_the_cli_exits_3_with_the_line(run: dict, tmp_path: Path) -> None:
    bad = copy.deepcopy(run["data"])
    bad["fields"][1] = 7
    path = write(tmp_path / "bad.json", bad)
    result = run_cli("diff", run["path"], path)
    assert result.exit_code == 3 and "Traceback" not in result.output and result.stdout == ""
    assert result.stderr.splitlines() == [f"tsreport: error: {path}: fields[1]: expected a string, got 7"]


def test_a_newer_version_is_refused_with_the_current_message(run: dict, tmp_path: Path) -> None:
    newer = copy.deepcopy(run["data"])
    newer["results_version"] = RESULTS_VERSION + 1
    newer["analyses"]["occlusion"]["field_importance"] = "a newer layout"  # the version is checked first
    path = write(tmp_path / "future.json", newer)
    assert refused(path) == (
        f"{path} has results_version {RESULTS_VERSION + 1}; this tsreport reads versions up to {RESULTS_VERSION}. "
        "Upgrade tsreport."
    )


@pytest.mark.parametrize("version", ["1", True, 0, 1.5])
def test_an_invalid_version_is_refused(run: dict, tmp_path: Path, version: Any) -> None:
    odd = {**run["data"], "results_version": version}
    path = write(tmp_path / "odd.json", odd)
    assert refused(path) == (f"{path} has an invalid results_version {version!r}; expected an integer >= 1.")


def test_not_a_results_file_and_not_json(tmp_path: Path) -> None:
    other = write(tmp_path / "schema.json", {"version": 1, "fields": []})
    assert refused(other) == f"{other} is not a tsreport results.json (no 'analyses' or 'results_version')."
    text = tmp_path / "notes.txt"
    text.write_text("nightly notes\n")
    assert refused(text) == (f"{text}:1:1: Expecting value; not valid JSON: give a results.json written by tsreport.")


# ---------------------------------------------------------------- the conftest check


def test_the_conftest_check_validates_what_tsreport_wrote_and_skips_hand_edits(run: dict, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    folder.mkdir()
    bad = copy.deepcopy(run["data"])
    bad["analyses"]["occlusion"]["status"] = "done"
    text = json.dumps(bad).encode()
    (folder / "results.json").write_bytes(text)
    assert _results_json_problems(folder) == []  # no manifest: a test wrote it by hand
    manifest = {"files": {"results.json": hashlib.sha256(text).hexdigest()}}
    (folder / ".tsreport-run.json").write_text(json.dumps(manifest))
    try:
        assert _results_json_problems(folder) == [
            f"{folder / 'results.json'}: analyses.occlusion.status: expected one of ok, skipped, failed; got 'done'"
        ]
    finally:
        (folder / ".tsreport-run.json").unlink()  # keep this test's own folder out of the session check
