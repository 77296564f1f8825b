"""How any process builds the same engine: the model's bytes, their sha256 and the settings.

A worker (a local process or a Dask worker on another machine) gets an :class:`EngineSpec` and
loads the model from the bytes with :func:`tsreport.model.load_model`, under the same safety rules
as the main process: without ``--trust-model`` nothing is unpickled there either. The bytes are
checked against their sha256 before anything reads them. Each process keeps the engines it built
(:func:`worker_engine`), so a model is loaded once per worker, not once per chunk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import torch

from tsreport.engine.core import Engine, Layout
from tsreport.exceptions import ModelLoadError

_ENGINES: dict[str, Engine] = {}  # this process's engines, by EngineSpec.key


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A model file as bytes, with what loading it needs. ``model_class`` is ``FILE.py:NAME``;
    the file's text travels too (``class_source``) for workers that do not share our disk."""

    data: bytes
    sha256: str
    name: str
    model_class: str | None = None
    class_source: str | None = None
    model_kwargs: tuple[tuple[str, Any], ...] = ()
    trust_model: bool = False
    max_size: int | None = None

    @classmethod
    def read(
        cls,
        path: str | Path,
        sha256: str,
        *,
        model_class: str | None,
        model_kwargs: dict[str, Any] | None,
        trust_model: bool,
        max_size: int | None,
    ) -> ModelSource:
        """The file as loaded: its bytes must still have the sha256 the main process loaded."""
        data = Path(path).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ModelLoadError(f"Model file {path} changed while tsreport was reading it; run again.")
        class_source = None
        if model_class and ":" in model_class:
            class_file = Path(model_class.rsplit(":", 1)[0])
            if class_file.is_file():
                class_source = class_file.read_text(encoding="utf-8")
        return cls(
            data, sha256, Path(path).name, model_class, class_source, tuple(sorted((model_kwargs or {}).items())),
            trust_model, max_size,
        )  # fmt: skip

    def load(self, device: str) -> Any:
        from tsreport import model as models

        if hashlib.sha256(self.data).hexdigest() != self.sha256:
            raise ModelLoadError(f"The bytes of model {self.name} do not match their sha256 {self.sha256[:12]}…")
        with tempfile.TemporaryDirectory(prefix="tsreport-worker-") as folder:
            path = Path(folder) / self.name
            path.write_bytes(self.data)
            model_class = self.model_class
            if model_class and self.class_source is not None:
                file, name = model_class.rsplit(":", 1)
                if not Path(file).is_file():  # another machine: the shipped text
                    local = Path(folder) / Path(file).name
                    local.write_text(self.class_source, encoding="utf-8")
                    model_class = f"{local}:{name}"
            options: dict[str, Any] = {}
            if self.max_size is not None:
                options["max_size"] = self.max_size
            return models.load_model(
                path, model_class=model_class, model_kwargs=dict(self.model_kwargs), trust_model=self.trust_model,
                device=device, **options,
            )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class EngineSpec:
    """Everything another process needs to build an engine equal to ours."""

    source: ModelSource
    shape: Layout
    device: str
    batch_size: int
    backward_batch_size: int
    threads: int | None = None  # intra-op threads in the worker; None: leave torch's default

    @property
    def key(self) -> str:
        return f"{self.source.sha256}:{self.shape}:{self.device}:{self.batch_size}:{self.backward_batch_size}"

    def build(self) -> Engine:
        loaded = self.source.load(self.device)
        engine = Engine(loaded, **dataclasses.asdict(self.shape), device=self.device, batch_size=self.batch_size)
        engine.backward_batch_size = self.backward_batch_size
        return engine


def worker_engine(spec: EngineSpec) -> Engine:
    """This process's engine for ``spec``, built on first use."""
    engine = _ENGINES.get(spec.key)
    if engine is None:
        if spec.threads:
            torch.set_num_threads(spec.threads)
        engine = _ENGINES[spec.key] = spec.build()
    return engine


def run_task(spec: EngineSpec, task: Any) -> Any:
    """Run one chunk in this process (the function a worker is given)."""
    return task.run(worker_engine(spec))
