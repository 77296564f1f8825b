"""The engine: the only place that calls the model.

Every analysis gets its model work done here: outputs of windows (:meth:`Engine.__call__`),
outputs of perturbed windows (:meth:`Engine.perturbed`), gradients (:meth:`Engine.gradients`) and
calls with the module instrumented (:meth:`Engine.instrumented`, for attention weights). The work
is cut into batches of ``batch_size`` windows, and the batches into chunks; chunks run in this
process or, through an executor (:mod:`tsreport.engine.executors`), in worker processes or on a
Dask cluster. A chunk is a pure function of its inputs, so where it runs never changes a number:
the batches are the same whatever runs them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tsreport.engine import prefix
from tsreport.engine.perturbations import Masked, Perturbation, Selector, own
from tsreport.exceptions import ModelLoadError

if TYPE_CHECKING:
    from tsreport.engine.executors import Executor
    from tsreport.engine.source import EngineSpec
    from tsreport.model import LoadedModel

#: Batches per chunk sent to a worker: big enough that shipping a chunk costs little next to running it.
BATCHES_PER_CHUNK = 8


class NoGradient(Exception):
    """The model's output cannot be differentiated with respect to its inputs."""


class ShapeMismatch(Exception):
    def __init__(self, expected: str, actual: tuple[int, ...]) -> None:
        super().__init__(expected)
        self.expected = expected
        self.actual = actual


@dataclasses.dataclass(frozen=True)
class Layout:
    """How the model's inputs and outputs are laid out (from the schema): picklable, shipped to workers."""

    layout: str
    task: str
    horizon: int
    n_classes: int | None
    quantiles: tuple[float, ...] | None = None
    explain_quantile: int | None = None


class Engine:
    """Calls the model on windows in the schema's layout, in batches, and shapes the output.

    Inputs are always (B, T, C) float32 in model units; outputs are
    (B, H) for regression and (B, K) class scores for classification.
    ``batch_size`` is a speed knob: at a pinned batch size numbers are bit-identical whatever
    runs the chunks (this process, ``--workers``, a Dask cluster).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        layout: str,
        task: str,
        horizon: int,
        n_classes: int | None,
        device: str = "cpu",
        batch_size: int = 256,
        quantiles: tuple[float, ...] | None = None,
        explain_quantile: int | None = None,
        spec: EngineSpec | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.loaded = loaded
        self.shape = Layout(layout, task, horizon, n_classes, tuple(quantiles) if quantiles else None, explain_quantile)
        self.device = torch.device(device)
        self.batch_size = loaded.static_batch or batch_size
        self.backward_batch_size = self.batch_size
        self.evaluations = 0  # windows passed through the model, for progress and benchmarks
        self.spec = spec  # how another process builds this engine; None: this process only
        self.executor = executor
        # Quantile heads (schema ``output: {quantiles: [...]}``): the model returns (B, H, Q).
        # Analyses see (B, H) of the explained quantity: quantile ``explain_quantile``, or the
        # interval width (highest minus lowest quantile) when it is None. Inside ``full_outputs()``
        # calls return every quantile, flattened to (B, H * Q), horizon-major.
        self._full = False
        # Prefix-state reuse for eager recurrent layers (tsreport/engine/prefix.py): None until checked.
        self.prefix_reuse: bool | None = None
        self.prefix_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ settings
    layout = property(lambda self: self.shape.layout)
    task = property(lambda self: self.shape.task)
    horizon = property(lambda self: self.shape.horizon)
    n_classes = property(lambda self: self.shape.n_classes)
    quantiles = property(lambda self: self.shape.quantiles)
    explain_quantile = property(lambda self: self.shape.explain_quantile)

    @property
    def parallel(self) -> bool:
        return self.executor is not None and self.spec is not None and self.executor.workers > 1

    def with_module(self, module: torch.nn.Module) -> Engine:
        """An engine over ``module`` (a changed copy of this engine's model) with the same settings.

        It runs in this process: the copy exists only here. The user's module is never touched.
        """
        loaded = dataclasses.replace(self.loaded, module=module, notes=[])
        engine = Engine(loaded, **self._settings(), batch_size=self.batch_size)
        engine.backward_batch_size = self.backward_batch_size
        return engine

    def _settings(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.shape), "device": str(self.device)}

    @contextlib.contextmanager
    def full_outputs(self) -> Iterator[None]:
        """Within this block a quantile model's calls return (B, H * Q): every quantile, not the explained one."""
        previous, self._full = self._full, True
        try:
            yield
        finally:
            self._full = previous

    @property
    def output_width(self) -> int:
        """Columns of a shaped output: H (regression), H * Q inside ``full_outputs()``, or K classes."""
        if self.task == "classification":
            return self.n_classes or 0
        return self.horizon * (len(self.quantiles) if self.quantiles and self._full else 1)

    # ------------------------------------------------------------------ one call
    def to_model_layout(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.layout == "bct":
            return inputs.transpose(1, 2)
        if self.layout == "flat":
            return inputs.reshape(inputs.shape[0], -1)
        return inputs

    def model_input_shape(self, batch: int, window: int, channels: int) -> tuple[int, ...]:
        if self.layout == "bct":
            return (batch, channels, window)
        if self.layout == "flat":
            return (batch, window * channels)
        return (batch, window, channels)

    def to_device(self, inputs: torch.Tensor) -> torch.Tensor:
        """A CPU batch onto the model's device: through pinned memory, without blocking, on a GPU."""
        if self.device.type == "cuda" and inputs.device.type == "cpu":
            return inputs.pin_memory().to(self.device, non_blocking=True)
        return inputs.to(self.device)

    def raw_call(self, inputs: torch.Tensor) -> torch.Tensor:
        """One model call on a (B, T, C) tensor already on the device; returns the shaped output."""
        batch = inputs.shape[0]
        static = self.loaded.static_batch
        if static is not None and batch != static:
            padded = inputs.new_zeros((static,) + tuple(inputs.shape[1:]))
            padded[:batch] = inputs
            inputs = padded
        output = self.loaded.module(self.to_model_layout(inputs))
        self.evaluations += batch
        return self.shape_output(output, batch, fed=inputs.shape[0])

    def shape_output(self, output: Any, batch: int, fed: int | None = None) -> torch.Tensor:
        """The model's raw output as (batch, H), (batch, H * Q) in ``full_outputs()``, or (batch, K).

        ``fed`` is how many rows went into the model (a static-batch program is padded to its
        batch size); an output whose first dimension is not that count cannot belong to the windows.
        """
        if isinstance(output, (tuple, list)) and output:
            output = output[0]  # e.g. (prediction, attention)
        if not isinstance(output, torch.Tensor):
            raise ModelLoadError(f"The model returned a {type(output).__name__}, not a tensor.")
        fed = batch if fed is None else fed
        if output.ndim == 0 or output.shape[0] != fed:
            raise ShapeMismatch(
                f"the output's first dimension must be the batch ({fed} windows were fed), so that each "
                "window gets its own prediction",
                tuple(output.shape),
            )
        output = output[:batch]
        if self.task == "regression" and self.quantiles:
            return self._quantile_output(output, batch)
        if self.task == "regression":
            if output.ndim == 1:
                output = output[:, None]
            elif output.ndim == 3 and output.shape[2] == 1:
                output = output[:, :, 0]
            if output.ndim != 2 or output.shape[1] != self.horizon:
                raise ShapeMismatch(
                    f"expected ({batch}, {self.horizon}) for horizon {self.horizon} (also accepted: "
                    f"({batch},) when the horizon is 1, or ({batch}, {self.horizon}, 1))"
                    + (
                        f"; if the last axis holds {output.shape[-1]} quantiles, name them in the schema: "
                        "output: {quantiles: [...]}"
                        if output.ndim == 3 and output.shape[2] > 1
                        else ""
                    ),
                    tuple(output.shape),
                )
        else:
            if output.ndim == 2 and output.shape[1] == 1 and self.n_classes == 2:
                output = torch.cat([torch.zeros_like(output), output], dim=1)  # one binary logit
            if output.ndim != 2 or output.shape[1] != self.n_classes:
                raise ShapeMismatch(
                    f"expected ({batch}, {self.n_classes}) class scores for {self.n_classes} classes",
                    tuple(output.shape),
                )
        return output.float()

    def _quantile_output(self, output: torch.Tensor, batch: int) -> torch.Tensor:
        """(B, H, Q), or (B, Q) when H = 1, to what the caller asked for (see ``__init__``)."""
        assert self.quantiles is not None
        count = len(self.quantiles)
        if output.ndim == 2 and self.horizon == 1 and output.shape[1] == count:
            output = output[:, None, :]
        if output.ndim != 3 or output.shape[1] != self.horizon or output.shape[2] != count:
            raise ShapeMismatch(
                f"expected ({batch}, {self.horizon}, {count}) for horizon {self.horizon} and the {count} quantiles "
                f"of 'output'" + (f" (also accepted: ({batch}, {count}))" if self.horizon == 1 else ""),
                tuple(output.shape),
            )
        output = output.float()
        if self._full:
            return output.reshape(batch, self.horizon * count)
        if self.explain_quantile is None:
            return output[:, :, -1] - output[:, :, 0]
        return output[:, :, self.explain_quantile]

    # ------------------------------------------------------------------ batched work
    def batches(self, count: int, size: int | None = None) -> Iterator[slice]:
        size = size or self.batch_size
        for begin in range(0, count, size):
            yield slice(begin, min(count, begin + size))

    def part_size(self) -> int:
        """Windows to hand :meth:`__call__` at a time when the caller builds them: whole batches,
        enough chunks for every worker, so memory stays bounded however many windows there are."""
        workers = self.executor.workers if self.parallel else 1
        return self.batch_size * BATCHES_PER_CHUNK * max(1, workers) * 2

    def __call__(self, inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Model outputs for (N, T, C) inputs, computed in batches; returned on the CPU."""
        tensor = torch.as_tensor(inputs, dtype=torch.float32)
        count = tensor.shape[0]
        batches = [(part.start, part.stop) for part in self.batches(count)]
        remote = self.parallel
        tasks = (
            OutputsChunk(own(tensor[a:b]) if remote else tensor[a:b], _shift(group, a), self._full)
            for a, b, group in self._chunks(batches, remote)
        )
        outputs = list(self._run(tasks, remote))
        if not outputs:
            return torch.zeros((0, self.output_width))
        return torch.cat(outputs)

    def perturbed(
        self,
        count: int,
        perturbations: int,
        build: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        major: str = "window",
    ) -> torch.Tensor:
        """Outputs for every (window, perturbation) pair, in full batches; shape (count, perturbations, O).

        ``build(window_index, perturbation_index)`` gets two (k,) index tensors and returns the
        k perturbed windows (k, T, C). ``major="window"``: pairs are enumerated window-major and
        cut into batches of ``batch_size`` pairs whatever ``count`` and ``perturbations`` are, so
        every model call is a full batch and peak memory is one batch. ``major="perturbation"``:
        each perturbation's windows in batches of ``batch_size`` (one perturbation per batch).
        Chunks go to the executor's workers when ``build`` is a :class:`Perturbation`; a plain
        callable runs in this process.
        """
        total = count * perturbations
        if major == "window":
            batches = [(a, min(total, a + self.batch_size)) for a in range(0, total, self.batch_size)]
        else:
            batches = [
                (p * count + part.start, p * count + part.stop)
                for p in range(perturbations)
                for part in self.batches(count)
            ]
        remote = self.parallel and isinstance(build, Perturbation)
        reuse = major == "window" and self._prefix_usable(build, count, perturbations)
        if reuse:
            return self._perturbed_reusing(build, count, perturbations, remote)
        tasks = (
            PerturbedChunk(
                *_restrict(build, a, b, count, perturbations, major, remote, reuse),
                tuple(group),
                count,
                perturbations,
                major,
                self._full,
                reuse,
            )  # fmt: skip
            for a, b, group in self._chunks(batches, remote)
        )
        outputs: torch.Tensor | None = None
        begin = 0
        for result in self._run(tasks, remote):
            if outputs is None:
                outputs = torch.empty((total, result.shape[1]), dtype=result.dtype)
            outputs[begin : begin + result.shape[0]] = result
            begin += result.shape[0]
        if outputs is None:
            return torch.zeros((count, perturbations, 0))
        if major == "window":
            return outputs.view(count, perturbations, -1)
        return outputs.view(perturbations, count, -1).transpose(0, 1)

    def gradients(
        self,
        inputs: torch.Tensor,
        select: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Gradients of the selected outputs w.r.t. (N, T, C) inputs, one batched forward per chunk.

        ``select(output, row_index)`` maps a (k, O) output chunk of rows ``row_index``
        to the (k, S) scalars explained (S = 1 for a class score, H for the horizon
        steps). Returns (N, S, T, C). Windows are independent in eval mode, so the
        gradient of a chunk's sum is each window's own gradient. Raises NoGradient
        when the output does not depend differentiably on the inputs. Batches hold
        ``backward_batch_size`` windows (the probe may pick it apart from the forward's).
        """
        count = inputs.shape[0]
        batches = [(part.start, part.stop) for part in self.batches(count, self.backward_batch_size)]
        remote = self.parallel and isinstance(select, Selector)
        tasks = (
            GradientChunk(
                own(inputs[a:b]) if remote else inputs[a:b],
                select.take(slice(a, b)) if remote else _Offset(select, a),
                _shift(group, a),
                self._full,
            )
            for a, b, group in self._chunks(batches, remote)
        )
        parts = list(self._run(tasks, remote))
        if not parts:
            return torch.zeros((0, 1) + tuple(inputs.shape[1:]))
        return torch.cat(parts)

    @contextlib.contextmanager
    def instrumented(self, instrument: Callable[[Any], contextlib.AbstractContextManager[Any]]) -> Iterator[Any]:
        """Calls within this block run with the model's module instrumented, in this process.

        ``instrument(module)`` is a context manager (e.g. hooks that record attention weights)
        whose value is returned; use :meth:`raw_call` or :meth:`__call__` inside the block.
        """
        saved, self.executor = self.executor, None
        try:
            with instrument(self.loaded.module) as value:
                yield value
        finally:
            self.executor = saved

    def _perturbed_reusing(self, build: Masked, count: int, perturbations: int, remote: bool) -> torch.Tensor:
        """:meth:`perturbed` with prefix-state reuse: within each block of windows, the pairs whose
        perturbation first changes the same step are batched together, so that each recurrent call
        runs one suffix length for the whole batch (batches of mixed starts would split into many
        small calls and lose more than the shorter sequences save)."""
        steps = prefix.first_changed_steps(build.masks, build.inputs.shape[1])
        starts = [torch.nonzero(steps == start)[:, 0] for start in torch.unique(steps).tolist()]
        batches: list[torch.Tensor] = []
        for first in range(0, count, prefix.BLOCK):
            windows = torch.arange(first, min(count, first + prefix.BLOCK))
            for chosen in starts:
                pairs = (windows[:, None] * perturbations + chosen[None, :]).reshape(-1)
                batches.extend(torch.split(pairs, self.batch_size))
        outputs: torch.Tensor | None = None
        for pairs, result in self._run_pairs(build, batches, count, perturbations, remote):
            if outputs is None:
                outputs = torch.empty((count * perturbations, result.shape[1]), dtype=result.dtype)
            outputs[pairs] = result
        if outputs is None:
            return torch.zeros((count, perturbations, 0))
        return outputs.view(count, perturbations, -1)

    def _run_pairs(
        self, build: Masked, batches: list[torch.Tensor], count: int, perturbations: int, remote: bool
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(the chunk's pair indices, their outputs) for chunks of the given batches of pair indices."""
        size = self._chunk_size(len(batches), remote)
        groups = [batches[i : i + size] for i in range(0, len(batches), size)]

        def task(group: list[torch.Tensor]) -> PerturbedChunk:
            pairs = torch.cat(group)
            first, end = int(pairs.min()), int(pairs.max()) + 1
            taken = _restrict(build, first, end, count, perturbations, "window", remote, True)
            return PerturbedChunk(*taken, tuple(group), count, perturbations, "window", self._full, True)

        tasks = (task(group) for group in groups)
        for group, result in zip(groups, self._run(tasks, remote)):
            yield torch.cat(group), result

    def _prefix_usable(self, build: Any, count: int, perturbations: int) -> bool:
        """Whether prefix-state reuse applies to this work, checked against the plain path once per engine."""
        if self.prefix_reuse is False or not isinstance(build, Masked) or count == 0:
            return False
        layers = prefix.recurrent_layers(self.loaded.module)
        if not layers:
            return False
        window = build.inputs.shape[1]
        steps = prefix.first_changed_steps(build.masks, window)
        if not bool(((steps > 0) & (steps < window)).any()):
            return False
        if self.prefix_reuse is None:
            self._check_prefix(build, min(count, prefix.CHECK_WINDOWS), perturbations, [name for name, _ in layers])
        return bool(self.prefix_reuse)

    def _check_prefix(self, build: Masked, count: int, perturbations: int, layers: list[str]) -> None:
        """Reuse against the plain path on the first ``count`` windows; off, with a note, beyond TOLERANCE."""
        total = count * perturbations
        batches = tuple((a, min(total, a + self.batch_size)) for a in range(0, total, self.batch_size))
        evaluations = self.evaluations
        try:
            plain = PerturbedChunk(build, 0, 0, batches, count, perturbations, "window", self._full, False).run(self)
            reused = PerturbedChunk(build, 0, 0, batches, count, perturbations, "window", self._full, True).run(self)
        except Exception as error:  # the layers are called in a way reuse does not follow
            self.prefix_reuse = False
            self.prefix_info = {"layers": layers, "used": False, "reason": f"{type(error).__name__}: {error}"[:200]}
            return
        finally:
            self.evaluations = evaluations
        scale = float(plain.abs().max()) or 1.0
        difference = float((plain - reused).abs().max()) / scale
        self.prefix_reuse = difference <= prefix.TOLERANCE
        self.prefix_info = {"layers": layers, "used": self.prefix_reuse, "checked_windows": count,
                            "max_relative_difference": difference}  # fmt: skip
        if not self.prefix_reuse:
            self.prefix_info["reason"] = (
                f"reusing the recurrent layers' clean prefix states differed from the plain path by {difference:.1e} "
                f"(relative) on {count} windows, above {prefix.TOLERANCE:g}: every window runs in full"
            )

    def _backward_context(self) -> Any:
        # cuDNN refuses RNN backward in eval mode; the plain CUDA kernels give the same gradients.
        if self.device.type == "cuda":
            return torch.backends.cudnn.flags(enabled=False)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ chunks
    def _chunks(self, batches: list[tuple[int, int]], remote: bool = True) -> Iterator[tuple[int, int, list]]:
        """Consecutive batches grouped into chunks (all in one for work that runs here): (first, end, batches)."""
        if not batches:
            return
        size = self._chunk_size(len(batches), remote)
        for index in range(0, len(batches), size):
            group = batches[index : index + size]
            yield group[0][0], group[-1][1], group

    def _chunk_size(self, batches: int, remote: bool) -> int:
        """Batches per chunk: all of them for work that runs here; else at most BATCHES_PER_CHUNK, and
        at least two chunks per worker."""
        if not (remote and self.parallel):
            return max(1, batches)
        return max(1, min(BATCHES_PER_CHUNK, -(-batches // (2 * self.executor.workers))))

    def _run(self, tasks: Iterator[Any], remote: bool = True) -> Iterator[torch.Tensor]:
        if not (remote and self.parallel):
            for task in tasks:
                yield task.run(self)
            return
        assert self.executor is not None and self.spec is not None
        for task, result in self.executor.run(self.spec, tasks):
            self.evaluations += task.size
            yield result


def _shift(batches: list[tuple[int, int]], offset: int) -> tuple[tuple[int, int], ...]:
    return tuple((a - offset, b - offset) for a, b in batches)


def _restrict(
    build: Any, first: int, end: int, count: int, perturbations: int, major: str, remote: bool, reuse: bool = False
) -> tuple:
    """(build over the chunk's windows and perturbations only, first window, first perturbation).

    With prefix reuse the windows are widened to whole blocks of ``prefix.BLOCK``: clean states are
    computed per block, so they are the same wherever the chunk boundaries fall.
    """
    if not remote:
        return build, 0, 0
    if major == "window":
        w0, w1, p0, p1 = first // perturbations, (end - 1) // perturbations + 1, 0, perturbations
        if reuse:
            w0, w1 = w0 // prefix.BLOCK * prefix.BLOCK, min(count, -(-w1 // prefix.BLOCK) * prefix.BLOCK)
    else:
        p0, p1 = first // count, (end - 1) // count + 1
        w0, w1 = (first % count, (end - 1) % count + 1) if p1 - p0 == 1 else (0, count)
    return build.take(slice(w0, w1), slice(p0, p1)), w0, p0


class _Offset:
    """A select function seen from a chunk that starts at row ``offset``."""

    def __init__(self, select: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], offset: int) -> None:
        self.select, self.offset = select, offset

    def __call__(self, outputs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self.select(outputs, rows + self.offset)


@contextlib.contextmanager
def _full(engine: Engine, full: bool) -> Iterator[None]:
    if full:
        with engine.full_outputs():
            yield
    else:
        yield


@dataclasses.dataclass(frozen=True)
class OutputsChunk:
    """Outputs of (k, T, C) windows in the given batches (row ranges)."""

    inputs: torch.Tensor
    batches: tuple[tuple[int, int], ...]
    full: bool = False

    @property
    def size(self) -> int:
        return self.inputs.shape[0]

    def run(self, engine: Engine) -> torch.Tensor:
        parts = []
        with torch.inference_mode(), _full(engine, self.full):
            for a, b in self.batches:
                parts.append(engine.raw_call(engine.to_device(self.inputs[a:b])).cpu())
        return torch.cat(parts)


def _pairs(batch: tuple[int, int] | torch.Tensor) -> torch.Tensor:
    """A batch's pair indices: a range (first, end), or the indices themselves."""
    return torch.arange(*batch) if isinstance(batch, tuple) else batch


@dataclasses.dataclass(frozen=True)
class PerturbedChunk:
    """Outputs of the pairs in the given batches of the (window, perturbation) pair space."""

    build: Any
    first_window: int
    first_perturbation: int
    batches: tuple[tuple[int, int] | torch.Tensor, ...]  # pair ranges, or pair indices (prefix reuse)
    count: int
    perturbations: int
    major: str
    full: bool = False
    reuse: bool = False  # prefix-state reuse (window-major Masked perturbations of a recurrent model)

    @property
    def size(self) -> int:
        return sum(_pairs(batch).shape[0] for batch in self.batches)

    def run(self, engine: Engine) -> torch.Tensor:
        parts = []
        with torch.inference_mode(), _full(engine, self.full), self._reuse(engine) as reuse:
            for batch in self.batches:
                pairs = _pairs(batch)
                if self.major == "window":
                    window, perturbation = pairs // self.perturbations, pairs % self.perturbations
                else:
                    window, perturbation = pairs % self.count, pairs // self.count
                batch = self.build(window - self.first_window, perturbation - self.first_perturbation)
                with reuse.batch(window, perturbation - self.first_perturbation) if reuse else contextlib.nullcontext():
                    parts.append(engine.raw_call(engine.to_device(batch)).cpu())
        return torch.cat(parts)

    @contextlib.contextmanager
    def _reuse(self, engine: Engine) -> Iterator[prefix.PrefixReuse | None]:
        layers = prefix.recurrent_layers(engine.loaded.module) if self.reuse else []
        if not layers:
            yield None
            return
        inputs, offset, count = self.build.inputs, self.first_window, self.count

        def clean(first: int, end: int) -> torch.Tensor:
            return inputs[first - offset : min(end, count) - offset]

        steps = prefix.first_changed_steps(self.build.masks, inputs.shape[1])
        with prefix.PrefixReuse(engine, layers, clean, steps, inputs.shape[1]).installed() as reuse:
            yield reuse


@dataclasses.dataclass(frozen=True)
class GradientChunk:
    """Gradients of the selected outputs of (k, T, C) windows, batch by batch."""

    inputs: torch.Tensor
    select: Any
    batches: tuple[tuple[int, int], ...]
    full: bool = False

    @property
    def size(self) -> int:
        return self.inputs.shape[0]

    def run(self, engine: Engine) -> torch.Tensor:
        grads: torch.Tensor | None = None
        with torch.enable_grad(), engine._backward_context(), _full(engine, self.full):
            for a, b in self.batches:
                chunk = engine.to_device(self.inputs[a:b]).detach().requires_grad_(True)
                scalars = self.select(engine.raw_call(chunk), torch.arange(a, b))
                if not scalars.requires_grad:
                    raise NoGradient(
                        "the model's output does not depend differentiably on its inputs (a detached "
                        "graph, or integer outputs)"
                    )
                if grads is None:
                    grads = torch.empty((self.inputs.shape[0], scalars.shape[1]) + tuple(self.inputs.shape[1:]))
                for column in range(scalars.shape[1]):
                    (grad,) = torch.autograd.grad(
                        scalars[:, column].sum(), chunk, retain_graph=column < scalars.shape[1] - 1, allow_unused=True
                    )
                    if grad is None:
                        raise NoGradient("the model's output has no gradient with respect to its inputs")
                    grads[a:b, column] = grad.detach().cpu()
        assert grads is not None
        return grads
