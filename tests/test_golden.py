"""Golden results: every number of results.json, for three architectures, is bit-identical to the
numbers pinned in tests/golden/expected/ (timings, versions and paths aside).

A change of structure must pass this unchanged. A change meant to change numbers rewrites the
expected files with ``python tests/golden/make_golden.py`` and says so in its commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))

import make_golden  # noqa: E402


def first_difference(expected: Any, actual: Any, where: str = "") -> str | None:
    """Where two JSON values first differ (exactly: floats too), or None."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if list(expected) != list(actual) and set(expected) != set(actual):
            return f"{where}: keys {sorted(set(expected) ^ set(actual))} differ"
        for key in expected:
            found = first_difference(expected[key], actual[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{where}: {len(expected)} items expected, {len(actual)} found"
        for index, (a, b) in enumerate(zip(expected, actual)):
            found = first_difference(a, b, f"{where}[{index}]")
            if found:
                return found
        return None
    if type(expected) is not type(actual) or expected != actual:
        return f"{where}: expected {expected!r}, found {actual!r}"
    return None


@pytest.mark.parametrize("name", list(make_golden.cases()))
def test_results_are_bit_identical_to_the_golden_ones(name: str, tmp_path: Path) -> None:
    expected = json.loads((GOLDEN / "expected" / f"{name}.json").read_text())
    actual = json.loads(json.dumps(make_golden.run(name, make_golden.cases()[name], tmp_path), sort_keys=True))
    assert first_difference(expected, actual) is None, first_difference(expected, actual)


def test_the_comparison_sees_the_last_bit() -> None:
    expected = {"a": [1.0, {"b": 0.1 + 0.2}]}
    assert first_difference(expected, {"a": [1.0, {"b": 0.3}]}) == ".a[1].b: expected 0.30000000000000004, found 0.3"
    assert first_difference(expected, json.loads(json.dumps(expected))) is None
    assert first_difference({"x": 1}, {"x": 1.0}) == ".x: expected 1, found 1.0"
