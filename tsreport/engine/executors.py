"""Where chunks run: this process, local worker processes (``--workers N``), or a Dask cluster
(``--scheduler ADDR|local``).

An executor takes the engine's :class:`~tsreport.engine.source.EngineSpec` and an iterator of
chunks and yields ``(chunk, result)`` in the chunks' order, with a bounded number in flight (so
memory stays a few chunks per worker however many windows there are). Chunks are pure functions
of their inputs: a chunk whose worker died is simply run again, and the result is the same.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import os
import pickle
import uuid
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from tsreport.engine.source import EngineSpec, run_task, worker_engine
from tsreport.exceptions import ClusterError, UsageError

#: Chunks in flight per worker: one running, one queued behind it.
IN_FLIGHT_PER_WORKER = 2
#: How many times a pool whose worker died is rebuilt before the run gives up.
MAX_RESTARTS = 3


class Executor:
    """Runs chunks in this process (the base case: what ``--workers 1`` does)."""

    workers = 1
    description = "this process"

    def run(self, spec: EngineSpec, tasks: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
        for task in tasks:
            yield task, run_task(spec, task)

    def threads(self) -> int | None:
        """Intra-op threads each worker should use (None: torch's default)."""
        return None

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------- local processes

_SPEC: EngineSpec | None = None  # a pool worker's spec, set once by its initializer


def _init_worker(spec: EngineSpec) -> None:
    global _SPEC
    _SPEC = spec
    worker_engine(spec)  # load the model now, not inside the first chunk


def _run_in_worker(payload: bytes) -> bytes:
    assert _SPEC is not None
    return pickle.dumps(run_task(_SPEC, pickle.loads(payload)), protocol=pickle.HIGHEST_PROTOCOL)


def _payload(task: Any) -> bytes:
    """A chunk as plain pickle bytes (our own, between our own processes).

    Not multiprocessing's pickler: with torch imported it moves every tensor it sends into shared
    memory and passes file descriptors through a background thread, which made torch in this
    process 1.4-1.7x slower for as long as the pool lived (measured: bench/bench_engine.py).
    """
    return pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)


class ProcessExecutor(Executor):
    """``--workers N``: N local processes (spawned: a forked copy of a process that has started
    torch's thread pools can hang), each with its share of the intra-op threads."""

    def __init__(self, workers: int, threads_total: int | None = None) -> None:
        self.workers = workers
        self.description = f"{workers} local worker processes"
        self._threads_total = threads_total or torch.get_num_threads()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._key: str | None = None

    def threads(self) -> int:
        return max(1, self._threads_total // self.workers)

    def _ensure_pool(self, spec: EngineSpec) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None or self._key != spec.key:
            self.close()
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                initargs=(spec,),
            )  # fmt: skip
            self._key = spec.key
        return self._pool

    def run(self, spec: EngineSpec, tasks: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
        limit = self.workers * IN_FLIGHT_PER_WORKER
        pending: collections.deque[tuple[Any, concurrent.futures.Future]] = collections.deque()
        restarts = 0
        tasks = iter(tasks)
        exhausted = False
        while True:
            pool = self._ensure_pool(spec)
            while not exhausted and len(pending) < limit:
                task = next(tasks, None)
                if task is None:
                    exhausted = True
                    break
                pending.append((task, pool.submit(_run_in_worker, _payload(task))))
            if not pending:
                return
            task, future = pending[0]
            try:
                result = future.result()
            except BrokenProcessPool:
                # A worker died (killed, out of memory): every chunk in flight is lost with the pool.
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise ClusterError(
                        f"A local worker process died {restarts} times (killed or out of memory); run with "
                        "fewer --workers or a smaller --batch-size."
                    ) from None
                self.close()
                pool = self._ensure_pool(spec)
                pending = collections.deque((t, pool.submit(_run_in_worker, _payload(t))) for t, _ in pending)
                continue
            pending.popleft()
            yield task, pickle.loads(result)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._key = None


# ---------------------------------------------------------------------------- Dask


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError(
            "--scheduler needs dask.distributed, which is not installed: pip install 'tsreport[dask]'."
        ) from None
    return distributed


class DaskExecutor(Executor):
    """``--scheduler tcp://HOST:PORT`` (an existing cluster) or ``--scheduler local`` (a LocalCluster
    of worker processes on this machine, one intra-op thread each)."""

    def __init__(self, address: str, *, local_workers: int | None = None, connect_timeout: float = 5.0) -> None:
        distributed = _import_distributed()
        self._cluster = None
        self._local = address == "local"
        try:
            if self._local:
                workers = local_workers or max(1, os.cpu_count() or 1)
                self._cluster = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=40,
                )  # fmt: skip
                self.client = distributed.Client(self._cluster, set_as_default=False)
            else:
                self.client = distributed.Client(address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError):
            self.close()
            raise ClusterError(
                f"Cannot reach the Dask scheduler at {address} within {connect_timeout:g} s: start it "
                "(dask scheduler; dask worker ADDRESS), check the address, or use --scheduler local."
            ) from None
        info = self.client.scheduler_info()
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))
        self.description = f"Dask cluster at {self.client.scheduler.address} ({self.workers} worker threads)"
        self._spec_future: Any = None
        self._key: str | None = None

    def threads(self) -> int | None:
        return 1 if self._local else None

    def run(self, spec: EngineSpec, tasks: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
        if self._key != spec.key:
            # The model travels once per worker (broadcast), not once per chunk.
            self._spec_future = self.client.scatter(spec, broadcast=True, hash=False)
            self._key = spec.key
        limit = max(2, self.workers * IN_FLIGHT_PER_WORKER)
        run = uuid.uuid4().hex[:12]
        pending: collections.deque[tuple[Any, Any]] = collections.deque()
        for index, task in enumerate(tasks):
            # pure=False with our own key: chunks hold tensors that dask would otherwise hash.
            pending.append((task, self.client.submit(run_task, self._spec_future, task, key=f"tsreport-{run}-{index}",
                                                     pure=False, retries=MAX_RESTARTS)))  # fmt: skip
            if len(pending) >= limit:
                yield self._next(pending)
        while pending:
            yield self._next(pending)

    @staticmethod
    def _next(pending: collections.deque) -> tuple[Any, Any]:
        task, future = pending.popleft()
        result = future.result()
        future.release()
        return task, result

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def create(workers: int, scheduler: str | None) -> Executor:
    """The executor for ``--workers`` / ``--scheduler``."""
    if scheduler:
        return DaskExecutor(scheduler, local_workers=workers if workers > 1 else None)
    if workers > 1:
        return ProcessExecutor(workers)
    return Executor()
