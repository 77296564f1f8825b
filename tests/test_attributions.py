"""Known answers of the attribution battery, its invariance, and parity with captum."""

from __future__ import annotations

from pathlib import Path

import models
import numpy as np
import pytest
import torch
import yaml
from helpers import explain, results

from tsreport.analyses import attribution_methods
from tsreport.analyses.combined import combined, normalise_per_window
from tsreport.analyses.gradients import gradient_x_input, input_gradients, integrated_gradients, saliency
from tsreport.analyses.occlusion import occlusion, occlusion_attributions, time_blocks
from tsreport.analyses.sensitivity import sensitivity
from tsreport.config import RunConfig
from tsreport.pipeline import build_context

RNG = np.random.default_rng(0)
WEIGHTS = [2.0, -1.0, 0.0, 0.5, 1.5, -2.5]  # a, b, noise (ignored), w_0..w_2


def context(tmp_path: Path, model: torch.nn.Module, batch_size: int = 1024, **schema_overrides):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data, schema = models.write_case(tmp_path, **schema_overrides)
    path = models.save_torchscript(model, tmp_path / f"model-{batch_size}.pt")
    config = RunConfig(samples=None, batch_size=batch_size)
    ctx, _, _ = build_context(path, data, schema, config)
    return ctx


def params(name: str) -> dict:
    return RunConfig().params(name)


def test_gradient_x_input_of_a_linear_model_is_closed_form(tmp_path):
    ctx = context(tmp_path, models.LastStepLinear(WEIGHTS))
    attributions = (input_gradients(ctx)[:, 0] * ctx.explained_inputs).numpy()
    expected = np.zeros_like(attributions)
    expected[:, -1, :] = np.array(WEIGHTS, dtype=np.float32) * ctx.explained_inputs[:, -1, :].numpy()
    np.testing.assert_allclose(attributions, expected, atol=1e-6)


def test_occlusion_size_1_zero_baseline_equals_gradient_x_input_for_a_linear_model(tmp_path):
    ctx = context(tmp_path, models.LastStepLinear(WEIGHTS), baseline="zero")
    occluded, _ = occlusion_attributions(ctx, size=1, stride=1)
    expected = (input_gradients(ctx)[:, 0] * ctx.explained_inputs).double()
    # Per cell for one-column fields; a 3-column field's change is spread over its 3 cells, so compare per field.
    grouped = lambda a: torch.stack([a[:, :, s].sum(dim=2) for s in ctx.channel_slices()], dim=2)  # noqa: E731
    torch.testing.assert_close(grouped(occluded), grouped(expected), atol=1e-5, rtol=1e-5)


def test_field_importance_of_a_3_column_field_is_the_sum_of_its_columns(tmp_path):
    grouped = context(tmp_path / "g", models.LastStepLinear(WEIGHTS))
    split_fields = models.make_schema()["fields"][:3] + [{"name": f"w_{k}", "columns": [f"w_{k}"]} for k in range(3)]
    split = context(tmp_path / "s", models.LastStepLinear(WEIGHTS), fields=split_fields)
    for method in (gradient_x_input, saliency):
        one = method(grouped, params(method.__name__), rng=RNG).field_importance
        three = method(split, params(method.__name__), rng=RNG).field_importance
        assert one["w"] == pytest.approx(three["w_0"] + three["w_1"] + three["w_2"], rel=1e-9)
        assert one["a"] == pytest.approx(three["a"], rel=1e-9)


@pytest.mark.parametrize("method", ["occlusion", "gradient_x_input", "integrated_gradients", "saliency"])
def test_a_field_the_model_ignores_scores_zero(tmp_path, method):
    ctx = context(tmp_path, models.TinyLSTMIgnoringNoise())
    analyses = {
        "occlusion": occlusion,
        "gradient_x_input": gradient_x_input,
        "integrated_gradients": integrated_gradients,
        "saliency": saliency,
    }
    result = analyses[method](ctx, params(method), rng=RNG)
    assert result.field_importance["noise"] == 0.0
    assert result.field_importance["a"] > 0 and result.field_importance["b"] > 0
    assert result.heatmap and len(result.heatmap) == 8 and len(result.heatmap[0]) == 4
    assert sum(result.share.values()) == pytest.approx(1.0)


def test_time_profile_and_heatmap_put_a_last_step_model_on_the_last_step(tmp_path):
    ctx = context(tmp_path, models.LastStepLinear(WEIGHTS))
    result = gradient_x_input(ctx, {}, rng=RNG)
    assert all(v == 0.0 for v in result.time_profile[:-1]) and result.time_profile[-1] > 0
    heatmap = np.array(result.heatmap)
    assert heatmap.shape == (8, 4) and np.all(heatmap[:-1] == 0)
    assert result.time_profile[-1] == pytest.approx(sum(result.field_importance.values()))


@pytest.mark.parametrize("batch_size", [7, 64, 4096])
def test_batch_size_and_chunking_never_change_attributions(tmp_path, batch_size):
    reference = context(tmp_path / "ref", models.TinyLSTM(), batch_size=1000)
    other = context(tmp_path / "other", models.TinyLSTM(), batch_size=batch_size)
    for run in (occlusion, gradient_x_input, integrated_gradients, sensitivity):
        left = run(reference, params(run.__name__), rng=RNG).to_dict()
        right = run(other, params(run.__name__), rng=RNG).to_dict()
        for name, value in left["field_importance"].items():
            assert right["field_importance"][name] == pytest.approx(value, rel=1e-5, abs=1e-7), (run.__name__, name)


def test_occlusion_time_blocks_cover_every_step():
    assert time_blocks(8, 4, 4) == [(0, 4), (4, 8)]
    assert time_blocks(10, 4, 4) == [(0, 4), (4, 8), (6, 10)]
    assert time_blocks(8, 4, 2) == [(0, 4), (2, 6), (4, 8)]
    assert time_blocks(3, 4, 4) == [(0, 3)]


def test_parity_with_captum(tmp_path):
    captum = pytest.importorskip("captum.attr")
    single = models.make_schema()["fields"][:3] + [{"name": f"w_{k}", "columns": [f"w_{k}"]} for k in range(3)]
    ctx = context(tmp_path, models.TinyLSTM(), fields=single, baseline="mean")
    eager = models.TinyLSTM().eval()
    inputs = ctx.explained_inputs.clone()
    baselines = ctx.baseline[None, None].expand_as(inputs).contiguous()

    ours, _ = occlusion_attributions(ctx, size=4, stride=4)
    theirs = captum.Occlusion(eager).attribute(
        inputs, sliding_window_shapes=(4, 1), strides=(4, 1), baselines=baselines, target=0
    )
    assert (ours * 4 - theirs.double()).abs().max() < 1e-5  # ours spreads a block's change over its 4 cells

    ours = input_gradients(ctx)[:, 0] * inputs
    theirs = captum.InputXGradient(eager).attribute(inputs.clone().requires_grad_(), target=0)
    assert (ours - theirs).abs().max() < 1e-5

    result = integrated_gradients(ctx, params("integrated_gradients"), rng=RNG)
    theirs = captum.IntegratedGradients(eager).attribute(
        inputs, baselines=baselines, target=0, n_steps=50, method="gausslegendre"
    )
    expected = theirs.detach().abs().sum(dim=1).mean(dim=0).double().numpy()  # field = one column here
    got = np.array([result.field_importance[name] for name in ctx.field_names])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert result.settings["completeness_error"] < 0.05


def test_model_without_gradient_gets_gradient_methods_skipped(tmp_path):
    data, schema = models.write_case(tmp_path)
    model = models.save_torchscript(models.DetachedModel(), tmp_path / "m.pt")
    case = {"model": model, "data": data, "schema": schema, "out": tmp_path / "out"}
    subset = "performance,occlusion,gradient_x_input,integrated_gradients,saliency,combined,sanity_randomization"
    assert explain(case, "--samples", "20", "--analyses", subset).exit_code == 0
    report = results(tmp_path / "out")
    for name in ("gradient_x_input", "integrated_gradients", "saliency"):
        assert report["analyses"][name]["status"] == "skipped"
        assert "gradient" in report["analyses"][name]["reason"] or "differentiabl" in report["analyses"][name]["reason"]
    assert report["analyses"]["occlusion"]["status"] == "ok"
    assert report["analyses"]["combined"]["status"] == "ok"  # from occlusion alone
    assert report["ranking_source"] == "combined"


def test_sensitivity_known_answers(tmp_path):
    ctx = context(tmp_path, models.LastStepLinear(WEIGHTS), target={"column": "y", "scale": {"mean": 0.0, "std": 2.0}})
    result = sensitivity(ctx, params("sensitivity"), rng=RNG)
    spread = ctx.seen_values().std(axis=0)  # over the rows some window's inputs cover
    # One std up on a at every step moves the output by w_a·std(a), times the target's std 2.
    assert result.effects["a"]["shift"]["mean"] == pytest.approx(2.0 * WEIGHTS[0] * spread[0], rel=1e-4)
    assert result.effects["b"]["shift"]["mean"] == pytest.approx(2.0 * WEIGHTS[1] * spread[1], rel=1e-4)
    assert result.effects["noise"]["shift"]["mean_abs"] == 0.0
    # Scaling by 1.1 changes the output by 0.1·w_a·a(T-1).
    expected = 2.0 * 0.1 * WEIGHTS[0] * np.abs(ctx.explained_inputs[:, -1, 0].numpy()).mean()
    assert result.effects["a"]["scale"]["mean_abs"] == pytest.approx(expected, rel=1e-4)
    # Categorical: switching to the most frequent other category changes w·onehot by a weight difference.
    assert result.effects["w"]["switch"]["mean_abs"] > 0 and set(result.effects["w"]) == {"switch"}
    assert result.field_importance["a"] == result.effects["a"]["shift"]["mean_abs"]


def test_combined_normalises_each_window_then_averages(tmp_path):
    maps = np.array([[[1.0, 3.0]], [[0.0, 0.0]]])
    np.testing.assert_allclose(normalise_per_window(maps), [[[1 / 3, 1.0]], [[0.0, 0.0]]])
    ctx = context(tmp_path, models.LastStepLinear(WEIGHTS))
    ctx.field_maps = {
        **occlusion(ctx, params("occlusion"), rng=RNG).maps,
        **gradient_x_input(ctx, params("gradient_x_input"), rng=RNG).maps,
    }
    result = combined(ctx, params("combined"), rng=RNG)
    assert result.settings["methods"] == ["occlusion", "gradient_x_input"]
    assert max(result.field_importance, key=result.field_importance.get) == "w"  # |1.5-(-2.5)| weights dominate
    assert result.field_importance["noise"] == 0.0


def test_per_step_importance_for_a_multi_step_horizon(tmp_path):
    model = models.TwoStepLinear()
    ctx = context(tmp_path, model, horizon=2)
    for run in (occlusion, gradient_x_input, sensitivity):
        result = run(ctx, params(run.__name__), rng=RNG)
        assert result.per_step is not None and len(result.per_step) == 2
        assert result.per_step[0]["b"] == 0.0 and result.per_step[0]["a"] > 0  # step 1 reads a only
        assert result.per_step[1]["a"] == 0.0 and result.per_step[1]["b"] > 0  # step 2 reads b only


def test_bundled_example_every_method_ranks_true_drivers_above_noise(tmp_path):
    example = Path(__file__).resolve().parent.parent / "examples"
    config = RunConfig(samples=256)
    ctx, _, _ = build_context(example / "model.pt", example / "sales.csv", example / "schema.yaml", config)
    drivers = ["price", "promo", "temperature", "weekday", "sales"]
    noise = ["humidity", "competitor_noise"]
    for run in (occlusion, gradient_x_input, integrated_gradients, saliency, sensitivity):
        importance = run(ctx, params(run.__name__), rng=RNG).field_importance
        assert min(importance[d] for d in drivers) > max(importance[n] for n in noise), (run.__name__, importance)


def test_attribution_methods_are_registered_in_order():
    from tsreport.analyses import NAMES

    assert NAMES.index("combined") > max(NAMES.index(m) for m in attribution_methods())
    assert yaml.safe_dump(RunConfig().to_dict())  # settings serialise


def test_temporal_saliency_rescaling(tmp_path):
    from tsreport.analyses.gradients import time_relevance, tsr_rescale

    ctx = context(tmp_path, models.LastStepLinear(WEIGHTS))
    relevance = time_relevance(ctx)
    assert relevance.shape == (ctx.explained_inputs.shape[0], 8)
    assert np.all(relevance[:, :-1] == 0) and np.all(relevance[:, -1] > 0)
    result = gradient_x_input(ctx, {"tsr": True, "tsr_threshold": 1.0}, rng=RNG)
    rescaled = result.maps["gradient_x_input+tsr"]
    raw = result.maps["gradient_x_input"]
    assert np.all(rescaled[:, :-1] == 0)
    # Within the kept (last) step the fields keep the gradient map's proportions.
    np.testing.assert_allclose(
        rescaled[:, -1] / rescaled[:, -1].sum(axis=1, keepdims=True),
        raw[:, -1] / raw[:, -1].sum(axis=1, keepdims=True),
        rtol=1e-5,
    )
    assert result.tsr is not None and result.tsr["time_profile"][-1] > 0
    assert set(result.tsr) == {"field_importance", "share", "time_profile", "heatmap"}
    # Threshold: steps below threshold × the window's mean relevance are dropped.
    maps = np.ones((1, 4, 2))
    kept = tsr_rescale(maps, np.array([[0.0, 1.0, 2.0, 5.0]]), threshold=1.0)  # mean 2: keep steps 2 and 3
    np.testing.assert_allclose(kept[0].sum(axis=1), [0.0, 0.0, 2.0, 5.0])
