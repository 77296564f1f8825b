"""Write the golden cases and their expected results.json (timings, versions and paths stripped).

    python tests/golden/make_golden.py            # (re)write expected/*.json from the current code
    python tests/golden/make_golden.py --inputs   # also rebuild the cases' model and data files

The expected files pin every number of results.json for three architectures (the bundled LSTM
forecaster in TorchScript; a weight-normed dilated TCN on statsmodels' CO2 record with its real gaps;
a stock nn.TransformerEncoder from a state dict with --model-class), so that a change of structure
can be proved to change no number (tests/test_golden.py). Rewrite them only for a change that is
meant to change numbers, and say so in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path[:0] = [str(TESTS), str(REPO)]

# Wall-clock, machine and location facts: everything else in results.json must be bit-identical.
VOLATILE_RUN = ("started", "seconds", "argv", "versions")
# The positive control's time limit is a safety net; a generous one keeps it out of the numbers.
CONFIG = {"sanity_positive_control": {"seconds": 3600}}
# A pinned batch size: bit-identical reruns (``auto`` may pick another size on another machine).
PINNED = ["--batch-size", "256"]


def cases() -> dict[str, dict[str, Any]]:
    """name -> {model, data, schema, args}: paths inside tests/golden/."""
    demo = REPO / "examples"
    return {
        "demo_lstm": {"model": demo / "model.pt", "data": demo / "sales.csv", "schema": demo / "schema.yaml",
                      "args": PINNED},
        "co2_tcn": {"model": HERE / "co2_tcn" / "model.pt", "data": HERE / "co2_tcn" / "co2.csv",
                    "schema": HERE / "co2_tcn" / "co2.yaml", "args": ["--samples", "64", *PINNED]},
        "transformer": {"model": HERE / "transformer" / "state_dict.pt", "data": HERE / "transformer" / "data.csv",
                        "schema": HERE / "transformer" / "schema.yaml",
                        "args": ["--samples", "64", "--model-class", f"{TESTS / 'models.py'}:TinyTransformer", *PINNED]},
    }  # fmt: skip


def build_inputs() -> None:
    import shutil
    import tempfile

    import corpus_models
    import models

    with tempfile.TemporaryDirectory() as scratch:
        case = corpus_models.build_co2_tcn(Path(scratch) / "co2")
        target = HERE / "co2_tcn"
        target.mkdir(exist_ok=True)
        shutil.copy(case.models["torchscript-trace"].path, target / "model.pt")
        shutil.copy(case.data, target / "co2.csv")
        shutil.copy(case.schema, target / "co2.yaml")
    target = HERE / "transformer"
    target.mkdir(exist_ok=True)
    models.write_case(target)
    torch.save(models.TinyTransformer().state_dict(), target / "state_dict.pt")


def strip(results: dict[str, Any]) -> dict[str, Any]:
    """results.json without what differs between two runs of the same inputs on two machines or folders."""
    results = json.loads(json.dumps(results))
    for key in VOLATILE_RUN:
        results["run"].pop(key, None)
    for entry in results["inputs"].values():
        entry.pop("path", None)
    for entry in results["analyses"].values():
        entry.pop("seconds", None)
    results.get("settings", {}).pop("model_class", None)
    return results


def run(name: str, case: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Run the full battery on one case, in-process and on one thread; return the stripped results."""
    from click.testing import CliRunner

    from tsreport.cli import main

    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = folder / name
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thread count may change the last bits of a reduction
    try:
        args = ["explain", str(case["model"]), str(case["data"]), "--schema", str(case["schema"]), "--out", str(out),
                "--config", str(config), "--format", "json", "--quiet", *case["args"]]  # fmt: skip
        result = CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        torch.set_num_threads(threads)
    if result.exit_code not in (0, 1):
        raise RuntimeError(f"{name}: exit {result.exit_code}: {result.output}")
    return strip(json.loads((out / "results.json").read_text()))


def main() -> None:
    import tempfile

    if "--inputs" in sys.argv:
        build_inputs()
    expected = HERE / "expected"
    expected.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name, case in cases().items():
            results = run(name, case, Path(scratch))
            (expected / f"{name}.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
            print(f"{name}: {len(json.dumps(results))} bytes")


if __name__ == "__main__":
    main()
