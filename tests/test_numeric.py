"""The numeric conventions, each written once (tsreport/numeric.py and AnalysisContext.select)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import models
import numpy as np
import pytest
import torch

from tsreport.config import RunConfig
from tsreport.numeric import log_loss, share_rows, shares, to_data_units, to_model_units, unit_factor
from tsreport.pipeline import build_context

SCALE = SimpleNamespace(mean=10.0, std=4.0)


def test_units_round_trip_and_factors():
    raw = np.array([2.0, 10.0, 18.0])
    np.testing.assert_array_equal(to_model_units(raw, SCALE), [-2.0, 0.0, 2.0])
    np.testing.assert_array_equal(to_data_units(to_model_units(raw, SCALE), SCALE), raw)
    assert to_data_units(raw, None) is raw and to_model_units(raw, None) is raw
    assert unit_factor(SCALE) == 4.0 and unit_factor(SCALE, 2) == 16.0 and unit_factor(None, 2) == 1.0


def test_shares_sum_to_one_and_handle_none_and_zero():
    assert shares({"a": 3.0, "b": 1.0, "c": None}) == {"a": 0.75, "b": 0.25, "c": 0.0}
    assert shares({"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}
    assert shares({"a": 1.0, "b": 1.0}, total=4.0) == {"a": 0.25, "b": 0.25}
    assert shares({"a": math.nan, "b": 1.0}, total=1.0) == {"a": None, "b": 1.0}
    np.testing.assert_array_equal(share_rows(np.array([[1.0, 3.0], [0.0, 0.0]])), [[0.25, 0.75], [0.0, 0.0]])


def test_a_negative_importance_counts_as_none():
    """Below zero an importance says the field carries none: a signed total gave shares of 1.5 and -0.5."""
    assert shares({"a": 3.0, "b": -1.0}) == {"a": 1.0, "b": 0.0}
    assert shares({"a": -1.0, "b": -2.0}) == {"a": 0.0, "b": 0.0}


def test_an_unknown_importance_has_an_unknown_share_when_asked():
    importance = {"a": 3.0, "b": None, "c": 1.0}
    assert shares(importance) == {"a": 0.75, "b": 0.0, "c": 0.25}
    assert shares(importance, unknown="unknown") == {"a": 0.75, "b": None, "c": 0.25}
    assert shares({"a": 0.0, "b": None}, unknown="unknown") == {"a": 0.0, "b": None}
    with pytest.raises(ValueError, match="unknown must be 'zero' or 'unknown'"):
        shares(importance, unknown="none")


def test_the_numeric_conventions_import_no_torch():
    """diff and history read results.json through them, without torch."""
    import subprocess
    import sys

    code = "import sys, tsreport.numeric; print('torch' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"


#: An entry written without ``share`` (an older results.json, or sensitivity and attention today).
NO_SHARE_ENTRY = {"status": "ok", "field_importance": {"a": 3.0, "b": -1.0, "c": 1.0, "d": None}}


def test_diff_history_and_summary_md_share_one_rule():
    """They took |importance| (diff, summary.md) or clipped it at 0 (history): the same entry had three sets of
    shares. Now each is numeric.shares, as the analyses' own ``share`` (permutation clips at 0 too)."""
    from tsreport import diff, history
    from tsreport.render import markdown

    importance = NO_SHARE_ENTRY["field_importance"]
    assert diff._shares(NO_SHARE_ENTRY) == {"a": 0.75, "b": 0.0, "c": 0.25, "d": None}  # was 0.6, 0.2, 0.2, None
    assert markdown._shares(importance) == {"a": 0.75, "b": 0.0, "c": 0.25, "d": None}  # was 0.6, 0.2, 0.2, n/a
    assert history.field_shares(NO_SHARE_ENTRY, list(importance)) == {"a": 0.75, "b": 0.0, "c": 0.25, "d": 0.0}
    assert shares(importance) == history.field_shares(NO_SHARE_ENTRY, list(importance))
    assert history.field_shares({"status": "ok", "field_importance": {"a": -1.0, "b": 0.0}}, ["a", "b"]) is None


def test_diff_sees_no_share_change_between_an_entry_with_share_and_the_same_one_without():
    """An older results.json (no ``share``) against a newer one of the same importances: not a change."""
    from tsreport.diff import diff_results

    importance = {"a": 3.0, "b": -1.0, "c": 1.0}
    old = {"fields": ["a", "b", "c"], "analyses": {"permutation": {"status": "ok", "field_importance": importance}}}
    new = {
        "fields": ["a", "b", "c"],
        "analyses": {"permutation": {"status": "ok", "field_importance": importance, "share": shares(importance)}},
    }
    assert diff_results(old, new).importance == ()  # was 3 changes: |b| counted 20% of the importance


def test_summary_md_shows_the_share_the_analysis_would_have_written():
    from tsreport.render.markdown import _ranking

    entry = {"status": "ok", "field_importance": {"a": 3.0, "b": -1.0, "c": 1.0}}
    results = {"ranking": ["a", "c", "b"], "ranking_source": "permutation", "analyses": {"permutation": entry}}
    with_share = {**results, "analyses": {"permutation": {**entry, "share": shares(entry["field_importance"])}}}
    assert _ranking(results) == _ranking(with_share)
    assert _ranking(results)[-3:] == ["| 1 | a | 75.0% |", "| 2 | c | 25.0% |", "| 3 | b | 0.0% |"]


def test_log_loss_known_answers():
    uniform = torch.zeros((2, 4))
    np.testing.assert_allclose(log_loss(uniform, torch.tensor([0, 3])).numpy(), [math.log(4)] * 2)
    sure = torch.tensor([[0.0, 50.0]])
    assert float(log_loss(sure, torch.tensor([1]))) == pytest.approx(0.0, abs=1e-20)
    assert log_loss(sure, torch.tensor([1])).dtype == torch.float64


def test_the_explained_scalar_is_one_rule_for_any_leading_shape(tmp_path):
    """Classification: the predicted class's score; the (n, P, O) form equals the (n, O) form per slice."""
    data, schema = models.write_case(tmp_path, task="classification", target="label", horizon=None)
    schema.write_text(schema.read_text().replace("horizon: null\n", ""))
    path = models.save_torchscript(models.LastStepClassifier(), tmp_path / "model.pt")
    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=12))
    rows = torch.arange(12)
    outputs = ctx.explained_outputs()
    classes = outputs.argmax(dim=1)
    torch.testing.assert_close(ctx.select(outputs, rows), outputs[rows, classes])
    stacked = torch.stack([outputs, 2 * outputs, -outputs], dim=1)  # (n, 3, K)
    expected = torch.stack([ctx.select(stacked[:, p], rows) for p in range(3)], dim=1)
    assert torch.equal(ctx.select(stacked, rows), expected)


def test_the_explained_scalar_of_a_regression_is_the_mean_over_the_horizon(tmp_path):
    data, schema = models.write_case(tmp_path, horizon=2)
    path = models.save_torchscript(models.TwoStepLinear(), tmp_path / "model.pt")
    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=12))
    outputs = ctx.explained_outputs()
    assert torch.equal(ctx.select(outputs, torch.arange(12)), outputs.mean(dim=1))
