"""The command line, and the ONE error boundary: exceptions become exit codes here.

Exit codes (CONTRACT §1): 0 report written; 1 report written but --fail-on
tripped; 2 usage error; 3 bad input (model, data, schema); 4 internal or
rendering error.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import click

from tsreport import __version__
from tsreport.exceptions import TsReportError, UsageError

EXIT_CODES_HELP = """\b
Exit codes:
  0  report written, nothing tripped
  1  report written, but --fail-on tripped
  2  usage error (unknown option, missing file)
  3  bad input: the model, data or schema cannot be used as given
  4  internal or rendering error (a bug: please report it)
  130 / 143  interrupted by SIGINT / SIGTERM (no new report written)
"""

ISSUE_HINT = "This is a bug in tsreport: rerun with --verbose and report the traceback."


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that staging folders are cleaned up on the way out."""


def _on_sigterm_raise() -> Any:
    """Make SIGTERM raise :class:`Terminated`; return the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)


class _Boundary(click.Group):
    """A click group whose subcommands' TsReportErrors become exit codes and one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        previous = _on_sigterm_raise()
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (KeyboardInterrupt, Terminated) as stop:
            # Not click's Abort (exit 1 means "--fail-on tripped" to audit jobs): 128 + the signal number.
            name, code = ("SIGTERM", 143) if isinstance(stop, Terminated) else ("SIGINT", 130)
            click.echo(f"tsreport: interrupted by {name}; no new report was written.", err=True)
            ctx.exit(code)
        except TsReportError as error:
            verbose = ctx.meta.get("tsreport.verbose", False)
            if verbose:
                traceback.print_exc(file=sys.stderr)
            if isinstance(error, UsageError):
                click.echo(f"Error: {error}", err=True)
            else:
                click.echo(f"tsreport: error: {error}", err=True)
            ctx.exit(error.exit_code)
        except Exception as error:  # anything else is our bug
            if ctx.meta.get("tsreport.verbose", False):
                traceback.print_exc(file=sys.stderr)
            click.echo(f"tsreport: internal error: {type(error).__name__}: {error}. {ISSUE_HINT}", err=True)
            ctx.exit(4)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


@click.group(cls=_Boundary, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tsreport")
def main() -> None:
    """Explain a saved PyTorch time-series model: which fields drive its predictions, and can you trust that."""


_existing_file = click.Path(exists=True, dir_okay=False, readable=True)


class _WithSettings(click.Command):
    """``explain --help`` ends with every analysis's settings (for ``--config``), generated from the
    analyses' own declarations, so the help can never disagree with what the code accepts."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from tsreport.analyses import settings_help

        with formatter.section("Analysis settings (--config FILE, e.g. occlusion: {size: 8})"):
            formatter.write_dl(settings_help())
        super().format_epilog(ctx, formatter)


@main.command(cls=_WithSettings, epilog=EXIT_CODES_HELP)
@click.argument("model", type=_existing_file)
@click.argument("data", type=_existing_file)
@click.option("--schema", "schema", required=True, type=_existing_file, help="Field schema (YAML or JSON).")
@click.option(
    "--out",
    default=None,
    help="Output folder for report.html, report.pdf, results.json, figures/. [default: tsreport-report]",
)
@click.option(
    "--format",
    "format_",
    default=None,
    help="Comma list of html, pdf, json, markdown (summary.md for CI job summaries), junit (junit.xml, one "
    "testcase per check x method and per analysis); results.json is always written. [default: html]",
)
@click.option("--analyses", default=None, help="Comma list of analyses to run. [default: the full battery]")
@click.option("--samples", default=None, help="Windows explained (evenly spread, seeded), or 'all'. [default: 512]")
@click.option("--seed", type=int, default=None, help="Seed of every random choice. [default: 0]")
@click.option(
    "--explain-at",
    "explain_at",
    multiple=True,
    help="TIME[@GROUP]: also explain and plot the window ending there (repeatable).",
)
@click.option("--device", default=None, help="cpu or cuda. [default: cpu]")
@click.option("--model-class", default=None, help="FILE.py:NAME building the model for a state-dict file.")
@click.option("--model-kwargs", default=None, help="JSON object of keyword arguments for --model-class.")
@click.option(
    "--trust-model", is_flag=True, default=None, help="Allow loading a pickled nn.Module (runs code from the file)."
)
@click.option("--fail-on", default=None, help="never, sanity or warning: exit 1 when that trips. [default: never]")
@click.option(
    "--config",
    "config_file",
    type=_existing_file,
    default=None,
    help="YAML file with any of these options and per-analysis settings.",
)
@click.option(
    "--templates",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of templates overriding the bundled ones by file name.",
)
@click.option(
    "--batch-size",
    default=None,
    help="Windows per model call, or auto: a short probe picks the fastest (recorded in results.json); "
    "a number gives bit-identical reruns. [default: auto]",
)
@click.option(
    "--workers",
    default=None,
    help="Local worker processes sharing the model work (numbers identical to one process at the same "
    "batch size), or auto. [default: 1]",
)
@click.option(
    "--scheduler",
    default=None,
    help="Run the model work on a dask.distributed cluster: its scheduler address (tcp://HOST:PORT), or "
    "local for a LocalCluster here. Needs pip install 'tsreport[dask]'.",
)
@click.option(
    "--max-model-size",
    default=None,
    help="Refuse a model file larger than this on disk or unzipped, e.g. 500MB, 4GiB. [default: 2GiB]",
)
@click.option(
    "--force",
    is_flag=True,
    default=None,
    help="Write into a non-empty --out that holds no earlier tsreport run (its files are kept).",
)
@click.option(
    "--lock-timeout",
    type=float,
    default=None,
    help="Seconds to wait for another run writing the same --out, then exit 3. [default: 0, do not wait]",
)
@click.option("--quiet", is_flag=True, default=None, help="No progress messages.")
@click.option("--verbose", is_flag=True, default=None, help="Progress messages, and tracebacks on errors.")
def explain(model: str, data: str, schema: str, config_file: str | None, format_: str | None, **options: Any) -> None:
    """Explain MODEL on the windows of DATA described by --schema.

    \b
    DATA: .csv, .csv.gz or .parquet (identical windows whatever the format).
    MODEL: TorchScript, torch.export (.pt2), a state dict with --model-class,
    or (only with --trust-model) a pickled nn.Module.
    Schema keys beyond the basics: time_format (strptime format of the time
    column; without it ambiguous or mixed date strings are exit 3) and
    output: {quantiles: [0.1, 0.5, 0.9], explain: median|<quantile>|interval}
    for a model whose last output axis holds quantiles.
    """
    from tsreport.config import build_config, load_config_file

    click.get_current_context().meta["tsreport.verbose"] = bool(options.get("verbose"))
    file_values = load_config_file(config_file) if config_file else {}
    options["format"] = format_
    options["explain_at"] = list(options["explain_at"]) or None
    from tsreport import analyses

    config = build_config(file_values, options, analysis_names=analyses.NAMES, config_path=config_file)
    inputs = (model, data, schema, *([config_file] if config_file else []))
    code = run_explain(model, data, schema, config, inputs=inputs)
    sys.exit(code) if code else None


_ANNOUNCED = ("report.html", "report.pdf", "results.json", "summary.md", "junit.xml")


def run_explain(model: str, data: str, schema: str, config: Any, *, inputs: tuple[str, ...] = ()) -> int:
    """Run, write the report and return the exit code (0, or 1 when --fail-on trips).

    ``--out`` is checked, locked and cleaned before any work, and replaced whole at the end
    (tsreport.output), so it always holds the previous run or this one.
    """
    from tsreport.output import OutputFolder, report_files
    from tsreport.pipeline import explain as run_pipeline
    from tsreport.progress import Progress, capture_warnings

    progress = Progress.create(quiet=config.quiet, verbose=config.verbose)
    folder = OutputFolder(
        config.out, inputs=inputs or (model, data, schema), force=config.force, lock_timeout=config.lock_timeout
    )
    folder.prepare()
    try:
        report = run_pipeline(model, data, schema, config, argv=["tsreport", *sys.argv[1:]], progress=progress)
        with capture_warnings(config.verbose, where="rendering the report"):
            files = report_files(report, config.formats, config.templates)
        written = folder.commit(files)
    finally:
        folder.release()
    for path in written:
        if path.name in _ANNOUNCED and path.parent == folder.path:
            click.echo(str(Path(config.out) / path.name))
    return exit_code(report.to_dict(), config.fail_on)


def exit_code(results: dict[str, Any], fail_on: str) -> int:
    """1 when --fail-on trips, else 0."""
    if fail_on == "never":
        return 0
    failed_checks = [name for name, check in results.get("sanity", {}).items() if check.get("status") == "fail"]
    failed_analyses = [name for name, entry in results["analyses"].items() if entry.get("status") == "failed"]
    if failed_checks or failed_analyses:
        return 1
    if fail_on == "warning" and results.get("warnings"):
        return 1
    return 0


@main.command()
@click.argument("data", type=_existing_file)
@click.option("--target", default=None, help="Target column (default: guessed, the last numeric column).")
@click.option("--window", type=int, default=None, help="Window length T (default: from the shortest series).")
@click.option(
    "--horizon", type=int, default=None, help="Steps a forecaster predicts (regression; implies it). [default: 1]"
)
@click.option(
    "--task",
    type=click.Choice(["regression", "classification"]),
    default=None,
    help="regression or classification (default: inferred from the target).",
)
def schema(data: str, target: str | None, window: int | None, horizon: int | None, task: str | None) -> None:
    """Print a draft schema (YAML) inferred from DATA (.csv, .csv.gz or .parquet).

    \b
    Recognises a date or integer step-counter column as time, a text id or an
    integer id repeated in contiguous blocks as group, one-hot column groups,
    the task and the class labels; every guess is a comment in the draft.
    """
    from tsreport.data import read_table
    from tsreport.infer import draft_schema
    from tsreport.schema import MAX_STEPS

    for name, value in (("--window", window), ("--horizon", horizon)):
        if value is not None and not 1 <= value <= MAX_STEPS:
            raise UsageError(f"Invalid {name} {value}: give a positive integer, at most {MAX_STEPS}.")
    if horizon is not None and task == "classification":
        raise UsageError("--horizon applies to regression only; a classifier labels each window by its last row.")
    frame = read_table(data)  # the reader explain uses: same formats, duplicate headers refused
    click.echo(draft_schema(frame, target=target, window=window, horizon=horizon, task=task, source=data), nl=False)


DIFF_EXIT_CODES_HELP = """\b
Exit codes:
  0  compared (changes or not, unless --fail-on-change trips)
  1  --fail-on-change: the top-3 ranking changed or a pass/fail verdict flipped
  2  usage error (unknown option, missing file)
  3  a file is not a tsreport results.json (or is from a newer tsreport)
"""


@main.command(epilog=DIFF_EXIT_CODES_HELP)
@click.argument("old_results", type=_existing_file)
@click.argument("new_results", type=_existing_file)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="Output format; markdown is a short summary for a CI job summary or a merge-request comment.",
)
@click.option(
    "--fail-on-change", is_flag=True, help="Exit 1 when the top-3 ranking changes or a pass/fail verdict flips."
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.05,
    show_default=True,
    help="Importance change beyond noise, for analyses without 95% intervals: |change of share| above this.",
)
def diff(old_results: str, new_results: str, format_: str, fail_on_change: bool, threshold: float) -> None:
    """What changed between two runs: ranking, importances beyond noise, verdicts, metrics, inputs."""
    import json

    from tsreport.diff import diff_results, format_markdown, format_text, load_results

    result = diff_results(load_results(old_results), load_results(new_results), threshold=threshold)
    if format_ == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    elif format_ == "markdown":
        click.echo(format_markdown(result), nl=False)
    else:
        click.echo(format_text(result), nl=False)
    if fail_on_change and result.fail_reasons:
        sys.exit(1)


HISTORY_EXIT_CODES_HELP = """\b
Exit codes:
  0  history.html and history.json written
  2  usage error (unknown option, missing file, bad --out)
  3  a file is not a tsreport results.json, fewer than 2 runs, runs of other fields, or --out cannot be written
"""


@main.command("history", epilog=HISTORY_EXIT_CODES_HELP)
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", required=True, help="Folder for history.html and history.json.")
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.1,
    show_default=True,
    help="Flag a run when more than this part of the importance moved since the previous run.",
)
@click.option(
    "--templates",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of templates overriding the bundled ones by file name.",
)
@click.option("--force", is_flag=True, help="Write into a non-empty --out that holds no earlier tsreport output.")
@click.option("--lock-timeout", type=float, default=0.0, help="Seconds to wait for another run writing --out.")
def history_command(
    results: tuple[str, ...], out: str, threshold: float, templates: str | None, force: bool, lock_timeout: float
) -> None:
    """Trend of past runs: RESULTS are results.json files, or folders of past runs' output folders.

    \b
    Writes history.html and history.json to --out: field-share trend lines,
    performance over time, verdict changes, and a flag on each run where the
    ranking moved beyond --threshold (total variation distance of the shares).
    """
    from tsreport.history import history_files
    from tsreport.output import OutputFolder

    folder = OutputFolder(out, inputs=results, force=force, lock_timeout=lock_timeout)
    folder.prepare()
    try:
        found, files = history_files(list(results), threshold=threshold, templates=templates)
        written = folder.commit(files)
    finally:
        folder.release()
    for path in written:
        click.echo(str(Path(out) / path.name))
    click.echo(found["summary"], err=True)


def example_files() -> dict[str, Path]:
    """The bundled example: installed as tsreport/examples, or the source tree's examples/."""
    package_dir = Path(__file__).resolve().parent
    for folder in (package_dir / "examples", package_dir.parent / "examples"):
        files = {"model": folder / "model.pt", "data": folder / "sales.csv", "schema": folder / "schema.yaml"}
        if all(path.is_file() for path in files.values()):
            return files
    raise TsReportError("The bundled example is missing from the installation; reinstall tsreport (pip install .).")


@main.command()
@click.option("--out", default="tsreport-report", show_default=True, help="Output folder.")
@click.option("--format", "format_", default="html", show_default=True, help="Comma list of html, pdf, json.")
@click.option("--quiet", is_flag=True, help="No progress messages.")
def demo(out: str, format_: str, quiet: bool) -> None:
    """Run the full battery on the bundled example (a retail sales forecaster)."""
    from tsreport import analyses
    from tsreport.config import build_config

    files = example_files()
    config = build_config(
        {}, {"out": out, "format": format_, "quiet": quiet, "verbose": not quiet}, analysis_names=analyses.NAMES
    )
    code = run_explain(str(files["model"]), str(files["data"]), str(files["schema"]), config)
    sys.exit(code) if code else None


if __name__ == "__main__":  # pragma: no cover
    main()
