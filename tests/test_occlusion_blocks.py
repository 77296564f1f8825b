"""Occlusion with full-size blocks: no clipped last block, overlapping cells averaged (issue 9, item 8)."""

from __future__ import annotations

from pathlib import Path

import models
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tsreport.analyses.occlusion import occlusion, occlusion_attributions, time_blocks
from tsreport.config import RunConfig
from tsreport.pipeline import build_context

RNG = np.random.default_rng(0)


class SaturatingSum(nn.Module):
    """f(x) = tanh(0.15 · Σ_t (a_t + b_t)): every step weighs the same, and the output saturates.

    Occluding k steps changes f less than k times the change of one step, so a block with fewer
    steps than the others gets a different change per step.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(0.15 * (x[:, :, 0] + x[:, :, 1]).sum(dim=1, keepdim=True))


def constant_frame(length: int) -> pd.DataFrame:
    """Four series whose every column is constant in time, so every window is the same at each step:
    any difference between time steps can only come from how the steps were occluded."""
    frame = models.make_frame(groups=4, length=length, seed=0)
    levels = {"s0": (1.0, 0.5), "s1": (-0.8, 1.2), "s2": (0.3, 0.9), "s3": (1.5, -0.4)}
    for group, (a, b) in levels.items():
        rows = frame["series"] == group
        frame.loc[rows, "a"] = a
        frame.loc[rows, "b"] = b
        frame.loc[rows, "noise"] = 0.25
    return frame


def saturating_context(tmp_path: Path, window: int):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data, schema = models.write_case(tmp_path, constant_frame(window + 6), window=window, baseline="zero")
    path = models.save_torchscript(SaturatingSum(), tmp_path / "model.pt")
    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=None))
    return ctx


@pytest.mark.parametrize(
    ("window", "size", "stride", "expected"),
    [
        (8, 4, 4, [(0, 4), (4, 8)]),
        (10, 4, 4, [(0, 4), (4, 8), (6, 10)]),
        (11, 4, 4, [(0, 4), (4, 8), (7, 11)]),
        (8, 4, 2, [(0, 4), (2, 6), (4, 8)]),
        (9, 4, 2, [(0, 4), (2, 6), (4, 8), (5, 9)]),
        (13, 5, 3, [(0, 5), (3, 8), (6, 11), (8, 13)]),
        (3, 4, 4, [(0, 3)]),
        (7, 1, 1, [(t, t + 1) for t in range(7)]),
    ],
)
def test_every_block_has_the_full_size_and_the_last_ends_at_the_last_step(window, size, stride, expected):
    blocks = time_blocks(window, size, stride)
    assert blocks == expected
    assert {end - begin for begin, end in blocks} == {min(size, window)}
    assert blocks[-1][1] == window and blocks[0][0] == 0


@pytest.mark.parametrize(("window", "size"), [(8, 4), (10, 4), (11, 4), (12, 5), (13, 5), (9, 2), (7, 3)])
def test_a_saturating_model_that_weighs_every_step_equally_gets_a_flat_time_profile(tmp_path, window, size):
    ctx = saturating_context(tmp_path, window)
    result = occlusion(ctx, {"size": size, "stride": None}, rng=RNG)
    profile = np.array(result.time_profile)
    assert profile.shape == (window,) and profile.min() > 0
    np.testing.assert_allclose(profile, profile.mean(), rtol=1e-6)
    heatmap = np.array(result.heatmap)  # per field, too: a and b flat, noise and w exactly zero
    np.testing.assert_allclose(heatmap[:, :2], heatmap[:1, :2].repeat(window, axis=0), rtol=1e-6)
    assert np.all(heatmap[:, 2:] == 0.0)
    assert result.settings["size"] == size and result.settings["blocks"] == len(time_blocks(window, size, size))


def test_a_stride_below_the_size_averages_overlapping_cells_and_stays_flat(tmp_path):
    ctx = saturating_context(tmp_path, 11)
    attributions, _ = occlusion_attributions(ctx, size=4, stride=3)  # blocks (0,4) (3,7) (6,10) (7,11)
    profile = attributions[:, :, :2].sum(dim=2).mean(dim=0).numpy()
    np.testing.assert_allclose(profile, profile.mean(), rtol=1e-6)


def test_overlapping_cells_get_the_average_of_their_blocks_per_cell_values(tmp_path):
    """A model that reads only step 9 of a 10-step window, blocks of 4: (0,4) (4,8) (6,10).

    Only the last block moves the output, by d; its cells get d/4. Steps 6 and 7 are also covered
    by (4,8), whose change is 0, so they get (0 + d/4) / 2; steps 8 and 9 only by (6,10): d/4.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    data, schema = models.write_case(tmp_path, window=10, baseline="zero")
    weights = [2.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    path = models.save_torchscript(models.LastStepLinear(weights), tmp_path / "model.pt")
    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=None))
    attributions, _ = occlusion_attributions(ctx, size=4, stride=4)
    change = 2.0 * ctx.explained_inputs[:, -1, 0].double()
    expected = torch.zeros_like(attributions)
    expected[:, 8:10, 0] = change[:, None] / 4
    expected[:, 6:8, 0] = change[:, None] / 8
    torch.testing.assert_close(attributions, expected, atol=1e-6, rtol=1e-6)


def test_a_block_with_a_non_finite_change_touches_only_its_own_cells(tmp_path):
    """inf on occluding b must not leak (as inf · 0 = NaN) into the other fields' cells."""

    class BlowsUpAtZeroB(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, -1, 0:1] + 0.01 / x[:, -1, 1:2]

    tmp_path.mkdir(parents=True, exist_ok=True)
    data, schema = models.write_case(tmp_path, baseline="zero")
    path = models.save_torchscript(BlowsUpAtZeroB(), tmp_path / "model.pt")
    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=None))
    attributions, _ = occlusion_attributions(ctx, size=4, stride=4)
    assert not torch.isfinite(attributions[:, 4:, 1]).any()  # b's last block: the change is inf
    assert torch.isfinite(attributions[:, :, 0]).all() and torch.isfinite(attributions[:, :, 2:]).all()
    assert torch.isfinite(attributions[:, :4, 1]).all()
