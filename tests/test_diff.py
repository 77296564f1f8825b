"""`tsreport diff`: what changed between two results.json, and when --fail-on-change exits 1.

Real runs of the toy case (y(t+1) = 3·a(t), fields a, b, noise, w) give the
baseline results.json; most changes are made by editing a copy of its dict, so
each test knows exactly what it changed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import models
import pytest
from helpers import explain, results, run_cli

from tsreport.diff import diff_results, format_text
from tsreport.results import RESULTS_VERSION

FAST = ("--analyses", "performance,permutation,occlusion", "--samples", "30", "--format", "json", "--quiet")


def make_case(folder: Path, weights: list[float] | None = None) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    data, schema = models.write_case(folder)
    model = models.save_torchscript(models.LastStepLinear(weights), folder / "model.pt")
    return {"dir": folder, "data": data, "schema": schema, "model": model, "out": folder / "out"}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real results.json of the toy case (read-only: tests edit deep copies)."""
    case = make_case(tmp_path_factory.mktemp("diff-base"))
    assert explain(case, *FAST).exit_code == 0
    return results(case["out"])


def write(folder: Path, name: str, data: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def run_diff(tmp_path: Path, old: dict[str, Any], new: dict[str, Any], *extra: Any) -> Any:
    return run_cli("diff", write(tmp_path, "old.json", old), write(tmp_path, "new.json", new), *extra)


def edited(base: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(base)


def section(text: str, heading: str) -> list[str]:
    """The lines under ``heading`` up to the next blank line."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


# ---------------------------------------------------------------- no change


def test_two_runs_of_the_same_inputs_report_no_change(tmp_path: Path) -> None:
    case = make_case(tmp_path)
    assert explain(case, *FAST, out=tmp_path / "one").exit_code == 0
    assert explain(case, *FAST, out=tmp_path / "two").exit_code == 0
    one, two = tmp_path / "one" / "results.json", tmp_path / "two" / "results.json"

    result = run_cli("diff", one, two)
    assert result.exit_code == 0, result.output
    assert result.stdout == "No change.\n"
    assert result.stderr == ""
    assert run_cli("diff", one, two, "--fail-on-change").exit_code == 0
    as_json = json.loads(run_cli("diff", one, two, "--format", "json").stdout)
    assert as_json["summary"] == "No change."
    assert as_json["changes"] == 0
    assert as_json["fail_on_change"] is False


def test_wall_clock_fields_are_ignored(base: dict) -> None:
    new = edited(base)
    new["run"]["started"] = "2099-01-01T00:00:00+00:00"
    new["run"]["seconds"] = 999.0
    new["run"]["argv"] = ["tsreport", "explain", "elsewhere"]
    for entry in new["analyses"].values():
        entry["seconds"] = 123.0
    assert diff_results(base, new).change_count == 0
    assert format_text(diff_results(base, new)) == "No change.\n"


# ---------------------------------------------------------------- ranking


def test_swapped_top3_fails_with_fail_on_change_and_names_the_fields(tmp_path: Path, base: dict) -> None:
    assert base["ranking"][:2] == ["a", "b"]
    new = edited(base)
    new["ranking"][0], new["ranking"][1] = "b", "a"

    result = run_diff(tmp_path, base, new, "--fail-on-change")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "1 change: ranking top-3 changed."
    assert lines[1] == "Fails --fail-on-change: the top-3 ranking changed (a, b, noise -> b, a, noise)."
    ranking = section(result.stdout, "Ranking (by permutation)")
    assert ranking[:3] == ["  old:  a, b, noise, w", "  new:  b, a, noise, w", "  top-3 changed"]
    assert ranking[3:] == ["    b  #2 -> #1", "    a  #1 -> #2"]
    # Without the flag the same change is reported and the exit code is 0.
    assert run_diff(tmp_path, base, new).exit_code == 0


def test_a_change_below_the_top3_does_not_fail(tmp_path: Path, base: dict) -> None:
    old, new = edited(base), edited(base)
    old["ranking"] = ["a", "b", "noise", "w", "z"]
    new["ranking"] = ["a", "b", "noise", "z", "w"]
    result = run_diff(tmp_path, old, new, "--fail-on-change")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "1 change: ranking order changed."
    assert "  top-3 unchanged; the order below it changed" in result.stdout


def test_a_different_model_changes_the_top3_in_real_runs(tmp_path: Path) -> None:
    old_case = make_case(tmp_path / "old")
    new_case = make_case(tmp_path / "new", weights=[0.0, 3.0, 0.0, 0.0, 0.0, 0.0])  # reads b, not a
    assert explain(old_case, *FAST).exit_code == 0
    assert explain(new_case, *FAST).exit_code == 0
    result = run_cli("diff", old_case["out"] / "results.json", new_case["out"] / "results.json", "--fail-on-change")
    assert result.exit_code == 1, result.output
    assert "ranking top-3 changed" in result.stdout.splitlines()[0]
    assert any(line.startswith("  model.sha256 ") for line in section(result.stdout, "Inputs"))
    diff = diff_results(results(old_case["out"]), results(new_case["out"]))
    assert {(c.analysis, c.field) for c in diff.importance} == {
        ("permutation", "a"),
        ("occlusion", "a"),
        ("occlusion", "b"),
    }
    # The new model reads b but the target is 3·a: permuting b barely moves the loss, and its
    # interval still covers 0, so for permutation b's change is within noise.
    assert "b" in diff.within_noise["permutation"]


# ---------------------------------------------------------------- importance beyond noise


def test_permutation_change_beyond_its_intervals_is_reported(base: dict) -> None:
    low, high = base["analyses"]["permutation"]["interval"]["a"]
    new = edited(base)
    permutation = new["analyses"]["permutation"]
    permutation["field_importance"]["a"] = high + 20.0
    permutation["interval"]["a"] = [high + 10.0, high + 30.0]

    result = diff_results(base, new)
    [change] = result.importance
    assert (change.analysis, change.field, change.rule) == ("permutation", "a", "interval")
    assert change.old_interval == (low, high)
    assert result.rules["permutation"] == "beyond noise when the 95% intervals of the two runs do not overlap"
    text = format_text(result)
    assert text.splitlines()[0] == "1 change: 1 importance beyond noise."
    lines = section(text, "Importance beyond noise")
    assert lines[0] == "  permutation (beyond noise when the 95% intervals of the two runs do not overlap)"
    assert lines[1].startswith("    a  ") and f"-> {high + 20.0:.4g} [{high + 10.0:.4g}, {high + 30.0:.4g}]" in lines[1]


def test_permutation_change_within_its_intervals_is_not_counted(base: dict) -> None:
    low, high = base["analyses"]["permutation"]["interval"]["a"]
    new = edited(base)
    permutation = new["analyses"]["permutation"]
    permutation["field_importance"]["a"] = high  # moved, but the intervals overlap
    permutation["interval"]["a"] = [low + 1.0, high + 5.0]
    # b goes from exactly 0 to a small value whose interval still covers 0: its share jumps, but
    # for permutation the intervals decide, not the share.
    permutation["field_importance"]["b"] = 5.0
    permutation["interval"]["b"] = [-1.0, 11.0]

    result = diff_results(base, new)
    assert result.importance == ()
    assert result.change_count == 0
    assert result.within_noise == {"permutation": ("a", "b")}
    text = format_text(result)
    assert text.splitlines()[0] == "No change."
    assert "Importance beyond noise" not in text
    assert section(text, "Within noise (not counted)") == ["  permutation  a, b"]


def test_share_rule_for_analyses_without_intervals_and_the_threshold(tmp_path: Path, base: dict) -> None:
    new = edited(base)
    occlusion = new["analyses"]["occlusion"]
    occlusion["share"] = {"a": 0.9, "b": 0.1, "noise": 0.0, "w": 0.0}  # Δshare 0.1 on a and b
    result = diff_results(base, new)
    assert [(c.analysis, c.field, c.rule) for c in result.importance] == [
        ("occlusion", "a", "share"),
        ("occlusion", "b", "share"),
    ]
    rule = "beyond noise when the field's share of the total importance moved by more than 0.05"
    assert result.rules["occlusion"] == rule
    lines = section(format_text(result), "Importance beyond noise")
    assert lines == [f"  occlusion ({rule})", "    a  share 1 -> 0.9 (-0.1)", "    b  share 0 -> 0.1 (+0.1)"]

    assert diff_results(base, new, threshold=0.2).importance == ()
    stdout = run_diff(tmp_path, base, new, "--threshold", "0.2").stdout
    assert stdout.splitlines()[0] == "No change."

    occlusion["share"] = {"a": 0.99, "b": 0.01, "noise": 0.0, "w": 0.0}  # Δshare 0.01: noise
    assert diff_results(base, new).importance == ()


def test_unknown_analysis_without_share_uses_its_field_importance(base: dict) -> None:
    old, new = edited(base), edited(base)
    old["analyses"]["shap"] = {"status": "ok", "field_importance": {"a": 3.0, "b": 1.0, "noise": 0.0, "w": 0.0}}
    new["analyses"]["shap"] = {"status": "ok", "field_importance": {"a": 1.0, "b": 3.0, "noise": 0.0, "w": 0.0}}
    result = diff_results(old, new)
    assert [(c.field, c.old_share, c.new_share) for c in result.importance] == [("a", 0.75, 0.25), ("b", 0.25, 0.75)]


# ---------------------------------------------------------------- verdicts


def test_sanity_verdict_flip_fails_with_fail_on_change(tmp_path: Path, base: dict) -> None:
    old, new = edited(base), edited(base)
    old["sanity"]["sanity_randomization"] = {"status": "pass", "similarity": 0.1}
    new["sanity"]["sanity_randomization"] = {"status": "fail", "similarity": 0.9}

    result = run_diff(tmp_path, old, new, "--fail-on-change")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "1 change: 1 verdict flipped."
    assert lines[1] == "Fails --fail-on-change: verdict sanity_randomization flipped (pass -> fail)."
    assert section(result.stdout, "Verdicts") == ["  sanity.sanity_randomization  pass -> fail  FLIPPED"]
    assert run_diff(tmp_path, old, new).exit_code == 0


def test_any_analysis_verdict_is_compared_and_only_pass_fail_flips_fail(tmp_path: Path, base: dict) -> None:
    old, new = edited(base), edited(base)
    old["analyses"]["faithfulness_check"] = {"status": "ok", "verdict": "fail"}
    new["analyses"]["faithfulness_check"] = {"status": "ok", "verdict": "pass"}
    old["sanity"]["sanity_positive_control"] = {"status": "pass"}
    new["sanity"]["sanity_positive_control"] = {"status": "skipped", "reason": "no gradients"}
    result = diff_results(old, new)
    assert [(v.where, v.name, v.old, v.new, v.flipped) for v in result.verdicts] == [
        ("sanity", "sanity_positive_control", "pass", "skipped", False),
        ("analyses", "faithfulness_check", "fail", "pass", True),
    ]
    assert result.fail_reasons == ("verdict faithfulness_check flipped (fail -> pass)",)
    assert result.summary == "2 changes: 1 verdict flipped, 1 verdict changed."

    del new["analyses"]["faithfulness_check"]
    assert run_diff(tmp_path, old, new, "--fail-on-change").exit_code == 0  # pass -> skipped is no flip


# ---------------------------------------------------------------- inputs, metrics, the rest


def test_changed_data_and_seed_are_reported_under_inputs(tmp_path: Path) -> None:
    case = make_case(tmp_path)
    assert explain(case, *FAST, out=tmp_path / "old").exit_code == 0
    models.write_case(tmp_path, models.make_frame(seed=1))  # same path, other content
    assert explain(case, *FAST, "--seed", "1", out=tmp_path / "new").exit_code == 0

    result = run_cli("diff", tmp_path / "old" / "results.json", tmp_path / "new" / "results.json")
    assert result.exit_code == 0, result.output
    inputs = section(result.stdout, "Inputs")
    keys = [line.split()[0] for line in inputs]
    assert "data.sha256" in keys and "run.seed" in keys
    assert "settings.seed" not in keys  # the same change as run.seed, reported once
    assert "data.path" not in keys
    [seed] = [line for line in inputs if line.split()[0] == "run.seed"]
    assert seed.split()[1:] == ["0", "->", "1"]
    old_hash = results(tmp_path / "old")["inputs"]["data"]["sha256"]
    new_hash = results(tmp_path / "new")["inputs"]["data"]["sha256"]
    [data] = [line for line in inputs if line.split()[0] == "data.sha256"]
    assert data.split()[1:] == [old_hash[:12] + "…", "->", new_hash[:12] + "…"]
    assert "inputs changed" in result.stdout.splitlines()[0]


def test_schema_settings_versions_and_paths(base: dict) -> None:
    new = edited(base)
    new["inputs"]["schema"]["window"] = 4
    new["inputs"]["schema"]["fields"][0]["columns"] = ["a2"]
    new["inputs"]["model"]["path"] = "/elsewhere/model.pt"
    new["settings"]["analysis_params"]["permutation"]["n_repeats"] = 9
    new["run"]["versions"]["torch"] = "99.0"
    new["settings"]["formats"] = ["html", "pdf"]
    new["settings"]["batch_size"] = 7
    changes = {c.key: (c.old, c.new, c.counted) for c in diff_results(base, new).inputs}
    assert changes["schema.window"] == (base["inputs"]["schema"]["window"], 4, True)
    assert changes["schema.fields[a].columns"] == (["a"], ["a2"], True)
    assert changes["settings.analysis_params.permutation.n_repeats"][1:] == (9, True)
    assert changes["run.versions.torch"][1:] == ("99.0", True)
    assert changes["model.path"][1:] == ("/elsewhere/model.pt", False)  # where, not what: not counted
    assert changes["settings.formats"][2] is False and changes["settings.batch_size"][2] is False
    assert diff_results(base, new).counts["inputs"] == 4
    inputs = section(format_text(diff_results(base, new)), "Inputs")
    assert any(line.endswith("/elsewhere/model.pt  (location only, not counted)") for line in inputs)
    assert any(line.endswith("7  (speed only, not counted)") for line in inputs)


def test_performance_metric_change_is_reported_old_to_new(tmp_path: Path, base: dict) -> None:
    new = edited(base)
    old_rmse = base["analyses"]["performance"]["overall"]["rmse"]
    new["analyses"]["performance"]["overall"]["rmse"] = old_rmse + 0.5
    [metric] = diff_results(base, new).metrics
    assert (metric.analysis, metric.metric, metric.old, metric.new) == ("performance", "rmse", old_rmse, old_rmse + 0.5)
    assert metric.change == pytest.approx(0.5)
    assert metric.relative_change == pytest.approx(0.5 / old_rmse)

    stdout = run_diff(tmp_path, base, new).stdout
    assert stdout.splitlines()[0] == "1 change: 1 metric changed."
    expected = f"  performance.rmse  {old_rmse:.4g} -> {old_rmse + 0.5:.4g} (+0.5, {0.5 / old_rmse * 100:+.1f}%)"
    assert section(stdout, "Metrics") == [expected]


def test_fields_statuses_windows_and_warnings(base: dict) -> None:
    new = edited(base)
    new["fields"] = ["a", "b", "noise", "extra"]  # w removed, extra added
    new["windows"]["total"] = base["windows"]["total"] - 10
    new["analyses"]["occlusion"] = {"status": "skipped", "reason": "no time axis"}
    new["warnings"] = ["The new warning."]
    result = diff_results(base, new)
    assert (result.fields_added, result.fields_removed) == (("extra",), ("w",))
    assert [(c.key, c.new) for c in result.windows] == [("total", base["windows"]["total"] - 10)]
    assert [(s.analysis, s.old, s.new, s.reason) for s in result.statuses] == [
        ("occlusion", "ok", "skipped", "no time axis")
    ]
    assert result.warnings_added == ("The new warning.",)
    text = format_text(result)
    assert section(text, "Fields") == ["  + extra", "  - w"]
    assert section(text, "Analyses") == ["  occlusion  ok -> skipped: no time axis"]
    assert section(text, "Warnings") == ["  + The new warning."]


def test_json_format_has_the_same_content(tmp_path: Path, base: dict) -> None:
    new = edited(base)
    new["ranking"][0], new["ranking"][1] = "b", "a"
    new["analyses"]["performance"]["overall"]["mae"] += 1.0
    new["sanity"]["sanity_randomization"] = {"status": "fail"}
    result = run_diff(tmp_path, base, new, "--format", "json")
    assert result.exit_code == 0
    assert result.stderr == ""
    parsed = json.loads(result.stdout)
    expected = diff_results(base, new)
    assert parsed == json.loads(json.dumps(expected.to_dict()))
    assert parsed["summary"] == format_text(expected).splitlines()[0]
    assert parsed["ranking"]["top3_changed"] is True
    assert [m["metric"] for m in parsed["metrics"]] == ["mae"]
    assert parsed["fail_on_change"] is True
    assert run_diff(tmp_path, base, new, "--format", "json", "--fail-on-change").exit_code == 1


# ---------------------------------------------------------------- bad inputs


def assert_fails(result: Any, code: int, line: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert line in result.stderr.splitlines(), result.stderr


def test_missing_file_is_a_usage_error(tmp_path: Path, base: dict) -> None:
    good = write(tmp_path, "good.json", base)
    result = run_cli("diff", good, tmp_path / "missing.json")
    assert result.exit_code == 2
    assert "Invalid value for 'NEW_RESULTS'" in result.stderr
    assert "missing.json" in result.stderr and "does not exist" in result.stderr


def test_not_json_exits_3_naming_the_file(tmp_path: Path, base: dict) -> None:
    good = write(tmp_path, "good.json", base)
    bad = tmp_path / "bad.json"
    bad.write_text("<html>not json</html>")
    assert_fails(
        run_cli("diff", bad, good),
        3,
        f"tsreport: error: {bad} is not valid JSON (Expecting value at line 1, column 1); "
        "give a results.json written by tsreport.",
    )


def test_not_a_results_file_exits_3_naming_the_file(tmp_path: Path, base: dict) -> None:
    good = write(tmp_path, "good.json", base)
    other = write(tmp_path, "other.json", {"version": 1, "fields": []})
    assert_fails(
        run_cli("diff", good, other),
        3,
        f"tsreport: error: {other} is not a tsreport results.json (no 'analyses' or 'results_version').",
    )


def test_newer_results_version_exits_3(tmp_path: Path, base: dict) -> None:
    newer = edited(base)
    newer["results_version"] = RESULTS_VERSION + 1
    good, future = write(tmp_path, "good.json", base), write(tmp_path, "future.json", newer)
    assert_fails(
        run_cli("diff", good, future),
        3,
        f"tsreport: error: {future} has results_version {RESULTS_VERSION + 1}; "
        f"this tsreport reads versions up to {RESULTS_VERSION}. Upgrade tsreport.",
    )


def test_threshold_out_of_range_is_a_usage_error(tmp_path: Path, base: dict) -> None:
    good = write(tmp_path, "good.json", base)
    result = run_cli("diff", good, good, "--threshold", "-1")
    assert result.exit_code == 2
    assert "--threshold" in result.stderr
