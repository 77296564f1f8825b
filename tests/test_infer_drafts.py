"""``tsreport schema`` on the repository's CSVs gives exactly the drafts in ``tests/data/drafts``.

The drafts were written before ``draft_schema`` was split into named steps; any change to
``tsreport/infer.py`` that alters a comment, a key or a number shows up here as a diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
DRAFTS = ROOT / "tests" / "data" / "drafts"


@pytest.mark.parametrize(
    ("expected", "args"),
    [
        ("sales.yaml", ["examples/sales.csv"]),
        ("sales_horizon3.yaml", ["examples/sales.csv", "--horizon", "3"]),
        ("co2.yaml", ["tests/golden/co2_tcn/co2.csv"]),
        ("transformer.yaml", ["tests/golden/transformer/data.csv"]),
        ("transformer_classification.yaml", ["tests/golden/transformer/data.csv", "--task", "classification"]),
    ],
)
def test_draft_is_byte_identical(expected: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The draft names its source as given on the command line: run from the root with relative paths.
    monkeypatch.chdir(ROOT)
    result = run_cli("schema", *args)
    assert result.exit_code == 0, result.output
    assert result.output == (DRAFTS / expected).read_text()
