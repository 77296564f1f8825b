"""Sanity-check controls: `sanity_randomization` and `sanity_positive_control`.

An attribution method that cannot pass a control is worse than none. Two
controls, each with a verdict per method:

* Model randomisation (Adebayo et al. 2018): randomise the model's parameters
  layer by layer from the output back and recompute the attributions on the
  same windows. A method whose maps survive a fully random model explains the
  input, not the model.
* Planted positive control: train a model on targets built from the user's own
  windows with a known answer (y = 10·a at the last step; y = b·c / 100) and
  check that each method ranks the planted fields first.

References
----------
Adebayo, J., Gilmer, J., Muelly, M., Goodfellow, I., Hardt, M., Kim, B. (2018).
Sanity checks for saliency maps. NeurIPS.
Ismail, A. A., Gunady, M., Corrada Bravo, H., Feizi, S. (2020). Benchmarking deep
learning interpretability in time series predictions. NeurIPS.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from scipy import stats

from tsreport.analyses._base import AnalysisContext, SkipAnalysis, clean_float
from tsreport.model import ForwardFn, LoadedModel, NoGradient
from tsreport.schema import Target

MapFn = Callable[[AnalysisContext], np.ndarray]  # context -> (n, T, F) field maps


def _method_maps() -> dict[str, MapFn]:
    """The attribution methods under test, each returning per-window field maps."""
    from tsreport.analyses.gradients import gradient_x_input, integrated_gradients, saliency
    from tsreport.analyses.occlusion import occlusion

    def run(function: Callable[..., Any], name: str) -> MapFn:
        def maps(ctx: AnalysisContext) -> np.ndarray:
            function(ctx, ctx.config.params(name), rng=np.random.default_rng(0))
            return ctx.field_maps[name]

        return maps

    return {
        "occlusion": run(occlusion, "occlusion"),
        "gradient_x_input": run(gradient_x_input, "gradient_x_input"),
        "integrated_gradients": run(integrated_gradients, "integrated_gradients"),
        "saliency": run(saliency, "saliency"),
    }


def selected_methods(ctx: AnalysisContext) -> dict[str, MapFn]:
    methods = _method_maps()
    chosen = ctx.config.analyses
    return {name: fn for name, fn in methods.items() if chosen is None or name in chosen}


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


@contextlib.contextmanager
def restored_parameters(module: Any) -> Iterator[None]:
    """Let the block change the model's parameters in place; put the originals back afterwards."""
    saved = [(p, p.detach().clone()) for p in module.parameters()]
    try:
        yield
    finally:
        with torch.no_grad():
            for parameter, original in saved:
                parameter.copy_(original)


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
    module = ctx.forward.loaded.module
    if not isinstance(module, torch.nn.Module):
        raise SkipAnalysis("the model's parameters are not reachable")
    groups = parameter_groups(module)
    if not groups:
        raise SkipAnalysis("the model has no parameters to randomise")
    count = min(int(params["windows"]), ctx.explained_inputs.shape[0])
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
    top_field = {name: int(maps.sum(axis=(0, 1)).argmax()) for name, maps in trained.items()}

    # Cascade from the output back: stage k randomises the last k parameter groups.
    # Long models are sampled at up to `max_stages` evenly spaced depths (always incl. all).
    depth = len(groups)
    stages = sorted({int(round(x)) for x in np.linspace(1, depth, min(depth, int(params["max_stages"])))})
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    curves: dict[str, list[dict[str, Any]]] = {name: [] for name in trained}
    with restored_parameters(module):
        done = 0
        for stage in stages:
            for _, tensors in reversed(groups[depth - stage : depth - done]):
                randomise(tensors, generator)
            done = stage
            stage_ctx = sub_context(ctx, count)
            for name, fn in methods.items():
                if name not in trained:
                    continue
                try:
                    maps = fn(stage_ctx).astype(np.float64)
                except (SkipAnalysis, NoGradient):
                    maps = np.zeros_like(trained[name])
                measures = similarity(trained[name], maps, top_field[name])
                curves[name].append({"layers_randomised": stage, "top_layer": groups[depth - stage][0], **measures})
    _check_restored(ctx, trained_ctx)

    thresholds = {
        key: float(params[key])
        for key in ("max_spearman", "max_top10_overlap", "min_share_change", "max_field_rank_tau")
    }
    verdicts: dict[str, dict[str, Any]] = {}
    for name, curve in curves.items():
        final = curve[-1]
        trained_share = similarity(trained[name], trained[name], top_field[name])["top_field_share"]
        change = abs(final["top_field_share"] - trained_share) / trained_share if trained_share > 0 else 0.0
        material = {
            "spearman": final["spearman"] <= thresholds["max_spearman"],
            "top10_overlap": final["top10_overlap"] <= thresholds["max_top10_overlap"],
            "top_field_share": change >= thresholds["min_share_change"],
            "field_rank_tau": final["field_rank_tau"] <= thresholds["max_field_rank_tau"],
        }
        verdicts[name] = {
            "verdict": "pass" if any(material.values()) else "fail",
            "trained_top_field": ctx.field_names[top_field[name]],
            "trained_top_field_share": clean_float(trained_share),
            "final": {k: clean_float(v) for k, v in final.items() if k not in ("layers_randomised", "top_layer")},
            "share_change": clean_float(change),
            "changed_by": [k for k, v in material.items() if v],
        }
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
        "curves": {name: [{k: clean_float(v) if isinstance(v, float) else v for k, v in row.items()} for row in curve] for name, curve in curves.items()},
    }


def _check_restored(ctx: AnalysisContext, trained_ctx: AnalysisContext) -> None:
    """The user's model must be exactly as before: later analyses use it."""
    before = trained_ctx.explained_outputs()
    after = ctx.forward(trained_ctx.explained_inputs)
    if not torch.equal(before, after):
        raise RuntimeError("restoring the model's parameters after the randomisation test failed")


@dataclasses.dataclass(frozen=True)
class SanityResult:
    """A control's outcome: ``verdict`` pass | fail (overall), per-method verdicts and its figures."""

    figures: dict[str, Any]

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
        self.head = torch.nn.Sequential(
            torch.nn.Linear(hidden + channels, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(torch.cat([out[:, -1], x[:, -1]], dim=1))


def _fresh_copy(loaded: LoadedModel, generator: torch.Generator) -> torch.nn.Module | None:
    """A re-initialised, trainable copy of the user's architecture, or None when it has none."""
    module = loaded.module
    if loaded.format == "export" or not isinstance(module, torch.nn.Module):
        return None
    try:
        if isinstance(module, torch.jit.ScriptModule):
            buffer = io.BytesIO()
            torch.jit.save(module, buffer)
            buffer.seek(0)
            copied = torch.jit.load(buffer, map_location="cpu")
        else:
            copied = copy.deepcopy(module).cpu()
    except Exception:
        return None
    parameters = list(copied.parameters())
    if not parameters:
        return None
    with torch.no_grad():
        for parameter in parameters:
            if parameter.dim() >= 2:
                bound = float(np.sqrt(6.0 / (parameter.shape[0] + parameter.shape[1])))
                parameter.uniform_(-bound, bound, generator=generator)
            else:
                parameter.zero_()
    copied.train()
    return copied


class _ScalarHead(torch.nn.Module):
    """The control model's first output as a (B, 1) prediction, in the model's layout."""

    def __init__(self, module: torch.nn.Module, forward: ForwardFn) -> None:
        super().__init__()
        self.module = module
        self.layout = forward.to_model_layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.module(self.layout(x))
        if isinstance(output, (tuple, list)):
            output = output[0]
        return output.reshape(output.shape[0], -1)[:, :1].float()


def _train(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, epochs: int, seconds: float, seed: int
) -> tuple[float, bool]:
    """Adam on MSE until held-out R² ≥ 0.95, for at most ``epochs`` epochs (deterministic);
    ``seconds`` is a safety net only. Returns (held-out R², stopped by the time limit)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(inputs.shape[0], generator=generator)
    split = int(0.8 * len(order))
    train, test = order[:split], order[split:]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=3)
    deadline = time.perf_counter() + seconds
    best = -np.inf
    for _ in range(epochs):
        if time.perf_counter() > deadline:
            model.eval()
            return best, True
        model.train()
        for batch in torch.split(train[torch.randperm(len(train), generator=generator)], 64):
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(model(inputs[batch])[:, 0], targets[batch])
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            error = model(inputs[test])[:, 0] - targets[test]
        mse = float((error**2).mean())
        schedule.step(mse)
        best = 1.0 - mse / float(targets[test].var(unbiased=False))
        if best >= 0.95:
            break
    model.eval()
    return best, False


def positive_control_test(
    ctx: AnalysisContext, methods: dict[str, MapFn], params: dict[str, Any], rng: np.random.Generator
) -> dict[str, Any]:
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

    budget = float(params["seconds"]) / len(planted)
    explain_count = min(int(params["explain_windows"]), count)
    seed = int(rng.integers(2**31))
    outcome: dict[str, Any] = {"controls": {}, "methods": {}}
    for kind, plant in planted.items():
        target = plant["target"].double()
        scaled = ((target - target.mean()) / target.std()).float()
        generator = torch.Generator().manual_seed(seed)
        user_copy = _fresh_copy(ctx.forward.loaded, generator)
        architecture = "a fresh copy of the model's architecture"
        model = _ScalarHead(user_copy, ctx.forward) if user_copy is not None else None
        epochs = int(params["epochs"])
        timed_out = False
        r2 = -np.inf
        if model is not None:
            r2, timed_out = _train(model, inputs, scaled, epochs, budget, seed)
        if r2 < float(params["min_r2"]):
            torch.manual_seed(seed)
            model = ReferenceLSTM(ctx.schema.channels)
            reference_r2, late = _train(model, inputs, scaled, epochs, budget, seed)
            timed_out = timed_out or late
            why = "it cannot be trained here" if user_copy is None else f"it reached only R² {r2:.2f}"
            architecture = f"the built-in reference LSTM ({why} with the user's architecture)"
            r2 = reference_r2
        control = {"fields": plant["fields"], "r2": clean_float(r2), "architecture": architecture}
        if timed_out:
            ctx.warnings.append(
                f"The {kind} positive control stopped at its time limit ({budget:.0f} s) before its epoch limit: "
                "its numbers may differ between runs. Raise sanity_positive_control: {seconds: ...}."
            )
        outcome["controls"][kind] = control
        if r2 < float(params["min_r2"]):
            control["verdict"] = "skipped"
            control["reason"] = f"the control model reached R² {r2:.2f} < {params['min_r2']} in {params['epochs']} epochs"
            continue
        control_ctx = _control_context(ctx, model, inputs[:explain_count], scaled[:explain_count])
        for name, fn in methods.items():
            try:
                maps = fn(sub_context(control_ctx, explain_count))
            except (SkipAnalysis, NoGradient) as error:
                outcome["methods"].setdefault(name, {})[kind] = {"verdict": "skipped", "reason": str(error)}
                continue
            importance = maps.sum(axis=1).mean(axis=0)
            order = [ctx.field_names[i] for i in np.argsort(-importance, kind="stable")]
            ranks = {f: order.index(f) + 1 for f in plant["fields"]}
            needed = len(plant["fields"])
            passed = all(rank <= needed for rank in ranks.values())
            outcome["methods"].setdefault(name, {})[kind] = {"verdict": "pass" if passed else "fail", "ranks": ranks, "ranking": order}
    for per_kind in outcome["methods"].values():
        verdicts = [v["verdict"] for v in per_kind.values()]
        per_kind["verdict"] = "fail" if "fail" in verdicts else ("pass" if "pass" in verdicts else "skipped")
    ran = [c for c in outcome["controls"].values() if c.get("verdict") != "skipped"]
    if not ran:
        raise SkipAnalysis("; ".join(c["reason"] for c in outcome["controls"].values()))
    failed = [n for n, v in outcome["methods"].items() if v["verdict"] == "fail"]
    outcome.update({"verdict": "fail" if failed else "pass", "windows": count, "explained_windows": explain_count})
    return outcome


def _control_context(ctx: AnalysisContext, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> AnalysisContext:
    loaded = LoadedModel(model.eval(), "control", "control", "")
    forward = ForwardFn(loaded, layout="btc", task="regression", horizon=1, n_classes=None, batch_size=ctx.forward.batch_size)
    schema = dataclasses.replace(ctx.schema, task="regression", horizon=1, target=Target("planted target"), layout="btc")
    windows = dataclasses.replace(ctx.windows, targets=np.zeros((ctx.windows.count, 1), dtype=np.float32))
    return dataclasses.replace(
        ctx, schema=schema, windows=windows, forward=forward, explained=np.arange(inputs.shape[0]),
        explained_inputs=inputs, field_maps={}, cache={}, results={}, predictions=None, _explained_outputs=None,
    )  # fmt: skip


def sanity_positive_control(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> SanityResult:
    methods = selected_methods(ctx)
    if not methods:
        raise SkipAnalysis("no attribution method is part of this run")
    return SanityResult(positive_control_test(ctx, methods, params, rng))
