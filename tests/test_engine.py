"""The engine seam: every number is the same whoever runs the chunks (issue 12).

Identical numbers across executors hold at the same batch size and thread count; the tests run the
single-process reference with the workers' thread count (one each on this 2-core machine).
"""

from __future__ import annotations

import os
from pathlib import Path

import models
import numpy as np
import pytest
import torch
import worker_models
from helpers import explain, results, strip_timings

from tsreport.engine import Engine, Masked, Permuted, Selector
from tsreport.engine.executors import ProcessExecutor
from tsreport.engine.source import EngineSpec, ModelSource
from tsreport.model import load_model

HERE = Path(__file__).resolve().parent
ANALYSES = "permutation,occlusion,gradient_x_input,integrated_gradients,sensitivity,shap"


def _cnn_case(tmp_path: Path) -> dict:
    data, schema = models.write_case(tmp_path, frame=models.make_frame(groups=3, length=80))
    model = models.save_torchscript(worker_models.DilatedCNN(), tmp_path / "cnn.pt")
    return {"dir": tmp_path, "data": data, "schema": schema, "model": model, "out": tmp_path / "out"}


def _engine(path: Path, batch_size: int) -> Engine:
    loaded = load_model(path)
    return Engine(loaded, layout="btc", task="regression", horizon=1, n_classes=None, batch_size=batch_size)


def _parallel(engine: Engine, path: Path, workers: int) -> Engine:
    source = ModelSource.read(path, engine.loaded.sha256, model_class=None, model_kwargs=None, trust_model=False,
                              max_size=None)  # fmt: skip
    parallel = _engine(path, engine.batch_size)
    executor = ProcessExecutor(workers, threads_total=workers)
    parallel.spec = EngineSpec(source, engine.shape, "cpu", engine.batch_size, engine.batch_size, executor.threads())
    parallel.executor = executor
    return parallel


def test_chunks_in_worker_processes_give_bit_identical_outputs(tmp_path, one_thread):
    path = models.save_torchscript(worker_models.DilatedCNN(), tmp_path / "cnn.pt")
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(53, 8, 6, generator=generator)
    masks = torch.rand(7, 8, 6, generator=generator) > 0.5
    orders = torch.stack([torch.randperm(53, generator=generator) for _ in range(5)])
    permuted = Permuted.of(inputs, orders, [slice(0, 1), slice(1, 2), slice(2, 3), slice(3, 6), slice(0, 6)])
    serial = _engine(path, batch_size=16)
    parallel = _parallel(serial, path, workers=2)
    try:
        assert torch.equal(parallel(inputs), serial(inputs))
        for major in ("window", "perturbation"):
            masked = Masked(inputs, masks, torch.zeros(6))
            assert torch.equal(
                parallel.perturbed(53, 7, masked, major=major), serial.perturbed(53, 7, masked, major=major)
            )
            assert torch.equal(
                parallel.perturbed(53, 5, permuted, major=major), serial.perturbed(53, 5, permuted, major=major)
            )
        assert torch.equal(parallel.gradients(inputs, Selector()), serial.gradients(inputs, Selector()))
        assert parallel.evaluations == serial.evaluations  # the progress bar counts every worker's windows
    finally:
        parallel.executor.close()


def test_restricted_perturbations_build_the_same_windows():
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(20, 4, 5, generator=generator)
    orders = torch.stack([torch.randperm(20, generator=generator) for _ in range(3)])
    permuted = Permuted.of(inputs, orders, [slice(0, 2), slice(2, 3), slice(3, 5)])
    part = permuted.take(slice(6, 11), slice(1, 3))
    window, perturbation = torch.tensor([0, 4, 2, 3]), torch.tensor([0, 1, 1, 0])
    assert torch.equal(part(window, perturbation), permuted(window + 6, perturbation + 1))
    masked = Masked(inputs, torch.rand(6, 4, 5, generator=generator) > 0.5, torch.ones(5))
    assert torch.equal(
        masked.take(slice(3, 9), slice(2, 6))(window, perturbation), masked(window + 3, perturbation + 2)
    )


def _numbers(out: Path) -> dict:
    return strip_timings(results(out)["analyses"])


def test_workers_give_the_same_report_as_one_process(tmp_path, one_thread):
    case = _cnn_case(tmp_path)
    args = ("--samples", "all", "--analyses", ANALYSES, "--batch-size", "32", "--quiet")
    assert explain(case, *args, out=tmp_path / "one").exit_code == 0
    assert explain(case, *args, "--workers", "2", out=tmp_path / "two").exit_code == 0
    assert _numbers(tmp_path / "two") == _numbers(tmp_path / "one")
    engine = results(tmp_path / "two")["run"]["engine"]
    assert engine["worker_count"] == 2 and engine["forward_batch_size"] == 32


def test_a_killed_worker_changes_nothing(tmp_path, one_thread):
    data, schema = models.write_case(tmp_path, frame=models.make_frame(groups=3, length=80))
    weights = models.save_state_dict(worker_models.DilatedCNN(), tmp_path / "cnn_state.pt")
    marker = tmp_path / "killed"
    case = {"data": data, "schema": schema, "model": weights}
    kwargs = f'{{"marker": "{marker}", "parent": {os.getpid()}}}'
    args = ("--samples", "all", "--analyses", "occlusion,permutation", "--batch-size", "32", "--quiet",
            "--model-class", f"{HERE / 'worker_models.py'}:KillOnce", "--model-kwargs", kwargs)  # fmt: skip
    assert explain(case, *args, out=tmp_path / "one").exit_code == 0
    assert not marker.exists()  # one process: never killed
    assert explain(case, *args, "--workers", "2", out=tmp_path / "two").exit_code == 0
    assert marker.exists()  # a worker did die mid-run, and its chunks ran again
    assert _numbers(tmp_path / "two") == _numbers(tmp_path / "one")


def test_batch_size_auto_records_its_probe(case):
    assert explain(case, "--analyses", "occlusion,saliency", "--quiet").exit_code == 0
    engine = results(case["out"])["run"]["engine"]
    assert results(case["out"])["settings"]["batch_size"] == "auto"
    probe = engine["probe"]
    forward = {int(size): rate for size, rate in probe["windows_per_second"]["forward"].items()}
    assert probe["forward"] == engine["forward_batch_size"] == max(forward, key=forward.get)
    assert probe["windows_per_second"]["backward"]  # a gradient method ran: backward probed too
    assert all(np.isfinite(rate) and rate > 0 for rate in forward.values())


def test_a_pinned_batch_size_is_not_probed(case):
    assert explain(case, "--analyses", "occlusion", "--batch-size", "8", "--quiet").exit_code == 0
    engine = results(case["out"])["run"]["engine"]
    assert "probe" not in engine and engine["forward_batch_size"] == 8


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--batch-size", "0", "Invalid --batch-size '0': give a positive integer or 'auto'."),
        ("--workers", "two", "Invalid --workers 'two': give a positive integer or 'auto'."),
        (
            "--scheduler",
            "10.0.0.5",
            "Invalid --scheduler '10.0.0.5': give a Dask scheduler address such as tcp://10.0.0.5:8786, or 'local'.",
        ),
    ],
)
def test_bad_engine_options_are_usage_errors(case, option, value, message):
    result = explain(case, option, value, "--quiet")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == f"Error: {message}"


def test_the_randomisation_check_never_changes_the_users_module(case):
    from tsreport.analyses import BY_NAME
    from tsreport.analyses._base import child_rng
    from tsreport.config import RunConfig
    from tsreport.pipeline import build_context

    model = models.save_torchscript(models.TinyLSTM(), case["dir"] / "lstm.pt")
    config = RunConfig(analyses=("saliency", "sanity_randomization"), samples=16, batch_size=8)
    ctx, loaded, _ = build_context(model, case["data"], case["schema"], config)
    before = {name: (p.detach().clone(), p._version) for name, p in loaded.module.named_parameters()}
    spec = BY_NAME["sanity_randomization"]
    result = spec.run(ctx, config.params(spec.name), rng=child_rng(0, spec.name)).to_dict()
    assert result["verdict"] in ("pass", "fail") and result["stages"]
    for name, parameter in loaded.module.named_parameters():
        assert torch.equal(parameter, before[name][0]), name
        assert parameter._version == before[name][1], f"{name} was written in place"


def _occlusion_masks(window: int, channels: int, size: int) -> torch.Tensor:
    masks = []
    for channel in range(channels):
        for begin in range(0, window, size):
            mask = torch.zeros(window, channels, dtype=torch.bool)
            mask[begin : begin + size, channel] = True
            masks.append(mask)
    return torch.stack(masks)


@pytest.mark.parametrize("model", [worker_models.StackedRecurrent, models.TinyLSTM, worker_models.ConvThenLSTM])
def test_prefix_state_reuse_matches_the_plain_path(model):
    from tsreport.model import LoadedModel

    module = model().eval()
    horizon = 2 if model is worker_models.StackedRecurrent else 1
    inputs = torch.randn(150, 12, 6, generator=torch.Generator().manual_seed(3))
    build = Masked(inputs, _occlusion_masks(12, 6, 3), torch.zeros(6))

    def engine() -> Engine:
        loaded = LoadedModel(module, "state_dict", "m.pt", "0" * 64)
        return Engine(loaded, layout="btc", task="regression", horizon=horizon, n_classes=None, batch_size=40)

    plain_engine, reuse_engine = engine(), engine()
    plain_engine.prefix_reuse = False
    plain = plain_engine.perturbed(150, build.masks.shape[0], build)
    reused = reuse_engine.perturbed(150, build.masks.shape[0], build)
    assert reuse_engine.prefix_info["used"] is True
    assert reuse_engine.prefix_info["max_relative_difference"] <= 1e-5
    assert float((plain - reused).abs().max()) <= 1e-5 * float(plain.abs().max())
    assert reuse_engine.evaluations == plain_engine.evaluations


def test_prefix_state_reuse_is_bit_identical_across_workers(tmp_path, one_thread):
    data, schema = models.write_case(tmp_path, frame=models.make_frame(groups=3, length=80))
    weights = models.save_state_dict(models.TinyLSTM(), tmp_path / "lstm_state.pt")
    case = {"data": data, "schema": schema, "model": weights}
    args = ("--samples", "all", "--analyses", "occlusion", "--batch-size", "32", "--quiet",
            "--model-class", f"{HERE / 'models.py'}:TinyLSTM")  # fmt: skip
    assert explain(case, *args, out=tmp_path / "one").exit_code == 0
    assert explain(case, *args, "--workers", "2", out=tmp_path / "two").exit_code == 0
    assert _numbers(tmp_path / "two") == _numbers(tmp_path / "one")
    assert results(tmp_path / "one")["run"]["engine"]["prefix_reuse"]["used"] is True


def test_auto_remembers_its_choice_so_reruns_are_bit_identical(case, tmp_path, monkeypatch):
    monkeypatch.setenv("TSREPORT_CACHE_DIR", str(tmp_path / "cache"))
    lstm = models.save_torchscript(models.TinyLSTM(), tmp_path / "lstm.pt")
    run = {**case, "model": lstm}
    args = ("--samples", "40", "--analyses", "occlusion,saliency", "--quiet")
    assert explain(run, *args, out=tmp_path / "one").exit_code == 0
    assert explain(run, *args, out=tmp_path / "two").exit_code == 0
    one, two = results(tmp_path / "one"), results(tmp_path / "two")
    assert one["run"]["engine"]["probe"]["remembered"] is False
    assert two["run"]["engine"]["probe"] == {**one["run"]["engine"]["probe"], "remembered": True}
    assert strip_timings(one["analyses"]) == strip_timings(two["analyses"])
    assert (tmp_path / "cache" / "batch-sizes.json").is_file()
    (tmp_path / "cache" / "batch-sizes.json").write_text("{not json")  # a damaged cache: probed again
    assert explain(run, *args, out=tmp_path / "three").exit_code == 0
    assert results(tmp_path / "three")["run"]["engine"]["probe"]["remembered"] is False


def test_workers_auto_decides_by_the_predicted_gain(case):
    assert explain(case, "--analyses", "occlusion", "--workers", "auto", "--batch-size", "16", "--quiet").exit_code == 0
    engine = results(case["out"])["run"]["engine"]
    assert engine["workers"] == "auto"
    if (os.cpu_count() or 1) > 1:
        figures = engine["workers_probe"]
        assert figures["gain"] == pytest.approx(
            figures["per_worker"] * (os.cpu_count() or 1) / figures["all_threads"], rel=0.02
        )
        assert engine["worker_count"] == ((os.cpu_count() or 1) if figures["gain"] >= 1.3 else 1)


def test_a_chunk_that_keeps_killing_its_worker_stops_the_run_with_exit_3(tmp_path):
    from tsreport.engine.executors import MAX_RESTARTS
    from tsreport.exceptions import ClusterError

    path = models.save_torchscript(worker_models.DilatedCNN(), tmp_path / "cnn.pt")
    engine = _engine(path, batch_size=8)
    parallel = _parallel(engine, path, workers=1)
    try:
        with pytest.raises(ClusterError) as raised:
            list(parallel.executor.run(parallel.spec, iter([worker_models.DeadlyChunk()])))
    finally:
        parallel.executor.close()
    assert str(raised.value) == (
        f"A local worker process died {MAX_RESTARTS + 1} times (killed or out of memory); run with fewer --workers "
        "or a smaller --batch-size."
    )
    assert raised.value.exit_code == 3
