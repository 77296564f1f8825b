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
