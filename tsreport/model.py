"""Load a saved model safely, and check it on trial windows (the engine, :mod:`tsreport.engine`, calls it).

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
from tsreport.engine.core import Engine, ShapeMismatch
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


def check_model(forward: Engine, windows: Windows, *, schema_source: str) -> None:
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
    picks = _trial_picks(windows)
    batch = min(TRIAL_BATCH, len(picks), forward.loaded.static_batch or TRIAL_BATCH)
    probe = min(PROBE_BATCH, batch)
    trial = _Trial(forward, np.array(windows.inputs(picks), dtype=np.float32, copy=True), schema_source, probe)
    trial.check_static_shape()
    if probe < batch:
        trial.run(trial.sample[:probe])  # a model that cannot take the windows fails here, on the shapes shown
    together = trial.run(trial.sample[:batch])
    alone = [trial.run(trial.sample[i : i + 1]) for i in range(batch)]
    trial.check_per_window(together, alone)
    step = forward.loaded.static_batch or forward.batch_size
    rest = [trial.run(trial.sample[begin : begin + step]) for begin in range(batch, len(picks), step)]
    outputs = torch.cat([together, *rest])
    _check_finite(trial, windows, picks, outputs, torch.cat(alone))
    scale = max(1.0, float(outputs.abs().max()))
    trial.check_independent(together, alone, scale)
    trial.check_not_constant(outputs, scale)


class _Trial:
    """The trial windows of :func:`check_model`, the calls on them, and the checks of their outputs."""

    def __init__(self, forward: Engine, sample: np.ndarray, schema_source: str, probe: int) -> None:
        self.forward, self.sample, self.schema_source = forward, sample, schema_source
        self.model = forward.loaded.path
        _, self.window, self.channels = sample.shape
        self.probe = probe
        fed = self.fed_shape(probe)
        self.fed_text = (
            f"{fed} (layout {forward.layout}: {_LAYOUT_WORDS[forward.layout]}; window {self.window}, "
            f"{self.channels} channels)"
        )

    def fed_shape(self, count: int) -> tuple[int, ...]:
        return self.forward.model_input_shape(count, self.window, self.channels)

    def check_static_shape(self) -> None:
        """A torch.export program traced at fixed sizes must be fed exactly those (batch aside)."""
        static = self.forward.loaded.static_input_shape
        fed = self.fed_shape(self.probe)
        if static is None or len(static) != len(fed):
            return
        if any(i > 0 and s != -1 and s != f for i, (s, f) in enumerate(zip(static, fed))):
            raise ModelLoadError(
                f"The model {self.model} expects inputs of shape {static} but the schema {self.schema_source} gives "
                f"{self.fed_text}. Fix 'window', 'layout' or the fields so they match the model."
            )

    def run(self, rows: np.ndarray) -> torch.Tensor:
        """One model call on exactly these windows (padded to a static batch), errors worded."""
        forward = self.forward
        count = forward.loaded.static_batch or rows.shape[0]
        try:
            with torch.inference_mode():
                return forward.raw_call(torch.from_numpy(np.array(rows, copy=True)).to(forward.device)).cpu()
        except ShapeMismatch as error:
            if not error.actual or error.actual[0] != count:
                raise _not_per_window(self.model, rows.shape[0], self.fed_shape(rows.shape[0]), error.actual) from None
            raise ModelLoadError(
                f"The output of model {self.model} does not fit the schema {self.schema_source}: got shape "
                f"{error.actual}, {error.expected}. Check 'task', 'horizon'"
                + (" or 'classes'" if forward.task == "classification" else "")
                + "."
            ) from None
        except ModelLoadError:
            raise
        except Exception as error:
            declared = _declared_input_size(forward.loaded.module)
            hint = f" The model's {declared}." if declared else ""
            raise ModelLoadError(
                f"The model {self.model} failed on a trial window of shape {self.fed_text} from schema "
                f"{self.schema_source}: {_first_line(error).rstrip('.')}.{hint} Check the schema's fields (channel "
                "count) and 'layout'."
            ) from None

    def check_per_window(self, together: torch.Tensor, alone: list[torch.Tensor]) -> None:
        """One output row per window, in a batch and alone.

        Not left to the engine's shape check: an output of (1, ...) for any batch is reshaped
        without complaint for a batch of one, and must be caught by comparing batches.
        """
        batch = len(alone)
        if together.shape[0] != batch:
            raise _not_per_window(self.model, batch, self.fed_shape(batch), tuple(together.shape))
        if alone[0].shape[0] != 1:
            raise _not_per_window(self.model, 1, self.fed_shape(1), tuple(alone[0].shape))

    def check_independent(self, together: torch.Tensor, alone: list[torch.Tensor], scale: float) -> None:
        """A window's output in a batch is its output alone (eval mode, no pooling across the batch)."""
        batch = len(alone)
        for i in range(batch):
            if not torch.allclose(together[i], alone[i][0], rtol=1e-3, atol=1e-5 * scale):
                gap = int((together[i] - alone[i][0]).abs().argmax())
                raise ModelLoadError(
                    f"The model {self.model} does not treat windows independently: in a batch of {batch} windows "
                    f"(output shape {tuple(together.shape)}), window {i + 1}'s output is "
                    f"{float(together[i].flatten()[gap]):.6g}, but {float(alone[i][0].flatten()[gap]):.6g} when it "
                    f"is fed alone (output shape {tuple(alone[i].shape)}). Each window's prediction must depend on "
                    "that window only: save the model in eval mode (model.eval(): BatchNorm running statistics, no "
                    "dropout), and do not pool or normalise across the batch."
                )

    def check_not_constant(self, outputs: torch.Tensor, scale: float) -> None:
        """Different windows must not all get the same output (a model that ignores its input)."""
        sample = self.sample
        differ = len(sample) > 1 and not all(
            np.array_equal(sample[0], sample[i], equal_nan=True) for i in range(1, len(sample))
        )
        if differ and torch.allclose(outputs, outputs[:1].expand_as(outputs), rtol=0.0, atol=1e-7 * scale):
            raise ModelLoadError(
                f"The model {self.model} returned the same output for {len(sample)} different windows (output shape "
                f"{tuple(outputs.shape)}, every row {_row_text(outputs[0])}): it ignores its input. Check that the "
                f"file holds the trained model, and that the fields and 'layout' of the schema {self.schema_source} "
                "feed the inputs it uses."
            )


def _check_finite(trial: _Trial, windows: Windows, picks: np.ndarray, outputs: torch.Tensor,
                  alone: torch.Tensor) -> None:  # fmt: skip
    """No NaN or inf output, naming the first window that has one and whether its inputs do."""
    finite = torch.isfinite(outputs.reshape(len(picks), -1)).all(dim=1)
    finite[: alone.shape[0]] &= torch.isfinite(alone.reshape(alone.shape[0], -1)).all(dim=1)
    if bool(finite.all()):
        return
    first = int(torch.nonzero(~finite)[0, 0])
    index = int(picks[first])
    where = f"the window ending at {windows.end_times[index]}" + (
        f" in group '{windows.groups[index]}'" if str(windows.groups[index]) else ""
    )
    if np.isfinite(trial.sample[first]).all():
        raise ModelLoadError(
            f"The model {trial.model} returned NaN or inf for {where}, whose inputs are all finite: check the input "
            f"scaling in the schema {trial.schema_source} ('scale') and the model itself."
        )
    raise ModelLoadError(
        f"The model {trial.model} returned NaN or inf for {where}, whose inputs hold NaN or inf: check the data and "
        f"the schema {trial.schema_source} ('missing')."
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
