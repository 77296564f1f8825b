"""Prefix-state reuse for recurrent models: occlusion without re-running the untouched prefix.

When a perturbation leaves the first ``b`` steps of a window as they were (an occlusion block
starting at step ``b``, a TSR time step), a unidirectional ``nn.LSTM``/``nn.GRU``/``nn.RNN`` sees the
same first ``b`` inputs as on the clean window, so its state after step ``b`` is the clean one.
The engine then runs each such layer on steps ``b..T`` only, from the clean state, and puts the
clean outputs of steps ``0..b`` in front: the same function, about half the recurrent steps.

Safe by construction, checked twice:

- each layer's own input is compared, exactly, with the clean input over the prefix, batch by
  batch: layers before it that mix time steps (a convolution, a normalisation over time) change
  the prefix, and those rows simply run in full;
- before a run relies on it, the engine compares reuse with the plain path on a few explained
  windows and switches reuse off, with a note, on any difference above :data:`TOLERANCE`
  (relative to the outputs' scale).

Eager modules only: a TorchScript or torch.export program calls its layers from compiled code
that cannot be intercepted. Clean states are computed per block of :data:`BLOCK` windows (by
absolute window index), so the numbers do not depend on where chunks are cut.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

#: Largest difference from the plain path (relative to the outputs' largest magnitude) reuse may make.
TOLERANCE = 1e-5
#: Windows whose clean states are computed together (by absolute window index).
BLOCK = 128
#: Windows the engine checks reuse on before relying on it.
CHECK_WINDOWS = 8

_RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)


def recurrent_layers(module: Any) -> list[tuple[str, nn.Module]]:
    """The unidirectional eager recurrent layers whose calls can be intercepted."""
    if not isinstance(module, nn.Module) or isinstance(module, torch.jit.ScriptModule):
        return []
    return [
        (name, layer)
        for name, layer in module.named_modules()
        if isinstance(layer, _RECURRENT) and not layer.bidirectional and not isinstance(layer, torch.jit.ScriptModule)
    ]


def first_changed_steps(masks: torch.Tensor, window: int) -> torch.Tensor:
    """(P,) the first step each mask changes (``window`` for a mask that changes nothing)."""
    changed = masks.reshape(masks.shape[0], masks.shape[1], -1).any(dim=2)  # (P, T or 1)
    if changed.shape[1] == 1:
        return torch.where(changed[:, 0], 0, window)
    steps = torch.arange(changed.shape[1]).expand_as(changed)
    return torch.where(changed, steps, window).min(dim=1).values


@dataclasses.dataclass
class _LayerCache:
    inputs: torch.Tensor  # (k, T, H_in) batch-first, the clean inputs of the layer
    outputs: torch.Tensor  # (k, T, H_out) its clean outputs
    states: dict[int, Any]  # first changed step b -> the state after b clean steps, (layers, k, H) (a pair for LSTM)


class PrefixReuse:
    """Installed around a chunk's batches: each recurrent layer reuses clean prefixes where it can."""

    def __init__(self, engine: Any, layers: list[tuple[str, nn.Module]], clean: Any, steps: torch.Tensor,
                 window: int) -> None:  # fmt: skip
        self.engine = engine
        self.layers = layers
        self.clean = clean  # (first, end) absolute window indices -> those clean windows (k, T, C)
        self.steps = steps  # (P,) first changed step per perturbation
        self.starts = sorted({int(b) for b in steps.tolist() if 0 < int(b) < window})
        self.blocks: dict[int, dict[str, _LayerCache]] = {}
        self.current: tuple[torch.Tensor, torch.Tensor] | None = None  # (absolute windows, first changed steps)
        self.reused_rows = 0
        self.full_rows = 0

    # ------------------------------------------------------------------ clean states per block
    def _block(self, block: int) -> dict[str, _LayerCache]:
        cached = self.blocks.get(block)
        if cached is not None:
            return cached
        for old in [b for b in self.blocks if b < block]:
            del self.blocks[old]  # batches are window-major: earlier blocks are done
        windows = self.clean(block * BLOCK, (block + 1) * BLOCK)
        seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        current, self.current = self.current, None  # the clean pass runs every layer in full
        evaluations = self.engine.evaluations
        try:
            with _recording(self.layers, seen), torch.inference_mode():
                self.engine.raw_call(self.engine.to_device(windows))
        finally:
            self.current = current
            self.engine.evaluations = evaluations
        caches = {}
        for name, layer in self.layers:
            if name not in seen:
                continue
            inputs, outputs = seen[name]
            states: dict[int, Any] = {}
            state, done = None, 0
            with torch.inference_mode():
                for start in self.starts:
                    if start > inputs.shape[1]:
                        break
                    _, state = _call(layer, layer.forward_original, inputs[:, done:start], state)
                    states[start], done = state, start
            caches[name] = _LayerCache(inputs, outputs, states)
        self.blocks[block] = caches
        return caches

    # ------------------------------------------------------------------ the intercepted call
    def forward(self, name: str, layer: nn.Module, original: Any, input: Any, hx: Any = None) -> Any:
        if self.current is None or hx is not None or not isinstance(input, torch.Tensor) or input.dim() != 3:
            return original(input, hx)
        windows, starts = self.current
        x = input if layer.batch_first else input.transpose(0, 1)
        if x.shape[0] != windows.shape[0]:  # e.g. a static-batch program padded the batch
            return original(input, hx)
        if bool((starts == starts[0]).all()):  # the engine batches one start together: no regrouping
            out, final = self._rows(name, layer, original, x, None, int(starts[0]), windows)
            return (out if layer.batch_first else out.transpose(0, 1)), final
        out: torch.Tensor | None = None
        final: Any = None
        for start in torch.unique(starts).tolist():
            rows = torch.nonzero(starts == start)[:, 0]
            result = self._rows(name, layer, original, x, rows, int(start), windows[rows])
            part_out, part_state = result
            if out is None:
                out = part_out.new_empty((x.shape[0],) + tuple(part_out.shape[1:]))
                final = _like_state(part_state, x.shape[0])
            out[rows] = part_out
            _put_state(final, rows, part_state)
        assert out is not None
        return (out if layer.batch_first else out.transpose(0, 1)), final

    def _rows(self, name: str, layer: nn.Module, original: Any, x: torch.Tensor, rows: torch.Tensor | None,
              start: int, windows: torch.Tensor) -> tuple[torch.Tensor, Any]:  # fmt: skip
        """The layer on rows ``rows`` of ``x`` (None: all), whose first changed step is ``start``."""
        part = x if rows is None else x[rows]
        count = part.shape[0]
        if 0 < start < x.shape[1]:
            blocks = torch.div(windows, BLOCK, rounding_mode="floor")
            if bool((blocks == blocks[0]).all()):
                cache = self._block(int(blocks[0])).get(name)
                if cache is not None and start in cache.states:
                    index = windows - int(blocks[0]) * BLOCK
                    if torch.equal(part[:, :start], cache.inputs[index, :start]):
                        state = _take_state(cache.states[start], index)
                        suffix, final = _call(layer, original, part[:, start:], state)
                        self.reused_rows += count
                        return torch.cat([cache.outputs[index, :start], suffix], dim=1), final
            else:  # rows from two blocks: each block on its own
                out, final = None, None
                for block in torch.unique(blocks).tolist():
                    picked = torch.nonzero(blocks == block)[:, 0]
                    sub_out, sub_state = self._rows(name, layer, original, part, picked, start, windows[picked])
                    if out is None:
                        out = sub_out.new_empty((part.shape[0],) + tuple(sub_out.shape[1:]))
                        final = _like_state(sub_state, part.shape[0])
                    out[picked] = sub_out
                    _put_state(final, picked, sub_state)
                return out, final
        self.full_rows += count
        return _call(layer, original, part, None)

    def batch(self, windows: torch.Tensor, perturbations: torch.Tensor) -> contextlib.AbstractContextManager[None]:
        """Within this block, model calls are the batch of these (absolute) windows and perturbations."""
        return _current(self, (windows, self.steps[perturbations]))

    @contextlib.contextmanager
    def installed(self) -> Iterator[PrefixReuse]:
        patched = []
        try:
            for name, layer in self.layers:
                original = layer.forward
                layer.forward_original = original

                def forward(input: Any, hx: Any = None, *, _name=name, _layer=layer, _original=original) -> Any:
                    return self.forward(_name, _layer, _original, input, hx)

                layer.forward = forward
                patched.append(layer)
            yield self
        finally:
            for layer in patched:
                del layer.forward
                del layer.forward_original


@contextlib.contextmanager
def _current(reuse: PrefixReuse, value: tuple[torch.Tensor, torch.Tensor]) -> Iterator[None]:
    reuse.current = value
    try:
        yield
    finally:
        reuse.current = None


def _call(layer: nn.Module, original: Any, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
    """The layer on batch-first ``x`` from ``state`` (None: zeros): batch-first output, final state."""
    out, final = original(x if layer.batch_first else x.transpose(0, 1), state)
    return (out if layer.batch_first else out.transpose(0, 1)), final


def _take_state(state: Any, index: torch.Tensor) -> Any:
    if isinstance(state, tuple):
        return tuple(s[:, index].contiguous() for s in state)
    return state[:, index].contiguous()


def _like_state(state: Any, rows: int) -> Any:
    if isinstance(state, tuple):
        return tuple(s.new_empty((s.shape[0], rows) + tuple(s.shape[2:])) for s in state)
    return state.new_empty((state.shape[0], rows) + tuple(state.shape[2:]))


def _put_state(target: Any, rows: torch.Tensor, state: Any) -> None:
    if isinstance(target, tuple):
        for t, s in zip(target, state):
            t[:, rows] = s
    else:
        target[:, rows] = state


@contextlib.contextmanager
def _recording(
    layers: list[tuple[str, nn.Module]], seen: dict[str, tuple[torch.Tensor, torch.Tensor]]
) -> Iterator[None]:
    """Record each layer's (batch-first input, output) on the clean windows."""
    handles = []

    def hook(name: str, layer: nn.Module):
        def record(module: nn.Module, args: tuple, output: Any) -> None:
            x = args[0]
            if isinstance(x, torch.Tensor) and x.dim() == 3 and name not in seen:
                out = output[0]
                seen[name] = (x if layer.batch_first else x.transpose(0, 1),
                              out if layer.batch_first else out.transpose(0, 1))  # fmt: skip

        return record

    try:
        for name, layer in layers:
            handles.append(layer.register_forward_hook(hook(name, layer)))
        yield
    finally:
        for handle in handles:
            handle.remove()
