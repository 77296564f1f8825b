"""REGISTRY: the one ordered list of analyses.

Adding an analysis = one file + one line here + one template section + tests.
Analyses run in this order; a later one may use what an earlier one left in
the context (e.g. ``performance`` computes every window's prediction once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tsreport.analyses.performance import performance
from tsreport.analyses.permutation import permutation


@dataclasses.dataclass(frozen=True)
class AnalysisSpec:
    name: str
    run: Callable[..., Any]
    title: str


REGISTRY: tuple[AnalysisSpec, ...] = (
    AnalysisSpec("performance", performance, "Model performance"),
    AnalysisSpec("permutation", permutation, "Permutation importance"),
)

NAMES: list[str] = [spec.name for spec in REGISTRY]


def get(name: str) -> AnalysisSpec:
    for spec in REGISTRY:
        if spec.name == name:
            return spec
    raise KeyError(name)
