"""Library warnings: those about the user's model or data go into the report once each; the rest reach
stderr only with --verbose, one line each; nothing multi-line or raw ever reaches stderr."""

from __future__ import annotations

import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import models
import numpy as np
import pytest
from helpers import explain as run_cli_explain
from helpers import results

from tsreport import analyses
from tsreport.config import build_config
from tsreport.pipeline import explain
from tsreport.progress import capture_warnings, warning_phase

FAST = "performance,permutation,occlusion"
TOY_MESSAGE = "toy model looked at its inputs"


def model_file(folder: Path, body: str, name: str) -> str:
    """A --model-class file whose model is LastStepLinear plus ``body`` in its forward."""
    path = folder / f"{name}.py"
    path.write_text(
        textwrap.dedent(
            """\
            import warnings

            import torch
            from torch import nn


            class Model(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.linear = nn.Linear(6, 1)

                def forward(self, x):
            {body}
                    return self.linear(x[:, -1, :])
            """
        ).format(body=textwrap.indent(textwrap.dedent(body), " " * 8))
    )
    return f"{path}:Model"


def run(case: dict[str, Any], model_class: str, *, verbose: bool = False, names: str = FAST) -> Any:
    weights = models.save_state_dict(models.LastStepLinear(), case["dir"] / "weights.pt")
    config = build_config(
        {},
        {"analyses": names, "samples": "16", "verbose": verbose, "model_class": model_class},
        analysis_names=analyses.NAMES,
    )
    return explain(weights, case["data"], case["schema"], config)


def test_a_warning_from_the_models_forward_is_in_the_report_exactly_once(
    case: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    spec = model_file(case["dir"], f'warnings.warn("{TOY_MESSAGE}", UserWarning)', "warny")
    filters, showwarning = list(warnings.filters), warnings.showwarning
    report = run(case, spec)
    mentions = [w for w in report.warnings if TOY_MESSAGE in w]
    assert mentions == [
        "The model raised a UserWarning while checking the model and running analyses 'performance', "
        f"'permutation', 'occlusion' (warny.py:13): {TOY_MESSAGE}."
    ]
    assert capsys.readouterr().err == ""  # in the report, not on stderr
    assert warnings.filters == filters and warnings.showwarning is showwarning  # nothing leaks out of the run


def test_a_torch_warning_raised_inside_the_model_is_in_the_report(case: dict[str, Any]) -> None:
    # softmax without dim: torch itself warns (from torch/nn/functional.py), about the user's model.
    spec = model_file(case["dir"], "torch.nn.functional.softmax(x[:, -1, :])", "implicit_softmax")
    report = run(case, spec, names="performance")
    [mention] = [w for w in report.warnings if "Implicit dimension choice for softmax" in w]
    assert mention.startswith("The model raised a UserWarning while checking the model and running analysis ")
    assert "'performance'" in mention


def test_a_deprecation_from_a_library_is_kept_off_the_report_and_off_stderr_unless_verbose(
    case: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    library = case["dir"] / "site-packages" / "oldlib_for_tests"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text(
        "import warnings\n\n\ndef scale(x):\n"
        "    warnings.warn('oldlib.scale is deprecated;\\nuse newlib.scale', DeprecationWarning, stacklevel=1)\n"
        "    return x\n"
    )
    monkeypatch.syspath_prepend(str(library.parent))
    monkeypatch.delitem(sys.modules, "oldlib_for_tests", raising=False)
    spec = model_file(case["dir"], "import oldlib_for_tests\nx = oldlib_for_tests.scale(x)", "uses_oldlib")

    report = run(case, spec)
    assert not [w for w in report.warnings if "oldlib" in w]
    assert capsys.readouterr().err == ""

    report = run(case, spec, verbose=True)
    assert not [w for w in report.warnings if "oldlib" in w]
    lines = [line for line in capsys.readouterr().err.splitlines() if "oldlib" in line]
    assert lines == [
        "tsreport: library warning (DeprecationWarning, oldlib_for_tests/__init__.py:5) while checking the model: "
        "oldlib.scale is deprecated;"
    ]


def test_the_cli_keeps_stderr_clean_and_records_the_models_warning(case: dict[str, Any]) -> None:
    spec = model_file(case["dir"], f'warnings.warn("{TOY_MESSAGE}\\nsecond line", RuntimeWarning)', "cli_warny")
    weights = models.save_state_dict(models.LastStepLinear(), case["dir"] / "weights.pt")
    run_case = {**case, "model": weights}
    common = ("--model-class", spec, "--analyses", "performance", "--samples", "8", "--format", "json")
    result = run_cli_explain(run_case, *common)
    assert result.exit_code == 0, result.output
    assert TOY_MESSAGE not in result.stderr and "Warning" not in result.stderr
    [mention] = [w for w in results(case["out"])["warnings"] if TOY_MESSAGE in w]
    assert mention.endswith(f"(cli_warny.py:13): {TOY_MESSAGE}.")  # the first line only
    verbose = run_cli_explain(run_case, *common, "--verbose")
    assert verbose.exit_code == 0, verbose.output
    shown = [line for line in verbose.stderr.splitlines() if TOY_MESSAGE in line]
    # Echoed when first raised, naming where that was (the report's sentence names every place).
    assert shown == [
        f"tsreport: warning: The model raised a RuntimeWarning while checking the model (cli_warny.py:13): {TOY_MESSAGE}."
    ]
    assert "second line" not in verbose.stderr


def test_the_classification_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = tmp_path / "site-packages"
    (library / "somelib_for_tests").mkdir(parents=True)
    (library / "somelib_for_tests" / "__init__.py").write_text(
        "import warnings\n\n\ndef note():\n    warnings.warn('somelib_for_tests note', UserWarning, stacklevel=1)\n"
    )
    monkeypatch.syspath_prepend(str(library))
    import somelib_for_tests

    sentences: list[str] = []
    with capture_warnings(False, sentences) as caught:
        somelib_for_tests.note()  # a library's note to tsreport outside the model: noise
        with warning_phase("running analysis 'performance'", analysis="performance"):
            too_big = np.float32(3e38) * np.float32(10)  # numpy overflow: about the numbers
            for _ in range(3):
                warnings.warn("old API", DeprecationWarning, stacklevel=1)  # deprecations are always noise
        with warning_phase("reading the data", inputs=True):
            warnings.warn("Columns (3) have mixed types", UserWarning, stacklevel=1)  # while reading the inputs
    assert np.isinf(too_big)
    assert sentences == caught.sentences()
    assert sentences[0].startswith(
        "numpy warned 'overflow encountered in scalar multiply' while running analysis 'performance' "
        "(test_warnings_capture.py:"
    )
    assert sentences[0].endswith(
        "): the model's outputs or the data hold values too large or undefined for this computation, "
        "so its numbers may be inf or NaN."
    )
    assert sentences[1].startswith("A UserWarning was raised while reading the data (")
    assert sentences[1].endswith("): Columns (3) have mixed types.")
    assert len(sentences) == 2
    assert caught.noise() == ["UserWarning: somelib_for_tests note", "DeprecationWarning: old API"]


def test_rendering_library_warnings_are_noise_even_while_rendering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    library = tmp_path / "site-packages" / "matplotlib"
    library.mkdir(parents=True)
    (library / "fake_for_tests.py").write_text(
        "import warnings\n\n\ndef draw():\n    warnings.warn('Glyph 9472 missing from font', UserWarning)\n"
    )
    monkeypatch.syspath_prepend(str(library.parent.parent / "site-packages"))
    monkeypatch.delitem(sys.modules, "matplotlib.fake_for_tests", raising=False)
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_matplotlib_module", library / "fake_for_tests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with capture_warnings(True, where="rendering the report") as caught:
        module.draw()
        module.draw()
    assert caught.sentences() == []
    assert capsys.readouterr().err.splitlines() == [
        "tsreport: library warning (UserWarning, matplotlib/fake_for_tests.py:5) while rendering the report: "
        "Glyph 9472 missing from font"
    ]
