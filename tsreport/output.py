"""Write a report's files atomically: all into a temporary folder, then renamed into place.

After any failure nothing half-written is left: the temporary folder is
removed, and an output folder this run created is removed again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tsreport.exceptions import OutputError
from tsreport.results import Report


class OutputFolder:
    """The output folder, checked for writability before any work starts."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out)
        self.created = False

    def prepare(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"Output path {self.path} exists and is not a folder; choose another --out.")
        if not self.path.exists():
            try:
                self.path.mkdir(parents=True)
            except OSError as error:
                raise OutputError(
                    f"Cannot create the output folder {self.path}: {error.strerror}. Choose a writable --out."
                ) from None
            self.created = True
        try:
            with tempfile.NamedTemporaryFile(dir=self.path, prefix=".tsreport-check-"):
                pass
        except OSError as error:
            self.discard()
            raise OutputError(
                f"The output folder {self.path} is not writable ({error.strerror}). Choose a writable --out."
            ) from None

    def discard(self) -> None:
        """Remove the folder again if this run created it and it is still empty."""
        if self.created:
            with contextlib.suppress(OSError):
                self.path.rmdir()
            self.created = False

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A temporary folder inside the output folder; its files are moved in on success."""
        staging = Path(tempfile.mkdtemp(dir=self.path, prefix=".tsreport-tmp-"))
        try:
            yield staging
            for item in sorted(staging.rglob("*")):
                if item.is_file():
                    target = self.path / item.relative_to(staging)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(item, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def write_report(report: Report, folder: OutputFolder, formats: tuple[str, ...], templates: str | None) -> list[Path]:
    """Render and write results.json (always) and the requested renderings; return the written paths."""
    from tsreport.render.html import build_figures, render_html

    written: list[str] = ["results.json"]
    with folder.staging() as staging:
        results_json = report.to_json().encode("utf-8")
        (staging / "results.json").write_bytes(results_json)
        if "html" in formats or "pdf" in formats:
            figures = build_figures(report)
            html = render_html(report, templates=templates, figures=figures)
            (staging / "figures").mkdir()
            for figure_id, figure in figures.items():
                (staging / "figures" / f"{figure_id}.svg").write_text(figure["svg"], encoding="utf-8")
                written.append(f"figures/{figure_id}.svg")
            if "html" in formats:
                (staging / "report.html").write_text(html, encoding="utf-8")
                written.append("report.html")
            if "pdf" in formats:
                from tsreport.render.pdf import render_pdf

                (staging / "report.pdf").write_bytes(render_pdf(html, attachments={"results.json": results_json}))
                written.append("report.pdf")
    return [folder.path / name for name in written]
