"""The analysis contract: one spec per analysis, and every method list a query on the registry."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import models
import numpy as np
import pytest

from tsreport import analyses
from tsreport.analyses._base import KINDS, AnalysisSpec
from tsreport.analyses.gradients import gradient_x_input
from tsreport.config import RunConfig, analysis_defaults, build_config
from tsreport.exceptions import UsageError
from tsreport.pipeline import build_context

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

#: The per-analysis defaults as config.py spelled them out before the specs held them: results.json's
#: resolved settings of the default battery must stay exactly these (the golden test checks the numbers).
BEFORE = {
    "performance": {},
    "permutation": {"n_repeats": 5},
    "occlusion": {"size": 4, "stride": None},
    "gradient_x_input": {"tsr": False, "tsr_threshold": 1.0},
    "integrated_gradients": {
        "n_steps": 50, "method": "gausslegendre", "internal_batch_size": None, "tsr": False, "tsr_threshold": 1.0,
    },
    "saliency": {"tsr": False, "tsr_threshold": 1.0},
    "sensitivity": {"delta": 0.1},
    "shap": {"max_exact_fields": 10, "n_samples": 2000},
    "combined": {"methods": ["occlusion", "gradient_x_input"]},
    "attention": {},
    "sanity_randomization": {
        "windows": 64, "max_stages": 6, "max_spearman": 0.5, "max_top10_overlap": 0.5, "min_share_change": 0.5,
        "max_field_rank_tau": 0.5,
    },
    "sanity_positive_control": {"windows": 1024, "explain_windows": 128, "epochs": 40, "seconds": 120, "min_r2": 0.9},
    "predictions": {"max_fields": 8},
    "faithfulness": {
        "step": 0.05, "max_fraction": 0.5, "max_windows": 256,
        "methods": ["occlusion", "gradient_x_input", "integrated_gradients", "saliency", "combined"],
    },
}  # fmt: skip


def test_every_analysis_declares_a_complete_spec():
    assert len(set(analyses.NAMES)) == len(analyses.NAMES)
    for spec in analyses.REGISTRY:
        assert isinstance(spec, AnalysisSpec) and spec.kind in KINDS
        assert spec.title and spec.title[0].isupper(), spec.name
        assert (TEMPLATES / spec.template).is_file(), spec.template
        assert dataclasses.is_dataclass(spec.params) and spec.params.__dataclass_params__.frozen
        assert all(spec.params.help().values()), f"{spec.name}: a setting without one-line help"
        spec.params.validate(spec.name, spec.params.defaults())  # the defaults pass their own checks
        if spec.section == "sections/_attribution.html":
            assert spec.description and spec.kind == "attribution map"


def test_the_default_settings_are_those_of_before():
    assert {name: values for name, values in analysis_defaults().items() if name in BEFORE} == BEFORE
    assert RunConfig().to_dict()["analysis_params"] == BEFORE
    assert set(analyses.DEFAULT_NAMES) == set(BEFORE)


def test_method_lists_are_registry_queries():
    """The default battery's lists are those tsreport spelled out before (opt-in methods: test_gradient_shap)."""
    methods = ["occlusion", "gradient_x_input", "integrated_gradients", "saliency"]

    def default(names: list[str]) -> list[str]:
        return [name for name in names if name in analyses.DEFAULT_NAMES]

    assert analyses.attribution_methods(None) == methods  # the default battery's (sanity re-runs these)
    assert default(analyses.attribution_methods()) == methods  # what combined may average
    assert analyses.attribution_methods(("saliency", "occlusion", "faithfulness")) == ["occlusion", "saliency"]
    assert default(analyses.map_sources()) == ["combined", *methods]  # a shown window's map, best first
    ranked = ["permutation", *methods, "sensitivity", "shap", "combined"]  # faithfulness's agreement matrix
    assert default(analyses.ranked_analyses()) == ranked
    assert default(analyses.headline_methods()) == ranked[:-1]  # shap too now: the lists agree
    assert analyses.checks() == ["sanity_randomization", "sanity_positive_control"]
    assert [s.name for s in analyses.selected(None)] == analyses.DEFAULT_NAMES


def test_combined_accepts_the_registered_methods_and_says_which():
    with pytest.raises(UsageError) as error:
        build_config({"combined": {"methods": ["occlusion", "lime"]}}, {}, analysis_names=analyses.NAMES)
    listed = ", ".join(analyses.attribution_methods())
    assert str(error.value) == f"Invalid combined methods ['occlusion', 'lime']: give a list drawn from {listed}."
    assert listed.startswith("occlusion, gradient_x_input, integrated_gradients, saliency")


def test_analyses_return_their_maps_and_never_write_the_context(tmp_path):
    data, schema = models.write_case(tmp_path)
    path = models.save_torchscript(models.LastStepLinear(), tmp_path / "model.pt")
    ctx, _, _ = build_context(path, data, schema, RunConfig(samples=16))
    ctx.field_maps, ctx.results = MappingProxyType({}), MappingProxyType({})  # as the pipeline hands them over
    result = gradient_x_input(ctx, {"tsr": True, "tsr_threshold": 1.0}, rng=np.random.default_rng(0))
    assert set(result.maps) == {"gradient_x_input", "gradient_x_input+tsr"}
    assert result.maps["gradient_x_input"].shape == (16, 8, len(ctx.field_names))
    assert "maps" not in result.to_dict()  # results.json never holds the per-window maps
    assert dict(ctx.field_maps) == {} and dict(ctx.results) == {}
    with pytest.raises(TypeError):
        ctx.field_maps["x"] = result.maps["gradient_x_input"]  # type: ignore[index]


def test_readme_settings_table_is_generated_from_the_specs() -> None:
    from pathlib import Path

    from tsreport.analyses import settings_table

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- settings-table -->\n", 1)[1].split("<!-- /settings-table -->", 1)[0]
    assert block.strip() == settings_table().strip()


def test_explain_help_lists_every_analysis_setting_from_the_specs():
    from helpers import run_cli

    from tsreport.analyses import REGISTRY, settings_help

    output = run_cli("explain", "--help").output
    text = " ".join(output.split())
    assert "Analysis settings (--config FILE, e.g. occlusion: {size: 8})" in text
    bare = "".join(output.split())  # click wraps long lines, also at hyphens
    names = [name for name, _ in settings_help()]
    assert names == [f"{spec.name}.{key}" for spec in REGISTRY for key in spec.params.help()]
    for name, help_text in settings_help():
        assert name + "".join(help_text.split()) in bare
    assert "occlusion.size time steps per occluded block [default: 4]" in text
