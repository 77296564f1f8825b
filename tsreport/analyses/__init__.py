"""REGISTRY: the one ordered list of analyses.

Adding an analysis = one file + one line here + one template section + tests.
Analyses run in this order; a later one may use what an earlier one left in
the context (e.g. ``performance`` computes every window's prediction once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tsreport.analyses.attention import attention
from tsreport.analyses.combined import combined
from tsreport.analyses.faithfulness import faithfulness
from tsreport.analyses.gradients import gradient_x_input, integrated_gradients, saliency
from tsreport.analyses.occlusion import occlusion
from tsreport.analyses.performance import performance
from tsreport.analyses.permutation import permutation
from tsreport.analyses.predictions import predictions
from tsreport.analyses.sanity import sanity_positive_control, sanity_randomization
from tsreport.analyses.sensitivity import sensitivity
from tsreport.analyses.shapley import shapley


@dataclasses.dataclass(frozen=True)
class AnalysisSpec:
    name: str
    run: Callable[..., Any]
    title: str


REGISTRY: tuple[AnalysisSpec, ...] = (
    AnalysisSpec("performance", performance, "Model performance"),
    AnalysisSpec("permutation", permutation, "Permutation importance"),
    AnalysisSpec("occlusion", occlusion, "Occlusion"),
    AnalysisSpec("gradient_x_input", gradient_x_input, "Gradient × input"),
    AnalysisSpec("integrated_gradients", integrated_gradients, "Integrated gradients"),
    AnalysisSpec("saliency", saliency, "Saliency"),
    AnalysisSpec("sensitivity", sensitivity, "Sensitivity"),
    AnalysisSpec("shap", shapley, "Field Shapley values"),
    AnalysisSpec("combined", combined, "Combined attribution"),
    AnalysisSpec("attention", attention, "Attention maps"),
    AnalysisSpec("faithfulness", faithfulness, "Faithfulness and agreement"),
    AnalysisSpec("predictions", predictions, "Individual predictions"),
    AnalysisSpec("sanity_randomization", sanity_randomization, "Model-randomisation test"),
    AnalysisSpec("sanity_positive_control", sanity_positive_control, "Planted positive control"),
)

#: Analyses whose per-window time × field maps feed `combined` (and, later, faithfulness).
ATTRIBUTION_METHODS = ("occlusion", "gradient_x_input", "integrated_gradients", "saliency")

NAMES: list[str] = [spec.name for spec in REGISTRY]


def get(name: str) -> AnalysisSpec:
    for spec in REGISTRY:
        if spec.name == name:
            return spec
    raise KeyError(name)
