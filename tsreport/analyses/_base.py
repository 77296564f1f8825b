"""What every analysis shares: the context built once per run, results, seeding."""

from __future__ import annotations

import contextlib
import dataclasses
import zlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from tsreport.config import RunConfig
from tsreport.data import Windows, seen_rows
from tsreport.engine import Engine
from tsreport.params import Params
from tsreport.progress import Progress
from tsreport.schema import Schema


class SkipAnalysis(Exception):
    """Raised by an analysis that cannot apply to this model or data; the message is the reason."""


# What an analysis produces, for the registry's queries.
ATTRIBUTION_MAP = "attribution map"  # per-window time x field maps (results carry them in `maps`)
FIELD_SCORES = "field scores"  # one importance per field, no map
CHECK = "check"  # a control with a verdict per method (the sanity checks)
FIGURES = "figures only"  # figures and tables about the model, no field ranking
KINDS = (ATTRIBUTION_MAP, FIELD_SCORES, CHECK, FIGURES)
#: A `needs` entry: the analysis reads the attribution maps of the methods that ran before it.
NEEDS_MAPS = "attribution maps"
#: A `needs` entry: the analysis re-runs the attribution methods of the run (on other models or windows).
RERUNS_METHODS = "attribution methods"

#: A figure: (id, SVG text, alt text).
Figure = tuple[str, str, str]


@dataclasses.dataclass(frozen=True)
class AnalysisSpec:
    """Everything the program knows about one analysis; each analysis module declares one.

    ``run(ctx, params, *, rng)`` returns a result with ``to_dict()`` (results.json's entry); an
    attribution map's result also carries its per-window maps in ``maps`` (name -> (n, T, F)),
    which the pipeline keeps and shows to later analyses read-only (``ctx.field_maps``).
    ``params`` is the frozen settings dataclass (defaults, checks, help); ``default``: part of
    the default battery (False: opt-in with --analyses); ``section`` the report template
    (None: ``sections/<name>.html``); ``description`` the report's sentence on the method (the
    generic attribution section shows it); ``figures(report, spec, entry)`` its charts.
    """

    name: str
    kind: str
    run: Callable[..., Any]
    title: str
    params: type[Params] = Params
    needs: tuple[str, ...] = ()
    default: bool = True
    section: str | None = None
    description: str = ""
    figures: Callable[[Any, AnalysisSpec, dict[str, Any]], list[Figure]] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"analysis {self.name}: kind {self.kind!r} is not one of {KINDS}")

    @property
    def template(self) -> str:
        return self.section or f"sections/{self.name}.html"

    @property
    def is_method(self) -> bool:
        """An attribution method: makes maps from the model alone (not from other methods' maps)."""
        return self.kind == ATTRIBUTION_MAP and NEEDS_MAPS not in self.needs


@dataclasses.dataclass
class AnalysisContext:
    """Built once per run and shared by every analysis (read-only by convention).

    Attributes
    ----------
    explained : (n,) int64
        Indices into the window list of the windows that analyses explain.
    explained_inputs : (n, T, C) float32 tensor on the CPU
    """

    schema: Schema
    windows: Windows
    forward: Engine
    config: RunConfig
    explained: np.ndarray
    explained_inputs: torch.Tensor
    progress: Progress = dataclasses.field(default_factory=Progress)  # a plain Callable[[str], None] is wrapped
    predictions: torch.Tensor | None = None  # (N, H) or (N, K), all windows, filled by `performance`
    baseline: torch.Tensor | None = None  # (C,) per-channel baseline in model units
    # The maps of the attribution analyses run so far, method -> (n, T, F): filled by the pipeline, read-only here.
    field_maps: Mapping[str, np.ndarray] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)  # work shared between analyses: see `shared`
    requested: dict[int, str] = dataclasses.field(default_factory=dict)  # explained row -> --explain-at text
    # results.json entries of the analyses run so far: filled by the pipeline, read-only here.
    results: Mapping[str, dict[str, Any]] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    engine_info: dict[str, Any] = dataclasses.field(default_factory=dict)  # run.engine in results.json
    _explained_outputs: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.progress, Progress):
            self.progress = Progress.of(self.progress)

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """Work several analyses need (the input gradients, TSR's time relevance), computed once per context."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def model_steps(self, windows: int) -> contextlib.AbstractContextManager[None]:
        """Progress for a block that passes ``windows`` windows through the model, counted as they go."""
        forward = self.forward
        return self.progress.steps(windows, counter=lambda: forward.evaluations)

    def channel_slices(self) -> list[slice]:
        """Each field's channels, in field order."""
        slices = self.field_channels()
        return [slices[name] for name in self.field_names]

    def explained_outputs(self) -> torch.Tensor:
        """Model outputs (n, O) for the explained windows, computed once."""
        if self._explained_outputs is None:
            self._explained_outputs = self.forward(self.explained_inputs)
        return self._explained_outputs

    def explained_classes(self) -> torch.Tensor | None:
        """Classification: each explained window's predicted class (what is explained); else None."""
        if self.schema.task != "classification":
            return None
        return self.explained_outputs().argmax(dim=1)

    def select(self, outputs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The scalar explained: the mean over the horizon, or the predicted class's score.

        The one place this convention is written. ``outputs`` (k, ..., O) belong to explained
        windows ``rows`` (k,) (e.g. (n, P, O) outputs of P perturbations per window); returns (k, ...).
        """
        if self.schema.task == "classification":
            classes = self.explained_classes()[rows].to(outputs.device)
            index = classes.reshape(-1, *([1] * (outputs.dim() - 1))).expand(*outputs.shape[:-1], 1)
            return outputs.gather(-1, index)[..., 0]
        return outputs.mean(dim=-1)

    def explained_description(self) -> str:
        if self.schema.task == "classification":
            return "the score (logit) of each window's predicted class"
        what = "prediction"
        output = self.schema.output
        if output is not None:
            if output.explain == "interval":
                low, high = output.quantiles[0], output.quantiles[-1]
                what = f"width of the predicted interval (quantile {high:g} minus quantile {low:g})"
            else:
                what = f"predicted {float(output.explain):g} quantile" + (" (median)" if output.explain == 0.5 else "")
        if self.schema.horizon > 1:
            return f"the mean {what} over the {self.schema.horizon} horizon steps, in model units"
        return f"the {what}, in model units"

    def seen_values(self) -> np.ndarray:
        """(m, C) model-unit rows that some window's inputs cover (computed once).

        Statistics of the data (spreads, means, category frequencies) come from these rows
        only: rows the model never sees (leading gaps, dropped windows, series shorter than a
        window) may hold missing or non-finite values and say nothing about its inputs.
        """

        def compute() -> np.ndarray:
            values = self.windows.values[seen_rows(self.windows)]
            return values[np.isfinite(values).all(axis=1)]

        return self.shared("seen_values", compute)

    def quantile_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """Outputs computed inside ``forward.full_outputs()`` as (k, H, Q) for a quantile head."""
        quantiles = self.schema.output.quantiles if self.schema.output else (0.5,)
        return outputs.reshape(outputs.shape[0], self.windows.horizon, len(quantiles))

    def explained_full_outputs(self) -> torch.Tensor:
        """(n, H * Q) outputs of the explained windows with every quantile; the same as
        :meth:`explained_outputs` for models without a quantile head. Computed once."""
        if self.schema.output is None:
            return self.explained_outputs()

        def compute() -> torch.Tensor:
            with self.forward.full_outputs():
                return self.forward(self.explained_inputs)

        return self.shared("explained_full_outputs", compute)

    def point_predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """The point forecast (k, H) from full outputs: the quantile nearest the median, or the outputs."""
        if self.schema.output is None:
            return outputs
        return self.quantile_outputs(outputs)[:, :, self.schema.output.point_index]

    @property
    def field_names(self) -> list[str]:
        return self.schema.field_names

    def field_channels(self) -> dict[str, slice]:
        return self.schema.channel_slices()

    def all_predictions(self) -> torch.Tensor:
        """Model outputs for every window, computed once per run, checked to be finite.

        (N, H) regression, (N, K) classification, (N, H * Q) for a quantile head (every quantile).
        """
        if self.predictions is None:
            outputs = []
            with self.forward.full_outputs(), self.model_steps(self.windows.count):
                # Parts of whole batches (the engine's batches are unchanged), enough to keep every worker busy.
                for part in self.forward.batches(self.windows.count, self.forward.part_size()):
                    outputs.append(self.forward(self.windows.inputs(part)))
            self.predictions = torch.cat(outputs)
            finite = torch.isfinite(self.predictions).all(dim=1)
            if not bool(finite.all()):
                from tsreport.exceptions import ModelLoadError

                first = int(torch.nonzero(~finite)[0, 0])
                group = self.windows.groups[first]
                raise ModelLoadError(
                    f"The model returned NaN or inf for the window ending at {self.windows.end_times[first]}"
                    + (f" in group '{group}'" if group else "")
                    + f" ({int((~finite).sum())} of {self.windows.count} windows): check the input "
                    f"scaling in the schema {self.schema.source} and the model."
                )
        return self.predictions


def child_rng(seed: int, name: str) -> np.random.Generator:
    """A generator for one analysis, derived from the run seed and the analysis name.

    Child streams do not depend on which other analyses run or in which order.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


def choose_explained(count: int, samples: int | None, seed: int) -> np.ndarray:
    """Indices of the explained windows: evenly spread over the windows, seeded.

    The windows are split into ``samples`` equal strata in time order and one
    window is drawn from each, so every part of every series is represented.
    """
    if samples is None or samples >= count:
        return np.arange(count, dtype=np.int64)
    rng = child_rng(seed, "explained_windows")
    edges = np.linspace(0, count, samples + 1)
    low = np.ceil(edges[:-1]).astype(np.int64)
    high = np.maximum(np.ceil(edges[1:]).astype(np.int64), low + 1)
    return np.minimum(low + (rng.random(samples) * (high - low)).astype(np.int64), count - 1)


def find_windows(windows: Any, requests: tuple[str, ...], group_column: str | None) -> dict[int, str]:
    """Window indices for --explain-at TIME[@GROUP] requests (the window whose last input row is at TIME)."""
    from tsreport.exceptions import UsageError

    found: dict[int, str] = {}
    for request in requests:
        time_text, _, group = request.partition("@")
        # Read as the time column is read (time_format or ISO-8601, UTC), never by guessing a format.
        mask = windows.ends_at(time_text)
        if group:
            mask = mask & (windows.groups == group)
        hits = np.flatnonzero(mask)
        if hits.size == 0:
            where = f" in group '{group}'" if group else ""
            hint = "" if group or not group_column else f" (add @GROUP to pick a series of '{group_column}')"
            raise UsageError(
                f"--explain-at {request}: no window ends at {time_text}{where}. Windows end between "
                f"{windows.first_end} and {windows.last_end}{hint}."
            )
        if hits.size > 1 and not group:
            raise UsageError(
                f"--explain-at {request}: {hits.size} series have a window ending at {time_text}; "
                f"add @GROUP, e.g. {time_text}@{windows.groups[hits[0]]}."
            )
        found[int(hits[0])] = request
    return found


def clean_float(value: Any) -> float | None:
    """A plain float for JSON, or None for NaN/inf (results.json holds no NaN)."""
    value = float(value)
    return value if np.isfinite(value) else None
