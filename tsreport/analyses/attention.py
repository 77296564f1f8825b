"""`attention`: where the model's ``nn.MultiheadAttention`` layers look.

Each layer's attention weights are captured while the explained windows run
through the model, averaged over heads and windows, and reported per layer:
what the last query position (the one a forecaster usually reads its output
from) attends to, the whole query × key map, and how focused that attention is
(its entropy). Only eager modules (a state dict with ``--model-class``, or a
trusted pickle) expose their attention layers; in a TorchScript or
torch.export program the attention is fused into a compiled graph.

Attention shows where the model looks, not why it predicts: high attention on a
step does not make that step important for the output (the attribution
analyses measure that).

References
----------
Vaswani, A. et al. (2017). Attention is all you need. NeurIPS.
Jain, S., Wallace, B. C. (2019). Attention is not explanation. NAACL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from tsreport.analyses._base import FIGURES, AnalysisContext, AnalysisSpec, Figure, SkipAnalysis, clean_float

#: Largest query × key map kept in results.json; bigger maps are reduced block-wise.
MAP_CAP = 64
#: Upper bound on the attention weights one batch may materialise (torch builds the full
#: (batch, heads, L, S) tensor whenever weights are requested), so long sequences run in smaller batches.
WEIGHTS_BUDGET_BYTES = 256 * 2**20

CAVEAT = (
    "Attention weights show where the model looks, not why it predicts: a step can get high attention "
    "and still barely move the output, and the reverse (Jain & Wallace 2019, 'Attention is not "
    "Explanation'). Use the attribution analyses to tell which inputs drive the prediction."
)


@dataclasses.dataclass(frozen=True)
class LayerAttention:
    """One ``nn.MultiheadAttention`` layer, averaged over heads and explained windows.

    Attributes
    ----------
    name : str
        The layer's name from ``named_modules()`` (" (call k)" appended when one layer
        is called more than once per forward pass).
    heads : int
    query_length, key_length : int
        L and S: positions that attend, and positions attended to.
    time_axis : str
        "time" when S equals the window length T (position i is time step i - (T-1)),
        "token" when the model attends over something else (patches, a summary token...).
    last_step : (S,) list of float
        What the last query position attends to; sums to 1.
    entropy : float
        Mean over windows and heads of the last position's attention entropy, in nats:
        0 = all on one position, ``uniform_entropy`` = spread evenly.
    uniform_entropy : float
        log(S), the entropy of uniform attention (the most diffuse possible).
    map : (L', S') list of list of float
        Mean attention of every query (rows) on every key (columns); L' = min(L, 64),
        S' = min(S, 64). A bigger map is reduced block-wise: query rows averaged and key
        columns summed per block, so each row still sums to 1.
    map_row_edges, map_column_edges : list of int or None
        The [edges[i], edges[i+1]) positions behind each map row / column when reduced.
    """

    name: str
    heads: int
    query_length: int
    key_length: int
    time_axis: str
    last_step: list[float | None]
    entropy: float | None
    uniform_entropy: float
    map: list[list[float | None]]
    map_row_edges: list[int] | None
    map_column_edges: list[int] | None


@dataclasses.dataclass(frozen=True)
class AttentionResult:
    """Attention maps of every ``nn.MultiheadAttention`` layer the explained windows pass through.

    ``layers`` in ``named_modules()`` order; ``windows`` explained; ``caveat`` what the
    maps do and do not show; ``notes`` anything a reader should know about this model's maps.
    No ``field_importance``: attention is over positions, not an attribution to fields.
    """

    windows: int
    window: int
    layers: list[LayerAttention]
    caveat: str
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- capture


class AttentionCapture:
    """Per-head attention weights recorded by :func:`capture_attention`.

    ``records`` maps a layer name to one (N, heads, L, S) float32 CPU tensor per call.
    """

    def __init__(self) -> None:
        self.records: dict[str, list[torch.Tensor]] = {}
        self.layers: list[str] = []  # the attention layers' names

    def drain(self) -> dict[str, list[torch.Tensor]]:
        """The weights recorded since the last drain, which are then forgotten."""
        records, self.records = self.records, {}
        return records


def attention_layers(module: torch.nn.Module) -> list[tuple[str, torch.nn.MultiheadAttention]]:
    """The model's ``nn.MultiheadAttention`` layers (subclasses included), in ``named_modules()`` order."""
    return [
        (name or type(layer).__name__, layer)
        for name, layer in module.named_modules()
        if isinstance(layer, torch.nn.MultiheadAttention)
    ]


@contextlib.contextmanager
def capture_attention(module: torch.nn.Module) -> Iterator[AttentionCapture]:
    """Record every ``nn.MultiheadAttention`` layer's per-head weights, leaving the outputs as they were.

    Each layer's ``forward`` is patched on the instance to ask for per-head weights
    (``need_weights=True, average_attn_weights=False``) and to return exactly what its
    caller asked for: ``(output, None)`` for ``need_weights=False`` (what torch's
    encoder and decoder layers pass), head-averaged weights for the default
    ``average_attn_weights=True``. torch's fused "fast path"
    (``torch._transformer_encoder_layer_fwd``), which eval-mode encoder layers take
    under ``no_grad``/``inference_mode`` without calling ``self_attn.forward`` at all,
    is switched off meanwhile. It computes the same function, so outputs agree to
    float rounding. Everything is restored on exit, also after an error.
    """
    capture = AttentionCapture()
    patched: list[tuple[torch.nn.Module, bool, Any]] = []
    previous_fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        torch.backends.mha.set_fastpath_enabled(False)
        for name, layer in attention_layers(module):
            capture.layers.append(name)
            had_own = "forward" in layer.__dict__
            patched.append((layer, had_own, layer.__dict__.get("forward")))
            layer.forward = _recording_forward(layer.forward, name, capture)
        yield capture
    finally:
        for layer, had_own, own in reversed(patched):
            if had_own:
                layer.forward = own
            else:
                del layer.forward
        torch.backends.mha.set_fastpath_enabled(previous_fastpath)


def _recording_forward(original: Any, name: str, capture: AttentionCapture) -> Any:
    signature = inspect.signature(original)
    if not {"need_weights", "average_attn_weights"} <= set(signature.parameters):
        return original  # a subclass with its own signature: leave it alone

    def forward(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return original(*args, **kwargs)  # let the layer raise its own error
        bound.apply_defaults()
        wanted = bool(bound.arguments["need_weights"])
        average = bool(bound.arguments["average_attn_weights"])
        bound.arguments["need_weights"] = True
        bound.arguments["average_attn_weights"] = False
        output, weights = original(*bound.args, **bound.kwargs)
        if weights is not None:
            per_head = weights.detach()
            if per_head.ndim == 3:  # an unbatched call: (heads, L, S)
                per_head = per_head.unsqueeze(0)
            capture.records.setdefault(name, []).append(per_head.to("cpu", torch.float32))
        if not wanted:
            return output, None
        if average and weights is not None:
            return output, weights.mean(dim=-3)  # what torch returns: the mean over heads
        return output, weights

    return forward


# --------------------------------------------------------------------------- why not

#: Compiled formats, as ``LoadedModel.format`` names them, and as a reader knows them.
COMPILED_FORMATS = {"torchscript": "TorchScript", "export": "torch.export program"}
#: TorchScript ops that compute attention (torch's fused MultiheadAttention and encoder-layer kernels included).
SCRIPT_ATTENTION_OPS = (
    "aten::scaled_dot_product_attention",
    "aten::_native_multi_head_attention",
    "aten::_transformer_encoder_layer_fwd",
)


def skip_reason(module: Any, model_format: str) -> str | None:
    """Why the attention maps cannot be drawn for this model, in words a reader can act on; None when they can.

    Tells a model with no attention at all (a CNN or GRU, or a compiled graph with
    no attention module or op) from one whose attention exists but cannot be hooked:
    compiled into TorchScript or a torch.export program, or written as its own
    module rather than ``nn.MultiheadAttention``.
    """
    compiled = COMPILED_FORMATS.get(model_format)
    if compiled is None and isinstance(module, torch.jit.ScriptModule):
        compiled = COMPILED_FORMATS["torchscript"]
    if compiled is not None:
        found = compiled_attention(module)
        if not found:
            return f"the model has no attention layers (no attention module or op in its {compiled} graph)"
        return (
            f"the model has attention layers ({found}), but their weights cannot be hooked in this format "
            f"({compiled}); load it as a state dict with --model-class to see them "
            "(torch.save(model.state_dict()), then --model-class FILE.py:CLASS)"
        )
    if not isinstance(module, torch.nn.Module):
        return "the model has no attention layers (it is not a torch module)"
    if attention_layers(module):
        return None
    # The root's class names the model ("AttentionFreeCNN"), not a layer: only submodules count.
    custom = sorted(
        {type(layer).__name__ for path, layer in module.named_modules() if path and _is_attention(type(layer).__name__)}
    )
    if custom:
        return (
            f"the model has attention layers ({', '.join(custom)}), but not nn.MultiheadAttention, the only "
            "attention layer whose weights tsreport records"
        )
    return "the model has no attention layers (no nn.MultiheadAttention)"


def compiled_attention(module: Any) -> str:
    """What in a TorchScript or torch.export module shows that it computes attention; '' when nothing does.

    Looks at its submodules' class names (TorchScript keeps each one's
    ``original_name``; torch.export keeps them in each node's ``nn_module_stack``)
    and at the ops of its graphs. The root module's own class name does not count.
    """
    names: set[str] = set()
    ops: set[str] = set()
    try:
        submodules = list(module.named_modules())
    except Exception:  # a compiled module that cannot list its children: look at its own graph only
        submodules = [("", module)]
    for path, sub in submodules:
        name = getattr(sub, "original_name", None) or type(sub).__name__
        if path and _is_attention(name):
            names.add(name)
        try:
            graph = getattr(sub, "graph", None)
        except RuntimeError:  # a scripted container (ModuleList) has no forward, so no graph
            continue
        if isinstance(graph, torch.fx.Graph):  # torch.export
            for node in graph.nodes:
                if node.op == "call_function" and "attention" in str(node.target):
                    ops.add(str(node.target))
                for stack_path, kind in (node.meta.get("nn_module_stack") or {}).values():
                    if stack_path and _is_attention(str(kind).rsplit(".", 1)[-1]):
                        names.add(str(kind).rsplit(".", 1)[-1])
        elif graph is not None:  # TorchScript: nested blocks (if/loop bodies) included
            with contextlib.suppress(Exception):  # a graph this torch cannot walk: the names decide
                ops.update(op for op in SCRIPT_ATTENTION_OPS if graph.findAllNodes(op, True))
    shown = sorted(names) or sorted(ops)  # class names say more to a reader than kernel names
    return ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")


def _is_attention(class_name: str) -> bool:
    return "attention" in class_name.lower()


# --------------------------------------------------------------------------- analysis


@dataclasses.dataclass
class _Totals:
    """Running sums over windows for one layer (float64)."""

    heads: int
    last_step: torch.Tensor  # (S,)
    map: torch.Tensor  # (L, S)
    entropy: float = 0.0
    windows: int = 0

    def add(self, weights: torch.Tensor) -> None:
        weights = weights.double()  # (N, heads, L, S)
        if weights.shape[1] != self.heads or weights.shape[2:] != self.map.shape:
            raise ValueError(
                f"attention shapes changed between batches: {tuple(self.map.shape)} with {self.heads} heads, "
                f"then {tuple(weights.shape[2:])} with {weights.shape[1]} heads"
            )
        last = weights[:, :, -1, :]  # (N, heads, S)
        self.last_step += last.mean(dim=1).sum(dim=0)
        self.map += weights.mean(dim=1).sum(dim=0)
        self.entropy += float(-(last * torch.log(last.clamp_min(1e-30))).sum(dim=2).mean(dim=1).sum())
        self.windows += weights.shape[0]


def attention(ctx: AnalysisContext, params: dict[str, Any], *, rng: np.random.Generator) -> AttentionResult:
    """Attention maps of the model's ``nn.MultiheadAttention`` layers on the explained windows.

    Raises
    ------
    SkipAnalysis
        The model has no attention layers; or it has some, but in a TorchScript or
        torch.export program (not reachable) or not as ``nn.MultiheadAttention``
        (see :func:`skip_reason`); or it never calls them.

    References
    ----------
    Jain, S., Wallace, B. C. (2019). Attention is not explanation. NAACL.
    """
    engine = ctx.forward

    @contextlib.contextmanager
    def instrument(module: Any) -> Iterator[AttentionCapture]:
        skip = skip_reason(module, engine.loaded.format)
        if skip:
            raise SkipAnalysis(skip)
        with capture_attention(module) as capture:
            yield capture

    inputs = ctx.explained_inputs
    if inputs.shape[0] == 0:
        raise SkipAnalysis("there are no windows to explain")
    window = ctx.schema.window
    totals: dict[str, _Totals] = {}
    with engine.instrumented(instrument) as capture, torch.inference_mode():
        # One window first, to size the batches so one batch's weights stay within budget.
        engine.raw_call(engine.to_device(inputs[:1]))
        per_window = sum(w.numel() * 4 for calls in capture.drain().values() for w in calls)
        batch_size = max(1, min(engine.batch_size, WEIGHTS_BUDGET_BYTES // max(per_window, 1)))
        for begin in ctx.progress.counted(range(0, inputs.shape[0], batch_size)):
            engine.raw_call(engine.to_device(inputs[begin : begin + batch_size]))
            for name, calls in capture.drain().items():
                for index, weights in enumerate(calls):
                    key = name if len(calls) == 1 else f"{name} (call {index + 1})"
                    if key not in totals:
                        heads, length, keys = weights.shape[1:]
                        totals[key] = _Totals(heads, torch.zeros(keys, dtype=torch.float64),
                                              torch.zeros(length, keys, dtype=torch.float64))  # fmt: skip
                    totals[key].add(weights)
    if not totals:
        names = ", ".join(capture.layers)
        raise SkipAnalysis(f"the model's nn.MultiheadAttention layers ({names}) were not called on the windows")

    layers = [_summarise(name, total, window) for name, total in totals.items()]
    notes = []
    tokens = [layer.name for layer in layers if layer.time_axis == "token"]
    if tokens:
        notes.append(
            f"Layers {', '.join(tokens)} attend over {_lengths(layers, tokens)} positions, not the window's "
            f"{window} time steps (the model may patch or summarise the series): their axis is tokens, "
            "numbered back from the last one."
        )
    if any(layer.map_row_edges or layer.map_column_edges for layer in layers):
        notes.append(
            f"Maps longer than {MAP_CAP} positions are reduced to {MAP_CAP} blocks: query rows averaged and "
            "key columns summed per block, so each row still sums to 1."
        )
    return AttentionResult(windows=int(inputs.shape[0]), window=window, layers=layers, caveat=CAVEAT, notes=notes)


def _lengths(layers: list[LayerAttention], names: list[str]) -> str:
    return "/".join(sorted({str(layer.key_length) for layer in layers if layer.name in names}))


def _summarise(name: str, total: _Totals, window: int) -> LayerAttention:
    count = max(total.windows, 1)
    length, keys = total.map.shape
    mean_map = (total.map / count).numpy()
    row_edges = _edges(length) if length > MAP_CAP else None
    column_edges = _edges(keys) if keys > MAP_CAP else None
    if row_edges is not None:
        mean_map = np.add.reduceat(mean_map, row_edges[:-1], axis=0) / np.diff(row_edges)[:, None]
    if column_edges is not None:
        mean_map = np.add.reduceat(mean_map, column_edges[:-1], axis=1)
    return LayerAttention(
        name=name,
        heads=total.heads,
        query_length=length,
        key_length=keys,
        time_axis="time" if keys == window else "token",
        last_step=[clean_float(v) for v in (total.last_step / count).tolist()],
        entropy=clean_float(total.entropy / count),
        uniform_entropy=math.log(keys) if keys > 0 else 0.0,
        map=[[clean_float(v) for v in row] for row in mean_map.tolist()],
        map_row_edges=row_edges.tolist() if row_edges is not None else None,
        map_column_edges=column_edges.tolist() if column_edges is not None else None,
    )


def _edges(length: int) -> np.ndarray:
    """MAP_CAP + 1 block edges over ``length`` positions, blocks as even as possible."""
    return np.round(np.linspace(0, length, MAP_CAP + 1)).astype(np.int64)


def attention_figures(report: Any, spec: AnalysisSpec, entry: dict[str, Any]) -> list[Figure]:
    from tsreport.render import plots

    layers = entry.get("layers")
    if not layers:
        return []
    peaks = []
    for layer in layers[: plots.ATTENTION_LAYERS_PLOTTED]:
        weights = [v or 0.0 for v in layer["last_step"]]
        if weights:
            peaks.append(f"{layer['name']} at step {weights.index(max(weights)) - (len(weights) - 1)}")
    return [
        (
            "attention_last_step",
            plots.attention_last_step(layers),
            "Bar charts, one row per attention layer, of how much the last position attends to each position "
            "(0 = the last), averaged over heads and windows, with uniform attention dashed, beside each layer's "
            "query × key attention map. The largest weight is: " + "; ".join(peaks) + ".",
        )
    ]


SPEC = AnalysisSpec("attention", FIGURES, attention, "Attention maps", figures=attention_figures)
