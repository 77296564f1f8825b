"""`attention`: capturing weights leaves the model's outputs unchanged, maps per layer, skips, the report section."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

import models
import numpy as np
import pytest
import torch
from helpers import explain, results

from tsreport.analyses._base import SkipAnalysis
from tsreport.analyses.attention import MAP_CAP, _summarise, _Totals, attention, capture_attention
from tsreport.config import RunConfig
from tsreport.pipeline import build_context

RNG = np.random.default_rng(0)
MODELS_FILE = Path(models.__file__).resolve()
TRANSFORMER_LAYERS = ["encoder.layers.0.self_attn", "encoder.layers.1.self_attn"]


@pytest.fixture(autouse=True)
def fastpath_on():
    """Every test starts with torch's default (fast path on) and must leave it so."""
    torch.backends.mha.set_fastpath_enabled(True)
    yield
    assert torch.backends.mha.get_fastpath_enabled() is True
    torch.backends.mha.set_fastpath_enabled(True)


def eager_context(tmp_path: Path, name: str, batch_size: int = 1024, **kwargs):
    """A context whose model is a state dict loaded through --model-class (an eager module)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    data, schema = models.write_case(tmp_path)
    path = models.save_state_dict(getattr(models, name)(**kwargs), tmp_path / "model.pt")
    config = RunConfig(samples=None, batch_size=batch_size, model_class=f"{MODELS_FILE}:{name}", model_kwargs=kwargs)
    ctx, _, _ = build_context(path, data, schema, config)
    return ctx


def run(ctx):
    return attention(ctx, RunConfig().params("attention"), rng=RNG)


GRAD_MODES = {"inference_mode": torch.inference_mode, "no_grad": torch.no_grad, "grad": torch.enable_grad}


@pytest.mark.parametrize("mode", GRAD_MODES)
@pytest.mark.parametrize("name", ["TinyTransformer", "DirectAttention"])
def test_capture_leaves_the_model_output_unchanged(name, mode):
    model = getattr(models, name)().eval()
    inputs = torch.randn(11, 8, 6, generator=torch.Generator().manual_seed(0))
    with GRAD_MODES[mode]():
        expected = model(inputs)  # the stock encoder takes torch's fused fast path here (eval, no grad)
        with capture_attention(model) as capture:
            captured = model(inputs)
    torch.testing.assert_close(captured, expected, rtol=1e-6, atol=1e-6)
    layers = TRANSFORMER_LAYERS if name == "TinyTransformer" else ["attention"]
    assert list(capture.records) == layers  # weights really captured, fast path or not
    for calls in capture.records.values():
        assert len(calls) == 1 and calls[0].shape == (11, 2, 8, 8) and calls[0].device.type == "cpu"
        torch.testing.assert_close(calls[0].sum(dim=-1), torch.ones(11, 2, 8))


def test_capture_returns_exactly_what_the_caller_asked_for():
    torch.manual_seed(0)
    layer = torch.nn.MultiheadAttention(8, num_heads=2, batch_first=True).eval()
    x = torch.randn(3, 5, 8)
    unbatched = torch.randn(5, 8)
    calls = {
        "no weights": lambda: layer(x, x, x, need_weights=False),
        "averaged (default)": lambda: layer(x, x, x),
        "per head": lambda: layer(x, x, x, average_attn_weights=False),
        "positional need_weights": lambda: layer(x, x, x, None, False),
        "unbatched averaged": lambda: layer(unbatched, unbatched, unbatched),
        "unbatched per head": lambda: layer(unbatched, unbatched, unbatched, average_attn_weights=False),
    }
    torch.backends.mha.set_fastpath_enabled(False)  # the reference uses the same kernels as the capture
    try:
        with torch.no_grad():
            expected = {name: call() for name, call in calls.items()}
            with capture_attention(layer) as capture:
                got = {name: call() for name, call in calls.items()}
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    for name in calls:
        torch.testing.assert_close(got[name][0], expected[name][0], rtol=1e-6, atol=1e-6, msg=name)
        if expected[name][1] is None:
            assert got[name][1] is None, name
        else:
            torch.testing.assert_close(got[name][1], expected[name][1], rtol=1e-6, atol=1e-6, msg=name)
    shapes = [tuple(w.shape) for w in capture.records["MultiheadAttention"]]
    assert shapes == [(3, 2, 5, 5)] * 4 + [(1, 2, 5, 5)] * 2  # always per head, batched


def test_capture_restores_forward_and_fastpath_even_after_an_error():
    model = models.TinyTransformer().eval()
    torch.backends.mha.set_fastpath_enabled(False)
    with pytest.raises(RuntimeError, match="boom"), capture_attention(model):
        assert torch.backends.mha.get_fastpath_enabled() is False
        assert "forward" in model.encoder.layers[0].self_attn.__dict__
        raise RuntimeError("boom")
    assert torch.backends.mha.get_fastpath_enabled() is False  # the value before, not torch's default
    torch.backends.mha.set_fastpath_enabled(True)
    assert all("forward" not in layer.__dict__ for layer in model.modules())
    with capture_attention(model):
        assert torch.backends.mha.get_fastpath_enabled() is False
    assert torch.backends.mha.get_fastpath_enabled() is True


def test_maps_of_a_stock_transformer_encoder(tmp_path):
    ctx = eager_context(tmp_path, "TinyTransformer")
    result = run(ctx)
    assert torch.backends.mha.get_fastpath_enabled() is True  # restored after the analysis
    assert result.windows == ctx.explained.shape[0] == 104
    assert [layer.name for layer in result.layers] == TRANSFORMER_LAYERS
    for layer in result.layers:
        assert (layer.heads, layer.query_length, layer.key_length, layer.time_axis) == (2, 8, 8, "time")
        assert sum(layer.last_step) == pytest.approx(1.0, abs=1e-6)  # float32 softmax
        assert np.array(layer.map).shape == (8, 8)
        np.testing.assert_allclose(np.array(layer.map).sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(layer.map[-1], layer.last_step, atol=1e-12)
        assert 0.0 < layer.entropy < layer.uniform_entropy == pytest.approx(math.log(8))
        assert layer.map_row_edges is None and layer.map_column_edges is None
    data = result.to_dict()
    assert "field_importance" not in data and "Attention is not Explanation" in data["caveat"]
    assert ctx.explained_outputs().shape == (104, 1)


def test_last_step_is_the_mean_of_the_weights_the_model_itself_returns(tmp_path):
    ctx = eager_context(tmp_path, "DirectAttention")
    result = run(ctx)
    model = ctx.forward.loaded.module
    with torch.no_grad():
        tokens = model.project(ctx.explained_inputs)
        _, weights = model.attention(tokens, tokens, tokens)  # (n, L, S), averaged over heads
    (layer,) = result.layers
    assert layer.name == "attention"
    np.testing.assert_allclose(layer.last_step, weights[:, -1, :].double().mean(dim=0).numpy(), atol=1e-6)
    np.testing.assert_allclose(layer.map, weights.double().mean(dim=0).numpy(), atol=1e-6)
    last = weights[:, -1, :].double()
    # entropy is per head, then averaged: at most the entropy of the head-averaged weights (concavity)
    assert layer.entropy <= float(-(last * last.log()).sum(dim=1).mean()) + 1e-9


def test_batch_size_does_not_change_the_numbers(tmp_path):
    small = run(eager_context(tmp_path / "small", "TinyTransformer", batch_size=7)).to_dict()
    large = run(eager_context(tmp_path / "large", "TinyTransformer")).to_dict()
    for a, b in zip(small["layers"], large["layers"]):
        np.testing.assert_allclose(a["last_step"], b["last_step"], atol=1e-7)
        np.testing.assert_allclose(a["map"], b["map"], atol=1e-7)
        assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-7)


def test_tokens_that_are_not_time_steps_are_labelled_tokens(tmp_path):
    result = run(eager_context(tmp_path, "DirectAttention", patch=2))
    (layer,) = result.layers
    assert (layer.key_length, layer.time_axis) == (4, "token")
    assert sum(layer.last_step) == pytest.approx(1.0)
    assert any("not the window's 8 time steps" in note for note in result.notes)


def test_big_maps_are_reduced_to_64_blocks_whose_rows_still_sum_to_1():
    rng = np.random.default_rng(1)
    weights = torch.from_numpy(rng.random((3, 2, 100, 130)))
    weights /= weights.sum(dim=-1, keepdim=True)
    totals = _Totals(2, torch.zeros(130, dtype=torch.float64), torch.zeros(100, 130, dtype=torch.float64))
    totals.add(weights)
    layer = _summarise("big", totals, window=130)
    mean_map = weights.mean(dim=(0, 1)).numpy()
    reduced = np.array(layer.map)
    assert reduced.shape == (MAP_CAP, MAP_CAP) and layer.time_axis == "time"
    np.testing.assert_allclose(reduced.sum(axis=1), 1.0, atol=1e-12)
    rows, columns = layer.map_row_edges, layer.map_column_edges
    assert rows[0] == columns[0] == 0 and rows[-1] == 100 and columns[-1] == 130
    expected = mean_map[rows[5] : rows[6], columns[7] : columns[8]].sum(axis=1).mean()
    assert reduced[5, 7] == pytest.approx(expected)
    assert len(layer.last_step) == 130 and sum(layer.last_step) == pytest.approx(1.0)


HOOK_REASON = "the model has attention layers ({found}), but their weights cannot be hooked in this format ({fmt}); "
HOOK_FIX = "load it as a state dict with --model-class to see them"


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("how", ["script", "trace"])
def test_a_torchscript_model_with_attention_says_its_attention_cannot_be_hooked(tmp_path, how):
    data, schema = models.write_case(tmp_path)
    model = models.TinyTransformer().eval()
    path = tmp_path / "model.pt"
    if how == "script":
        models.save_torchscript(model, path)
    else:  # a traced graph keeps the submodules' class names, and the attention op itself
        torch.jit.save(torch.jit.trace(model, torch.randn(4, 8, 6), check_trace=False), str(path))
    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=20))
    with pytest.raises(SkipAnalysis) as skip:
        run(ctx)
    assert str(skip.value).startswith(HOOK_REASON.format(found="MultiheadAttention", fmt="TorchScript") + HOOK_FIX)


def test_an_export_program_with_attention_says_its_attention_cannot_be_hooked(tmp_path):
    data, schema = models.write_case(tmp_path)
    example = torch.randn(4, 8, 6)
    path = models.save_export(models.DirectAttention(), tmp_path / "model.pt2", example, dynamic_batch=True)
    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=20))
    with pytest.raises(SkipAnalysis) as skip:
        run(ctx)
    # DirectAttention's own class name has "Attention" in it: the root does not count, its layer does.
    found = HOOK_REASON.format(found="MultiheadAttention", fmt="torch.export program")
    assert str(skip.value).startswith(found + HOOK_FIX)


@pytest.mark.parametrize(
    ("save", "expected"),
    [
        ("state_dict", "the model has no attention layers (no nn.MultiheadAttention)"),
        ("torchscript", "the model has no attention layers (no attention module or op in its TorchScript graph)"),
        ("export", "the model has no attention layers (no attention module or op in its torch.export program graph)"),
    ],
)
@pytest.mark.filterwarnings("ignore:The tensor attributes:UserWarning")  # torch.export on an LSTM
def test_a_model_without_attention_says_it_has_no_attention_layers(tmp_path, save, expected):
    if save == "state_dict":
        ctx = eager_context(tmp_path, "TinyLSTM")
    else:
        data, schema = models.write_case(tmp_path)
        if save == "torchscript":
            path = models.save_torchscript(models.TinyLSTM(), tmp_path / "model.pt")
        else:
            path = models.save_export(
                models.TinyLSTM(), tmp_path / "model.pt2", torch.randn(4, 8, 6), dynamic_batch=True
            )
        ctx, _, _ = build_context(path, data, schema, RunConfig(samples=20))
    with pytest.raises(SkipAnalysis) as skip:
        run(ctx)
    assert str(skip.value) == expected
    assert "hooked" not in str(skip.value) and "--model-class" not in str(skip.value)


class SelfAttention(torch.nn.Module):
    """Attention written by hand, not as nn.MultiheadAttention: there, but not recordable."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(x, x, x)


class HandWrittenAttention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mixer = SelfAttention()
        self.head = torch.nn.Linear(6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mixer(x)[:, -1])


def test_hand_written_attention_is_named_not_called_absent():
    from tsreport.analyses.attention import skip_reason

    assert skip_reason(HandWrittenAttention(), "state_dict") == (
        "the model has attention layers (SelfAttention), but not nn.MultiheadAttention, the only attention layer "
        "whose weights tsreport records"
    )
    assert skip_reason(models.TinyTransformer(), "state_dict") is None


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.section_ids: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "section" and attributes.get("id"):
            self.section_ids.append(attributes["id"])
        if tag == "img":
            self.images.append(attributes)

    def handle_data(self, data):
        self.text.append(data)


def test_a_state_dict_transformer_through_the_cli_gets_an_attention_section(tmp_path):
    data, schema = models.write_case(tmp_path)
    model = models.save_state_dict(models.TinyTransformer(), tmp_path / "model.pt")
    case = {"model": model, "data": data, "schema": schema, "out": tmp_path / "out"}
    model_class = f"{MODELS_FILE}:TinyTransformer"
    outcome = explain(case, "--model-class", model_class, "--analyses", "performance,attention", "--samples", "40")
    assert outcome.exit_code == 0, outcome.output
    entry = results(case["out"])["analyses"]["attention"]
    assert entry["status"] == "ok" and entry["reason"] is None and entry["windows"] == 40
    assert [layer["name"] for layer in entry["layers"]] == TRANSFORMER_LAYERS
    assert torch.backends.mha.get_fastpath_enabled() is True
    page = Page()
    page.feed((case["out"] / "report.html").read_text(encoding="utf-8"))
    assert page.section_ids[-2:] == ["attention", "warnings"]
    text = " ".join(page.text)
    assert "Attention maps" in text and "Attention is not Explanation" in text
    assert "encoder.layers.1.self_attn" in text
    (image,) = [i for i in page.images if "attention layer" in (i.get("alt") or "")]
    assert image["src"].startswith("data:image/svg+xml;base64,")


def test_a_torchscript_model_without_attention_through_the_cli_says_so_in_report_and_summary(case):
    outcome = explain(case, "--analyses", "performance,attention", "--samples", "20")
    assert outcome.exit_code == 0, outcome.output
    entry = results(case["out"])["analyses"]["attention"]
    reason = "the model has no attention layers (no attention module or op in its TorchScript graph)"
    assert entry["status"] == "skipped" and entry["reason"] == reason
    page = Page()
    page.feed((case["out"] / "report.html").read_text(encoding="utf-8"))
    assert "attention" in page.section_ids
    text = " ".join(" ".join(page.text).split())
    assert text.count(reason) == 2  # in the attention section and in the summary's list of what did not run


def test_a_torchscript_transformer_through_the_cli_says_its_attention_cannot_be_hooked(tmp_path):
    data, schema = models.write_case(tmp_path)
    model = models.save_torchscript(models.TinyTransformer(), tmp_path / "model.pt")
    case = {"model": model, "data": data, "schema": schema, "out": tmp_path / "out"}
    outcome = explain(case, "--analyses", "performance,attention", "--samples", "20")
    assert outcome.exit_code == 0, outcome.output
    entry = results(case["out"])["analyses"]["attention"]
    assert entry["status"] == "skipped" and HOOK_FIX in entry["reason"] and "(TorchScript)" in entry["reason"]
    page = Page()
    page.feed((case["out"] / "report.html").read_text(encoding="utf-8"))
    assert "their weights cannot be hooked in this format (TorchScript)" in " ".join(" ".join(page.text).split())
