"""`gradient_shap` (expected gradients): known answers, seeding, batching, and the plug-in end to end.

The method is one file (tsreport/analyses/gradient_shap.py) and one registry entry; its report
section, combined option, faithfulness curve, sanity verdicts and headline column come from the
registry by themselves (the end-to-end test below).
"""

from __future__ import annotations

from pathlib import Path

import models
import numpy as np
import pytest
import torch
import yaml
from helpers import explain, results

from tsreport.analyses.gradient_shap import gradient_shap
from tsreport.config import RunConfig, build_config
from tsreport.exceptions import UsageError
from tsreport.pipeline import build_context

WEIGHTS = [2.0, -1.0, 0.0, 0.5, 1.5, -2.5]  # a, b, noise (ignored), w_0..w_2 (one 3-column field)


def context(tmp_path: Path, model: torch.nn.Module, batch_size: int = 1024, **schema_overrides):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data, schema = models.write_case(tmp_path, **schema_overrides)
    path = models.save_torchscript(model, tmp_path / f"model-{batch_size}.pt")
    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=None, batch_size=batch_size))
    return ctx


def field_importance(attributions: np.ndarray, ctx) -> dict[str, float]:
    """(n, T, C) attributions -> mean over windows of Σ_t Σ_{c in field} |a|, per field (aggregation.field_maps)."""
    maps = np.stack([np.abs(attributions[:, :, s]).sum(axis=2) for s in ctx.channel_slices()], axis=2)
    return dict(zip(ctx.field_names, maps.sum(axis=1).mean(axis=0)))


def test_linear_model_gets_w_times_input_minus_the_drawn_baselines(tmp_path):
    """f = w·x[T-1]: the gradient is w everywhere, so each window's attribution is w ⊙ (x − mean of its baselines)."""
    ctx = context(tmp_path, models.LastStepLinear(WEIGHTS))
    result = gradient_shap(ctx, {"n_samples": 16, "stdevs": 0.0}, rng=np.random.default_rng(3))
    inputs = ctx.explained_inputs.double().numpy()
    rows = np.random.default_rng(3).integers(0, inputs.shape[0], size=(inputs.shape[0], 16))  # the same draws
    expected = np.zeros_like(inputs)
    expected[:, -1] = np.array(WEIGHTS) * (inputs[:, -1] - inputs[rows][:, :, -1].mean(axis=1))
    for name, value in field_importance(expected, ctx).items():
        assert result.field_importance[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    assert result.field_importance["noise"] == 0.0
    assert result.maps["gradient_shap"].shape == (inputs.shape[0], 8, len(ctx.field_names))
    assert all(v == 0.0 for row in result.heatmap[:-1] for v in row)  # only the last step matters


def test_linear_model_converges_to_w_times_input_minus_the_mean_window(tmp_path):
    """In expectation over baselines drawn from the windows: w ⊙ (x − E[b]), closed form."""
    ctx = context(tmp_path, models.LastStepLinear(WEIGHTS))
    result = gradient_shap(ctx, {"n_samples": 2000, "stdevs": 0.0}, rng=np.random.default_rng(0))
    inputs = ctx.explained_inputs.double().numpy()
    expected = np.zeros_like(inputs)
    expected[:, -1] = np.array(WEIGHTS) * (inputs[:, -1] - inputs[:, -1].mean(axis=0))
    for name, value in field_importance(expected, ctx).items():
        assert result.field_importance[name] == pytest.approx(value, rel=0.03, abs=1e-7), name


def test_a_field_the_model_ignores_scores_zero(tmp_path):
    ctx = context(tmp_path, models.TinyLSTMIgnoringNoise())
    result = gradient_shap(ctx, RunConfig().params("gradient_shap"), rng=np.random.default_rng(0))
    assert result.field_importance["noise"] == 0.0
    assert result.field_importance["a"] > 0 and result.field_importance["b"] > 0
    assert sum(result.share.values()) == pytest.approx(1.0)


def test_seeded_reproducible_and_the_seed_matters(tmp_path):
    ctx = context(tmp_path, models.TinyLSTM())
    settings = {"n_samples": 8, "stdevs": 0.1}
    first = gradient_shap(ctx, settings, rng=np.random.default_rng(7))
    second = gradient_shap(ctx, settings, rng=np.random.default_rng(7))
    other = gradient_shap(ctx, settings, rng=np.random.default_rng(8))
    assert first.to_dict() == second.to_dict()
    np.testing.assert_array_equal(first.maps["gradient_shap"], second.maps["gradient_shap"])
    assert first.field_importance != other.field_importance


@pytest.mark.parametrize("batch_size", [1, 7, 50])
def test_batch_size_never_changes_attributions(tmp_path, batch_size):
    settings = {"n_samples": 6, "stdevs": 0.05}
    reference = gradient_shap(context(tmp_path / "big", models.TinyLSTM()), settings, rng=np.random.default_rng(1))
    small = gradient_shap(
        context(tmp_path / "small", models.TinyLSTM(), batch_size=batch_size), settings, rng=np.random.default_rng(1)
    )
    np.testing.assert_allclose(small.maps["gradient_shap"], reference.maps["gradient_shap"], rtol=1e-5, atol=1e-7)


def test_per_step_importance_for_a_multi_step_horizon(tmp_path):
    ctx = context(tmp_path, models.TwoStepLinear(), horizon=2)
    result = gradient_shap(ctx, RunConfig().params("gradient_shap"), rng=np.random.default_rng(0))
    assert result.per_step is not None and len(result.per_step) == 2
    assert result.per_step[0]["b"] == 0.0 and result.per_step[0]["a"] > 0  # step 1 reads a only
    assert result.per_step[1]["a"] == 0.0 and result.per_step[1]["b"] > 0  # step 2 reads b only


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_samples": 0}, "Invalid gradient_shap n_samples '0': give a positive integer."),
        ({"stdevs": -1}, "Invalid gradient_shap stdevs '-1': give a number >= 0 (model units; 0 = no noise)."),
        ({"samples": 3}, "unknown key 'samples'. Did you mean 'n_samples'? Valid keys: n_samples, stdevs."),
    ],
)
def test_bad_settings_name_the_key_and_the_fix(settings, message):
    with pytest.raises(UsageError) as error:
        build_config({"gradient_shap": settings}, {}, analysis_names=["gradient_shap"])
    assert message in str(error.value)


def test_registered_once_it_is_in_every_list_by_itself():
    from tsreport import analyses

    methods = ["occlusion", "gradient_x_input", "integrated_gradients", "saliency", "gradient_shap"]
    assert "gradient_shap" in analyses.NAMES and "gradient_shap" not in analyses.DEFAULT_NAMES
    assert analyses.attribution_methods() == methods  # combined may average it
    assert analyses.attribution_methods(("gradient_shap", "sanity_randomization")) == ["gradient_shap"]  # re-run
    assert analyses.map_sources() == ["combined", *methods]
    assert "gradient_shap" in analyses.ranked_analyses() and "gradient_shap" in analyses.headline_methods()
    with pytest.raises(UsageError, match=r"drawn from occlusion, .*, saliency, gradient_shap\.$"):
        build_config({"combined": {"methods": ["lime"]}}, {}, analysis_names=analyses.NAMES)
    config = build_config({"combined": {"methods": ["gradient_shap"]}}, {}, analysis_names=analyses.NAMES)
    assert config.params("combined")["methods"] == ["gradient_shap"]


def test_opt_in_keeps_the_default_battery_and_its_settings_unchanged():
    config = RunConfig()
    assert "gradient_shap" not in config.to_dict()["analysis_params"]
    assert "gradient_shap" not in config.params("faithfulness")["methods"]
    selected = build_config(
        {}, {"analyses": "gradient_shap,faithfulness"}, analysis_names=["gradient_shap", "faithfulness"]
    )
    assert selected.to_dict()["analysis_params"]["gradient_shap"] == {"n_samples": 32, "stdevs": 0.0}
    assert "gradient_shap" in selected.params("faithfulness")["methods"]


def test_end_to_end_its_section_combined_faithfulness_sanity_and_headline_appear(case, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "combined": {"methods": ["gradient_x_input", "gradient_shap"]},
                "gradient_shap": {"n_samples": 8},
                "sanity_positive_control": {"windows": 104, "explain_windows": 32, "epochs": 3, "min_r2": -10.0},
            }
        )
    )
    analyses = "gradient_x_input,gradient_shap,combined,faithfulness,sanity_randomization,sanity_positive_control"
    run = explain(case, "--analyses", analyses, "--samples", "32", "--config", config, "--format", "html,json")
    assert run.exit_code == 0, run.output
    report = results(case["out"])
    entry = report["analyses"]["gradient_shap"]
    assert entry["status"] == "ok" and max(entry["field_importance"], key=entry["field_importance"].get) == "a"
    assert report["analyses"]["combined"]["settings"]["methods"] == ["gradient_x_input", "gradient_shap"]
    assert "gradient_shap" in report["analyses"]["faithfulness"]["curves"]
    assert "gradient_shap" in report["analyses"]["faithfulness"]["agreement"]["methods"]
    assert report["sanity"]["sanity_randomization"]["methods"]["gradient_shap"] in ("pass", "fail")
    assert "gradient_shap" in report["sanity"]["sanity_positive_control"]["methods"]
    assert report["settings"]["analysis_params"]["gradient_shap"] == {"n_samples": 8, "stdevs": 0.0}
    html = (case["out"] / "report.html").read_text()
    assert '<section id="gradient_shap">' in html and "<h2>Gradient SHAP" in html
    assert 'href="#gradient_shap">Gradient SHAP</a>' in html  # contents list, title from the spec
    assert "Expected gradients (GradientSHAP" in html  # the generic attribution section, text from the spec
    assert 'alt="Bar chart of gradient shap importance per field' in html  # its figures, drawn by the spec
    headline = html[html.index('<section id="headline">') : html.index("</section>", html.index('id="headline"'))]
    assert '<th class="num">gradient shap</th>' in headline  # its column in the headline's rank table
