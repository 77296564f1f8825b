"""The engine seam: every analysis gets its model work done through :class:`Engine`.

- :mod:`tsreport.engine.core`: the engine (batches, chunks, outputs, perturbed outputs, gradients).
- :mod:`tsreport.engine.perturbations`: picklable perturbations that chunks carry to workers.
- :mod:`tsreport.engine.source`: the model as bytes + sha256, so any process builds the same engine.
- :mod:`tsreport.engine.executors`: this process, ``--workers N`` processes, or a Dask cluster.
- :mod:`tsreport.engine.probe`: ``--batch-size auto``.
"""

from tsreport.engine.core import Engine, Layout, NoGradient, ShapeMismatch
from tsreport.engine.perturbations import Masked, Permuted, Perturbation, Selector

__all__ = ["Engine", "Layout", "Masked", "NoGradient", "Permuted", "Perturbation", "Selector", "ShapeMismatch"]
