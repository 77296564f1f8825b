"""`tsreport history`: past runs in time order, their trends, verdict changes and ranking-movement flags.

Five real runs of the toy case (y(t+1) = 3·a(t), fields a, b, noise, w) with a LastStepLinear model
whose weights drift from "a matters most" to "b matters most" at run 3, and jitter a little between
the other runs: exactly run 3 must be flagged. Finer cases edit copies of one real results.json, so
that each test knows the shares it planted and the movement they give.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import models
import pytest
from helpers import explain, results, run_cli

from tsreport import history
from tsreport.exceptions import InputError, UsageError
from tsreport.results import RESULTS_VERSION

FAST = (
    "--analyses",
    "performance,permutation,occlusion,gradient_x_input,combined",
    "--samples",
    "30",
    "--format",
    "json",
    "--quiet",
)
#: Weights of a, b, noise (the one-hot w is ignored): a leads in runs 1-2, b from run 3 on.
WEIGHTS = [[3.0, 1.0, 0.5], [3.0, 1.05, 0.5], [1.0, 3.0, 0.5], [1.0, 3.05, 0.5], [1.05, 3.0, 0.5]]
#: Folder names that do not sort in time order, so that ordering by path would be wrong.
FOLDERS = ["night-e", "night-c", "night-a", "night-d", "night-b"]


def started(day: int) -> str:
    return f"2026-01-{day:02d}T02:00:00+00:00"


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Five real runs, one per night, written to runs/<folder>/results.json (read-only)."""
    root = tmp_path_factory.mktemp("history")
    data, schema = models.write_case(root)
    runs = root / "runs"
    files = []
    for night, (weights, folder) in enumerate(zip(WEIGHTS, FOLDERS), start=1):
        model = models.save_torchscript(models.LastStepLinear(weights + [0.0, 0.0, 0.0]), root / f"model-{night}.pt")
        out = root / f"out-{night}"
        result = explain({"model": model, "data": data, "schema": schema, "out": out}, *FAST)
        assert result.exit_code == 0, result.output
        found = results(out)
        found["run"]["started"] = started(night)
        files.append(write(runs / folder / "results.json", found))
    return {"root": root, "runs": runs, "files": files, "base": json.loads(files[0].read_text())}


def with_shares(base: dict[str, Any], day: int, shares: dict[str, float]) -> dict[str, Any]:
    """A copy of a real run, started on ``day``, whose combined analysis has exactly ``shares``."""
    run = copy.deepcopy(base)
    run["run"]["started"] = started(day)
    run["analyses"]["combined"]["share"] = dict(shares)
    run["analyses"]["combined"]["field_importance"] = {field: 2.0 * value for field, value in shares.items()}
    return run


LEADS_A = {"a": 0.6, "b": 0.3, "noise": 0.1, "w": 0.0}
LEADS_B = {"a": 0.3, "b": 0.6, "noise": 0.1, "w": 0.0}


# ---------------------------------------------------------------- the planted drift


def test_planted_drift_flags_exactly_that_run(nightly: dict) -> None:
    found = history.build_history(history.collect_runs(nightly["files"]))
    runs = found["runs"]
    assert [run["run"] for run in runs] == [1, 2, 3, 4, 5]
    assert found["flagged"] == [3]
    assert [run["flagged"] for run in runs] == [False, False, True, False, False]
    assert found["measure"]["source"] == "combined" and found["measure"]["threshold"] == 0.1
    # The first run has nothing to compare with; the jitter moves a little, the drift a lot.
    assert runs[0]["movement"] is None and runs[0]["compared_with"] is None
    assert all(0 < runs[i]["movement"] < 0.05 for i in (1, 3, 4))
    assert runs[2]["movement"] > 0.2 and runs[2]["compared_with"] == 2
    assert [run["ranking"][:2] for run in runs] == [["a", "b"]] * 2 + [["b", "a"]] * 3
    assert [run["top3_changed"] for run in runs] == [None, False, True, False, False]
    # The numbers behind the flag: a lost share and b gained it.
    moves = {move["field"]: move for move in runs[2]["largest_moves"]}
    assert moves["a"]["change"] < -0.2 and moves["b"]["change"] > 0.2
    # w is ignored by every model; its share stays 0.
    assert found["trends"]["shares"]["w"] == pytest.approx([0.0] * 5, abs=1e-6)
    assert [run["model_changed"] for run in runs] == [False, True, True, True, True]
    assert not any(run["data_changed"] for run in runs)
    assert found["summary"].startswith(
        "5 runs from 2026-01-01 to 2026-01-05: the ranking moved beyond 0.1 at run 3 (2026-01-03, "
    )
    assert found["summary"].endswith("); no verdict flipped.")


def test_performance_over_time_follows_the_drift(nightly: dict) -> None:
    found = history.build_history(history.collect_runs(nightly["files"]))
    assert found["metrics"] == ["mae", "rmse", "r2"]
    mae = found["trends"]["metrics"]["mae"]
    assert len(mae) == 5
    # The target is 3·a: the models that lean on a (runs 1-2) predict better than those that lean on b.
    assert max(mae[:2]) < min(mae[2:])
    assert [run["metrics"]["mae"] for run in found["runs"]] == mae


def test_movement_is_the_total_variation_distance(nightly: dict, tmp_path: Path) -> None:
    base = nightly["base"]
    days = [LEADS_A, LEADS_A, LEADS_B, {"a": 0.35, "b": 0.55, "noise": 0.1, "w": 0.0}]
    files = [write(tmp_path / f"{day}.json", with_shares(base, day, shares)) for day, shares in enumerate(days, 1)]
    found = history.build_history(history.collect_runs(files))
    # 0.5 × (|0.3-0.6| + |0.6-0.3| + 0 + 0) = 0.3; then 0.5 × (0.05 + 0.05) = 0.05.
    assert [run["movement"] for run in found["runs"]] == [None, 0.0, pytest.approx(0.3), pytest.approx(0.05)]
    assert found["flagged"] == [3]
    assert found["runs"][2]["largest_moves"] == [
        {"field": "a", "old": 0.6, "new": 0.3, "change": -0.3},
        {"field": "b", "old": 0.3, "new": 0.6, "change": 0.3},
    ]
    # The threshold is the user's: at 0.04 the small move of run 4 is flagged too, at 0.5 nothing.
    assert history.build_history(history.collect_runs(files), threshold=0.04)["flagged"] == [3, 4]
    assert history.build_history(history.collect_runs(files), threshold=0.5)["flagged"] == []


def test_a_swap_of_two_nearly_equal_fields_is_not_a_move(nightly: dict, tmp_path: Path) -> None:
    """Why not "a rank change in the top 3": noise swapping two close fields changes ranks, not importance."""
    before = {"a": 0.5, "b": 0.26, "noise": 0.24, "w": 0.0}
    after = {"a": 0.5, "b": 0.24, "noise": 0.26, "w": 0.0}
    files = [write(tmp_path / f"{d}.json", with_shares(nightly["base"], d, s)) for d, s in ((1, before), (2, after))]
    run = history.build_history(history.collect_runs(files))["runs"][1]
    assert run["top3_changed"] is True
    assert run["movement"] == pytest.approx(0.02)
    assert run["flagged"] is False


def test_a_run_without_shares_is_skipped_by_the_measure(nightly: dict, tmp_path: Path) -> None:
    runs = [with_shares(nightly["base"], day, LEADS_A) for day in (1, 2, 3)]
    runs[1]["analyses"]["combined"] = {"status": "failed", "reason": "broken"}
    runs[2]["analyses"]["combined"]["share"] = dict(LEADS_B)
    # Shares come from one analysis for every run: the one that is ok in the most runs.
    assert history.choose_source([{"results": run} for run in runs]) == "permutation"
    runs[1]["analyses"]["permutation"] = {"status": "skipped", "reason": "not requested"}
    assert history.choose_source([{"results": run} for run in runs]) == "combined"  # ties go to combined
    files = [write(tmp_path / f"{i}.json", run) for i, run in enumerate(runs, 1)]
    found = history.build_history(history.collect_runs(files))
    second, third = found["runs"][1], found["runs"][2]
    assert second["shares"] is None and second["movement"] is None
    assert second["note"] == "no field shares: combined is failed"
    assert third["compared_with"] == 1 and third["movement"] == pytest.approx(0.3) and third["flagged"]
    change = {"started": started(2), "path": str(files[1])}
    back = {"run": 3, "started": started(3), "path": str(files[2])}
    assert found["status_changes"] == [
        {"run": 2, **change, "analysis": "permutation", "old": "ok", "new": "skipped"},
        {"run": 2, **change, "analysis": "combined", "old": "ok", "new": "failed"},
        {**back, "analysis": "permutation", "old": "skipped", "new": "ok"},
        {**back, "analysis": "combined", "old": "failed", "new": "ok"},
    ]


def test_permutation_shares_when_combined_did_not_run(nightly: dict, tmp_path: Path) -> None:
    runs = []
    for day, importance in enumerate(([4.0, 1.0, 0.0, -0.2], [1.0, 4.0, 0.0, 0.0]), start=1):
        run = copy.deepcopy(nightly["base"])
        run["run"]["started"] = started(day)
        del run["analyses"]["combined"]
        # An older results.json may lack `share`: positive importances are normalised instead.
        del run["analyses"]["permutation"]["share"]
        run["analyses"]["permutation"]["field_importance"] = dict(zip(["a", "b", "noise", "w"], importance))
        runs.append(write(tmp_path / f"{day}.json", run))
    found = history.build_history(history.collect_runs(runs))
    assert found["measure"]["source"] == "permutation"
    assert found["runs"][0]["shares"] == {"a": 0.8, "b": 0.2, "noise": 0.0, "w": 0.0}
    assert found["runs"][1]["movement"] == pytest.approx(0.6)
    assert found["flagged"] == [2]


# ---------------------------------------------------------------- verdicts


def test_verdict_flips_are_reported_at_the_run_where_they_happen(nightly: dict, tmp_path: Path) -> None:
    runs = [with_shares(nightly["base"], day, LEADS_A) for day in (1, 2, 3, 4)]
    statuses = ["pass", "pass", "fail", "fail"]
    for run, status in zip(runs, statuses):
        run["sanity"]["sanity_randomization"] = {"status": status, "methods": {"occlusion": status}}
    del runs[3]["sanity"]["sanity_positive_control"]  # an older run may lack a check
    files = [write(tmp_path / f"{i}.json", run) for i, run in enumerate(runs, 1)]
    found = history.build_history(history.collect_runs(files))
    assert found["runs"][0]["verdicts"] == {
        "sanity_randomization": "pass",
        "sanity_randomization[occlusion]": "pass",
        "sanity_positive_control": "skipped",
    }
    flip = {"run": 3, "started": started(3), "path": str(files[2]), "old": "pass", "new": "fail", "flipped": True}
    assert found["verdict_changes"] == [
        {**flip, "check": "sanity_randomization"},
        {**flip, "check": "sanity_randomization[occlusion]"},
        {
            "run": 4,
            "started": started(4),
            "path": str(files[3]),
            "check": "sanity_positive_control",
            "old": "skipped",
            "new": None,
            "flipped": False,
        },
    ]
    assert found["summary"].endswith("; 2 verdict flips.")


# ---------------------------------------------------------------- finding and ordering the runs


def test_order_is_by_started_whatever_the_order_of_the_paths(nightly: dict) -> None:
    shuffled = list(nightly["files"])
    random.Random(3).shuffle(shuffled)
    assert shuffled != nightly["files"]
    runs = history.collect_runs(shuffled)
    assert [run["path"] for run in runs] == [str(path) for path in nightly["files"]]
    assert [run["results"]["run"]["started"] for run in runs] == [started(day) for day in range(1, 6)]
    assert history.build_history(runs) == history.build_history(history.collect_runs(nightly["files"]))


def test_ties_on_started_are_broken_by_path(nightly: dict, tmp_path: Path) -> None:
    same = with_shares(nightly["base"], 1, LEADS_A)
    files = [write(tmp_path / name / "results.json", same) for name in ("b", "a", "c")]
    runs = history.collect_runs(files)
    assert [Path(run["path"]).parent.name for run in runs] == ["a", "b", "c"]


def test_a_time_without_zone_is_taken_as_utc(nightly: dict, tmp_path: Path) -> None:
    naive = with_shares(nightly["base"], 2, LEADS_A)
    naive["run"]["started"] = "2026-01-01T03:00:00"  # an hour after the other run's 02:00 UTC
    files = [
        write(tmp_path / "naive.json", naive),
        write(tmp_path / "aware.json", with_shares(nightly["base"], 1, LEADS_A)),
    ]
    assert [Path(run["path"]).name for run in history.collect_runs(files)] == ["aware.json", "naive.json"]


def test_a_folder_of_runs_is_searched_recursively_skipping_hidden_folders(nightly: dict, tmp_path: Path) -> None:
    runs = history.collect_runs([nightly["runs"]])
    assert [run["path"] for run in runs] == [str(path) for path in nightly["files"]]

    # Nested deeper, beside a staging folder of a killed run (hidden, half-written: never read).
    root = tmp_path / "audits"
    for night, path in enumerate(nightly["files"], start=1):
        write(root / "2026" / "01" / f"{night:02d}" / "out" / "results.json", json.loads(path.read_text()))
    staging = root / "2026" / "01" / ".06.tsreport-4242-1-host-abcd" / "results.json"
    staging.parent.mkdir(parents=True)
    staging.write_text('{"half": ')
    found = history.build_history(history.collect_runs([root]))
    assert [Path(run["path"]).parts[-3] for run in found["runs"]] == ["01", "02", "03", "04", "05"]
    assert found["flagged"] == [3]
    assert found["folder"] == str(root / "2026" / "01")


def test_a_file_given_twice_counts_once(nightly: dict) -> None:
    runs = history.collect_runs([nightly["runs"], *nightly["files"][:2], nightly["files"][0]])
    assert len(runs) == 5


# ---------------------------------------------------------------- bad inputs


def test_a_file_that_is_not_a_results_json_is_exit_3_naming_it(nightly: dict, tmp_path: Path) -> None:
    other = write(tmp_path / "schema.json", {"version": 1, "fields": []})
    with pytest.raises(InputError) as caught:
        history.collect_runs([*nightly["files"][:2], other])
    assert caught.value.exit_code == 3
    assert str(caught.value) == f"{other} is not a tsreport results.json (no 'analyses' or 'results_version')."

    text = tmp_path / "notes.txt"
    text.write_text("nightly job notes\n")
    with pytest.raises(InputError, match="notes.txt:1:1: Expecting value; not valid JSON"):
        history.collect_runs([nightly["files"][0], text])


def test_a_newer_results_version_is_refused(nightly: dict, tmp_path: Path) -> None:
    newer = with_shares(nightly["base"], 9, LEADS_A)
    newer["results_version"] = RESULTS_VERSION + 1
    future = write(tmp_path / "future.json", newer)
    with pytest.raises(InputError) as caught:
        history.collect_runs([nightly["files"][0], future])
    assert str(caught.value) == (
        f"{future} has results_version {RESULTS_VERSION + 1}; this tsreport reads versions up to "
        f"{RESULTS_VERSION}. Upgrade tsreport."
    )


def test_two_runs_at_least(nightly: dict, tmp_path: Path) -> None:
    one = nightly["files"][0]
    message = (
        f"tsreport history needs at least 2 runs; found 1 ({one}). Give two or more results.json files, "
        "or a folder that holds the output folders of past runs."
    )
    for given in ([one], [one, one], [one.parent]):
        with pytest.raises(InputError) as caught:
            history.collect_runs(given)
        assert str(caught.value) == message
    with pytest.raises(InputError, match="found 0"):
        history.collect_runs([])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError) as caught:
        history.collect_runs([empty])
    assert str(caught.value) == (
        f"{empty} holds no results.json (searched it and its subfolders, hidden ones skipped); "
        "give the results.json files of past runs, or a folder of their output folders."
    )


def test_a_missing_path_is_a_usage_error(nightly: dict, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        history.collect_runs([nightly["files"][0], tmp_path / "gone.json"])
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        f"{tmp_path / 'gone.json'} does not exist; give results.json files of past runs, or a folder of them."
    )


def test_runs_of_other_fields_are_refused_naming_the_file(nightly: dict, tmp_path: Path) -> None:
    other = copy.deepcopy(nightly["base"])
    other["run"]["started"] = started(9)
    other["fields"] = ["a", "b", "price", "w"]
    odd = write(tmp_path / "odd.json", other)
    with pytest.raises(InputError) as caught:
        history.collect_runs([*nightly["files"][:2], odd])
    assert str(caught.value) == (
        f"{odd} has other fields than {nightly['files'][0]} (extra: price; missing: noise); "
        "a history compares runs of the same fields: leave out the runs of the other schema."
    )
    # The same fields in another order are the same fields.
    reordered = copy.deepcopy(nightly["base"])
    reordered["run"]["started"] = started(9)
    reordered["fields"] = ["w", "noise", "b", "a"]
    assert len(history.collect_runs([nightly["files"][0], write(tmp_path / "re.json", reordered)])) == 2


def test_a_run_without_a_valid_started_is_refused(nightly: dict, tmp_path: Path) -> None:
    broken = copy.deepcopy(nightly["base"])
    broken["run"]["started"] = "last tuesday"
    bad = write(tmp_path / "bad.json", broken)
    with pytest.raises(InputError) as caught:
        history.collect_runs([nightly["files"][0], bad])
    assert str(caught.value) == (
        f"{bad} has no valid run.started (got 'last tuesday'); the runs are ordered by it. "
        "Give results.json files written by tsreport explain."
    )


def test_threshold_must_be_in_0_1(nightly: dict) -> None:
    runs = history.collect_runs(nightly["files"][:2])
    for threshold in (-0.1, 1.0, float("nan"), True):
        with pytest.raises(UsageError, match=r"The history threshold must be a number in \[0, 1\)"):
            history.build_history(runs, threshold=threshold)


# ---------------------------------------------------------------- across tsreport versions


def test_other_minor_versions_unknown_keys_and_missing_optional_ones(nightly: dict, tmp_path: Path) -> None:
    old = with_shares(nightly["base"], 1, LEADS_A)
    old["tsreport_version"] = "0.0.9"
    for key in ("sanity", "warnings", "settings", "ranking", "ranking_source"):
        del old[key]
    del old["analyses"]["performance"]
    del old["inputs"]["data"]
    new = with_shares(nightly["base"], 2, LEADS_B)
    new["tsreport_version"] = "0.3.0"
    new["provenance"] = {"ci": "nightly"}
    new["run"]["host"] = "runner-7"
    new["analyses"]["combined"]["confidence"] = [0.1, 0.2]
    new["analyses"]["drift_check"] = {"status": "ok", "reason": None, "verdict": "pass"}
    files = [write(tmp_path / "old.json", old), write(tmp_path / "new.json", new)]
    found = history.build_history(history.collect_runs(files))
    first, second = found["runs"]
    assert first["metrics"] == {} and first["verdicts"] == {} and first["data_sha256"] is None
    assert first["tsreport_version"] == "0.0.9" and second["tsreport_version"] == "0.3.0"
    assert second["verdicts"]["drift_check"] == "pass"
    assert second["movement"] == pytest.approx(0.3) and found["flagged"] == [2]
    assert found["trends"]["metrics"]["mae"] == [None, pytest.approx(second["metrics"]["mae"])]
    history.render_history_html(found)  # renders with the gaps


# ---------------------------------------------------------------- the files


def test_history_json_and_html(nightly: dict) -> None:
    found, files = history.history_files(nightly["files"])
    assert sorted(files) == ["history.html", "history.json"]
    assert json.loads(files["history.json"]) == found
    page = files["history.html"].decode()
    assert "<script" not in page.lower()
    assert "http://" not in page.replace("http://www.w3.org", "")  # nothing fetched from elsewhere
    assert page.count('src="data:image/svg+xml;base64,') == 3  # movement, shares, performance
    assert found["summary"] in page
    assert page.count('<tr class="flagged">') == 3  # the runs table, the shares table and the metrics table
    assert "<details" in page


def test_html_escapes_field_names(nightly: dict, tmp_path: Path) -> None:
    runs = []
    for day in (1, 2):
        run = with_shares(nightly["base"], day, LEADS_A)
        run["fields"] = ["a", "<b>bold</b>", "noise", "w"]
        for key in ("share", "field_importance"):
            entry = run["analyses"]["combined"][key]
            entry["<b>bold</b>"] = entry.pop("b")
        runs.append(write(tmp_path / f"{day}.json", run))
    page = history.render_history_html(history.build_history(history.collect_runs(runs)))
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page


def test_user_templates_override_the_bundled_history(nightly: dict, tmp_path: Path) -> None:
    (tmp_path / "history.html").write_text("runs: {{ history.runs | length }}; flagged: {{ history.flagged }}")
    found = history.build_history(history.collect_runs(nightly["files"]))
    assert history.render_history_html(found, tmp_path) == "runs: 5; flagged: [3]"


# ---------------------------------------------------------------- the command (once the CLI has it)


def history_command() -> None:
    from tsreport.cli import main

    if "history" not in getattr(main, "commands", {}):
        pytest.skip("tsreport history is not wired into the CLI yet")


def test_cli_writes_history_html_and_json(nightly: dict, tmp_path: Path) -> None:
    history_command()
    out = tmp_path / "history"
    result = run_cli("history", nightly["runs"], "--out", out)
    assert result.exit_code == 0, result.output
    found = json.loads((out / "history.json").read_text())
    assert found["flagged"] == [3]
    assert (out / "history.html").read_text().startswith("<!DOCTYPE html>")


def test_cli_bad_inputs_exit_3_naming_the_file(nightly: dict, tmp_path: Path) -> None:
    history_command()
    other = write(tmp_path / "other.json", {"version": 1})
    result = run_cli("history", nightly["files"][0], other, "--out", tmp_path / "out")
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert f"{other} is not a tsreport results.json (no 'analyses' or 'results_version')." in result.stderr
    result = run_cli("history", nightly["files"][0], "--out", tmp_path / "out")
    assert result.exit_code == 3, result.output
    assert "needs at least 2 runs; found 1" in result.stderr
