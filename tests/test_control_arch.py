"""The planted positive control trains the user's own architecture (issue 9, item 7).

A BatchNorm CNN classifier (tsai/sktime FCN) and a weight-normalised dilated TCN (locuslab/darts)
are re-initialised with their layers' own initialisation, as eager modules and as TorchScript,
and must reach the control's R² under their own architecture, whatever the seed.
"""

from __future__ import annotations

import copy
from pathlib import Path

import control_models
import models
import numpy as np
import pytest
import torch
from test_sanity import gradient_maps

from tsreport.analyses import sanity
from tsreport.config import RunConfig
from tsreport.model import LoadedModel
from tsreport.pipeline import build_context

WINDOW = 16
# 4096 windows: the FCN's global average pooling needs that many to learn the non-linear
# control (b·c at the last step) without overfitting; the linear one and the TCN need far fewer.
CONTROL = {**RunConfig().params("sanity_positive_control"), "windows": 4096, "explain_windows": 64}
SPECS = {
    "fcn": ("FCNClassifier", {"c_in": 6, "classes": 2}),
    "tcn": ("TCN", {"c_in": 6}),
    "tcn_legacy": ("TCN", {"c_in": 6, "legacy": True}),
}


def build(name: str) -> torch.nn.Module:
    class_name, kwargs = SPECS[name]
    torch.manual_seed(0)
    return getattr(control_models, class_name)(**kwargs).eval()


def case(tmp_path: Path, name: str, saved: str):
    """A context over 8 series of 560 rows (4 480 windows of 16 steps) for ``name`` saved as ``saved``:
    ``state_dict`` (loaded into an eager module through --model-class), ``script`` or ``trace``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    frame = models.make_frame(groups=8, length=560, seed=1)
    if name == "fcn":
        overrides = {"task": "classification", "target": "label", "layout": "bct"}
        example = torch.randn(4, 6, WINDOW)
    else:
        overrides = {}
        example = torch.randn(4, WINDOW, 6)
    data, schema = models.write_case(tmp_path, frame, window=WINDOW, **overrides)
    model = build(name)
    config = RunConfig(samples=None)
    if saved == "state_dict":
        path = models.save_state_dict(model, tmp_path / "model.pth")
        class_name, kwargs = SPECS[name]
        spec = f"{Path(control_models.__file__)}:{class_name}"
        config = RunConfig(samples=None, model_class=spec, model_kwargs=kwargs)
    elif saved == "script":
        path = models.save_torchscript(model, tmp_path / "model.pt")
    else:
        path = tmp_path / "model.pt"
        torch.jit.save(torch.jit.trace(model, example), str(path))
    ctx, _, _ = build_context(path, data, schema, config)
    return ctx


# --------------------------------------------------------------------------- the control, end to end


@pytest.mark.parametrize(
    ("name", "saved", "seed"),
    [
        ("fcn", "state_dict", 0),
        ("fcn", "state_dict", 1),
        ("fcn", "state_dict", 2),
        ("fcn", "script", 0),
        ("tcn", "state_dict", 0),
        ("tcn", "state_dict", 1),
        ("tcn", "state_dict", 2),
        ("tcn_legacy", "state_dict", 0),
        ("tcn_legacy", "trace", 1),
        ("tcn", "trace", 2),
    ],
)
def test_the_control_trains_the_users_own_architecture(tmp_path, name, saved, seed):
    ctx = case(tmp_path, name, saved)
    before = ctx.forward(ctx.explained_inputs[:32]).clone()
    outcome, _ = sanity.positive_control_test(
        ctx, {"gradient_x_input": gradient_maps}, CONTROL, np.random.default_rng(seed)
    )
    assert set(outcome["controls"]) == {"linear", "nonlinear"}
    for kind, control in outcome["controls"].items():
        assert control["trained"] == "user", (kind, control)
        assert control["r2"] >= CONTROL["min_r2"], (kind, control)
        assert control["architecture"].startswith("your model's architecture, re-initialised"), control
        assert "reference LSTM" not in control["architecture"] and "verdict" not in control
    how = {
        "state_dict": "your model's architecture, re-initialised by each layer's own reset_parameters() and trained",
        "script": "your model's architecture, re-initialised by the kind of each layer, as torch's defaults do, since",
    }
    assert outcome["controls"]["linear"]["architecture"].startswith(how.get(saved, how["script"]))
    assert set(outcome["methods"]["gradient_x_input"]) == {"linear", "nonlinear", "verdict"}
    assert torch.equal(ctx.forward(ctx.explained_inputs[:32]), before)  # the user's model is untouched


def test_the_control_says_when_it_fell_back_to_the_reference_lstm(tmp_path):
    """A model that reads only the first step cannot learn a target planted on the last step."""

    class FirstStep(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(6, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x[:, 0, :])

    tmp_path.mkdir(parents=True, exist_ok=True)
    data, schema = models.write_case(tmp_path, models.make_frame(groups=4, length=200, seed=1), window=WINDOW)
    path = models.save_torchscript(FirstStep(), tmp_path / "model.pt")
    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=None))
    params = {**CONTROL, "windows": 512}
    outcome, _ = sanity.positive_control_test(
        ctx, {"gradient_x_input": gradient_maps}, params, np.random.default_rng(0)
    )
    linear = outcome["controls"]["linear"]
    assert linear["trained"] == "reference" and linear["r2"] >= 0.9
    assert linear["user_architecture_r2"] < 0.9
    assert linear["architecture"].startswith("the built-in reference LSTM, not your architecture (a fresh copy of")
    reached = f"reached only R² {linear['user_architecture_r2']:.2f} < 0.9 in 40 epochs on 512 windows"
    assert reached in linear["architecture"]


def test_an_export_program_is_said_to_be_untrainable(tmp_path):
    loaded = LoadedModel(torch.nn.Linear(2, 1), "export", "m.pt2", "")
    copied, why = sanity._fresh_copy(loaded, 0)
    assert copied is None and why.startswith("a torch.export program is a fixed graph")


# --------------------------------------------------------------------------- the fresh copy


def loaded(module: torch.nn.Module, saved: str) -> LoadedModel:
    if saved == "eager":
        return LoadedModel(module, "state_dict", "m.pth", "")
    example = (
        torch.randn(4, 6, WINDOW) if isinstance(module, control_models.FCNClassifier) else torch.randn(4, WINDOW, 6)
    )
    scripted = torch.jit.script(module) if saved == "script" else torch.jit.trace(module, example)
    return LoadedModel(scripted, "torchscript", "m.pt", "")


def trained_looking(module: torch.nn.Module) -> torch.nn.Module:
    """Parameters and statistics far from any fresh initialisation, as after training."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(3.0).add_(0.7)
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.fill_(5.0)
            elif name.endswith("running_var"):
                buffer.fill_(9.0)
            elif name.endswith("num_batches_tracked"):
                buffer.fill_(1000)
    return module


@pytest.mark.parametrize("saved", ["eager", "script"])
def test_batch_norm_layers_restart_as_the_identity(saved):
    user = loaded(trained_looking(build("fcn")), saved)
    original = copy.deepcopy(dict(user.module.state_dict()))
    fresh, how = sanity._fresh_copy(user, 7)
    assert fresh is not None and fresh.training
    state = fresh.state_dict()
    for prefix in ("features.1.", "features.4.", "features.7."):
        assert torch.equal(state[prefix + "weight"], torch.ones_like(state[prefix + "weight"]))
        assert torch.equal(state[prefix + "bias"], torch.zeros_like(state[prefix + "bias"]))
        assert torch.equal(state[prefix + "running_mean"], torch.zeros_like(state[prefix + "running_mean"]))
        assert torch.equal(state[prefix + "running_var"], torch.ones_like(state[prefix + "running_var"]))
        assert int(state[prefix + "num_batches_tracked"]) == 0
    for key in ("features.0.weight", "features.3.weight", "head.weight", "head.bias", "features.0.bias"):
        fan_in = int(np.prod(state[key.replace("bias", "weight")].shape[1:]))
        assert state[key].abs().max() <= 1.0 / np.sqrt(fan_in) + 1e-6  # torch's default U(±1/√fan_in)
        assert state[key].std() > 0.2 / np.sqrt(fan_in)
    for key, value in user.module.state_dict().items():
        assert torch.equal(value, original[key]), key  # the user's model is untouched


@pytest.mark.parametrize(
    ("name", "saved"), [("tcn", "eager"), ("tcn_legacy", "eager"), ("tcn", "trace"), ("tcn_legacy", "trace")]
)
def test_weight_normalised_layers_get_consistent_g_and_v(name, saved):
    user = loaded(trained_looking(build(name)), saved)
    fresh, _ = sanity._fresh_copy(user, 7)
    state = fresh.state_dict()
    pairs = [
        (key[: -len("original0")] + "original1", key) if key.endswith("original0") else (key[:-2] + "_v", key)
        for key in state
        if key.endswith(("parametrizations.weight.original0", "weight_g"))
    ]
    assert len(pairs) == 6  # two weight-normalised convolutions in each of three blocks
    for v_key, g_key in pairs:
        v, g = state[v_key], state[g_key]
        assert g.shape == (v.shape[0], 1, 1)
        torch.testing.assert_close(g, v.flatten(1).norm(dim=1).reshape(g.shape))  # so g·v/||v|| = v
        bound = 1.0 / np.sqrt(np.prod(v.shape[1:]))
        assert v.abs().max() <= bound + 1e-6 and v.std() > 0.2 * bound  # a fresh Conv1d's weight
    assert all(not torch.equal(state[k], user.module.state_dict()[k]) for k in state)
    output = fresh.eval()(torch.randn(3, WINDOW, 6))
    assert output.shape == (3, 1) and torch.isfinite(output).all()


@pytest.mark.parametrize(
    ("name", "saved"), [("fcn", "eager"), ("fcn", "script"), ("tcn_legacy", "eager"), ("tcn", "trace")]
)
def test_the_copy_depends_only_on_the_seed_and_leaves_the_global_rng_alone(name, saved):
    user = loaded(build(name), saved)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first, _ = sanity._fresh_copy(user, 11)
    assert torch.equal(torch.random.get_rng_state(), state)
    second, _ = sanity._fresh_copy(user, 11)
    other, _ = sanity._fresh_copy(user, 12)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert any(
        not torch.equal(v, other.state_dict()[k]) for k, v in first.state_dict().items() if v.is_floating_point()
    )


def test_the_control_is_reproducible_on_a_batch_norm_model(tmp_path):
    ctx = case(tmp_path, "fcn", "state_dict")
    quick = {**CONTROL, "windows": 512, "epochs": 3, "min_r2": -10.0}
    runs = [
        sanity.positive_control_test(ctx, {"gradient_x_input": gradient_maps}, quick, np.random.default_rng(4))
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
