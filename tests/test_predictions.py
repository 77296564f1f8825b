"""`predictions`: which windows are shown, in the data's units, and --explain-at."""

from __future__ import annotations

import models
import numpy as np
import pytest
from helpers import explain, results

from tsreport.analyses.predictions import pick_windows

FAST = ("--analyses", "performance,occlusion,gradient_x_input,combined,predictions", "--samples", "40")


def test_pick_windows_best_worst_median_and_requested():
    errors = np.array([5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0])
    picks = pick_windows(errors, {3: "2024-01-09@s0"})
    assert picks == [
        (2, "worst"),
        (6, "worst"),
        (0, "median"),
        (1, "best"),
        (5, "best"),
        (3, "requested: 2024-01-09@s0"),
    ]


def test_predictions_show_windows_in_the_data_units(tmp_path):
    fields = models.make_schema()["fields"]
    fields[0] = {"name": "a", "columns": ["a"], "scale": {"mean": 1.0, "std": 2.0}}
    data, schema = models.write_case(tmp_path, fields=fields)
    model = models.save_torchscript(models.LastStepLinear([6.0, 0, 0, 0, 0, 0], bias=3.0), tmp_path / "m.pt")
    case = {"model": model, "data": data, "schema": schema, "out": tmp_path / "out"}
    result = explain(case, *FAST, "--explain-at", "2024-01-20@s1")
    assert result.exit_code == 0, result.output
    preds = results(tmp_path / "out")["analyses"]["predictions"]
    kinds = [w["kind"] for w in preds["windows"]]
    assert kinds[:2] == ["worst", "worst"] and kinds[-1] == "requested: 2024-01-20@s1"
    assert preds["map_source"] == "combined"
    frame = models.make_frame()
    requested = preds["windows"][-1]
    assert requested["end_time"] == "2024-01-20" and requested["group"] == "s1"
    rows = frame[(frame.series == "s1")].reset_index(drop=True)
    end = int(np.flatnonzero(rows.time == "2024-01-20")[0])
    np.testing.assert_allclose(requested["fields"]["a"], rows.a[end - 7 : end + 1], atol=1e-6)  # scale undone
    np.testing.assert_allclose(requested["target_history"], rows.y[end - 7 : end + 1])
    assert requested["actual"] == pytest.approx([rows.y[end + 1]])
    # 6·(a-1)/2 + 3 = 3a: exact in target units, error 0.
    assert requested["predicted"] == pytest.approx(requested["actual"], abs=1e-4)
    assert np.array(requested["heatmap"]).shape == (8, 4)
    assert preds["fields_shown"][0] == "a"  # most important first


def test_explain_at_unknown_time_is_a_usage_error(case):
    result = explain(case, *FAST, "--explain-at", "2031-01-01@s0")
    assert result.exit_code == 2
    assert "--explain-at 2031-01-01@s0: no window ends at 2031-01-01 in group 's0'" in result.stderr
    ambiguous = explain(case, *FAST, "--explain-at", "2024-01-20")
    assert ambiguous.exit_code == 2 and "add @GROUP" in ambiguous.stderr
    assert not (case["out"] / "report.html").exists()


def test_classification_predictions_carry_probabilities(tmp_path):
    data, schema = models.write_case(tmp_path, task="classification", target="label")
    schema.write_text(schema.read_text().replace("horizon: 1\n", ""))
    model = models.save_torchscript(models.LastStepClassifier(), tmp_path / "m.pt")
    case = {"model": model, "data": data, "schema": schema, "out": tmp_path / "out"}
    assert explain(case, *FAST).exit_code == 0
    preds = results(tmp_path / "out")["analyses"]["predictions"]
    assert preds["error_name"] == "log loss"
    for window in preds["windows"]:
        assert sum(window["probabilities"].values()) == pytest.approx(1.0)
        assert window["predicted"] in ("0", "1") and window["target_history"] is None
