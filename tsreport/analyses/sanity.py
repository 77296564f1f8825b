"""Sanity-check controls: `sanity_randomization` and `sanity_positive_control`.

An attribution method that cannot pass a control is worse than none. Two
controls, each with a verdict per method:

* Model randomisation (Adebayo et al. 2018): randomise the model's parameters
  layer by layer from the output back and recompute the attributions on the
  same windows. A method whose maps survive a fully random model explains the
  input, not the model.
* Planted positive control: train a model on targets built from the user's own
  windows with a known answer (y = 10·a at the last step; y = b·c / 100) and
  check that each method ranks the planted fields first. The model trained is a
  fresh copy of the user's own architecture (re-initialised as its layers'
  constructors do); only when that copy cannot be trained here, or does not reach
  the control's R², the built-in reference LSTM, and the result says which and why.

References
----------
Adebayo, J., Gilmer, J., Muelly, M., Goodfellow, I., Hardt, M., Kim, B. (2018).
Sanity checks for saliency maps. NeurIPS.
Ismail, A. A., Gunady, M., Corrada Bravo, H., Feizi, S. (2020). Benchmarking deep
learning interpretability in time series predictions. NeurIPS.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from scipy import stats

from tsreport.analyses._base import (
    CHECK,
    RERUNS_METHODS,
    AnalysisContext,
    AnalysisSpec,
    Figure,
    SkipAnalysis,
    clean_float,
)
from tsreport.engine import Engine, NoGradient
from tsreport.model import LoadedModel
from tsreport.params import Params, setting
from tsreport.schema import Target

MapFn = Callable[[AnalysisContext], np.ndarray]  # context -> (n, T, F) field maps


def _method_maps(names: list[str]) -> dict[str, MapFn]:
    """The attribution methods under test, each returning per-window field maps (re-run on a sub-context)."""
    from tsreport.analyses import BY_NAME

    def run(spec: AnalysisSpec) -> MapFn:
        def maps(ctx: AnalysisContext) -> np.ndarray:
            return spec.run(ctx, ctx.config.params(spec.name), rng=np.random.default_rng(0)).maps[spec.name]

        return maps

    return {name: run(BY_NAME[name]) for name in names}


def selected_methods(ctx: AnalysisContext) -> dict[str, MapFn]:
    """The attribution methods of this run (--analyses, else those of the default battery)."""
    from tsreport.analyses import attribution_methods

    return _method_maps(attribution_methods(ctx.config.analyses))


def sub_context(ctx: AnalysisContext, count: int, **changes: Any) -> AnalysisContext:
    """A fresh context over the first ``count`` explained windows (nothing cached)."""
    return dataclasses.replace(
        ctx,
        explained=ctx.explained[:count],
        explained_inputs=ctx.explained_inputs[:count],
        field_maps={},
        cache={},
        results={},
        predictions=None,
        _explained_outputs=None,
        **changes,
    )


# --------------------------------------------------------------------------- randomisation


def similarity(trained: np.ndarray, other: np.ndarray, top_field: int) -> dict[str, float]:
    """How alike two sets of (n, T, F) maps are, by three measures averaged over windows.

    ``spearman``: rank correlation of the cells; ``top10_overlap``: share of the trained map's
    top 10% cells still in the top 10%; ``top_field_share``: share of the attribution on the
    trained model's top field (compare with the trained share); ``field_rank_tau``: Kendall's
    tau between the two field rankings (field totals over all windows). The cell measures
    stay high on recurrent models whatever their weights (their maps pile up on the last
    steps), so the field-level measures are needed beside them.
    """
    n = trained.shape[0]
    left = trained.reshape(n, -1)
    right = other.reshape(n, -1)
    left_ranks = stats.rankdata(left, axis=1)
    right_ranks = stats.rankdata(right, axis=1)
    lc = left_ranks - left_ranks.mean(axis=1, keepdims=True)
    rc = right_ranks - right_ranks.mean(axis=1, keepdims=True)
    denominator = np.sqrt((lc**2).sum(axis=1) * (rc**2).sum(axis=1))
    # A constant map (e.g. all zero) has no ranking: count it as uncorrelated.
    spearman = np.divide((lc * rc).sum(axis=1), denominator, out=np.zeros(n), where=denominator > 0)
    k = max(1, int(round(0.1 * left.shape[1])))
    top_left = np.argsort(-left, axis=1, kind="stable")[:, :k]
    top_right = np.argsort(-right, axis=1, kind="stable")[:, :k]
    overlap = np.array([len(np.intersect1d(a, b)) / k for a, b in zip(top_left, top_right)])
    totals = other.sum(axis=(1, 2))
    share = np.divide(other[:, :, top_field].sum(axis=1), totals, out=np.zeros(n), where=totals > 0)
    tau = stats.kendalltau(trained.sum(axis=(0, 1)), other.sum(axis=(0, 1))).statistic
    return {
        "spearman": float(spearman.mean()),
        "top10_overlap": float(overlap.mean()),
        "top_field_share": float(share.mean()),
        "field_rank_tau": float(tau) if np.isfinite(tau) else 0.0,
    }


def parameter_groups(module: Any) -> list[tuple[str, list[torch.Tensor]]]:
    """Modules that own parameters, in definition order (input side first)."""
    groups = []
    for name, sub in module.named_modules():
        owned = [p for _, p in sub.named_parameters(recurse=False)]
        if owned:
            groups.append((name or "(root)", owned))
    return groups


def randomise(tensors: list[torch.Tensor], generator: torch.Generator) -> None:
    """Replace parameters by Gaussian noise of the same scale (std of the trained tensor)."""
    with torch.no_grad():
        for tensor in tensors:
            scale = float(tensor.detach().float().std()) if tensor.numel() > 1 else 0.0
            scale = scale if np.isfinite(scale) and scale > 0 else 0.1
            noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32) * scale
            tensor.copy_(noise.to(tensor.dtype).to(tensor.device))


def randomization_test(
    ctx: AnalysisContext, methods: dict[str, MapFn], params: dict[str, Any], rng: np.random.Generator
) -> dict[str, Any]:
    """Randomise the model's parameters from the output back (a copy: the user's module is never
    changed) and check every method's maps change materially (Adebayo et al., 2018)."""
    copied = _randomisable_copy(ctx)
    groups = parameter_groups(copied)
    if not groups:
        raise SkipAnalysis("the model has no parameters to randomise")
    count = min(int(params["windows"]), ctx.explained_inputs.shape[0])
    # Cascade from the output back: stage k randomises the last k parameter groups.
    # Long models are sampled at up to `max_stages` evenly spaced depths (always incl. all).
    depth = len(groups)
    stages = sorted({int(round(x)) for x in np.linspace(1, depth, min(depth, int(params["max_stages"])))})
    ctx.progress.expect(1 + len(stages))  # the trained model's maps, then each stage's (done as the next begins)
    trained, skipped = _trained_maps(ctx, methods, count)
    top_field = {name: int(maps.sum(axis=(0, 1)).argmax()) for name, maps in trained.items()}
    ctx.progress.update()

    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    curves: dict[str, list[dict[str, Any]]] = {name: [] for name in trained}
    randomised = ctx.forward.with_module(copied)
    done = 0
    for stage in stages:
        if stage != stages[0]:
            ctx.progress.update()
        for _, tensors in reversed(groups[depth - stage : depth - done]):
            randomise(tensors, generator)
        done = stage
        stage_ctx = sub_context(ctx, count, forward=randomised)
        for name, fn in methods.items():
            if name not in trained:
                continue
            try:
                maps = fn(stage_ctx).astype(np.float64)
            except (SkipAnalysis, NoGradient):
                maps = np.zeros_like(trained[name])
            measures = similarity(trained[name], maps, top_field[name])
            curves[name].append({"layers_randomised": stage, "top_layer": groups[depth - stage][0], **measures})

    thresholds = {
        key: float(params[key])
        for key in ("max_spearman", "max_top10_overlap", "min_share_change", "max_field_rank_tau")
    }
    verdicts = {name: _randomisation_verdict(ctx, trained[name], top_field[name], curve, thresholds)
                for name, curve in curves.items()}  # fmt: skip
    for name, reason in skipped.items():
        verdicts[name] = {"verdict": "skipped", "reason": reason}
    failed = [n for n, v in verdicts.items() if v["verdict"] == "fail"]
    return {
        "verdict": "fail" if failed else "pass",
        "windows": count,
        "layers": [name for name, _ in groups],
        "stages": stages,
        "thresholds": thresholds,
        "methods": verdicts,
        "curves": {
            name: [{k: clean_float(v) if isinstance(v, float) else v for k, v in row.items()} for row in curve]
            for name, curve in curves.items()
        },
    }


def _randomisable_copy(ctx: AnalysisContext) -> torch.nn.Module:
    """A copy of the user's module on the engine's device, in eval mode (SkipAnalysis when there is none)."""
    module = ctx.forward.loaded.module
    if not isinstance(module, torch.nn.Module):
        raise SkipAnalysis("the model's parameters are not reachable")
    try:
        copied = _copy_module(module).to(ctx.forward.device)
    except Exception as error:
        raise SkipAnalysis(
            f"the model could not be copied to randomise it ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
        ) from None
    return copied.eval()


def _trained_maps(
    ctx: AnalysisContext, methods: dict[str, MapFn], count: int
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Each method's maps of the trained model on the first ``count`` windows, and why any could not run."""
    trained_ctx = sub_context(ctx, count)
    trained: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for name, fn in methods.items():
        try:
            trained[name] = fn(trained_ctx).astype(np.float64)
        except (SkipAnalysis, NoGradient) as error:
            skipped[name] = str(error)
    if not trained:
        raise SkipAnalysis("no attribution method could run: " + "; ".join(skipped.values()))
    return trained, skipped


def _randomisation_verdict(
    ctx: AnalysisContext,
    trained: np.ndarray,
    top_field: int,
    curve: list[dict[str, Any]],
    thresholds: dict[str, float],
) -> dict[str, Any]:
    """Pass when the fully randomised model's maps differ materially by any one measure."""
    final = curve[-1]
    trained_share = similarity(trained, trained, top_field)["top_field_share"]
    change = abs(final["top_field_share"] - trained_share) / trained_share if trained_share > 0 else 0.0
    material = {
        "spearman": final["spearman"] <= thresholds["max_spearman"],
        "top10_overlap": final["top10_overlap"] <= thresholds["max_top10_overlap"],
        "top_field_share": change >= thresholds["min_share_change"],
        "field_rank_tau": final["field_rank_tau"] <= thresholds["max_field_rank_tau"],
    }
    return {
        "verdict": "pass" if any(material.values()) else "fail",
        "trained_top_field": ctx.field_names[top_field],
        "trained_top_field_share": clean_float(trained_share),
        "final": {k: clean_float(v) for k, v in final.items() if k not in ("layers_randomised", "top_layer")},
        "share_change": clean_float(change),
        "changed_by": [k for k, v in material.items() if v],
    }


@dataclasses.dataclass(frozen=True)
class SanityResult:
    """A control's outcome: ``verdict`` pass | fail (overall), per-method verdicts and its figures."""

    figures: dict[str, Any]
    warnings: tuple[str, ...] = ()  # for the report's warnings (not part of the entry)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.figures)


def sanity_randomization(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> SanityResult:
    methods = selected_methods(ctx)
    if not methods:
        raise SkipAnalysis("no attribution method is part of this run")
    return SanityResult(randomization_test(ctx, methods, params, rng))


# --------------------------------------------------------------------------- positive control


class ReferenceLSTM(torch.nn.Module):
    """The built-in control architecture: an LSTM summary plus the last step, through an MLP."""

    def __init__(self, channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(channels, hidden, batch_first=True)
        self.head = torch.nn.Sequential(torch.nn.Linear(hidden + channels, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(torch.cat([out[:, -1], x[:, -1]], dim=1))


# Re-initialising a copy of the user's model. Eager modules use each layer's own
# `reset_parameters()` (what the layer's constructor ran), children before parents as in
# construction, inside a forked, seeded torch RNG so the user's global RNG is untouched and the
# copy is the same for the same seed. A TorchScript module has no Python methods left, so its
# tensors are re-initialised by the layer kind it was compiled from (`original_name`), following
# torch's defaults; tensors of layers torch does not know get the rule of their shape.
_NORM_LAYER = re.compile(r"(Batch|Layer|Group|Instance|RMS)Norm")
_RECURRENT = ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")
_SHIFT_NAMES = ("bias", "beta", "shift", "offset")


def _initialise(kind: str, name: str, tensor: torch.Tensor, fan_in: int, generator: torch.Generator) -> None:
    """Torch's default initialisation of parameter ``name`` of a layer of class ``kind``, in place.

    Normalisation layers: weight 1, bias 0 (the identity). Recurrent layers: U(±1/√hidden).
    Embedding: N(0, 1). MultiheadAttention: Xavier-uniform matrices, zero biases. PReLU: 0.25.
    Anything else (Linear, Conv*, unknown): a matrix gets Kaiming-uniform with a = √5, i.e.
    U(±1/√fan_in), as Linear and Conv do; a vector named like a bias gets U(±1/√fan_in) of its
    layer's weight (0 without one); any other vector, a scale, gets 1.
    """
    shift = name.rsplit(".", 1)[-1].lower().startswith(_SHIFT_NAMES)
    if _NORM_LAYER.search(kind):
        tensor.fill_(0.0 if shift else 1.0)
    elif kind in _RECURRENT:
        bound = 1.0 / np.sqrt(max(1, fan_in))
        tensor.uniform_(-bound, bound, generator=generator)
    elif kind == "Embedding":
        tensor.normal_(0.0, 1.0, generator=generator)
    elif kind == "MultiheadAttention":
        if tensor.dim() >= 2:
            torch.nn.init.xavier_uniform_(tensor, generator=generator)
        else:
            tensor.zero_()
    elif kind == "PReLU":
        tensor.fill_(0.25)
    elif tensor.dim() >= 2 or shift:
        if tensor.dim() >= 2:
            fan_in = torch.nn.init._calculate_fan_in_and_fan_out(tensor)[0]
        bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0
        tensor.uniform_(-bound, bound, generator=generator)
    else:
        tensor.fill_(1.0)


def _fan_in(weight_shape: tuple[int, ...] | None, kind: str) -> int:
    """The fan-in a layer's bias is scaled by (for recurrent layers: the hidden size)."""
    if not weight_shape:
        return 0
    if kind in _RECURRENT:
        return int(weight_shape[1]) if len(weight_shape) > 1 else int(weight_shape[0])
    return int(np.prod(weight_shape[1:])) if len(weight_shape) > 1 else int(weight_shape[0])


def _weight_norm_g(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """g = ||v|| over every dimension but the one g keeps (g's shape tells which), so g·v/||v|| = v."""
    kept = [d for d in range(g.dim()) if g.shape[d] != 1]
    dim = kept[0] if len(kept) == 1 and g.dim() == v.dim() else -1  # -1: the norm of the whole tensor
    return torch.norm_except_dim(v, 2, dim).reshape(g.shape)


def _copy_module(module: torch.nn.Module) -> torch.nn.Module:
    """A CPU copy that shares nothing with the user's model."""
    if isinstance(module, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
        buffer.seek(0)
        return torch.jit.load(buffer, map_location="cpu")
    # The old torch.nn.utils.weight_norm keeps `weight` as a computed, non-leaf tensor attribute,
    # which deepcopy refuses; its forward pre-hook recomputes it from g and v, so a detached
    # stand-in is enough in the copy.
    memo: dict[int, Any] = {}
    for sub in module.modules():
        for value in vars(sub).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(module, memo).cpu()


def _post_order(module: torch.nn.Module, prefix: str = "") -> Iterator[tuple[str, torch.nn.Module]]:
    """Children before their parent: a parent's own reset (e.g. Transformer's) runs last, as in its constructor."""
    for name, child in module.named_children():
        yield from _post_order(child, f"{prefix}.{name}" if prefix else name)
    yield prefix, module


def _reinitialise_eager(root: torch.nn.Module, generator: torch.Generator) -> str:
    """Re-initialise every parameter and normalisation statistic of an eager module; say how."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.weight_norm import WeightNorm

    done: set[int] = set()
    by_rule: list[str] = []

    def label(path: str, name: str) -> str:
        return f"{path}.{name}" if path else name

    for path, module in _post_order(root):
        kind = type(module).__name__
        reset = getattr(module, "reset_parameters", None) or getattr(module, "_reset_parameters", None)
        if parametrize.is_parametrized(module):
            # A fresh weight is drawn into the cached parametrized tensor (or by the rule of its
            # layer), then assigned: assignment runs each parametrization's right_inverse (weight
            # norm: v = weight, g = ||v||), so the originals match a freshly built layer.
            names = list(module.parametrizations.keys())
            fresh: dict[str, torch.Tensor] | None = None
            if callable(reset):
                try:
                    with parametrize.cached():
                        reset()
                        fresh = {name: getattr(module, name).detach().clone() for name in names}
                    done.update(id(p) for p in module.parameters(recurse=False))
                except Exception:
                    fresh = None
            if fresh is None:
                fresh = {}
                for name in names:
                    tensor = torch.empty_like(getattr(module, name).detach())
                    with torch.no_grad():
                        _initialise(kind, name, tensor, _fan_in(tuple(tensor.shape), kind), generator)
                    fresh[name] = tensor
                    by_rule.append(label(path, name))
            for name in names:
                try:
                    setattr(module, name, fresh[name])
                except Exception:
                    continue  # a parametrization without right_inverse: its originals get the rule below
                done.update(id(p) for p in module.parametrizations[name].parameters())
        elif callable(reset):
            try:
                reset()
                done.update(id(p) for p in module.parameters(recurse=False))
            except Exception:
                pass  # a custom reset that needs arguments, or fails: the rule below takes over
        hooks = [h for h in module._forward_pre_hooks.values() if isinstance(h, WeightNorm)]
        with torch.no_grad():
            for hook in hooks:  # the old weight_norm: weight = g · v / ||v||, recomputed before each forward
                v, g = getattr(module, hook.name + "_v"), getattr(module, hook.name + "_g")
                if id(v) in done:
                    v.copy_(getattr(module, hook.name))  # reset() drew into the computed weight
                else:
                    _initialise(kind, hook.name, v, _fan_in(tuple(v.shape), kind), generator)
                    by_rule.append(label(path, hook.name))
                g.copy_(_weight_norm_g(v, g))
                done.update((id(v), id(g)))
        if isinstance(module, torch.nn.modules.batchnorm._NormBase) and module.track_running_stats:
            module.reset_running_stats()
    with torch.no_grad():
        for path, module in root.named_modules():
            weight = getattr(module, "weight", None)
            shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else None
            kind = type(module).__name__
            for name, parameter in module.named_parameters(recurse=False):
                if id(parameter) not in done:
                    _initialise(kind, name, parameter, _fan_in(shape, kind), generator)
                    by_rule.append(label(path, name))
    how = "by each layer's own reset_parameters()"
    if by_rule:
        listed = ", ".join(by_rule[:3]) + (f" and {len(by_rule) - 3} more" if len(by_rule) > 3 else "")
        how += f" ({listed}, which none covers: by torch's default rule for their layer and shape)"
    return how


def _reinitialise_script(root: torch.jit.ScriptModule, generator: torch.Generator) -> str:
    """Re-initialise a TorchScript module's tensors by the kind of layer each belongs to; say how."""
    modules = dict(root.named_modules())

    def kind_of(path: str) -> str:
        return str(getattr(modules[path], "original_name", type(modules[path]).__name__))

    def weight_shape(path: str) -> tuple[int, ...] | None:
        own = dict(modules[path].named_parameters(recurse=False))
        for name in ("weight", "weight_v", "weight_hh_l0", "weight_hh"):
            if name in own:
                return tuple(own[name].shape)
        listed = modules.get(f"{path}.parametrizations.weight" if path else "parametrizations.weight")
        if listed is not None:
            originals = dict(listed.named_parameters(recurse=False))
            original = originals.get("original1", originals.get("original"))
            return tuple(original.shape) if original is not None else None
        return None

    with torch.no_grad():
        for path, module in modules.items():
            kind = kind_of(path)
            own = dict(module.named_parameters(recurse=False))
            if kind == "ParametrizationList" and ".parametrizations." in f".{path}":
                owner, name = f".{path}".rsplit(".parametrizations.", 1)
                owner = owner.lstrip(".")
                owner_kind = kind_of(owner).removeprefix("Parametrized")
                first = modules.get(f"{path}.0")
                if (
                    first is not None
                    and kind_of(f"{path}.0") == "_WeightNorm"
                    and {"original0", "original1"} <= set(own)
                ):
                    v, g = own["original1"], own["original0"]  # weight = g · v / ||v||
                    _initialise(owner_kind, name, v, 0, generator)
                    g.copy_(_weight_norm_g(v, g))
                else:
                    for original in own.values():
                        _initialise(owner_kind, name, original, 0, generator)
                continue
            fan_in = _fan_in(weight_shape(path), kind)
            for base in sorted(n[:-2] for n in own if n.endswith("_v") and n[:-2] + "_g" in own):
                v, g = own.pop(base + "_v"), own.pop(base + "_g")  # the old weight_norm, traced
                _initialise(kind, base, v, fan_in, generator)
                g.copy_(_weight_norm_g(v, g))
            for name, parameter in own.items():
                _initialise(kind, name, parameter, fan_in, generator)
            if _NORM_LAYER.search(kind):
                for name, buffer in module.named_buffers(recurse=False):
                    buffer.fill_(1 if name == "running_var" else 0)  # running_mean, num_batches_tracked: 0
    return (
        "by the kind of each layer, as torch's defaults do, since TorchScript has no reset_parameters() "
        "(weights Kaiming-uniform by fan-in, normalisation layers the identity with fresh running statistics, "
        "weight-normalised layers g = ||v||)"
    )


def _fresh_copy(loaded: LoadedModel, seed: int) -> tuple[torch.nn.Module | None, str]:
    """A re-initialised, trainable CPU copy of the user's architecture and how it was initialised,
    or (None, why it cannot be trained here). The same seed gives the same copy."""
    module = loaded.module
    if loaded.format == "export":
        return None, "a torch.export program is a fixed graph that cannot be re-initialised and trained here"
    if not isinstance(module, torch.nn.Module):
        return None, "the model is not a torch module"
    try:
        copied = _copy_module(module)
    except Exception as error:
        return None, f"it could not be copied ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    if not list(copied.parameters()):
        return None, "it has no parameters to train"
    generator = torch.Generator().manual_seed(seed)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # reset_parameters() draws from the global RNG: forked here, seeded
            if isinstance(copied, torch.jit.ScriptModule):
                how = _reinitialise_script(copied, generator)
            else:
                how = _reinitialise_eager(copied, generator)
    except Exception as error:
        return (
            None,
            f"its parameters could not be re-initialised ({type(error).__name__}: {str(error).splitlines()[0][:120]})",
        )
    copied.train()
    return copied, how


class _ScalarHead(torch.nn.Module):
    """The control model's first output as a (B, 1) prediction, in the model's layout.

    For a quantile head the first output is the explained quantity's first step (the explained
    quantile, or the interval width), so the control trains what the attributions explain.
    """

    def __init__(self, module: torch.nn.Module, forward: Engine) -> None:
        super().__init__()
        self.module = module
        self.layout = forward.to_model_layout
        self.quantile_forward = forward if forward.quantiles else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.module(self.layout(x))
        if isinstance(output, (tuple, list)):
            output = output[0]
        if self.quantile_forward is not None:
            output = self.quantile_forward.shape_output(output, x.shape[0])
        return output.reshape(output.shape[0], -1)[:, :1].float()


def _batches(order: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Split ``order`` into batches of ``size``; a last batch of one joins the one before it
    (batch normalisation cannot train on a single window)."""
    batches = list(torch.split(order, size))
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _train(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, epochs: int, seconds: float, seed: int
) -> tuple[float, bool]:
    """Adam on MSE until held-out R² ≥ 0.95, for at most ``epochs`` epochs (deterministic);
    ``seconds`` is a safety net only. Returns (held-out R², stopped by the time limit).

    Batches hold 64 windows, fewer on small data so that an epoch is at least 16 steps. The
    weights of the best epoch on the held-out 20% are kept (early stopping), and its R² returned.
    """
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(inputs.shape[0], generator=generator)
    split = int(0.8 * len(order))
    train, test = order[:split], order[split:]
    batch_size = min(64, max(8, len(train) // 16))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=3)
    deadline = time.perf_counter() + seconds
    variance = float(targets[test].var(unbiased=False))
    best, best_state, timed_out = -np.inf, None, False
    for _ in range(epochs):
        if time.perf_counter() > deadline:
            timed_out = True
            break
        model.train()
        for batch in _batches(train[torch.randperm(len(train), generator=generator)], batch_size):
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(model(inputs[batch])[:, 0], targets[batch])
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            error = model(inputs[test])[:, 0] - targets[test]
        mse = float((error**2).mean())
        if not np.isfinite(mse):
            break  # diverged: keep the best epoch so far
        schedule.step(mse)
        r2 = 1.0 - mse / variance if variance > 0 else -np.inf
        if r2 > best:
            best = r2
            best_state = {name: value.detach().clone() for name, value in model.state_dict().items()}
        if best >= 0.95:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return best, timed_out


def positive_control_test(
    ctx: AnalysisContext, methods: dict[str, MapFn], params: dict[str, Any], rng: np.random.Generator
) -> tuple[dict[str, Any], list[str]]:
    """Plant targets on real windows, train a model on each, and check every method ranks the planted
    fields first: (results.json figures, warnings for the report)."""
    inputs, planted = _planted_targets(ctx, params, rng)
    count = inputs.shape[0]
    budget = float(params["seconds"]) / len(planted)
    explain_count = min(int(params["explain_windows"]), count)
    seed = int(rng.integers(2**31))
    outcome: dict[str, Any] = {"controls": {}, "methods": {}}
    warnings: list[str] = []
    for kind, plant in ctx.progress.counted(planted.items(), total=len(planted)):
        scaled = ((plant["target"].double() - plant["target"].double().mean()) / plant["target"].double().std()).float()
        control, model, timed_out = _train_control(ctx, plant, inputs, scaled, params, budget, seed)
        if timed_out:
            warnings.append(
                f"The {kind} positive control stopped at its time limit ({budget:.0f} s) before its epoch limit: "
                "its numbers may differ between runs. Raise sanity_positive_control: {seconds: ...}."
            )
        outcome["controls"][kind] = control
        if model is None:
            continue
        control_ctx = _control_context(ctx, model, inputs[:explain_count], scaled[:explain_count])
        for name, fn in methods.items():
            outcome["methods"].setdefault(name, {})[kind] = _planted_rank(ctx, fn, control_ctx, plant, explain_count)
    return _control_verdicts(outcome, count, explain_count), warnings


def _planted_targets(
    ctx: AnalysisContext, params: dict[str, Any], rng: np.random.Generator
) -> tuple[torch.Tensor, dict[str, dict[str, Any]]]:
    """The chosen windows (k, T, C) and the planted targets: ``linear`` on one numeric field (10 x its
    last value), ``nonlinear`` on two (the product of their last values / 100) when there are three."""
    numeric = [f for f in ctx.schema.fields if f.kind == "numeric"]
    if not numeric:
        raise SkipAnalysis("the schema has no numeric field to plant a target on")
    slices = ctx.field_channels()
    picks = [numeric[i] for i in rng.permutation(len(numeric))]
    field_a = picks[0]
    pair = picks[1:3] if len(picks) >= 3 else picks[:2] if len(picks) == 2 else []
    count = min(int(params["windows"]), ctx.windows.count)
    chosen = np.sort(rng.choice(ctx.windows.count, size=count, replace=False))
    inputs = torch.from_numpy(ctx.windows.inputs(chosen))
    last = inputs[:, -1, :]
    planted = {"linear": {"fields": [field_a.name], "target": 10.0 * last[:, slices[field_a.name].start]}}
    if len(pair) == 2:
        b, c = (slices[f.name].start for f in pair)
        planted["nonlinear"] = {"fields": [f.name for f in pair], "target": last[:, b] * last[:, c] / 100.0}
    return inputs, planted


def _train_control(
    ctx: AnalysisContext,
    plant: dict[str, Any],
    inputs: torch.Tensor,
    scaled: torch.Tensor,
    params: dict[str, Any],
    budget: float,
    seed: int,
) -> tuple[dict[str, Any], torch.nn.Module | None, bool]:
    """Train a fresh copy of the user's architecture on the planted target, else the reference LSTM:
    (the control's figures, the trained model or None when neither learnt it, whether time ran out)."""
    user_copy, how = _fresh_copy(ctx.forward.loaded, seed)
    epochs, min_r2 = int(params["epochs"]), float(params["min_r2"])
    timed_out = False
    r2 = -np.inf
    model: torch.nn.Module | None = None
    if user_copy is not None:
        model = _ScalarHead(user_copy, ctx.forward)
        try:
            r2, timed_out = _train(model, inputs, scaled, epochs, budget, seed)
        except Exception as error:  # e.g. a traced model whose batch size is baked in
            how = f"training it failed ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
            user_copy = None
    user_r2 = r2
    if r2 >= min_r2:
        trained = "user"
        architecture = f"your model's architecture, re-initialised {how} and trained on the planted target"
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the LSTM's own init draws from the global RNG: forked, seeded
            model = ReferenceLSTM(ctx.schema.channels)
        reference_r2, late = _train(model, inputs, scaled, epochs, budget, seed)
        timed_out = timed_out or late
        if user_copy is None:
            why = f"your model cannot be trained here: {how}"
        else:
            why = (
                f"a fresh copy of your architecture reached only R² {r2:.2f} < {params['min_r2']} in {epochs} "
                f"epochs on {inputs.shape[0]} windows; more of either (sanity_positive_control: windows, epochs) "
                "may let it learn"
            )
        trained = "reference"
        architecture = f"the built-in reference LSTM, not your architecture ({why})"
        r2 = reference_r2
    control = {"fields": plant["fields"], "r2": clean_float(r2), "architecture": architecture, "trained": trained}
    if trained == "reference" and user_copy is not None:
        control["user_architecture_r2"] = clean_float(user_r2)
    if r2 >= min_r2:
        return control, model, timed_out
    control["verdict"] = "skipped"
    if user_copy is None:
        control["reason"] = f"the reference LSTM reached R² {r2:.2f} < {params['min_r2']} in {epochs} epochs"
    else:
        control["reason"] = (
            f"neither a fresh copy of your architecture (R² {user_r2:.2f}) nor the reference LSTM "
            f"(R² {r2:.2f}) reached R² {params['min_r2']} in {epochs} epochs"
        )
    return control, None, timed_out


def _planted_rank(
    ctx: AnalysisContext, fn: MapFn, control_ctx: AnalysisContext, plant: dict[str, Any], explain_count: int
) -> dict[str, Any]:
    """One method on the control model: pass when it ranks the planted fields first."""
    try:
        maps = fn(sub_context(control_ctx, explain_count))
    except (SkipAnalysis, NoGradient) as error:
        return {"verdict": "skipped", "reason": str(error)}
    importance = maps.sum(axis=1).mean(axis=0)
    order = [ctx.field_names[i] for i in np.argsort(-importance, kind="stable")]
    ranks = {f: order.index(f) + 1 for f in plant["fields"]}
    passed = all(rank <= len(plant["fields"]) for rank in ranks.values())
    return {"verdict": "pass" if passed else "fail", "ranks": ranks, "ranking": order}


def _control_verdicts(outcome: dict[str, Any], count: int, explain_count: int) -> dict[str, Any]:
    """Each method's verdict over the controls, and the check's: fail when any method failed."""
    for per_kind in outcome["methods"].values():
        verdicts = [v["verdict"] for v in per_kind.values()]
        per_kind["verdict"] = "fail" if "fail" in verdicts else ("pass" if "pass" in verdicts else "skipped")
    ran = [c for c in outcome["controls"].values() if c.get("verdict") != "skipped"]
    if not ran:
        raise SkipAnalysis("; ".join(c["reason"] for c in outcome["controls"].values()))
    failed = [n for n, v in outcome["methods"].items() if v["verdict"] == "fail"]
    outcome.update({"verdict": "fail" if failed else "pass", "windows": count, "explained_windows": explain_count})
    return outcome


def _control_context(
    ctx: AnalysisContext, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> AnalysisContext:
    # Trained: its parameters need no gradients any more (input gradients still flow). TorchScript
    # graphs specialised while training otherwise try to save them for backward in inference mode.
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    loaded = LoadedModel(model.eval(), "control", "control", "")
    forward = Engine(
        loaded, layout="btc", task="regression", horizon=1, n_classes=None, batch_size=ctx.forward.batch_size
    )
    schema = dataclasses.replace(
        ctx.schema, task="regression", horizon=1, target=Target("planted target"), layout="btc"
    )
    windows = dataclasses.replace(ctx.windows, targets=np.zeros((ctx.windows.count, 1), dtype=np.float32))
    return dataclasses.replace(
        ctx, schema=schema, windows=windows, forward=forward, explained=np.arange(inputs.shape[0]),
        explained_inputs=inputs, field_maps={}, cache={}, results={}, predictions=None, _explained_outputs=None,
    )  # fmt: skip


def sanity_positive_control(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> SanityResult:
    methods = selected_methods(ctx)
    if not methods:
        raise SkipAnalysis("no attribution method is part of this run")
    figures, warnings = positive_control_test(ctx, methods, params, rng)
    return SanityResult(figures, tuple(warnings))


@dataclasses.dataclass(frozen=True)
class RandomizationParams(Params):
    windows: int = setting(64, "explained windows re-attributed at every stage")
    max_stages: int = setting(6, "cascade stages (layers randomised from the output back)")
    max_spearman: float = setting(0.5, "a material change: Spearman of the maps, trained vs randomised, at most this")
    max_top10_overlap: float = setting(0.5, "a material change: overlap of the top 10% cells at most this")
    min_share_change: float = setting(0.5, "a material change: the top field's share moves by at least this (relative)")
    max_field_rank_tau: float = setting(
        0.5, "a material change: Kendall's tau of the field rankings at most this (any one passes)"
    )


@dataclasses.dataclass(frozen=True)
class PositiveControlParams(Params):
    windows: int = setting(1024, "windows the control model trains on")
    explain_windows: int = setting(128, "windows whose maps are checked")
    epochs: int = setting(40, "training epochs of the control model")
    seconds: float = setting(120, "seconds of training, shared by the planted controls")
    min_r2: float = setting(0.9, "R² a control model must reach before its maps are judged")


def randomization_figures(report: Any, spec: AnalysisSpec, entry: dict[str, Any]) -> list[Figure]:
    from tsreport.render import plots

    return [
        (
            "sanity_randomization_cascade",
            plots.randomisation_cascade(entry["curves"], "field_rank_tau", ylabel="field-ranking agreement (tau)"),
            "Agreement between the trained model's field ranking and the ranking after randomising more and more "
            "layers, per method; a method that depends on the model falls towards 0.",
        )
    ]


RANDOMIZATION = AnalysisSpec(
    "sanity_randomization",
    CHECK,
    sanity_randomization,
    "Sanity check: model randomisation",
    params=RandomizationParams,
    needs=(RERUNS_METHODS,),
    figures=randomization_figures,
)
POSITIVE_CONTROL = AnalysisSpec(
    "sanity_positive_control",
    CHECK,
    sanity_positive_control,
    "Sanity check: planted positive control",
    params=PositiveControlParams,
    needs=(RERUNS_METHODS,),
)
