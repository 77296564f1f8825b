"""Known answers, invariance and reproducibility of performance and permutation."""

from __future__ import annotations

import models
import numpy as np
import pytest
from helpers import explain, results, strip_timings

from tsreport.analyses._base import choose_explained


def test_permutation_ranks_the_planted_driver_and_scores_ignored_fields_zero(case):
    assert explain(case, "--samples", "all", "--analyses", "performance,permutation").exit_code == 0
    perm = results(case["out"])["analyses"]["permutation"]
    importance = perm["field_importance"]
    # Shuffling a moves the prediction 3·a away from the truth: expected increase 2·9·var(a) ≈ 18.
    assert importance["a"] > 10
    for ignored in ("b", "noise", "w"):  # the model never reads them: the loss cannot change
        assert importance[ignored] == 0.0
        assert perm["interval"][ignored] == [0.0, 0.0]
    low, high = perm["interval"]["a"]
    assert low < importance["a"] < high
    assert len(perm["repeats"]["a"]) == 5
    assert results(case["out"])["ranking"][0] == "a"


def test_permutation_matches_its_closed_form(case, tmp_path):
    # Truth 3a, prediction 3a + 0.2b. Shuffling a: E[(3a_perm - 3a)^2] = 18 var(a) (times n/(n-1)).
    # Shuffling b: the sum of (0.2 b_perm)^2 equals that of (0.2 b), so the loss cannot move: a field
    # the model reads but that carries no information about the target has importance exactly ~0.
    model = models.save_torchscript(models.LastStepLinear([3.0, 0.2, 0, 0, 0, 0]), tmp_path / "m2.pt")
    result = explain({**case, "model": model}, "--samples", "all", "--analyses", "permutation")
    assert result.exit_code == 0
    importance = results(case["out"])["analyses"]["permutation"]["field_importance"]
    frame = models.make_frame()
    last_a = np.concatenate([g["a"].to_numpy()[7:-1] for _, g in frame.groupby("series")])
    expected = 18 * last_a.var(ddof=1)
    assert importance["a"] == pytest.approx(expected, rel=0.15)
    assert abs(importance["b"]) < 1e-5
    assert importance["noise"] == 0.0


def test_same_seed_same_results_and_other_seed_other_permutations(case, tmp_path):
    lstm = models.save_torchscript(models.TinyLSTM(), tmp_path / "lstm.pt")
    run = {**case, "model": lstm}
    assert explain(run, "--samples", "40", out=tmp_path / "one").exit_code == 0
    assert explain(run, "--samples", "40", out=tmp_path / "two").exit_code == 0
    assert (
        explain(run, "--samples", "40", "--seed", "1", "--analyses", "permutation", out=tmp_path / "three").exit_code
        == 0
    )
    one, two, three = (strip_timings(results(tmp_path / n)) for n in ("one", "two", "three"))
    assert one == two
    assert one["analyses"]["permutation"]["repeats"] != three["analyses"]["permutation"]["repeats"]


def test_batch_size_does_not_change_any_number(case, tmp_path):
    lstm = models.save_torchscript(models.TinyLSTM(), tmp_path / "lstm.pt")
    run = {**case, "model": lstm}
    subset = ("--analyses", "performance,permutation")
    assert explain(run, *subset, "--batch-size", "7", out=tmp_path / "small").exit_code == 0
    assert explain(run, *subset, "--batch-size", "4096", out=tmp_path / "large").exit_code == 0
    small = strip_timings(results(tmp_path / "small"))["analyses"]
    large = strip_timings(results(tmp_path / "large"))["analyses"]
    for name in ("performance", "permutation"):
        _assert_close_tree(small[name], large[name])


def _assert_close_tree(left, right, path="") -> None:
    if isinstance(left, dict):
        assert left.keys() == right.keys(), path
        for key in left:
            _assert_close_tree(left[key], right[key], f"{path}.{key}")
    elif isinstance(left, list):
        assert len(left) == len(right), path
        for index, (a, b) in enumerate(zip(left, right)):
            _assert_close_tree(a, b, f"{path}[{index}]")
    elif isinstance(left, float):
        # A float32 kernel may round differently for another batch size (here 3e-8 on one
        # prediction): that is the only difference allowed, far below what a reader could see.
        assert right == pytest.approx(left, rel=1e-6, abs=1e-7), path
    else:
        assert left == right, path


def test_performance_known_values_in_target_units(case, tmp_path):
    # The model predicts the standardised target: (3a - 10) / 2. Undoing the scale gives 3a + 1
    # against a truth of 3a: every error is exactly +1 (MAE = RMSE = 1).
    model = models.save_torchscript(models.LastStepLinear([1.5, 0, 0, 0, 0, 0], bias=-4.5), tmp_path / "m.pt")
    data, schema = models.write_case(tmp_path, target={"column": "y", "scale": {"mean": 10.0, "std": 2.0}})
    result = explain({**case, "model": model, "data": data, "schema": schema}, "--analyses", "performance")
    assert result.exit_code == 0, result.output
    perf = results(case["out"])["analyses"]["performance"]
    assert perf["overall"]["mae"] == pytest.approx(1.0, abs=1e-5)
    assert perf["overall"]["rmse"] == pytest.approx(1.0, abs=1e-5)
    assert set(perf["per_group"]) == {"s0", "s1"}
    assert perf["per_group"]["s0"]["windows"] + perf["per_group"]["s1"]["windows"] == perf["windows"]
    assert len(perf["per_step"]) == 1
    assert perf["persistence"] is None  # the target is not an input field here


def test_performance_per_horizon_step(tmp_path):
    data, schema = models.write_case(tmp_path, horizon=2)
    # Output 2 steps: step 1 = 3a(T-1) (exact), step 2 = 0 (wrong by 3a(T)).
    model = models.LastStepLinear([3.0, 0, 0, 0, 0, 0])
    model.linear = __import__("torch").nn.Linear(6, 2)
    import torch

    with torch.no_grad():
        model.linear.weight.zero_()
        model.linear.bias.zero_()
        model.linear.weight[0, 0] = 3.0
    path = models.save_torchscript(model, tmp_path / "m.pt")
    case = {"model": path, "data": data, "schema": schema, "out": tmp_path / "out"}
    assert explain(case, "--analyses", "performance").exit_code == 0
    steps = results(tmp_path / "out")["analyses"]["performance"]["per_step"]
    assert steps[0]["mae"] == pytest.approx(0.0, abs=1e-5)
    assert steps[1]["mae"] > 1.0


def test_classification_accuracy_confusion_and_permutation(tmp_path):
    data, schema = models.write_case(tmp_path, task="classification", target="label", horizon=None)
    text = schema.read_text().replace("horizon: null\n", "")
    schema.write_text(text)
    model = models.save_torchscript(models.LastStepClassifier(), tmp_path / "m.pt")
    case = {"model": model, "data": data, "schema": schema, "out": tmp_path / "out"}
    result = explain(case, "--samples", "all", "--analyses", "performance,permutation")
    assert result.exit_code == 0, result.output
    report = results(tmp_path / "out")
    perf = report["analyses"]["performance"]
    assert perf["overall"]["accuracy"] == 1.0
    confusion = np.array(perf["confusion"])
    assert confusion.trace() == confusion.sum() == perf["windows"]
    assert perf["classes"] == ["0", "1"]
    importance = report["analyses"]["permutation"]["field_importance"]
    assert importance["a"] > 0.5
    assert importance["b"] == importance["noise"] == importance["w"] == 0.0


def test_explained_windows_are_spread_distinct_and_seeded():
    chosen = choose_explained(1000, 100, seed=3)
    assert len(np.unique(chosen)) == 100
    assert np.all(np.diff(chosen) > 0)
    assert chosen[0] < 10 and chosen[-1] >= 990  # one per stratum of 10
    assert np.array_equal(chosen, choose_explained(1000, 100, seed=3))
    assert not np.array_equal(chosen, choose_explained(1000, 100, seed=4))
    assert np.array_equal(choose_explained(50, 100, seed=0), np.arange(50))
