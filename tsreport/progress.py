"""Progress on stderr, and the library warnings a run raises, caught and sorted.

Progress
--------
:meth:`Progress.create` picks what a run shows on stderr (stdout stays clean for machine output):

- on a TTY: one tqdm bar per analysis, with its elapsed time and ETA;
- not on a TTY (cron, CI logs): one timestamped line when each analysis starts and one when it
  ends, with its seconds and status; no bars, no carriage returns. ``--verbose`` adds the notes
  (reading the data, the number of windows);
- ``--quiet``: nothing at all.

Analyses talk to ``ctx.progress``: ``ctx.progress("note")`` (a line of its own outside an
analysis, beside the bar inside one), ``with ctx.progress.steps(total): ... ctx.progress.update()``
for a loop, and ``with ctx.model_steps(windows):`` for a block that passes a known number of
windows through the model (the bar follows ``Engine.evaluations``). Reporting steps is
optional: an analysis that reports none still gets a bar that completes when it ends. Inside a
steps block, nested blocks (an analysis reusing another one's code) are ignored.
A plain ``Callable[[str], None]`` is still accepted wherever a Progress is (:meth:`Progress.of`).

Warnings
--------
:func:`capture_warnings` catches every Python warning raised inside it (``simplefilter("always")``,
so a warning raised before in the same process is seen again) and keeps each distinct one
(category + first line of its message) once. The rule, in this order:

1. ``DeprecationWarning``, ``PendingDeprecationWarning``, ``FutureWarning``, ``ImportWarning``,
   ``ResourceWarning``, ``SyntaxWarning`` and ``BytesWarning`` are library noise: they are about
   library versions, never about the user's model or data.
2. A warning attributed to a file of a rendering library (matplotlib, WeasyPrint, Pillow,
   fontTools, Jinja2, ...) is noise.
3. A warning raised while the model runs or loads (a frame of ``tsreport/model.py``, which alone
   calls the model, or of the user's own code, is on the stack) is about the model: it is reported.
   This catches torch's UserWarnings about the model (``TracerWarning``, non-contiguous RNN weights,
   non-deterministic operations) and the model's own ``warnings.warn``.
4. A warning raised while the inputs are read or checked (a phase marked ``inputs=True``: the
   schema, the data, loading and checking the model) is about the inputs: it is reported.
5. numpy's floating-point ``RuntimeWarning`` ("overflow encountered in ...", "invalid value",
   "divide by zero", "underflow") is about the numbers the model or the data gave: it is reported.
6. Anything else (a library's note about how tsreport calls it) is noise.

Reported warnings become one sentence each in the report's ``warnings`` (naming where they arose:
the analysis, or loading the model). Noise goes to stderr only with ``--verbose``, one line per
distinct warning. Without ``--verbose`` no warning reaches stderr, so nothing multi-line does.
``np.errstate`` is not a substitute: it silences numpy, not torch, captum, shap or the user's model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import os
import re
import sys
import sysconfig
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")

# --------------------------------------------------------------------------- progress


@dataclasses.dataclass
class AnalysisRun:
    """One analysis as progress sees it; the pipeline calls :meth:`finish` with its outcome."""

    name: str
    position: int
    count: int
    began: float = dataclasses.field(default_factory=time.perf_counter)
    status: str | None = None  # ok | skipped | failed once finished; None while running or when stopped
    seconds: float | None = None
    stopped_by: str | None = None  # the exception that ended it early (KeyboardInterrupt, ...)
    total: int | None = None  # steps declared so far (None: the analysis reports none)
    done: int = 0
    _block: tuple[int, int, Callable[[], int] | None, int] | None = None  # (done before, size, counter, start)

    @property
    def label(self) -> str:
        return f"[{self.position}/{self.count}] {self.name}"

    def finish(self, status: str, seconds: float) -> None:
        self.status, self.seconds = status, seconds

    def elapsed(self) -> float:
        return self.seconds if self.seconds is not None else time.perf_counter() - self.began

    def poll(self) -> None:
        """Bring ``done`` up to a counted block's counter."""
        if self._block is not None and self._block[2] is not None:
            before, size, counter, start = self._block
            self.done = before + max(0, min(size, counter() - start))


class Progress:
    """Silent progress (``--quiet``), and what every kind of progress offers.

    Call it with a message for a note; wrap each analysis in :meth:`analysis`; inside one,
    :meth:`steps` and :meth:`update` move its bar.
    """

    def __init__(self) -> None:
        self._run: AnalysisRun | None = None
        self._lock = threading.Lock()

    @staticmethod
    def create(*, quiet: bool, verbose: bool, stream: TextIO | None = None) -> Progress:
        """Bars on a TTY, timestamped lines elsewhere, nothing with ``quiet``; ``stream`` defaults to stderr."""
        if quiet:
            return Progress()
        stream = stream if stream is not None else sys.stderr
        isatty = getattr(stream, "isatty", None)
        if callable(isatty) and isatty():
            return BarProgress(stream)
        return LineProgress(stream, verbose=verbose)

    @staticmethod
    def of(progress: Progress | Callable[[str], None] | None) -> Progress:
        """A Progress for what a caller passed: itself, a plain message callback, or None (silent)."""
        if isinstance(progress, Progress):
            return progress
        if progress is None:
            return Progress()
        return CallbackProgress(progress)

    def __call__(self, message: str) -> None:
        """A note: outside an analysis a line of its own, inside one shown beside its bar."""

    @contextlib.contextmanager
    def analysis(self, name: str, position: int, count: int) -> Iterator[AnalysisRun]:
        """Around one analysis: its start and end, or where it stopped when an exception ends it."""
        run = AnalysisRun(name, position, count)
        self._run = run
        self._started(run)
        try:
            yield run
        except BaseException as error:
            run.stopped_by = type(error).__name__
            raise
        finally:
            with self._lock:
                run._block = None
                if run.total is not None:
                    run.done = run.total
            self._run = None
            self._ended(run)

    @contextlib.contextmanager
    def steps(self, total: int, *, counter: Callable[[], int] | None = None) -> Iterator[bool]:
        """A block of ``total`` steps of the running analysis; yields whether it counts.

        Steps are counted by :meth:`update`, or read from ``counter`` (an ever-growing count,
        such as the windows the model has seen) when it is given. A block nested in another,
        or outside any analysis, does not count (yields False): the outer block alone moves
        the bar, so it never runs back. On leaving, the block counts as done.
        """
        if not self.expect(total, counter=counter):
            yield False
            return
        run = self._run
        assert run is not None
        try:
            yield True
        finally:
            with self._lock:
                if run._block is not None:
                    run.done = run._block[0] + run._block[1]
                    run._block = None
            self._advanced(run, force=False)

    def expect(self, total: int, *, counter: Callable[[], int] | None = None) -> bool:
        """Open a block of ``total`` steps that lasts until the analysis ends (see :meth:`steps`).

        For an analysis whose steps span code that a ``with`` would have to re-indent. Returns
        whether it counts (False inside another block or outside an analysis).
        """
        run = self._run
        if run is None or run._block is not None or total <= 0:
            return False
        with self._lock:
            run.total = (run.total or 0) + int(total)
            run._block = (run.done, int(total), counter, counter() if counter is not None else 0)
        self._advanced(run, force=True)
        return True

    def counted(self, items: Iterable[T], total: int | None = None) -> Iterator[T]:
        """``items``, one step each: ``for batch in ctx.progress.counted(batches): ...``."""
        if total is None:
            items = list(items)
            total = len(items)
        with self.steps(total) as counts:
            for item in items:
                yield item
                if counts:
                    self.update()

    def update(self, steps: int = 1) -> None:
        """``steps`` more steps of the running analysis's current block are done."""
        run = self._run
        if run is None or run._block is None:
            return
        with self._lock:
            before, size, _, _ = run._block
            run.done = min(before + size, run.done + steps)
        self._advanced(run, force=False)

    # What each kind of progress shows; silent here.
    def _started(self, run: AnalysisRun) -> None:
        pass

    def _advanced(self, run: AnalysisRun, *, force: bool) -> None:
        pass

    def _ended(self, run: AnalysisRun) -> None:
        pass


class CallbackProgress(Progress):
    """Passes notes, and "[3/14] occlusion" when each analysis starts, to a plain callback."""

    def __init__(self, callback: Callable[[str], None]) -> None:
        super().__init__()
        self._callback = callback

    def __call__(self, message: str) -> None:
        self._callback(message)

    def _started(self, run: AnalysisRun) -> None:
        self._callback(run.label)


#: A line LineProgress writes (tests and log readers can tell progress lines from error lines with it).
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ tsreport: ")


def timestamp() -> str:
    """Now in UTC, ISO 8601 to the second: 2026-12-05T17:03:12Z."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class LineProgress(Progress):
    """For logs: a timestamped line at each analysis's start and end (and the notes with ``verbose``)."""

    def __init__(self, stream: TextIO, *, verbose: bool) -> None:
        super().__init__()
        self._stream = stream
        self._verbose = verbose

    def _line(self, text: str) -> None:
        self._stream.write(f"{timestamp()} tsreport: {text}\n")
        self._stream.flush()

    def __call__(self, message: str) -> None:
        if self._verbose:
            self._line(message)

    def _started(self, run: AnalysisRun) -> None:
        self._line(f"{run.label} started")

    def _ended(self, run: AnalysisRun) -> None:
        if run.status is not None:
            self._line(f"{run.label} done in {run.elapsed():.1f} s ({run.status})")
        else:
            self._line(f"{run.label} stopped after {run.elapsed():.1f} s ({run.stopped_by or 'interrupted'})")


class _Bar(tqdm):
    monitor_interval = 0  # no tqdm monitor thread: our own ticker refreshes the bar


class BarProgress(Progress):
    """For a terminal: one tqdm bar per analysis, with elapsed time and ETA, kept when it ends.

    A ticker thread redraws the bar twice a second so that the elapsed time moves, and a
    counted block follows its counter, while the model runs.
    """

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"
    TICK = 0.5

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._bar: _Bar | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._drawn = 0.0

    def __call__(self, message: str) -> None:
        bar, run = self._bar, self._run
        if bar is not None and run is not None:
            bar.set_postfix_str(message.removeprefix(f"{run.name}: "), refresh=False)
            self._advanced(run, force=True)
        else:
            tqdm.write(f"tsreport: {message}", file=self._stream)

    def _started(self, run: AnalysisRun) -> None:
        # total=1 until the analysis declares steps: the bar still goes from 0 to 100% and shows its time.
        self._bar = _Bar(
            total=1, desc=run.label, file=self._stream, bar_format=self.FORMAT, leave=True, disable=False, ncols=80
        )
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="tsreport-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.TICK):
            run = self._run
            if run is not None:
                self._advanced(run, force=True)

    def _advanced(self, run: AnalysisRun, *, force: bool) -> None:
        bar = self._bar
        if bar is None:
            return
        now = time.perf_counter()
        if not force and now - self._drawn < 0.1:
            return
        with self._lock:
            run.poll()
            total, done = (run.total, run.done) if run.total else (1, 0)
        bar.total, bar.n = total, done
        bar.refresh()
        self._drawn = now

    def _ended(self, run: AnalysisRun) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        bar, self._bar = self._bar, None
        if bar is None:
            return
        if run.status is None:
            bar.set_postfix_str(f"stopped ({run.stopped_by or 'interrupted'})", refresh=False)
        else:
            bar.total = bar.n = run.total or 1
            bar.set_postfix_str(run.status, refresh=False)
        bar.close()


# --------------------------------------------------------------------------- warnings

_NOISE_CATEGORIES: tuple[type[Warning], ...] = (
    DeprecationWarning,
    PendingDeprecationWarning,
    FutureWarning,
    ImportWarning,
    ResourceWarning,
    SyntaxWarning,
    BytesWarning,
)
#: Packages that only draw the report: whatever they warn about, it is not the user's model or data.
_RENDERING_PACKAGES = frozenset(
    {
        "matplotlib",
        "weasyprint",
        "PIL",
        "fontTools",
        "jinja2",
        "markupsafe",
        "pydyf",
        "tinycss2",
        "cssselect2",
        "tinyhtml5",
        "html5lib",
        "pyphen",
    }
)
_NUMPY_FLOATING = re.compile(r"^(overflow|invalid value|divide by zero|underflow) encountered")
_PACKAGE_DIR = Path(__file__).resolve().parent
_MODEL_FILE = str(_PACKAGE_DIR / "model.py")
_STDLIB_DIRS = tuple(
    {str(Path(p).resolve()) + os.sep for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])}
)


@functools.lru_cache(maxsize=4096)
def _origin(filename: str) -> tuple[str, str]:
    """(kind, shown path) of a source file: kind is model, tsreport, library:<package>, stdlib, user or unknown."""
    if not filename or filename.startswith("<"):
        return "unknown", filename or "?"
    path = Path(filename).resolve()
    text = str(path)
    if text == _MODEL_FILE:
        return "model", "tsreport/model.py"
    if path.is_relative_to(_PACKAGE_DIR):
        return "tsreport", "tsreport/" + path.relative_to(_PACKAGE_DIR).as_posix()
    parts = path.parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            index = len(parts) - 1 - parts[::-1].index(marker)
            package = parts[index + 1] if index + 1 < len(parts) else "?"
            return f"library:{package.removesuffix('.py')}", "/".join(parts[index + 1 :])
    if text.startswith(_STDLIB_DIRS):
        return "stdlib", path.name
    return "user", path.name


def _first_line(message: str, limit: int = 300) -> str:
    """The first non-empty line of a message, spaces collapsed, at most ``limit`` characters."""
    line = next((part.strip() for part in str(message).splitlines() if part.strip()), "")
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclasses.dataclass
class _Phase:
    where: str  # "loading the model", "running analysis 'occlusion'"
    inputs: bool = False  # the inputs are being read or checked: what is raised is about them
    analysis: str | None = None


@dataclasses.dataclass
class _Caught:
    category: str
    message: str
    origin: str
    reason: str | None  # model | inputs | numeric when it goes into the report; None for noise
    phases: list[_Phase] = dataclasses.field(default_factory=list)


class WarningCapture:
    """Catches the warnings raised inside it; see the module docstring for which go where.

    Use it through :func:`capture_warnings`. :meth:`sentences` gives the report's lines.
    """

    def __init__(
        self,
        verbose: bool,
        sink: list[str] | Callable[[str], None] | None = None,
        *,
        stream: TextIO | None = None,
        where: str = "running tsreport",
    ) -> None:
        self.verbose = verbose
        self.sink = sink
        self._stream = stream
        self._phases = [_Phase(where)]
        self._caught: dict[tuple[str, str], _Caught] = {}
        self._outer: set[int] = set()
        self._context: warnings.catch_warnings | None = None

    def __enter__(self) -> WarningCapture:
        # The frames from the `with` outwards are alive for as long as the block: the walk in
        # _is_about_model stops at them, so a caller's own frames (a test file, say) never count.
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            self._outer.add(id(frame))
            frame = frame.f_back
        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("always")
        warnings.showwarning = self._handle
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _ACTIVE.remove(self)
        assert self._context is not None
        self._context.__exit__(*exc)
        if self.sink is not None and exc[0] is None:
            for sentence in self.sentences():
                self.sink.append(sentence) if isinstance(self.sink, list) else self.sink(sentence)

    @contextlib.contextmanager
    def phase(self, where: str, *, inputs: bool = False, analysis: str | None = None) -> Iterator[None]:
        self._phases.append(_Phase(where, inputs, analysis))
        try:
            yield
        finally:
            self._phases.pop()

    def _handle(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        text = _first_line(str(message))
        key = (category.__name__, text)
        phase = self._phases[-1]
        seen = self._caught.get(key)
        if seen is not None:
            if phase not in seen.phases:
                seen.phases.append(phase)
            return
        kind, shown = _origin(filename)
        caught = _Caught(category.__name__, text, f"{shown}:{lineno}", self._classify(category, text, kind, phase))
        caught.phases.append(phase)
        self._caught[key] = caught
        if self.verbose:
            if caught.reason is None:
                line_text = f"library warning ({caught.category}, {caught.origin}) while {phase.where}: {text}"
            else:
                line_text = f"warning: {self._sentence(caught)}"
            self._echo(f"tsreport: {line_text}")

    def _classify(self, category: type[Warning], text: str, kind: str, phase: _Phase) -> str | None:
        if issubclass(category, _NOISE_CATEGORIES):
            return None
        if kind.startswith("library:") and kind.split(":", 1)[1] in _RENDERING_PACKAGES:
            return None
        if self._is_about_model():
            return "model"
        if phase.inputs:
            return "inputs"
        if issubclass(category, RuntimeWarning) and _NUMPY_FLOATING.match(text):
            return "numeric"
        return None

    def _is_about_model(self) -> bool:
        """Whether the model runs or loads where the warning was raised: a frame of tsreport/model.py or of
        user code between the warning and the ``with`` (the warning's own line is the innermost such frame)."""
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and id(frame) not in self._outer:
            if _origin(frame.f_code.co_filename)[0] in ("model", "user"):
                return True
            frame = frame.f_back
        return False

    def _echo(self, line: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        with tqdm.external_write_mode(file=stream):
            stream.write(line + "\n")
            stream.flush()

    def sentences(self) -> list[str]:
        """One sentence per distinct warning about the model or the data, in the order first raised."""
        return [self._sentence(caught) for caught in self._caught.values() if caught.reason is not None]

    def noise(self) -> list[str]:
        """'Category: message' of each distinct warning that was library noise."""
        return [f"{c.category}: {c.message}" for c in self._caught.values() if c.reason is None]

    @staticmethod
    def _sentence(caught: _Caught) -> str:
        where = _where(caught.phases)
        message = caught.message.rstrip(".")
        if caught.reason == "numeric":
            return (
                f"numpy warned '{message}' while {where} ({caught.origin}): the model's outputs or the data hold "
                "values too large or undefined for this computation, so its numbers may be inf or NaN."
            )
        if caught.reason == "inputs":
            return f"A {caught.category} was raised while {where} ({caught.origin}): {message}."
        return f"The model raised a {caught.category} while {where} ({caught.origin}): {message}."


def _where(phases: list[_Phase]) -> str:
    """'loading the model and running analyses 'a', 'b' and 2 more'."""
    others = [p.where for p in phases if p.analysis is None]
    names = [p.analysis for p in phases if p.analysis is not None]
    parts = list(dict.fromkeys(others))
    if len(names) == 1:
        parts.append(f"running analysis '{names[0]}'")
    elif names:
        shown = ", ".join(f"'{name}'" for name in names[:3])
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        parts.append(f"running analyses {shown}{more}")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


_ACTIVE: list[WarningCapture] = []


def capture_warnings(
    verbose: bool,
    sink: list[str] | Callable[[str], None] | None = None,
    *,
    stream: TextIO | None = None,
    where: str = "running tsreport",
) -> WarningCapture:
    """Catch every warning raised inside the ``with`` block (see the module docstring for the rule).

    With ``verbose``, each distinct warning is one line on ``stream`` (stderr) when first raised;
    without it, none is. On leaving the block normally, each warning about the model or the data
    is passed to ``sink`` (a list to extend, or a callable) as one sentence; :meth:`WarningCapture.sentences`
    gives them inside the block. ``where`` names the work outside any :func:`warning_phase`,
    e.g. ``capture_warnings(verbose, where="rendering the report")``.
    """
    return WarningCapture(verbose, sink, stream=stream, where=where)


@contextlib.contextmanager
def warning_phase(where: str, *, inputs: bool = False, analysis: str | None = None) -> Iterator[None]:
    """Name the work inside the block for the innermost active :func:`capture_warnings` (if any)."""
    if not _ACTIVE:
        yield
        return
    with _ACTIVE[-1].phase(where, inputs=inputs, analysis=analysis):
        yield
