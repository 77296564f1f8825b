from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # `import models` for the toy models

import models  # noqa: E402


@pytest.fixture
def case(tmp_path: Path):
    """data.csv + schema.yaml (y(t+1) = 3·a(t)) and a TorchScript LastStepLinear model."""
    data, schema = models.write_case(tmp_path)
    model = models.save_torchscript(models.LastStepLinear(), tmp_path / "model.pt")
    return {"dir": tmp_path, "data": data, "schema": schema, "model": model, "out": tmp_path / "out"}
