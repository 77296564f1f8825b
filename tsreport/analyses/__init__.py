"""REGISTRY: the one ordered list of analyses, and the queries the rest of the program asks it.

Each analysis module declares one :class:`~tsreport.analyses._base.AnalysisSpec` (its name, kind,
settings, needs, run, figures and report section); adding an analysis is one file with its spec,
one line here, and its tests. Analyses run in this order: a later one sees the results and maps of
the earlier ones, read-only (``combined`` averages the maps of the methods before it).
"""

from __future__ import annotations

from tsreport.analyses import (
    attention,
    combined,
    faithfulness,
    gradient_shap,
    gradients,
    occlusion,
    performance,
    permutation,
    predictions,
    sanity,
    sensitivity,
    shapley,
)
from tsreport.analyses._base import ATTRIBUTION_MAP, CHECK, FIELD_SCORES, NEEDS_MAPS, AnalysisSpec  # noqa: F401

REGISTRY: tuple[AnalysisSpec, ...] = (
    performance.SPEC,
    permutation.SPEC,
    occlusion.SPEC,
    gradients.GRADIENT_X_INPUT,
    gradients.INTEGRATED_GRADIENTS,
    gradients.SALIENCY,
    gradient_shap.SPEC,
    sensitivity.SPEC,
    shapley.SPEC,
    combined.SPEC,
    attention.SPEC,
    faithfulness.SPEC,
    predictions.SPEC,
    sanity.RANDOMIZATION,
    sanity.POSITIVE_CONTROL,
)

BY_NAME: dict[str, AnalysisSpec] = {spec.name: spec for spec in REGISTRY}
#: Every analysis --analyses may name.
NAMES: list[str] = [spec.name for spec in REGISTRY]
#: The default battery (no --analyses): every analysis but the opt-in ones.
DEFAULT_NAMES: list[str] = [spec.name for spec in REGISTRY if spec.default]


def selected(analyses: tuple[str, ...] | list[str] | None) -> list[AnalysisSpec]:
    """The specs a run executes, in registry order (None: the default battery)."""
    return [spec for spec in REGISTRY if (spec.default if analyses is None else spec.name in analyses)]


def attribution_methods(analyses: tuple[str, ...] | list[str] | None = ()) -> list[str]:
    """Attribution methods (maps from the model alone): what `combined` may average and the sanity
    checks re-run. ``analyses``: only those a run with this --analyses executes; () (default): all."""
    specs = REGISTRY if analyses == () else selected(analyses)
    return [spec.name for spec in specs if spec.is_method]


def map_producers() -> list[str]:
    """Every analysis that leaves per-window maps (the methods and `combined`), in registry order."""
    return [spec.name for spec in REGISTRY if spec.kind == ATTRIBUTION_MAP]


def map_sources() -> list[str]:
    """Where a shown window's attribution map comes from, best first: `combined`, then each method."""
    return sorted(map_producers(), key=lambda name: BY_NAME[name].is_method)


def ranked_analyses() -> list[str]:
    """Analyses that rank the fields (faithfulness's agreement matrix compares them)."""
    return [spec.name for spec in REGISTRY if spec.kind in (ATTRIBUTION_MAP, FIELD_SCORES)]


def headline_methods() -> list[str]:
    """The methods in the headline's rank table: every field ranking but the combined one it shows."""
    return [name for name in ranked_analyses() if NEEDS_MAPS not in BY_NAME[name].needs]


def checks() -> list[str]:
    """The sanity controls, with a verdict per method (results.json's `sanity` block)."""
    return [spec.name for spec in REGISTRY if spec.kind == CHECK]


def settings_help() -> list[tuple[str, str]]:
    """(``analysis.setting``, "what it does [default: ...]") of every analysis's settings, for ``--help``."""
    from tsreport.config import analysis_defaults

    defaults = analysis_defaults()
    rows = []
    for spec in REGISTRY:
        for key, help_text in spec.params.help().items():
            default = "every map of the run" if key in spec.params.selection_dependent() else defaults[spec.name][key]
            rows.append((f"{spec.name}.{key}", f"{help_text} [default: {default}]"))
    return rows


def settings_table() -> str:
    """Markdown rows `| analysis | setting | default | what it does |` of every analysis's settings, from the specs
    (for the README and ``--help``)."""
    from tsreport.config import analysis_defaults

    rows = ["| analysis | setting | default | what it does |", "|---|---|---|---|"]
    defaults = analysis_defaults()
    for spec in REGISTRY:
        for key, help_text in spec.params.help().items():
            default = defaults[spec.name][key]
            shown = "every map of the run" if key in spec.params.selection_dependent() else repr(default)
            rows.append(f"| `{spec.name}` | `{key}` | {shown} | {help_text} |")
    return "\n".join(rows)
