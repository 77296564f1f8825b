"""Field Shapley values: closed-form answers, invariance, the sampling path, parity with shap."""

from __future__ import annotations

import json
from pathlib import Path

import models
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tsreport.analyses._base import child_rng
from tsreport.analyses.shapley import coalition_batch, coalition_presence, exact_shapley, shapley, shapley_weights
from tsreport.config import RunConfig, build_config
from tsreport.exceptions import UsageError
from tsreport.pipeline import build_context

WINDOW = 8


class FullLinear(nn.Module):
    """f(x) = Σ_{t,c} W[t, c]·x[t, c] + 0.5: φ_field = Σ over the field's cells of W·(x − baseline)."""

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(WINDOW, channels, generator=generator), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).sum(dim=(1, 2))[:, None] + 0.5


class Interacting(nn.Module):
    """A nonlinear model of 12 one-column fields with pairwise interactions (no closed form)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x[:, -1, :]
        value = torch.tanh(last[:, 0] * last[:, 1]) + last[:, 2] * last[:, 3] + 0.5 * last[:, 4:].sum(dim=1)
        return (value + torch.relu(last[:, 5] - last[:, 6]))[:, None]


def context(tmp_path: Path, model: nn.Module, *, batch_size: int = 1024, samples: int | None = None,
            frame: pd.DataFrame | None = None, **schema_overrides):  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    data, schema = models.write_case(tmp_path, frame, **schema_overrides)
    path = models.save_torchscript(model, tmp_path / f"model-{batch_size}.pt")
    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=samples, batch_size=batch_size))
    return ctx


def twelve_fields(tmp_path: Path, model: nn.Module, samples: int = 16):
    """One series of 12 numeric one-column fields c0..c11, target y."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(0, 1, (40, 12)).round(5), columns=[f"c{i}" for i in range(12)])
    frame.insert(0, "time", np.arange(40))
    frame["series"] = "s0"
    frame["y"] = rng.normal(0, 1, 40).round(5)
    fields = [{"name": f"c{i}", "columns": [f"c{i}"]} for i in range(12)]
    return context(tmp_path, model, samples=samples, frame=frame, fields=fields, baseline="mean")


def run(ctx, **params):
    return shapley(ctx, {**RunConfig().params("shap"), **params}, rng=child_rng(0, "shap"))


def all_phi(ctx, **params) -> np.ndarray:
    """φ (n, F) for every explained window: the beeswarm subset is every window when n <= 300."""
    result = run(ctx, **params)
    assert result.values["windows"] == [int(i) for i in ctx.explained]
    return np.array(result.values["phi"])


def linear_answer(ctx, weight: torch.Tensor) -> np.ndarray:
    cells = weight.double() * (ctx.explained_inputs.double() - ctx.baseline.double())  # (n, T, C)
    return torch.stack([cells[:, :, s].sum(dim=(1, 2)) for s in ctx.channel_slices()], dim=1).numpy()


def test_weight_matrix_and_paired_differences_agree():
    values = torch.randn(5, 2**4, dtype=torch.float64)
    weights = shapley_weights(4)
    assert weights.shape == (16, 4)
    torch.testing.assert_close(values @ weights, exact_shapley(values, 4), rtol=1e-12, atol=1e-12)
    # Each field's weights sum to +1 over the coalitions holding it and to −1 over the others.
    ones = torch.ones(4, dtype=torch.float64)
    torch.testing.assert_close(weights.clamp(min=0).sum(dim=0), ones)
    torch.testing.assert_close(weights.clamp(max=0).sum(dim=0), -ones)


@pytest.mark.parametrize("fields", [1, 3, 8])
def test_batches_of_coalitions_are_the_masked_windows_whatever_the_batch_size(fields):
    inputs, baseline = torch.randn(20, WINDOW, 8), torch.randn(8)
    masks = ~coalition_presence(fields)[:, torch.arange(8) % fields][:, None, :].expand(-1, WINDOW, -1)
    total = 20 * 2**fields
    for size in (1, 7, 256, 1000, 4096):  # runs of one window, runs across windows, one gather
        for begin in range(0, total, size):
            pairs = torch.arange(begin, min(total, begin + size))
            window, coalition = pairs // 2**fields, pairs % 2**fields
            expected = torch.where(masks[coalition], baseline, inputs[window])
            assert torch.equal(coalition_batch(inputs, baseline, masks.contiguous(), window, coalition), expected)


def test_exact_shapley_of_a_linear_model_is_w_times_x_minus_baseline_per_field(tmp_path):
    model = FullLinear(6)
    ctx = context(tmp_path, model, baseline="mean")  # fields a, b, noise and the 3-column categorical w
    result = run(ctx)
    phi = np.array(result.values["phi"])
    np.testing.assert_allclose(phi, linear_answer(ctx, model.weight), atol=1e-5)
    with torch.inference_mode():
        gap = (model(ctx.explained_inputs) - model(ctx.baseline[None, None].expand(1, WINDOW, 6)))[:, 0].double()
    np.testing.assert_allclose(phi.sum(axis=1), gap.numpy(), atol=1e-5)
    assert result.method == "exact" and result.coalitions == 16
    assert result.additivity_max_error < 1e-5
    assert result.expected_value == pytest.approx(float(model(ctx.baseline[None, None].expand(1, WINDOW, 6))), abs=1e-6)
    assert result.field_importance["w"] == pytest.approx(np.abs(phi[:, 3]).mean(), rel=1e-9)
    assert sum(result.share.values()) == pytest.approx(1.0)
    json.dumps(result.to_dict(), allow_nan=False)


def test_a_field_the_model_ignores_gets_zero(tmp_path):
    ctx = context(tmp_path, models.TinyLSTMIgnoringNoise())
    result = run(ctx)
    assert result.field_importance["noise"] == 0.0 and result.mean_phi["noise"] == 0.0
    assert all(row[2] == 0.0 for row in result.values["phi"])
    assert result.field_importance["a"] > 0 and result.field_importance["w"] > 0


def test_batch_size_never_changes_the_values(tmp_path):
    left = run(context(tmp_path / "small", models.TinyLSTM(), batch_size=7, samples=24)).to_dict()
    right = run(context(tmp_path / "large", models.TinyLSTM(), batch_size=4096, samples=24)).to_dict()
    for key in ("field_importance", "mean_phi"):
        for name, value in left[key].items():
            assert right[key][name] == pytest.approx(value, rel=1e-5, abs=1e-8), (key, name)
    np.testing.assert_allclose(left["values"]["phi"], right["values"]["phi"], rtol=1e-5, atol=1e-7)


def test_per_horizon_step_values(tmp_path):
    ctx = context(tmp_path, models.TwoStepLinear(), horizon=2, baseline="zero")  # step 1: 3·a(T-1), step 2: 2·b(T-1)
    result = run(ctx)
    last = ctx.explained_inputs[:, -1, :].double().numpy()
    phi = np.array(result.values["phi"])
    np.testing.assert_allclose(phi[:, 0], 1.5 * last[:, 0], atol=1e-5)  # the explained scalar is the mean over H
    np.testing.assert_allclose(phi[:, 1], 1.0 * last[:, 1], atol=1e-5)
    first, second = result.per_step
    assert first["a"] == pytest.approx(np.abs(3 * last[:, 0]).mean(), rel=1e-5) and first["b"] == 0.0
    assert second["b"] == pytest.approx(np.abs(2 * last[:, 1]).mean(), rel=1e-5) and second["a"] == 0.0


def test_classification_explains_the_predicted_class(tmp_path):
    # Logits [0, 5·a(T-1)]: windows with a > 0 predict class 1 (score 5·a); the others class 0, whose score is 0.
    ctx = context(tmp_path, models.LastStepClassifier(), task="classification", target="label", baseline="zero")
    result = run(ctx)
    a_last = ctx.explained_inputs[:, -1, 0].double().numpy()
    expected_a = np.where(a_last > 0, 5 * a_last, 0.0)
    phi = np.array(result.values["phi"])
    np.testing.assert_allclose(phi[:, 0], expected_a, atol=1e-5)
    np.testing.assert_allclose(phi[:, 1:], 0.0, atol=1e-6)
    assert (a_last > 0).any() and (a_last <= 0).any()
    assert result.additivity_max_error < 1e-5
    assert "predicted class" in result.explained


def test_sampling_path_on_twelve_fields_recovers_the_linear_answer(tmp_path):
    model = FullLinear(12, seed=1)
    ctx = twelve_fields(tmp_path, model)
    state = np.random.get_state()
    result = run(ctx, n_samples=120)  # 12 fields > max_exact_fields 10: shap's SamplingExplainer
    assert result.method == "sampling" and result.coalitions == 240 and result.notes
    # Every sampled marginal contribution of a linear model is exact, so only rounding separates the answers.
    np.testing.assert_allclose(np.array(result.values["phi"]), linear_answer(ctx, model.weight), atol=1e-4)
    assert result.additivity_max_error < 1e-4
    assert np.all(np.random.get_state()[1] == state[1])  # numpy's global generator is left as it was
    again = run(ctx, n_samples=120)
    assert again.to_dict() == result.to_dict()  # seeded


def test_sampling_path_approximates_exact_values_with_interactions(tmp_path):
    ctx = twelve_fields(tmp_path, Interacting(), samples=12)
    exact = np.array(run(ctx, max_exact_fields=12).values["phi"])  # 4096 coalitions per window
    sampled = np.array(run(ctx, n_samples=600).values["phi"])
    scale = np.abs(exact).mean()
    assert np.abs(sampled - exact).max() < 0.15 * np.abs(exact).max()
    assert np.abs(sampled - exact).mean() < 0.1 * scale
    # Interactions make the estimate noisy, yet the sum still adds up to f(x) − f(baseline).
    assert np.allclose(sampled.sum(axis=1), exact.sum(axis=1), atol=1e-4)


def test_equals_shap_kernel_explainer_over_the_same_field_coalitions(tmp_path):
    shap = pytest.importorskip("shap")
    ctx = context(tmp_path, models.TinyLSTM(), samples=6, baseline="mean")
    ours = all_phi(ctx)
    module = ctx.forward.loaded.module
    owner = torch.tensor([0, 1, 2, 3, 3, 3])  # the field of each channel
    theirs = []
    for window in ctx.explained_inputs:

        def game(present: np.ndarray, window: torch.Tensor = window) -> np.ndarray:
            keep = torch.as_tensor(present != 0)[:, owner][:, None, :]  # (m, 1, C)
            with torch.inference_mode():
                return module(torch.where(keep, window, ctx.baseline)).double().numpy()[:, 0]

        explainer = shap.KernelExplainer(game, np.zeros((1, 4)))
        theirs.append(explainer.shap_values(np.ones((1, 4)), nsamples=2**4, l1_reg=False, silent=True)[0])
    np.testing.assert_allclose(ours, np.array(theirs), atol=1e-5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_exact_fields": 21}, "Invalid shap max_exact_fields '21'"),
        ({"max_exact_fields": "ten"}, "Invalid shap max_exact_fields 'ten'"),
        ({"n_samples": 0}, "Invalid shap n_samples '0'"),
        ({"n_sample": 10}, "unknown key 'n_sample'. Did you mean 'n_samples'?"),
    ],
)
def test_settings_are_validated(settings, message):
    with pytest.raises(UsageError, match=message.replace("?", r"\?").replace("(", r"\(")):
        build_config({"shap": settings}, {}, analysis_names=["shap"])
