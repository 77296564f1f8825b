"""Load a saved model safely, and ForwardFn: the only place that calls the model.

Four formats are accepted (CONTRACT §2). Nothing is unpickled with
``weights_only=False`` unless the user passed ``--trust-model``: a pickle can
run arbitrary code the moment it is read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import io
import logging
import pickle
import pickletools
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tsreport import archive
from tsreport.exceptions import ModelLoadError, UsageError

if TYPE_CHECKING:
    from tsreport.data import Windows


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass
class LoadedModel:
    """A loaded model and what we learned about it while loading.

    ``module`` is callable on a (B, ...) tensor in the schema's layout.
    ``static_batch`` is set for torch.export programs traced with a fixed batch size.
    """

    module: Callable[..., Any]
    format: str
    path: str
    sha256: str
    static_batch: int | None = None
    static_input_shape: tuple[int, ...] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def torch_module(self) -> torch.nn.Module | None:
        return self.module if isinstance(self.module, torch.nn.Module) else None


def detect_format(path: Path, members: list[zipfile.ZipInfo] | None = None, *, max_size: int | None = None) -> str:
    """Tell the saved format from the file's structure, without inflating or unpickling anything.

    ``members`` is the zip directory that :func:`tsreport.archive.check_model_file` already read
    (None: read it here, within ``max_size``).
    """
    path = Path(path)
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if not magic:
        raise ModelLoadError(f"Model file {path} is empty (0 bytes); save the model again.")
    if members is None:
        members = archive.check_model_file(path, max_size or archive.DEFAULT_MAX_MODEL_SIZE)
    if members is not None:
        names = [info.filename for info in members]
        leaves = {archive.leaf(name) for name in names}
        if "archive_format" in leaves or any(name.startswith("models/") for name in leaves):
            return "export"
        if "constants.pkl" in leaves and any("/code/" in f"/{n}" for n in names):
            return "torchscript"
        if "data.pkl" in leaves:
            return "torch_save"
        raise ModelLoadError(
            f"Model file {path} is a zip archive but not a saved PyTorch model; expected "
            "torch.jit.save, torch.export.save or torch.save output."
        )
    if magic == b"PK\x03\x04":  # a zip's first entry but no readable directory at the end: cut short
        raise ModelLoadError(f"Model file {path} is a damaged zip archive (truncated?); save the model again.")
    return "torch_save"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    if not text:
        return type(error).__name__
    lines = text.splitlines()
    if "Traceback of TorchScript" in text:  # a preamble and code excerpts first; the cause is the last line
        return lines[-1].strip()
    return lines[0]


def load_model(
    path: str | Path,
    *,
    model_class: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    trust_model: bool = False,
    device: str = "cpu",
    max_size: int = archive.DEFAULT_MAX_MODEL_SIZE,
) -> LoadedModel:
    """Load a saved model in any of the four CONTRACT §2 formats.

    Before any torch loader runs, the file's size and zip directory are checked (``max_size``
    bytes on disk and uncompressed, no zip bomb), and a torch.export archive's metadata is
    audited for anything its loading would run (:mod:`tsreport.archive`).

    Raises
    ------
    ModelLoadError
        The file is not a model, is damaged, too large, would run code from the file without
        ``--trust-model``, or does not fit ``--model-class``.
    """
    path = Path(path)
    members = archive.check_model_file(path, max_size)
    kind = detect_format(path, members)
    sha = file_sha256(path)
    map_location = torch.device(device)
    notes: list[str] = []
    if kind == "torchscript":
        try:
            # Safe to load: torch's C++ unpickler reads constants.pkl and data.pkl (see
            # archive.script_file_writes); the code is TorchScript, checked below before it runs.
            module = torch.jit.load(str(path), map_location=map_location)
        except Exception as error:  # torch raises RuntimeError subclasses with long C++ traces
            raise ModelLoadError(f"Cannot load TorchScript model {path}: {_first_line(error)}") from None
        writes = None if trust_model else archive.script_file_writes(module)
        if writes:
            raise ModelLoadError(
                f"Model file {path} is a TorchScript model whose code calls {writes}, which writes or maps "
                f"files named by the model: running it could overwrite your files. Save the model without it, "
                f"or {archive.TRUST_HINT}."
            )
        module.eval()
        loaded = LoadedModel(module, "torchscript", str(path), sha, notes=notes)
    elif kind == "export":
        assert members is not None  # an export archive is a zip
        archive.audit_export(path, members, trust_model=trust_model, max_size=max_size)
        loaded = _load_export(path, sha, device)
    else:
        loaded = _load_torch_save(path, sha, model_class, model_kwargs or {}, trust_model, map_location)
    if model_class and loaded.format in ("torchscript", "export", "pickle"):
        loaded.notes.append(f"--model-class was ignored: the file is a complete {loaded.format} model.")
    return loaded


@contextlib.contextmanager
def _quiet_torch_export() -> Iterator[None]:
    """torch.export.load logs a damaged archive's traceback (log.warning with exc_info) before it
    retries the pre-2.8 layout, and its serde logs weights-only fallbacks (with a broken format
    string): the user gets our one line instead."""
    loggers = [logging.getLogger(name) for name in ("torch.export", "torch._export")]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, previous):
            logger.setLevel(level)


def _load_export(path: Path, sha: str, device: str) -> LoadedModel:
    try:
        with _quiet_torch_export():
            program = torch.export.load(str(path))
    except Exception as error:
        raise ModelLoadError(f"Cannot load torch.export program {path}: {_first_line(error)}") from None
    static_batch, static_shape = None, None
    user_inputs = list(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs[:1]:
            value = node.meta.get("val")
            shape = getattr(value, "shape", None)
            if shape is not None:
                static_shape = tuple(int(s) if isinstance(s, int) else -1 for s in shape)
                if len(shape) and isinstance(shape[0], int):
                    static_batch = int(shape[0])
    # An exported program rejects .eval(): it was traced in the mode it was exported in.
    module = program.module()
    if device != "cpu":
        module = module.to(device)
    notes = []
    if static_batch is not None:
        notes.append(
            f"The exported program has a static batch size of {static_batch}: windows are run in "
            "chunks of that size, the last one padded."
        )
    return LoadedModel(module, "export", str(path), sha, static_batch, static_shape, notes)


def _load_torch_save(
    path: Path,
    sha: str,
    model_class: str | None,
    model_kwargs: Mapping[str, Any],
    trust_model: bool,
    map_location: torch.device,
) -> LoadedModel:
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols mean nothing to our users
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch words every refusal the same way ("Weights only load failed"): tell a pickled
        # object (its code would run) from bytes that are no pickle at all, without unpickling.
        if "Unsupported global" not in str(error) and not _holds_pickled_object(path):
            raise ModelLoadError(
                f"Model file {path} is not a PyTorch model file (neither a zip archive nor a pickle "
                "torch.load can read): it may be truncated or not a model at all. Save the model with "
                "torch.jit.save, torch.export.save or torch.save(model.state_dict())."
            ) from None
        if not trust_model:
            raise ModelLoadError(
                f"Model file {path} is a pickled Python object (a full nn.Module saved with "
                "torch.save(model)); loading it would run code from the file. Save a TorchScript "
                "(torch.jit.save), a torch.export program or a state_dict with --model-class instead, "
                "or pass --trust-model if you trust the file's author."
            ) from None
        return _load_pickle(path, sha, map_location)
    except Exception as error:
        raise ModelLoadError(
            f"Model file {path} is not a readable PyTorch model ({_first_line(error)}): "
            "it may be truncated or not a model at all."
        ) from None
    state = _as_state_dict(obj)
    if state is None:
        raise ModelLoadError(f"Model file {path} holds a {type(obj).__name__}, not a model or a state dict of tensors.")
    if not model_class:
        raise ModelLoadError(
            f"Model file {path} is a state dict (weights only): pass --model-class FILE.py:NAME "
            "(and --model-kwargs JSON) so tsreport can build the model to put them in."
        )
    module = build_model_class(model_class, model_kwargs)
    state, prefix = _fit_prefix(state, module)
    notes: list[str] = []
    if prefix:
        notes.append(
            f"The state dict's keys all start with '{prefix}' (a training wrapper's attribute, e.g. a Lightning "
            f"module or DataParallel): it was stripped to fit {model_class}."
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise ModelLoadError(
            f"The state dict in {path} does not fit {model_class} with kwargs {dict(model_kwargs)}: "
            f"{detail[:600]} Check that --model-class and --model-kwargs build the model the state dict "
            "was saved from."
        ) from None
    module.to(map_location).eval()
    return LoadedModel(module, "state_dict", str(path), sha, notes=notes)


#: How many leading dotted names a wrapper may add (``module.model.`` for DataParallel around Lightning).
_MAX_PREFIX_DEPTH = 3


def _fit_prefix(state: dict[str, torch.Tensor], module: torch.nn.Module) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict with the one prefix that every key shares stripped, when that makes it fit ``module``.

    A training checkpoint saves the wrapper's ``state_dict()``: a LightningModule holding the
    network as ``self.model`` writes ``model.lstm.weight_ih_l0``; DataParallel writes ``module.``.
    Stripped only when the keys then match the module's exactly (strict loading then checks
    shapes); otherwise the state is returned unchanged and strict loading words the mismatch.
    """
    expected = set(module.state_dict())
    if not state or set(state) == expected:
        return state, ""
    first = next(iter(state)).split(".")
    for depth in range(1, min(_MAX_PREFIX_DEPTH, len(first) - 1) + 1):
        prefix = ".".join(first[:depth]) + "."
        if not all(key.startswith(prefix) for key in state):
            break
        stripped = {key[len(prefix) :]: value for key, value in state.items()}
        if set(stripped) == expected:
            return stripped, prefix
    return state, ""


_OBJECT_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"}


def _holds_pickled_object(path: Path) -> bool:
    """Whether the file (or a torch.save zip's data.pkl) is a complete pickle that builds objects.

    Read with :mod:`pickletools`, which only parses opcodes: nothing is executed.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.split("/", 1)[-1] == "data.pkl"), None)
                if name is None:
                    return False
                stream: Any = io.BytesIO(archive.read(name))
        else:
            stream = open(path, "rb")
        with stream:
            names = {op.name for op, _, _ in pickletools.genops(stream)}  # raises unless it ends in STOP
        return bool(names & _OBJECT_OPCODES)
    except Exception:  # not a pickle, or a damaged one: genops raises on the first bad opcode
        return False


def _as_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping):
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return dict(obj)
        # A training checkpoint: {"state_dict": {...}, "epoch": ...}
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner:
                return _as_state_dict(inner)
    return None


def _load_pickle(path: Path, sha: str, map_location: torch.device) -> LoadedModel:
    try:
        module = torch.load(str(path), map_location=map_location, weights_only=False)
    except (AttributeError, ModuleNotFoundError) as error:
        raise ModelLoadError(
            f"Cannot unpickle {path}: {_first_line(error)}. The model's class must be importable "
            "(on PYTHONPATH); a TorchScript or state dict file avoids this."
        ) from None
    except Exception as error:
        raise ModelLoadError(f"Cannot unpickle {path}: {_first_line(error)}") from None
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"Model file {path} holds a {type(module).__name__}, not an nn.Module.")
    module.eval()
    return LoadedModel(module, "pickle", str(path), sha)


def build_model_class(spec: str, kwargs: Mapping[str, Any]) -> torch.nn.Module:
    """Build a model from ``FILE.py:NAME`` (a class or a factory) and keyword arguments."""
    file_part, sep, name = spec.rpartition(":")
    if not sep or not file_part or not name:
        raise UsageError(f"Invalid --model-class '{spec}': write it as FILE.py:NAME.")
    file_path = Path(file_part)
    if not file_path.is_file():
        raise UsageError(f"Invalid --model-class '{spec}': file {file_path} does not exist.")
    module_name = f"tsreport_user_model_{hashlib.sha1(str(file_path.resolve()).encode()).hexdigest()[:8]}"
    spec_obj = importlib.util.spec_from_file_location(module_name, file_path)
    if spec_obj is None or spec_obj.loader is None:
        raise UsageError(f"Invalid --model-class '{spec}': cannot import {file_path}.")
    user_module = importlib.util.module_from_spec(spec_obj)
    sys.modules[module_name] = user_module
    try:
        spec_obj.loader.exec_module(user_module)
    except Exception as error:
        raise ModelLoadError(f"Importing {file_path} for --model-class failed: {_first_line(error)}") from None
    factory = getattr(user_module, name, None)
    if factory is None or not callable(factory):
        raise UsageError(f"Invalid --model-class '{spec}': {file_path} defines no class or function '{name}'.")
    try:
        module = factory(**dict(kwargs))
    except TypeError as error:
        raise UsageError(
            f"--model-class {name} cannot be built with --model-kwargs {dict(kwargs)}: {_first_line(error)}"
        ) from None
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"--model-class {spec} returned a {type(module).__name__}, not an nn.Module.")
    return module


class ForwardFn:
    """Calls the model on windows in the schema's layout, in batches, and shapes the output.

    Inputs are always (B, T, C) float32 in model units; outputs are
    (B, H) for regression and (B, K) class scores for classification.
    Batch size and chunking are speed knobs only: they never change a number.
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
    ) -> None:
        self.loaded = loaded
        self.layout = layout
        self.task = task
        self.horizon = horizon
        self.n_classes = n_classes
        self.device = torch.device(device)
        self.batch_size = loaded.static_batch or batch_size
        self.evaluations = 0  # windows passed through the model, for benchmarks and timings
        # Quantile heads (schema ``output: {quantiles: [...]}``): the model returns (B, H, Q).
        # Analyses see (B, H) of the explained quantity: quantile ``explain_quantile``, or the
        # interval width (highest minus lowest quantile) when it is None. Inside ``full_outputs()``
        # calls return every quantile, flattened to (B, H * Q), horizon-major.
        self.quantiles = quantiles
        self.explain_quantile = explain_quantile
        self._full = False

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

    def batches(self, count: int) -> Iterator[slice]:
        for begin in range(0, count, self.batch_size):
            yield slice(begin, min(count, begin + self.batch_size))

    def __call__(self, inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Model outputs for (N, T, C) inputs, computed in batches; returned on the CPU."""
        tensor = torch.as_tensor(inputs, dtype=torch.float32)
        outputs = []
        with torch.inference_mode():
            for part in self.batches(tensor.shape[0]):
                outputs.append(self.raw_call(tensor[part].to(self.device)).cpu())
        if not outputs:
            return torch.zeros((0, self.output_width))
        return torch.cat(outputs)

    def perturbed(
        self,
        count: int,
        perturbations: int,
        build: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Outputs for every (window, perturbation) pair, in full batches; shape (count, perturbations, O).

        The perturbation engine: ``build(window_index, perturbation_index)`` gets two
        (k,) index tensors and returns the k perturbed windows (k, T, C). Pairs are
        enumerated window-major and cut into batches of ``batch_size`` pairs whatever
        ``count`` and ``perturbations`` are, so every model call is a full batch and
        peak memory is one batch, however many windows are explained.
        """
        total = count * perturbations
        outputs: torch.Tensor | None = None
        with torch.inference_mode():
            for begin in range(0, total, self.batch_size):
                pairs = torch.arange(begin, min(total, begin + self.batch_size))
                batch = build(pairs // perturbations, pairs % perturbations)
                result = self.raw_call(batch.to(self.device, non_blocking=True)).cpu()
                if outputs is None:
                    outputs = torch.empty((total, result.shape[1]), dtype=result.dtype)
                outputs[begin : begin + result.shape[0]] = result
        if outputs is None:
            return torch.zeros((count, perturbations, 0))
        return outputs.view(count, perturbations, -1)

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
        when the output does not depend differentiably on the inputs.
        """
        grads: torch.Tensor | None = None
        with torch.enable_grad(), self._backward_context():
            for part in self.batches(inputs.shape[0]):
                chunk = inputs[part].to(self.device).detach().requires_grad_(True)
                scalars = select(self.raw_call(chunk), torch.arange(part.start, part.stop))
                if not scalars.requires_grad:
                    raise NoGradient(
                        "the model's output does not depend differentiably on its inputs (a detached "
                        "graph, or integer outputs)"
                    )
                if grads is None:
                    grads = torch.empty((inputs.shape[0], scalars.shape[1]) + tuple(inputs.shape[1:]))
                for column in range(scalars.shape[1]):
                    (grad,) = torch.autograd.grad(
                        scalars[:, column].sum(), chunk, retain_graph=column < scalars.shape[1] - 1, allow_unused=True
                    )
                    if grad is None:
                        raise NoGradient("the model's output has no gradient with respect to its inputs")
                    grads[part, column] = grad.detach().cpu()
        if grads is None:
            return torch.zeros((0, 1) + tuple(inputs.shape[1:]))
        return grads

    def _backward_context(self) -> Any:
        # cuDNN refuses RNN backward in eval mode; the plain CUDA kernels give the same gradients.
        if self.device.type == "cuda":
            return torch.backends.cudnn.flags(enabled=False)
        return contextlib.nullcontext()


class NoGradient(Exception):
    """The model's output cannot be differentiated with respect to its inputs."""


class ShapeMismatch(Exception):
    def __init__(self, expected: str, actual: tuple[int, ...]) -> None:
        super().__init__(expected)
        self.expected = expected
        self.actual = actual


def _declared_input_size(module: Any) -> str | None:
    """The input size the model's first layer declares, when it is a plain nn layer."""
    if not isinstance(module, torch.nn.Module):
        return None
    for name, layer in module.named_modules():
        # A TorchScript submodule is a RecursiveScriptModule that keeps its class name and attributes.
        kind = getattr(layer, "original_name", None) if isinstance(layer, torch.jit.ScriptModule) else None
        if isinstance(layer, (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)) or kind in ("LSTM", "GRU", "RNN"):
            return f"first layer '{name}' ({kind or type(layer).__name__}) takes input_size={layer.input_size}"
        if isinstance(layer, torch.nn.Conv1d) or kind == "Conv1d":
            return f"first layer '{name}' (Conv1d) takes in_channels={layer.in_channels}"
        if isinstance(layer, torch.nn.Linear) or kind == "Linear":
            return f"first layer '{name}' (Linear) takes in_features={layer.in_features}"
    return None


#: Windows the trial forward looks at: spread over the data, so a model that ignores its input shows it.
TRIAL_WINDOWS = 32
#: The batch fed in one call and compared, row by row, with each of its windows fed alone.
TRIAL_BATCH = 4
#: The first call's batch: shape and channel errors show the input shape of this batch.
PROBE_BATCH = 2
_LAYOUT_WORDS = {"btc": "batch, time, channels", "bct": "batch, channels, time", "flat": "batch, time*channels"}


def _trial_picks(windows: Windows) -> np.ndarray:
    """Up to TRIAL_WINDOWS window indices spread over the data, windows with distinct inputs first."""
    spread = np.unique(np.linspace(0, windows.count - 1, min(TRIAL_WINDOWS, windows.count)).round().astype(np.int64))
    inputs = windows.inputs(spread)
    distinct: list[int] = []
    for position in range(len(spread)):
        if all(not np.array_equal(inputs[position], inputs[other], equal_nan=True) for other in distinct):
            distinct.append(position)
    rest = [position for position in range(len(spread)) if position not in distinct]
    return spread[distinct + rest]


def check_model(forward: ForwardFn, windows: Windows, *, schema_source: str) -> None:
    """Trial forward passes on real windows before anything else runs: does the output make sense?

    Up to ``TRIAL_WINDOWS`` windows, spread over the data, are run through the model, and
    ``TRIAL_BATCH`` of them (with distinct inputs) both as one batch and one by one, after a
    first call on ``PROBE_BATCH`` of them, whose input shape the shape errors show. Raises
    ModelLoadError, showing the shapes and the fix, when

    - the model does not accept the windows, or its output does not fit the schema;
    - the output's first dimension does not follow the batch (one row per window);
    - a window's row in the batch differs from its output alone (the model mixes windows,
      e.g. BatchNorm in training mode, or is random, e.g. dropout left on);
    - the output is NaN or inf on finite inputs (naming the window's group and time);
    - every window gets the same output although their inputs differ (the model ignores them).
    """
    if windows.count == 0:
        return
    model = forward.loaded.path
    picks = _trial_picks(windows)
    sample = np.array(windows.inputs(picks), dtype=np.float32, copy=True)
    static_batch = forward.loaded.static_batch
    batch = min(TRIAL_BATCH, len(picks), static_batch or TRIAL_BATCH)
    _, window, channels = sample.shape
    probe = min(PROBE_BATCH, batch)
    fed = forward.model_input_shape(probe, window, channels)
    fed_text = f"{fed} (layout {forward.layout}: {_LAYOUT_WORDS[forward.layout]}; window {window}, {channels} channels)"
    static = forward.loaded.static_input_shape
    if static is not None and len(static) == len(fed):
        mismatched = [i for i, (s, f) in enumerate(zip(static, fed)) if i > 0 and s != -1 and s != f]
        if mismatched:
            raise ModelLoadError(
                f"The model {model} expects inputs of shape {static} but the schema {schema_source} gives "
                f"{fed_text}. Fix 'window', 'layout' or the fields so they match the model."
            )

    def fed_shape(count: int) -> tuple[int, ...]:
        return forward.model_input_shape(count, window, channels)

    def run(rows: np.ndarray) -> torch.Tensor:
        """One model call on exactly these windows (padded to a static batch), errors worded."""
        count = static_batch or rows.shape[0]
        try:
            with torch.inference_mode():
                return forward.raw_call(torch.from_numpy(np.array(rows, copy=True)).to(forward.device)).cpu()
        except ShapeMismatch as error:
            if not error.actual or error.actual[0] != count:
                raise _not_per_window(model, rows.shape[0], fed_shape(rows.shape[0]), error.actual) from None
            raise ModelLoadError(
                f"The output of model {model} does not fit the schema {schema_source}: got shape {error.actual}, "
                f"{error.expected}. Check 'task', 'horizon'"
                + (" or 'classes'" if forward.task == "classification" else "")
                + "."
            ) from None
        except ModelLoadError:
            raise
        except Exception as error:
            declared = _declared_input_size(forward.loaded.module)
            hint = f" The model's {declared}." if declared else ""
            raise ModelLoadError(
                f"The model {model} failed on a trial window of shape {fed_text} from schema {schema_source}: "
                f"{_first_line(error).rstrip('.')}.{hint} Check the schema's fields (channel count) and 'layout'."
            ) from None

    if probe < batch:
        run(sample[:probe])  # a model that cannot take the windows fails here, on the shapes shown
    together = run(sample[:batch])
    alone = [run(sample[i : i + 1]) for i in range(batch)]
    # The batch check does not rely on ForwardFn's: an output of (1, ...) for any batch is
    # reshaped without complaint for a batch of one, and must be caught by comparing batches.
    shapes = [tuple(out.shape) for out in alone]
    if together.shape[0] != batch:
        raise _not_per_window(model, batch, fed_shape(batch), tuple(together.shape))
    if shapes[0][0] != 1:
        raise _not_per_window(model, 1, fed_shape(1), shapes[0])
    step = static_batch or forward.batch_size
    outputs = torch.cat([together, *[run(sample[begin : begin + step]) for begin in range(batch, len(picks), step)]])

    finite = torch.isfinite(outputs.reshape(len(picks), -1)).all(dim=1)
    finite[:batch] &= torch.isfinite(torch.cat(alone).reshape(batch, -1)).all(dim=1)
    if not bool(finite.all()):
        first = int(torch.nonzero(~finite)[0, 0])
        index = int(picks[first])
        where = f"the window ending at {windows.end_times[index]}" + (
            f" in group '{windows.groups[index]}'" if str(windows.groups[index]) else ""
        )
        if np.isfinite(sample[first]).all():
            raise ModelLoadError(
                f"The model {model} returned NaN or inf for {where}, whose inputs are all finite: check the input "
                f"scaling in the schema {schema_source} ('scale') and the model itself."
            )
        raise ModelLoadError(
            f"The model {model} returned NaN or inf for {where}, whose inputs hold NaN or inf: check the data and "
            f"the schema {schema_source} ('missing')."
        )

    scale = max(1.0, float(outputs.abs().max()))
    for i in range(batch):
        if not torch.allclose(together[i], alone[i][0], rtol=1e-3, atol=1e-5 * scale):
            gap = int((together[i] - alone[i][0]).abs().argmax())
            raise ModelLoadError(
                f"The model {model} does not treat windows independently: in a batch of {batch} windows "
                f"(output shape {tuple(together.shape)}), window {i + 1}'s output is "
                f"{float(together[i].flatten()[gap]):.6g}, but {float(alone[i][0].flatten()[gap]):.6g} when it is "
                f"fed alone (output shape {shapes[i]}). Each window's prediction must depend on that window only: "
                "save the model in eval mode (model.eval(): BatchNorm running statistics, no dropout), and do "
                "not pool or normalise across the batch."
            )
    differ = len(picks) > 1 and not all(
        np.array_equal(sample[0], sample[i], equal_nan=True) for i in range(1, len(picks))
    )
    if differ and torch.allclose(outputs, outputs[:1].expand_as(outputs), rtol=0.0, atol=1e-7 * scale):
        raise ModelLoadError(
            f"The model {model} returned the same output for {len(picks)} different windows (output shape "
            f"{tuple(outputs.shape)}, every row {_row_text(outputs[0])}): it ignores its input. Check that the "
            f"file holds the trained model, and that the fields and 'layout' of the schema {schema_source} feed "
            "the inputs it uses."
        )


def _row_text(row: torch.Tensor) -> str:
    values = [f"{float(v):.6g}" for v in row.flatten()[:4]]
    return "[" + ", ".join(values) + (", ...]" if row.numel() > 4 else "]")


def _not_per_window(model: str, count: int, fed: tuple[int, ...], output: tuple[int, ...]) -> ModelLoadError:
    windows_text = "1 window" if count == 1 else f"{count} windows"
    return ModelLoadError(
        f"The output of model {model} does not follow the batch: {windows_text} (input shape {fed}) gave an "
        f"output of shape {output}; its first dimension must be the batch, one row per window. Fix the model's "
        "forward so that it returns (batch, ...) without reducing or reshaping across windows."
    )
