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

from tsreport.diff import diff_results, format_markdown, format_text
from tsreport.results import RESULTS_VERSION

# A pinned batch size: two runs of the same inputs are then bit-identical (auto may pick another size).
FAST = ("--analyses", "performance,permutation,occlusion", "--samples", "30", "--format", "json", "--quiet",
        "--batch-size", "64")  # fmt: skip


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
    assert lines[0] == "1 result change: ranking top-3 changed."
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
    assert result.stdout.splitlines()[0] == "1 result change: ranking order changed."
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
    assert text.splitlines()[0] == "1 result change: 1 importance beyond noise."
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
    assert lines[0] == "1 result change: 1 verdict flipped."
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
    assert result.summary == "2 result changes: 1 verdict flipped, 1 verdict changed."

    del new["analyses"]["faithfulness_check"]
    assert run_diff(tmp_path, old, new, "--fail-on-change").exit_code == 0  # pass -> skipped is no flip


# ---------------------------------------------------------------- inputs, metrics, the rest


def test_changed_data_is_an_input_and_seed_a_setting_each_listed_once(tmp_path: Path) -> None:
    case = make_case(tmp_path)
    assert explain(case, *FAST, out=tmp_path / "old").exit_code == 0
    models.write_case(tmp_path, models.make_frame(seed=1))  # same path, other content
    assert explain(case, *FAST, "--seed", "1", out=tmp_path / "new").exit_code == 0

    result = run_cli("diff", tmp_path / "old" / "results.json", tmp_path / "new" / "results.json")
    assert result.exit_code == 0, result.output
    inputs = section(result.stdout, "Inputs")
    keys = [line.split()[0] for line in inputs]
    assert "data.sha256" in keys
    assert "data.path" not in keys
    assert "run.seed" not in keys and "settings.seed" not in keys  # a setting, reported once, below
    assert section(result.stdout, "Settings (as typed)") == ["  --seed  0 -> 1"]
    old_hash = results(tmp_path / "old")["inputs"]["data"]["sha256"]
    new_hash = results(tmp_path / "new")["inputs"]["data"]["sha256"]
    [data] = [line for line in inputs if line.split()[0] == "data.sha256"]
    assert data.split()[1:] == [old_hash[:12] + "…", "->", new_hash[:12] + "…"]
    lines = result.stdout.splitlines()
    assert lines[1] == "Settings and inputs: 2 changed (--seed, data.sha256); not counted as result changes."
    # The settings come after the results, under their own heading.
    assert lines.index("=== Settings and inputs (not result changes) ===") > lines.index("=== Result changes ===")
    assert lines.index("Settings (as typed)") > lines.index("=== Settings and inputs (not result changes) ===")


def test_schema_settings_versions_and_paths(base: dict) -> None:
    new = edited(base)
    new["inputs"]["schema"]["window"] = 4
    new["inputs"]["schema"]["fields"][0]["columns"] = ["a2"]
    new["inputs"]["model"]["path"] = "/elsewhere/model.pt"
    new["settings"]["analysis_params"]["permutation"]["n_repeats"] = 9
    new["run"]["versions"]["torch"] = "99.0"
    new["settings"]["formats"] = ["html", "pdf"]
    new["settings"]["batch_size"] = 7
    result = diff_results(base, new)
    changes = {c.key: (c.old, c.new, c.counted) for c in result.inputs}
    assert changes["schema.window"] == (base["inputs"]["schema"]["window"], 4, True)
    assert changes["schema.fields[a].columns"] == (["a"], ["a2"], True)
    assert changes["run.versions.torch"][1:] == ("99.0", True)
    assert changes["model.path"][1:] == ("/elsewhere/model.pt", False)  # where, not what: not counted
    settings = {c.key: (c.option, c.new_text, c.counted) for c in result.settings}
    assert settings == {
        "settings.formats": ("--format", "html,pdf", False),
        "settings.batch_size": ("--batch-size", "7", False),
        "settings.analysis_params.permutation.n_repeats": ("permutation.n_repeats", "9", True),
    }
    assert not any(key.startswith("settings.") for key in changes)  # settings are apart from inputs
    assert result.counts["inputs"] == 3 and result.counts["settings"] == 1
    assert result.change_count == 0  # none of this is a change in the results
    assert result.summary == "No change in results."
    text = format_text(result)
    inputs = section(text, "Inputs")
    assert any(line.endswith("/elsewhere/model.pt  (location only, not counted)") for line in inputs)
    assert section(text, "Settings (as typed)") == [
        "  --format               json -> html,pdf  (output only, not counted)",
        "  --batch-size           64 -> 7  (speed only, not counted)",
        "  permutation.n_repeats  5 -> 9",
    ]


# ---------------------------------------------------------------- settings apart from results (issue 10)


def test_a_seed_only_change_is_a_setting_not_a_result_change(tmp_path: Path, base: dict) -> None:
    new = edited(base)
    new["run"]["seed"] = 7
    new["settings"]["seed"] = 7
    result = diff_results(base, new)
    assert result.change_count == 0
    assert [(c.key, c.option, c.old_text, c.new_text) for c in result.settings] == [
        ("settings.seed", "--seed", "0", "7")
    ]
    assert result.inputs == ()  # run.seed is the same setting: listed once
    text = format_text(result)
    assert text.splitlines()[:2] == [
        "No change in results.",
        "Settings and inputs: 1 changed (--seed); not counted as result changes.",
    ]
    assert "=== Result changes ===" not in text
    assert section(text, "Settings (as typed)") == ["  --seed  0 -> 7"]

    as_json = json.loads(run_diff(tmp_path, base, new, "--format", "json").stdout)
    assert (as_json["changes"], as_json["result_changes"], as_json["settings_changes"]) == (0, 0, 1)
    assert [(c["key"], c["old_text"], c["new_text"]) for c in as_json["settings"]] == [("settings.seed", "0", "7")]
    assert as_json["inputs"] == []
    assert run_diff(tmp_path, base, new, "--fail-on-change").exit_code == 0


def test_a_real_rerun_with_another_seed_trips_nothing(tmp_path: Path) -> None:
    case = make_case(tmp_path)
    assert explain(case, *FAST, out=tmp_path / "s0").exit_code == 0
    assert explain(case, *FAST, "--seed", "1", out=tmp_path / "s1").exit_code == 0
    result = run_cli("diff", tmp_path / "s0" / "results.json", tmp_path / "s1" / "results.json", "--fail-on-change")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "--seed" in lines[1] and "change" not in lines[0].replace("No change in results.", "")
    assert section(result.stdout, "Settings (as typed)") == ["  --seed  0 -> 1"]


def test_samples_all_shows_as_typed_not_none(base: dict) -> None:
    old, new = edited(base), edited(base)
    new["settings"]["samples"] = None  # what --samples all resolves to
    # Without a recorded explain command line (runs started in-process), the resolved value is
    # written the way it is typed.
    old["run"]["argv"] = new["run"]["argv"] = ["tsreport"]
    [change] = diff_results(old, new).settings
    assert (change.option, change.old_text, change.new_text) == ("--samples", "30", "all")
    assert section(format_text(diff_results(old, new)), "Settings (as typed)") == ["  --samples  30 -> all"]
    # With one, the text the user typed.
    old["run"]["argv"] = ["tsreport", "explain", "m.pt", "d.csv", "--schema", "s.yaml", "--samples=030"]
    new["run"]["argv"] = ["tsreport", "explain", "m.pt", "d.csv", "--samples", "ALL", "--schema", "s.yaml"]
    [change] = diff_results(old, new).settings
    assert (change.old_text, change.new_text) == ("030", "ALL")
    # An option typed differently but resolving to the same value is no change.
    new["settings"]["samples"] = 30
    new["run"]["argv"] = ["tsreport", "explain", "m.pt", "d.csv", "--samples", "30"]
    assert diff_results(old, new).settings == ()


def test_samples_all_in_a_real_run_shows_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = make_case(tmp_path)
    args = ["--analyses", "performance", "--format", "json", "--quiet"]
    monkeypatch.setattr("sys.argv", ["tsreport", "explain", "model.pt", "data.csv", *args, "--samples", "30"])
    assert explain(case, *args, "--samples", "30", out=tmp_path / "old").exit_code == 0
    monkeypatch.setattr("sys.argv", ["tsreport", "explain", "model.pt", "data.csv", *args, "--samples", "all"])
    assert explain(case, *args, "--samples", "all", out=tmp_path / "new").exit_code == 0
    assert results(tmp_path / "new")["settings"]["samples"] is None
    result = run_cli("diff", tmp_path / "old" / "results.json", tmp_path / "new" / "results.json")
    assert section(result.stdout, "Settings (as typed)") == ["  --samples  30 -> all"]
    assert "(none)" not in result.stdout


def test_model_kwargs_is_listed_once_whole_as_typed(base: dict) -> None:
    old, new = edited(base), edited(base)
    new["settings"]["model_kwargs"] = {"hidden": 8, "layers": 2}
    result = diff_results(old, new)
    # Flattening each side alone gave two keys: model_kwargs {} -> (none), model_kwargs.hidden (none) -> 8.
    assert [(c.key, c.old_text, c.new_text) for c in result.settings] == [
        ("settings.model_kwargs", "{}", '{"hidden": 8, "layers": 2}')
    ]
    new["run"]["argv"] = ["tsreport", "explain", "m.pt", "d.csv", "--model-kwargs", '{"layers":2, "hidden":8}']
    [change] = diff_results(old, new).settings
    assert change.new_text == '{"layers":2, "hidden":8}'
    assert section(format_text(diff_results(old, new)), "Settings (as typed)") == [
        '  --model-kwargs  {} -> {"layers":2, "hidden":8}'
    ]


def test_an_empty_dict_that_fills_is_one_key_anywhere(base: dict) -> None:
    old, new = edited(base), edited(base)
    old["inputs"]["schema"]["fields"][0]["scale"] = {}
    new["inputs"]["schema"]["fields"][0]["scale"] = {"mean": 1.0}
    keys = [c.key for c in diff_results(old, new).inputs]
    assert keys == ["schema.fields[a].scale.mean"]


def test_fail_on_change_counts_only_result_changes(tmp_path: Path, base: dict) -> None:
    new = edited(base)
    new["settings"]["seed"] = new["run"]["seed"] = 5
    new["inputs"]["data"]["sha256"] = "0" * 64
    new["run"]["versions"]["torch"] = "99.0"
    low, high = base["analyses"]["permutation"]["interval"]["a"]
    new["analyses"]["permutation"]["field_importance"]["a"] = high  # within its interval: noise
    assert run_diff(tmp_path, base, new, "--fail-on-change").exit_code == 0
    new["ranking"][0], new["ranking"][1] = "b", "a"
    result = run_diff(tmp_path, base, new, "--fail-on-change")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "1 result change: ranking top-3 changed."


# ---------------------------------------------------------------- markdown


def test_markdown_has_results_then_settings(base: dict) -> None:
    new = edited(base)
    new["ranking"][0], new["ranking"][1] = "b", "a"
    new["settings"]["seed"] = new["run"]["seed"] = 5
    new["settings"]["samples"] = None
    old_rmse = base["analyses"]["performance"]["overall"]["rmse"]
    new["analyses"]["performance"]["overall"]["rmse"] = old_rmse + 0.5
    text = format_markdown(diff_results(base, new))
    lines = text.splitlines()
    assert lines[0] == "### tsreport diff: ❌ 2 result changes: ranking top-3 changed, 1 metric changed."
    assert lines[2] == "**Fails `--fail-on-change`:** the top-3 ranking changed (a, b, noise -> b, a, noise)."
    results_at, settings_at = (
        lines.index("#### Result changes"),
        lines.index("#### Settings and inputs (not result changes)"),
    )
    assert results_at < settings_at
    assert "| ranking | a, b, noise, w | b, a, noise, w | top-3 changed |" in lines[results_at:settings_at]
    assert f"| metric performance.rmse | {old_rmse:.4g} | {old_rmse + 0.5:.4g} |" in text
    assert lines[settings_at + 3 :] == ["| --samples | 30 | all |  |", "| --seed | 0 | 5 |  |"]


def test_markdown_of_no_change_and_of_a_huge_diff_stays_short(base: dict) -> None:
    assert format_markdown(diff_results(base, edited(base))) == "### tsreport diff: ✅ No change.\n"
    new = edited(base)
    new["fields"] = [f"f{i}" for i in range(60)]
    new["warnings"] = [f"warning {i}\nwith a | pipe" for i in range(30)]
    new["ranking"] = list(reversed(new["ranking"]))
    for key in list(new["settings"]["analysis_params"]):
        new["settings"]["analysis_params"][key] = {"x": 1}
    text = format_markdown(diff_results(base, new))
    lines = text.splitlines()
    assert len(lines) < 60
    assert any(line.startswith("| ... and ") for line in lines)
    assert all(line.count(" | ") == 3 for line in lines if line.startswith("| warning"))  # pipes escaped


def test_performance_metric_change_is_reported_old_to_new(tmp_path: Path, base: dict) -> None:
    new = edited(base)
    old_rmse = base["analyses"]["performance"]["overall"]["rmse"]
    new["analyses"]["performance"]["overall"]["rmse"] = old_rmse + 0.5
    [metric] = diff_results(base, new).metrics
    assert (metric.analysis, metric.metric, metric.old, metric.new) == ("performance", "rmse", old_rmse, old_rmse + 0.5)
    assert metric.change == pytest.approx(0.5)
    assert metric.relative_change == pytest.approx(0.5 / old_rmse)

    stdout = run_diff(tmp_path, base, new).stdout
    assert stdout.splitlines()[0] == "1 result change: 1 metric changed."
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
        f"tsreport: error: {bad}:1:1: Expecting value; not valid JSON: give a results.json written by tsreport.",
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


# ---------------------------------------------------------------- batch sizes and workers: float32 round-off


def _with_engine(results: dict, **engine: Any) -> dict:
    copied = copy.deepcopy(results)
    copied["run"]["engine"] = {**copied["run"].get("engine", {}), **engine}
    return copied


def test_other_batch_sizes_compare_numbers_to_float32_roundoff(base: dict) -> None:
    old = _with_engine(base, forward_batch_size=64, backward_batch_size=64, worker_count=1)
    metrics = old["analyses"]["performance"]["overall"]
    name = next(key for key, value in metrics.items() if isinstance(value, float))
    metrics[name] = 2.5

    def moved(by: float, **engine: Any) -> dict:
        new = _with_engine(old, **engine)
        new["analyses"]["performance"]["overall"][name] = metrics[name] * (1 + by)
        return new

    same_engine = diff_results(old, moved(1e-7))
    assert same_engine.tolerance == (1e-9, 1e-12) and len(same_engine.metrics) == 1  # bit-level runs: a change
    other_size = diff_results(old, moved(1e-7, forward_batch_size=128))
    assert other_size.tolerance == (1e-5, 1e-7)
    assert other_size.metrics == () and other_size.change_count == 0
    assert [c.key for c in other_size.settings] == ["settings.batch_size_used"]
    assert not other_size.settings[0].counted  # a speed knob: not a change in the results
    text = format_text(other_size)
    assert text.splitlines()[0] == "No change in results."
    assert (
        "Numbers compared to float32 round-off (relative 1e-05): the runs used different batch sizes or workers."
        in text.splitlines()
    )
    assert json.loads(json.dumps(other_size.to_dict()))["number_tolerance"] == {"relative": 1e-5, "absolute": 1e-7}
    assert len(diff_results(old, moved(1e-3, worker_count=2)).metrics) == 1  # beyond round-off: still a change
