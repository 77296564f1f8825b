"""All four saved-model formats load, and give the same outputs as the eager model."""

from __future__ import annotations

from pathlib import Path

import models
import numpy as np
import pytest
import torch
from helpers import explain, results

from tsreport.engine import Engine
from tsreport.model import detect_format, load_model

MODEL_CLASS = f"{Path(models.__file__).resolve()}:TinyLSTM"


def _forward(loaded, batch_size=1024):
    return Engine(loaded, layout="btc", task="regression", horizon=1, n_classes=None, batch_size=batch_size)


@pytest.fixture
def eager():
    return models.TinyLSTM().eval()


@pytest.fixture
def inputs():
    return torch.randn(37, 8, 6, generator=torch.Generator().manual_seed(0))


def _expected(model, inputs):
    with torch.no_grad():
        return model(inputs)


def test_torchscript(tmp_path, eager, inputs):
    path = models.save_torchscript(eager, tmp_path / "m.pt")
    loaded = load_model(path)
    assert detect_format(path) == "torchscript" and loaded.format == "torchscript"
    torch.testing.assert_close(_forward(loaded)(inputs), _expected(eager, inputs))


def test_export_with_static_batch_runs_in_padded_chunks(tmp_path, eager, inputs):
    path = models.save_export(eager, tmp_path / "m.pt2", torch.randn(16, 8, 6))
    loaded = load_model(path)
    assert loaded.format == "export" and loaded.static_batch == 16
    assert loaded.static_input_shape == (16, 8, 6)
    forward = _forward(loaded, batch_size=1000)
    out = forward(inputs)  # 37 windows = 16 + 16 + 5 (padded to 16)
    assert forward.batch_size == 16
    torch.testing.assert_close(out, _expected(eager, inputs), rtol=1e-5, atol=1e-6)


def test_export_with_dynamic_batch(tmp_path, eager, inputs):
    path = models.save_export(eager, tmp_path / "m.pt2", torch.randn(4, 8, 6), dynamic_batch=True)
    loaded = load_model(path)
    assert loaded.static_batch is None
    torch.testing.assert_close(_forward(loaded)(inputs), _expected(eager, inputs), rtol=1e-5, atol=1e-6)


def test_state_dict_with_model_class(tmp_path, eager, inputs):
    path = models.save_state_dict(eager, tmp_path / "m.pt")
    loaded = load_model(path, model_class=MODEL_CLASS, model_kwargs={"hidden": 8})
    assert loaded.format == "state_dict"
    torch.testing.assert_close(_forward(loaded)(inputs), _expected(eager, inputs))


def test_training_checkpoint_holding_a_state_dict(tmp_path, eager, inputs):
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": eager.state_dict()}, path)
    loaded = load_model(path, model_class=MODEL_CLASS)
    torch.testing.assert_close(_forward(loaded)(inputs), _expected(eager, inputs))


def test_pickled_module_only_with_trust(tmp_path, eager, inputs):
    path = models.save_pickle(eager, tmp_path / "m.pt")
    loaded = load_model(path, trust_model=True)
    assert loaded.format == "pickle"
    torch.testing.assert_close(_forward(loaded)(inputs), _expected(eager, inputs))


@pytest.mark.parametrize("fmt", ["torchscript", "export", "state_dict", "pickle"])
def test_every_format_gives_the_same_report(tmp_path, case, fmt):
    eager = models.TinyLSTM().eval()
    if fmt == "torchscript":
        path, extra = models.save_torchscript(eager, tmp_path / "m.pt"), []
    elif fmt == "export":
        path, extra = models.save_export(eager, tmp_path / "m.pt2", torch.randn(8, 8, 6)), []
    elif fmt == "state_dict":
        path, extra = models.save_state_dict(eager, tmp_path / "m.pt"), ["--model-class", MODEL_CLASS]
    else:
        path, extra = models.save_pickle(eager, tmp_path / "m.pt"), ["--trust-model"]
    subset = ("--analyses", "performance,permutation,occlusion,gradient_x_input")
    result = explain({**case, "model": path}, "--samples", "30", *subset, *extra, out=tmp_path / fmt)
    assert result.exit_code == 0, result.output
    report = results(tmp_path / fmt)
    assert report["inputs"]["model"]["format"] == fmt
    reference = _expected(eager, torch.zeros(1, 8, 6))  # same model: same performance
    assert reference.shape == (1, 1)
    mae = report["analyses"]["performance"]["overall"]["mae"]
    baseline = tmp_path / "reference"
    if not baseline.exists():
        ts = models.save_torchscript(eager, tmp_path / "ref.pt")
        assert explain({**case, "model": ts}, "--samples", "30", *subset, out=baseline).exit_code == 0
    assert mae == pytest.approx(results(baseline)["analyses"]["performance"]["overall"]["mae"], rel=1e-5)
    assert np.isfinite(report["analyses"]["permutation"]["field_importance"]["a"])
