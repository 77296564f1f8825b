"""Quantile heads (schema ``output: {quantiles: [...]}``): what is explained, pinball loss, coverage."""

from __future__ import annotations

from pathlib import Path

import models
import numpy as np
import pytest
import torch
import yaml
from helpers import explain, results, run_cli
from torch import nn

LEVELS = [0.1, 0.5, 0.9]
Z90 = 1.2815515655446004  # standard normal 0.9 quantile


class QuantileHead(nn.Module):
    """(B, H, 3): median 3·a(T-1) at every step, half-width Z90·(0.5 + |b(T-1)|) around it.

    The median depends on ``a`` only and the interval's width on ``b`` only, so explaining
    the median must rank ``a`` first and explaining the width must rank ``b`` first.
    """

    def __init__(self, horizon: int = 1, squeeze: bool = False) -> None:
        super().__init__()
        self.horizon = horizon
        self.squeeze = squeeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        median = 3.0 * x[:, -1, 0]
        half = 1.2815515655446004 * (0.5 + x[:, -1, 1].abs())  # Z90 (TorchScript takes no globals)
        step = torch.stack([median - half, median, median + half], dim=1)  # (B, 3)
        if self.squeeze:
            return step
        return step[:, None, :].expand(-1, self.horizon, -1)


def _case(tmp_path: Path, model: nn.Module, **schema: object) -> dict:
    data, schema_path = models.write_case(tmp_path, **schema)
    path = models.save_torchscript(model, tmp_path / "model.pt")
    return {"dir": tmp_path, "data": data, "schema": schema_path, "model": path, "out": tmp_path / "out"}


FAST = ("--analyses", "performance,permutation,occlusion,gradient_x_input,combined,predictions", "--samples", "all")


def test_median_is_explained_by_default_and_metrics_are_exact(tmp_path: Path) -> None:
    case = _case(tmp_path, QuantileHead(squeeze=True), output={"quantiles": LEVELS})
    result = explain(case, *FAST)
    assert result.exit_code == 0, result.output
    report = results(case["out"])
    assert report["ranking"][0] == "a"
    assert report["analyses"]["occlusion"]["field_importance"]["b"] == pytest.approx(0.0, abs=1e-9)
    performance = report["analyses"]["performance"]
    # The truth is y(t+1) = 3·a(t), the median exactly: point metrics are perfect, coverage 1.
    assert performance["overall"]["mae"] == pytest.approx(0.0, abs=1e-5)
    quantiles = performance["quantiles"]
    assert quantiles["coverage"] == 1.0 and quantiles["nominal"] == pytest.approx(0.8)
    assert quantiles["pinball"]["0.5"] == pytest.approx(0.0, abs=1e-5)
    # Pinball loss of the 0.1 quantile: the truth lies half above it, loss 0.1 * half-width.
    frame = models.make_frame()
    b_last = []
    for _, series in frame.groupby("series", sort=True):
        b = series["b"].to_numpy()
        b_last.extend(b[7 : len(b) - 1])  # window 8, horizon 1: last input rows 7 .. n-2
    expected = 0.1 * Z90 * (0.5 + np.abs(np.array(b_last, dtype=np.float32)))
    assert quantiles["pinball"]["0.1"] == pytest.approx(expected.mean(), rel=1e-5)
    assert quantiles["pinball"]["0.9"] == pytest.approx(expected.mean(), rel=1e-5)
    assert report["analyses"]["permutation"]["loss"] == "pinball"
    assert report["inputs"]["schema"]["output"] == {"quantiles": LEVELS, "explain": 0.5}
    shown = report["analyses"]["predictions"]["windows"][0]
    assert shown["interval"]["levels"] == [0.1, 0.9] and len(shown["interval"]["low"]) == 1


def test_interval_width_is_explained_by_what_drives_uncertainty(tmp_path: Path) -> None:
    case = _case(tmp_path, QuantileHead(horizon=2), horizon=2, output={"quantiles": LEVELS, "explain": "interval"})
    result = explain(case, *FAST)
    assert result.exit_code == 0, result.output
    report = results(case["out"])
    assert report["ranking"][0] == "b"
    importance = report["analyses"]["occlusion"]["field_importance"]
    assert importance["a"] < 1e-5 * importance["b"]  # (m + h) - (m - h): float32 round-off only
    assert len(report["analyses"]["performance"]["quantiles"]["per_step"]) == 2
    html = (case["out"] / "report.html").read_text()
    assert "width of the predicted interval" in html


def test_a_named_quantile_can_be_explained(tmp_path: Path) -> None:
    case = _case(tmp_path, QuantileHead(squeeze=True), output={"quantiles": LEVELS, "explain": 0.9})
    result = explain(case, *FAST)
    assert result.exit_code == 0, result.output
    importance = results(case["out"])["analyses"]["occlusion"]["field_importance"]
    assert importance["a"] > 0.1 and importance["b"] > 0.1 and importance["noise"] == pytest.approx(0.0, abs=1e-9)


def test_quantile_output_without_the_schema_key_names_the_fix(tmp_path: Path) -> None:
    case = _case(tmp_path, QuantileHead(horizon=1))
    result = explain(case)
    assert result.exit_code == 3
    assert "got shape (2, 1, 3)" in result.output
    assert "if the last axis holds 3 quantiles, name them in the schema: output: {quantiles: [...]}" in result.output


def test_quantile_count_mismatch_is_exit_3(tmp_path: Path) -> None:
    case = _case(tmp_path, QuantileHead(horizon=1), output={"quantiles": [0.1, 0.5, 0.75, 0.9]})
    result = explain(case)
    assert result.exit_code == 3
    assert "expected (2, 1, 4) for horizon 1 and the 4 quantiles of 'output'" in result.output


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"quantiles": [0.1, 0.9]}, "0.5 is not among the quantiles [0.1, 0.9]; set 'explain'"),
        ({"quantiles": [0.5, 0.1]}, "'output: quantiles' must be distinct and increasing"),
        ({"quantiles": [0.1, 1.5]}, "'output: quantiles' must be a list of numbers strictly between 0 and 1"),
        ({"quantiles": LEVELS, "explain": 0.3}, "'output: explain' must be median, interval or one of the quantiles"),
        ({"quantiles": LEVELS, "level": 0.3}, "unknown key 'level'"),
    ],
)
def test_bad_output_key_is_exit_3(tmp_path: Path, output: dict, message: str) -> None:
    case = _case(tmp_path, QuantileHead(horizon=1), output=output)
    result = explain(case)
    assert result.exit_code == 3
    assert message in result.output


def test_schema_round_trip_keeps_output(tmp_path: Path) -> None:
    data, schema = models.write_case(tmp_path, output={"quantiles": LEVELS, "explain": "interval"})
    loaded = yaml.safe_load(schema.read_text())
    assert loaded["output"]["explain"] == "interval"
    assert run_cli("schema", data).exit_code == 0
