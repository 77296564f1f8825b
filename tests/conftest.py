from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # `import models` for the toy models

import models  # noqa: E402

from tsreport.results import first_problem  # noqa: E402


@pytest.fixture
def one_thread():
    """torch at one intra-op thread for the test: what each of two workers gets on 2 cores, so that a
    single-process reference has the workers' thread count (identical numbers need the same)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def probe_cache(tmp_path_factory: pytest.TempPathFactory):
    """``--batch-size auto`` remembers its choices (tsreport/engine/probe.py): in a folder of this
    session's own, never the user's cache."""
    import os

    folder = tmp_path_factory.mktemp("tsreport-cache")
    previous = os.environ.get("TSREPORT_CACHE_DIR")
    os.environ["TSREPORT_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("TSREPORT_CACHE_DIR", None)
    else:
        os.environ["TSREPORT_CACHE_DIR"] = previous


@pytest.fixture
def case(tmp_path: Path):
    """data.csv + schema.yaml (y(t+1) = 3·a(t)) and a TorchScript LastStepLinear model."""
    data, schema = models.write_case(tmp_path)
    model = models.save_torchscript(models.LastStepLinear(), tmp_path / "model.pt")
    return {"dir": tmp_path, "data": data, "schema": schema, "model": model, "out": tmp_path / "out"}


# ---------------------------------------------------------------- every results.json a test writes fits the schema

#: (path, sha256) of the results.json files already checked in this session.
_CHECKED: set[tuple[Path, str]] = set()


def _results_json_problems(folder: Path) -> list[str]:
    """The schema problems (strict: every key written) of each results.json tsreport wrote under ``folder``.

    Written by tsreport means: the run manifest beside it (.tsreport-run.json) lists it with its sha256.
    A results.json a test wrote or edited by hand (to feed ``diff`` or ``history`` a bad file) is not.
    """
    found = []
    for path in sorted(folder.rglob("results.json")):
        try:
            data = path.read_bytes()
            listed = json.loads((path.parent / ".tsreport-run.json").read_bytes())["files"]["results.json"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != listed or (path, digest) in _CHECKED:
            continue
        _CHECKED.add((path, digest))
        problem = first_problem(json.loads(data))
        if problem:
            found.append(f"{path}: {problem}")
    return found


@pytest.fixture(autouse=True)
def _results_json_fits_the_schema(request: pytest.FixtureRequest):
    """After each test that used tmp_path: the results.json files tsreport wrote there fit the schema."""
    yield
    folder = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    if folder is not None:
        problems = _results_json_problems(Path(folder))
        if problems:
            pytest.fail("results.json does not fit tsreport/schemas/results.schema.json:\n" + "\n".join(problems))


@pytest.fixture(autouse=True, scope="session")
def _session_results_json_fit_the_schema(tmp_path_factory: pytest.TempPathFactory):
    """At the end of the session: the same for the folders of tmp_path_factory (module-scoped runs)."""
    yield
    problems = _results_json_problems(tmp_path_factory.getbasetemp())
    if problems:
        pytest.fail("results.json does not fit tsreport/schemas/results.schema.json:\n" + "\n".join(problems))
