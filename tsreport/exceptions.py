"""The exception hierarchy; only :mod:`tsreport.cli` maps it to exit codes.

Library code raises these with a message that names the file, field or column
and says what to do. The CLI prints ``str(error)`` on stderr and exits with
``error.exit_code``.
"""

from __future__ import annotations


class TsReportError(Exception):
    """Base of every error tsreport raises on purpose."""

    exit_code = 4


class UsageError(TsReportError):
    """The command line or configuration was used wrongly (exit 2)."""

    exit_code = 2


class InputError(TsReportError):
    """The model, data or schema cannot be used as given (exit 3)."""

    exit_code = 3


class SchemaError(InputError):
    """The field schema is malformed or does not fit the data."""


class DataError(InputError):
    """The data file cannot be read or cut into windows."""


class ModelLoadError(InputError):
    """The model file cannot be loaded safely, or does not fit the data."""


class OutputError(InputError):
    """The output folder cannot be written."""


class ClusterError(InputError):
    """The Dask scheduler named by ``--scheduler`` cannot be reached or used, or workers keep failing."""


class RenderError(TsReportError):
    """Rendering the report failed (exit 4)."""

    exit_code = 4
