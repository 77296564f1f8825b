"""Sanity-check controls, faithfulness and --fail-on sanity."""

from __future__ import annotations

import models
import numpy as np
import pytest
import torch
from helpers import explain, results
from test_attributions import context

from tsreport.analyses import sanity
from tsreport.analyses.aggregation import field_maps
from tsreport.analyses.faithfulness import faithfulness
from tsreport.analyses.gradients import gradient_x_input
from tsreport.analyses.occlusion import occlusion
from tsreport.cli import exit_code
from tsreport.config import RunConfig

RNG = np.random.default_rng(0)
RANDOMISATION = {**RunConfig().params("sanity_randomization"), "windows": 48}
CONTROL = {**RunConfig().params("sanity_positive_control"), "windows": 104, "explain_windows": 64}


def input_magnitude(ctx) -> np.ndarray:
    """An 'attribution' that never looks at the model."""
    return field_maps(ctx.explained_inputs.abs(), ctx.channel_slices())


def random_map(ctx) -> np.ndarray:
    shape = (ctx.explained_inputs.shape[0], ctx.schema.window, len(ctx.field_names))
    return np.random.default_rng(1).random(shape)


def gradient_maps(ctx) -> np.ndarray:
    return gradient_x_input(ctx, {}, rng=RNG).maps["gradient_x_input"]


class TwoLayer(torch.nn.Module):
    """A trained-looking MLP on the last step that reads a strongly and b weakly."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(6, 8)
        self.out = torch.nn.Linear(8, 1)
        with torch.no_grad():
            self.hidden.weight.zero_()
            self.hidden.weight[:, 0] = 1.0
            self.hidden.weight[:4, 1] = 0.1
            self.hidden.bias.zero_()
            self.out.weight.fill_(0.4)
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(x[:, -1, :])))


def test_trained_model_passes_randomisation_for_gradient_x_input(tmp_path):
    ctx = context(tmp_path, TwoLayer())
    outcome = sanity.randomization_test(ctx, {"gradient_x_input": gradient_maps}, RANDOMISATION, RNG)
    verdict = outcome["methods"]["gradient_x_input"]
    assert outcome["verdict"] == "pass" and verdict["verdict"] == "pass"
    assert verdict["trained_top_field"] == "a" and verdict["trained_top_field_share"] > 0.9
    assert outcome["layers"] == ["hidden", "out"] and outcome["stages"] == [1, 2]
    assert [row["top_layer"] for row in outcome["curves"]["gradient_x_input"]] == ["out", "hidden"]


def test_attribution_that_ignores_the_model_fails_randomisation(tmp_path):
    ctx = context(tmp_path, TwoLayer())
    outcome = sanity.randomization_test(ctx, {"input_magnitude": input_magnitude}, RANDOMISATION, RNG)
    verdict = outcome["methods"]["input_magnitude"]
    assert outcome["verdict"] == "fail" and verdict["verdict"] == "fail"
    assert verdict["final"]["spearman"] == pytest.approx(1.0) and verdict["changed_by"] == []


def test_randomisation_restores_the_model_exactly(tmp_path):
    ctx = context(tmp_path, models.TinyLSTM())
    before = ctx.forward(ctx.explained_inputs).clone()
    sanity.randomization_test(ctx, {"gradient_x_input": gradient_maps}, RANDOMISATION, RNG)
    assert torch.equal(before, ctx.forward(ctx.explained_inputs))


def test_randomisation_reaches_export_program_parameters(tmp_path):
    data, schema = models.write_case(tmp_path)
    path = models.save_export(TwoLayer(), tmp_path / "m.pt2", torch.randn(4, 8, 6))
    from tsreport.pipeline import build_context

    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=None))
    outcome = sanity.randomization_test(ctx, {"gradient_x_input": gradient_maps}, RANDOMISATION, RNG)
    assert outcome["layers"] == ["hidden", "out"] and outcome["verdict"] == "pass"


def test_positive_control_passes_a_learnable_model_and_fails_a_random_map(tmp_path):
    ctx = context(tmp_path, models.TinyLSTM())
    methods = {"gradient_x_input": gradient_maps, "random_map": random_map}
    outcome, _ = sanity.positive_control_test(ctx, methods, CONTROL, np.random.default_rng(3))
    linear = outcome["controls"]["linear"]
    assert linear["r2"] >= 0.9
    assert outcome["methods"]["gradient_x_input"]["linear"]["verdict"] == "pass"
    assert outcome["methods"]["gradient_x_input"]["linear"]["ranks"] == {linear["fields"][0]: 1}
    assert outcome["methods"]["random_map"]["verdict"] == "fail"
    assert outcome["verdict"] == "fail"
    assert set(outcome["controls"]) == {"linear", "nonlinear"}
    assert len(outcome["controls"]["nonlinear"]["fields"]) == 2


def test_positive_control_is_reproducible(tmp_path):
    ctx = context(tmp_path, models.TinyLSTM())
    quick = {**CONTROL, "epochs": 4, "min_r2": -10.0}  # reproducibility, not quality: a short run
    first = sanity.positive_control_test(ctx, {"gradient_x_input": gradient_maps}, quick, np.random.default_rng(5))
    second = sanity.positive_control_test(ctx, {"gradient_x_input": gradient_maps}, quick, np.random.default_rng(5))
    assert first == second


def test_faithfulness_curves_and_agreement(tmp_path):
    ctx = context(tmp_path, models.LastStepLinear([3.0, 1.0, 0.0, 0.0, 0.0, 0.0]))
    occluded = occlusion(ctx, RunConfig().params("occlusion"), rng=RNG)
    gradients = gradient_x_input(ctx, {}, rng=RNG)
    ctx.results = {
        name: {"status": "ok", **r.to_dict()} for name, r in [("occlusion", occluded), ("gradient_x_input", gradients)]
    }
    ctx.field_maps = {**occluded.maps, **gradients.maps, "random_map": random_map(ctx).astype(np.float32)}
    params = {**RunConfig().params("faithfulness"), "methods": ["occlusion", "gradient_x_input", "random_map"]}
    result = faithfulness(ctx, params, rng=RNG)
    assert result.fractions[0] == 0.0 and result.fractions[-1] == pytest.approx(0.5) and len(result.fractions) == 11
    assert all(curve[0] == 0.0 for curve in result.curves.values())
    # Deleting the 2 cells that carry the whole output (a and b at the last step) saturates the curve.
    for method in ("occlusion", "gradient_x_input"):
        assert result.auc_ratio[method] > 2.0
    assert result.auc_ratio["random_map"] == pytest.approx(1.0, abs=0.4)
    assert result.ranking[-1] == "random_map"
    agreement = result.agreement
    assert agreement["methods"] == ["occlusion", "gradient_x_input"]
    tau = np.array(agreement["tau"])
    assert np.allclose(tau, tau.T) and np.allclose(np.diag(tau), 1.0)


def test_exit_code_rules():
    ok = {"analyses": {"a": {"status": "ok"}}, "sanity": {"s": {"status": "pass"}}, "warnings": []}
    assert exit_code(ok, "sanity") == 0
    assert exit_code({**ok, "sanity": {"s": {"status": "fail"}}}, "sanity") == 1
    assert exit_code({**ok, "sanity": {"s": {"status": "fail"}}}, "never") == 0
    assert exit_code({**ok, "warnings": ["w"]}, "sanity") == 0
    assert exit_code({**ok, "warnings": ["w"]}, "warning") == 1
    assert exit_code({**ok, "sanity": {"s": {"status": "skipped"}}}, "sanity") == 0


FAST = ("--analyses", "gradient_x_input,sanity_randomization", "--samples", "40", "--format", "json")


def test_fail_on_sanity_exits_1_exactly_when_a_check_fails(case, tmp_path, monkeypatch):
    case["model"] = models.save_torchscript(TwoLayer(), tmp_path / "two.pt")
    passing = explain(case, *FAST, "--fail-on", "sanity", out=tmp_path / "pass")
    assert passing.exit_code == 0, passing.output
    assert results(tmp_path / "pass")["sanity"]["sanity_randomization"]["status"] == "pass"
    monkeypatch.setattr(sanity, "selected_methods", lambda ctx: {"input_magnitude": input_magnitude})
    failing = explain(case, *FAST, "--fail-on", "sanity", out=tmp_path / "fail")
    assert failing.exit_code == 1
    report = results(tmp_path / "fail")
    assert report["sanity"]["sanity_randomization"] == {"status": "fail", "methods": {"input_magnitude": "fail"}}
    assert report["sanity"]["sanity_positive_control"]["status"] == "skipped"
    assert explain(case, *FAST, out=tmp_path / "never").exit_code == 0  # --fail-on never
