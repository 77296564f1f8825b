"""The real-world corpus (tests/corpus_models.py) through the CLI, as a user would run it.

Each case is a model in the style of a widely used time-series library, trained here in seconds on
public data that statsmodels ships (with its real gaps, calendar one-hots and mixed scales), saved in
every format its architecture allows. What is asserted:

- the whole default battery, in html and pdf, exits 0; every analysis is ``ok`` or ``skipped`` with
  a reason, none ``failed``; every number in results.json is finite and no ``ok`` analysis holds a
  null; the ranking agrees with what the data says (the field that drives the target in the top 2,
  the pure-noise field below every field the target depends on);
- every other saved format of the same model gives the same performance and occlusion numbers;
- the same table as .csv, .csv.gz and .parquet gives the same windows and numbers;
- ``tsreport schema`` drafts, for each table, a schema that parses, and whose comments name every
  key a user must still change.

Select with ``-m corpus`` (deselect with ``-m 'not corpus'``); the module takes about a minute on
two cores, its torch work on one intra-op thread.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import corpus_models
import pandas as pd
import pytest
import torch
import yaml
from corpus_models import CASES, CorpusCase, holes, non_finite_numbers, nulls, write_config
from helpers import results, run_cli, strip_timings

from tsreport import analyses
from tsreport.schema import parse_schema

pytestmark = pytest.mark.corpus

SAMPLES = "64"


@pytest.fixture(scope="module")
def one_thread():
    """The models are tiny: one intra-op thread is as fast, and does not stall when the cores are shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> dict[str, CorpusCase]:
    root = tmp_path_factory.mktemp("corpus")
    return {name: build(root / name) for name, build in CASES.items()}


def explain(case: CorpusCase, out: Path, *extra: Any, model: str | None = None, data: Path | None = None) -> Any:
    return run_cli(
        "explain", *case.model_args(model), data or case.data, "--schema", case.schema, "--out", out, "--quiet", *extra
    )


def xfail_known(case: CorpusCase) -> None:
    if case.xfail:
        pytest.xfail(case.xfail)


def assert_close(old: Any, new: Any, where: str = "", rel: float = 1e-4, abs_: float = 1e-5) -> None:
    """Same structure, same strings, floats equal within tolerance."""
    if isinstance(old, dict):
        assert isinstance(new, dict) and set(old) == set(new), f"{where}: keys {sorted(old)} != {sorted(new)}"
        for key in old:
            assert_close(old[key], new[key], f"{where}.{key}", rel, abs_)
    elif isinstance(old, list):
        assert isinstance(new, list) and len(old) == len(new), f"{where}: lengths differ"
        for index, (a, b) in enumerate(zip(old, new)):
            assert_close(a, b, f"{where}[{index}]", rel, abs_)
    elif isinstance(old, float) or isinstance(new, float):
        assert new == pytest.approx(old, rel=rel, abs=abs_), f"{where}: {old} != {new}"
    else:
        assert old == new, f"{where}: {old!r} != {new!r}"


@pytest.mark.parametrize("name", list(CASES))
def test_full_battery_runs_clean_and_honest(corpus: dict[str, CorpusCase], name: str, tmp_path: Path) -> None:
    case = corpus[name]
    xfail_known(case)
    out = tmp_path / "out"
    config = write_config(tmp_path / "config.yaml")
    result = explain(case, out, "--format", "html,pdf", "--samples", SAMPLES, "--config", config)
    assert result.exit_code == 0, result.output

    report = results(out)
    entries = report["analyses"]
    assert list(entries) == analyses.DEFAULT_NAMES  # the whole default battery (opt-in analyses not run)
    failed = {n: e.get("reason") for n, e in entries.items() if e["status"] not in ("ok", "skipped")}
    assert failed == {}
    unexplained = [n for n, e in entries.items() if e["status"] == "skipped" and not e.get("reason")]
    assert unexplained == []
    assert non_finite_numbers(report) == []
    missing_numbers = [p for n, e in entries.items() if e["status"] == "ok" for p in holes(e, report["fields"], n)]
    assert missing_numbers == []

    ranking = report["ranking"]
    assert sorted(ranking) == sorted(case.fields)
    assert case.plausible(ranking) == [], ranking

    if "output" in yaml.safe_load(case.schema.read_text()):  # a quantile head: pinball loss and coverage
        quantiles = entries["performance"]["quantiles"]
        assert quantiles["nominal"] == pytest.approx(0.8) and 0.0 <= quantiles["coverage"] <= 1.0
        assert quantiles["crossing"] == 0.0  # the head keeps its quantiles in order by construction
        assert len(entries["combined"]["per_step"]) == 3  # importance per horizon step (H = 3)

    assert (out / "report.html").stat().st_size > 0
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("name", list(CASES))
def test_every_saved_format_gives_the_same_numbers(corpus: dict[str, CorpusCase], name: str, tmp_path: Path) -> None:
    case = corpus[name]
    quick = ("--analyses", "performance,occlusion", "--samples", SAMPLES, "--format", "json")
    reports, errors = {}, {}
    for label in case.models:
        result = explain(case, tmp_path / label, *quick, model=label)
        if result.exit_code != 0:
            errors[label] = f"exit {result.exit_code}: {result.output.strip()}"
            continue
        report = results(tmp_path / label)
        assert report["inputs"]["model"]["format"] in ("torchscript", "export", "state_dict")
        reports[label] = strip_timings(report["analyses"])
        # Eager recurrent models (a state dict, a checkpoint) get the engine's prefix-state reuse and a
        # note saying so; compiled formats cannot. The numbers must agree all the same.
        notes = reports[label]["occlusion"].pop("notes", [])
        reused = "prefix_reuse" in report["run"]["engine"]
        assert bool(notes) == reused and (not reused or report["run"]["engine"]["prefix_reuse"]["used"])
    assert errors == {}
    first = next(iter(reports))
    for label, analyses_ in reports.items():
        assert_close(reports[first], analyses_, f"{label} vs {first}")


def test_the_architectures_are_saved_in_every_format(corpus: dict[str, CorpusCase]) -> None:
    """Every format each architecture allows, each loaded back and checked against the eager model."""
    not_saved = {name: dict(case.not_saved) for name, case in corpus.items() if case.not_saved}
    assert list(not_saved) == ["co2_tcn"] and list(not_saved["co2_tcn"]) == ["torchscript-script"]
    assert "Parametrization is not working with scripting" in not_saved["co2_tcn"]["torchscript-script"]
    saved = {name: sorted(case.models) for name, case in corpus.items()}
    assert saved == {
        "macro_fcn": ["export", "state_dict", "torchscript-script", "torchscript-trace"],
        "co2_tcn": ["export", "state_dict", "torchscript-trace"],
        "elnino_checkpoint": ["checkpoint", "export", "state_dict", "torchscript-script", "torchscript-trace"],
        "sunspots_quantile": ["export", "state_dict", "torchscript-script", "torchscript-trace"],
    }


def test_lightning_checkpoint_has_prefixed_keys(corpus: dict[str, CorpusCase]) -> None:
    """The checkpoint is shaped as Lightning writes it, so the test above loads what users have."""
    checkpoint = torch.load(corpus["elnino_checkpoint"].models["checkpoint"].path, weights_only=True)
    assert {"state_dict", "hyper_parameters", "epoch", "global_step", "optimizer_states"} <= set(checkpoint)
    assert all(key.startswith("model.") for key in checkpoint["state_dict"])


def test_csv_gz_and_parquet_give_the_same_windows_and_numbers(corpus: dict[str, CorpusCase], tmp_path: Path) -> None:
    """CO2 with its gaps, exported three ways; the Parquet file keeps real types (dates as timestamps)."""
    case = corpus["co2_tcn"]
    frame = pd.read_csv(case.data)
    gz = tmp_path / "co2.csv.gz"
    frame.to_csv(gz, index=False)
    parquet = tmp_path / "co2.parquet"
    frame.assign(date=pd.to_datetime(frame["date"])).to_parquet(parquet, index=False)
    quick = ("--analyses", "performance,permutation,occlusion,predictions", "--samples", SAMPLES, "--format", "json")
    reports = {}
    for data in (case.data, gz, parquet):
        out = tmp_path / data.name.replace(".", "_")
        result = explain(case, out, *quick, data=data)
        assert result.exit_code == 0, f"{data.name}: {result.output}"
        reports[data.name] = results(out)
    csv = reports[case.data.name]
    for name, report in reports.items():
        assert report["windows"] == csv["windows"], name
        assert_close(strip_timings(csv["analyses"]), strip_timings(report["analyses"]), name)


# --------------------------------------------------------------------------- schema drafts

_COMPARED_KEYS = ("task", "time", "window", "horizon", "target", "layout", "missing", "output")


def _draft(case: CorpusCase, truth: dict[str, Any]) -> str:
    """The draft for what a user knows and ``tsreport schema`` lets them say: target, window, and
    (where the command takes them) task and horizon."""
    args = ["schema", case.data, "--target", case.target, "--window", truth["window"]]
    options = run_cli("schema", "--help").output
    if "--task" in options:
        args += ["--task", truth["task"]]
    if "--horizon" in options and truth["task"] == "regression":
        args += ["--horizon", truth.get("horizon", 1)]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return result.output


def _commented(draft: str, key: str) -> bool:
    """Whether the draft's line for ``key`` (set or commented out) carries a comment."""
    for line in draft.splitlines():
        stripped = line.strip().lstrip("# ").strip()
        if stripped.startswith(f"{key}:") and "#" in line:
            return True
    return False


def _target_column(value: Any) -> Any:
    return value.get("column") if isinstance(value, dict) else value


@pytest.mark.parametrize("name", list(CASES))
def test_schema_draft_parses(corpus: dict[str, CorpusCase], name: str) -> None:
    case = corpus[name]
    truth = yaml.safe_load(case.schema.read_text())
    parsed = parse_schema(yaml.safe_load(_draft(case, truth)), source="draft")
    assert parsed.target.column == case.target
    model_columns = [c for field in truth["fields"] for c in field["columns"]]
    assert set(model_columns) <= set(parsed.columns)


@pytest.mark.parametrize("name", list(CASES))
def test_schema_draft_comments_name_every_edit(corpus: dict[str, CorpusCase], name: str) -> None:
    """Given the target and the window, every key the draft gets wrong carries a comment saying what it guessed."""
    case = corpus[name]
    truth = yaml.safe_load(case.schema.read_text())
    draft_text = _draft(case, truth)
    draft = yaml.safe_load(draft_text)
    defaults = {"horizon": 1, "layout": "btc", "missing": "error", "output": None, "time": None}
    silent = []
    for key in _COMPARED_KEYS:
        want, got = truth.get(key, defaults.get(key)), draft.get(key, defaults.get(key))
        if key == "target":
            want, got = _target_column(want), _target_column(got)
        if want != got and not _commented(draft_text, key):
            silent.append(f"{key}: drafted {got!r}, the model needs {want!r}")
    model_columns = {c for field in truth["fields"] for c in field["columns"]}
    for field in draft["fields"]:
        entry = [line for line in draft_text.splitlines() if line.strip().startswith(f"- name: {field['name']}")]
        if not set(field["columns"]) <= model_columns and not any("#" in line for line in entry):
            silent.append(f"field {field['name']!r} is not a model input and its entry says nothing")
    scaled = any("scale" in field for field in truth["fields"])
    if scaled and "scale:" not in draft_text:
        silent.append("the model needs scale: on its fields and the draft never mentions scale")
    assert silent == []


def test_non_finite_walk_finds_nan_and_null() -> None:
    """The walkers the tests rely on (a test of the test helpers)."""
    value = {"a": [1.0, math.nan, {"b": None}], "c": math.inf, "d": "x"}
    assert non_finite_numbers(value) == [".a[1]", ".c"]
    assert nulls(value) == [".a[2].b"]
    entry = {"seconds": 1.0, "per_step": None, "field_importance": {"x": None, "y": 1.0}, "curve": [1.0, None]}
    assert holes(entry, ["x", "y"], "m") == ["m.field_importance.x", "m.curve[1]"]
    assert holes({"windows": [{"error": 1.0, "target_history": None}]}, [], "p") == []
    assert corpus_models.QUICK_CONFIG["sanity_positive_control"]["windows"] == 256
