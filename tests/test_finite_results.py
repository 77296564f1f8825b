"""Invariant: an `ok` analysis holds only finite numbers; anything else is `failed`, naming the field."""

from __future__ import annotations

from pathlib import Path

import models
import torch
from helpers import explain, results
from torch import nn

from tsreport.pipeline import non_finite


class BlowsUpAtZeroB(nn.Module):
    """Finite on every real window (b is never exactly 0), inf when b is set to a zero baseline."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1, 0:1] + 0.01 / x[:, -1, 1:2]


def test_non_finite_attribution_fails_the_analysis_and_names_the_field(tmp_path: Path) -> None:
    data, schema = models.write_case(tmp_path)  # baseline: zero
    model = models.save_torchscript(BlowsUpAtZeroB(), tmp_path / "model.pt")
    case = {"data": data, "schema": schema, "model": model, "out": tmp_path / "out"}
    result = explain(case, "--analyses", "performance,occlusion,gradient_x_input", "--samples", "all")
    assert result.exit_code == 0, result.output
    report = results(case["out"])
    occlusion = report["analyses"]["occlusion"]
    assert occlusion["status"] == "failed"
    assert "field 'b'" in occlusion["reason"] and "NaN or inf" in occlusion["reason"]
    assert report["analyses"]["gradient_x_input"]["status"] == "ok"  # gradients at the data stay finite
    assert any("Analysis 'occlusion' failed: field 'b'" in w for w in report["warnings"])
    assert "failed" in (case["out"] / "report.html").read_text()


def test_non_finite_walks_nested_numbers() -> None:
    fields = ["a", "b"]
    assert non_finite({"status": "ok", "reason": None, "per_step": None, "tsr": None}, fields) is None
    assert non_finite({"reason": None, "field_importance": {"a": 1.0, "b": None}}, fields).startswith("field 'b'")
    assert "heatmap/1" in non_finite({"reason": None, "heatmap": [[1.0, 2.0], [None, 1.0]]}, fields)
    assert "inf" in non_finite({"reason": None, "x": {"y": [float("inf")]}}, fields)
    # A classification window has no target history, and no map when no map-making method ran.
    window = {"error": 0.3, "target_history": None, "heatmap": None, "predicted": "1"}
    assert non_finite({"reason": None, "windows": [window]}, fields) is None
    # R² of a constant target and the spread of one repeat are honestly undefined, not failures.
    assert non_finite({"reason": None, "overall": {"mae": 0.0, "r2": None}}, fields) is None
    assert non_finite({"reason": None, "std": {"a": None, "b": None}, "interval": {"a": [None, None]}}, fields) is None
