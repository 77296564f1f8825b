"""PDF report: the same HTML rendered by WeasyPrint (imported lazily: it is heavy).

Only ``data:`` URIs may be fetched; anything else is refused, so a report can
never reach out to the network or the file system. If WeasyPrint logs an
error, the render fails instead of writing a PDF with holes.

The layout for paper (cover, contents with page numbers, running header and
footer, bookmarks, no split figures) is ``templates/print.css``; files given as
``attachments`` (results.json) are embedded in the PDF.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tsreport.exceptions import RenderError


def _data_only_fetcher() -> Any:
    """A URL fetcher that serves data: URIs and refuses everything else, fatally."""
    from weasyprint import urls

    if hasattr(urls, "URLFetcher"):  # WeasyPrint >= 68
        return urls.URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)

    def fetch(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:  # older WeasyPrint
        if url.startswith("data:"):
            return urls.default_url_fetcher(url, *args, **kwargs)
        raise RenderError(f"The report refers to {url!r}; only embedded data: URIs are allowed.")

    return fetch


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def render_pdf(html: str, *, attachments: Mapping[str, bytes] | None = None) -> bytes:
    """The PDF of the report's HTML, with ``attachments`` ({file name: bytes}) embedded as files.

    Raises RenderError when WeasyPrint is missing, the HTML refers to anything
    but a data: URI, or WeasyPrint logs an error.
    """
    try:
        import weasyprint
    except (ImportError, OSError) as error:
        raise RenderError(
            f"PDF output needs WeasyPrint and its system libraries (Pango): {error}. "
            "On Debian/Ubuntu: apt-get install libpango-1.0-0 libpangoft2-1.0-0; or use --format html."
        ) from None
    collector = _ErrorCollector()
    logger = logging.getLogger("weasyprint")
    logger.addHandler(collector)
    try:
        fetcher = _data_only_fetcher()
        files = [
            weasyprint.Attachment(
                file_obj=io.BytesIO(content),
                name=name,
                url_fetcher=fetcher,
                relationship="Data",
                description=f"{name} written with this report: every number in it, machine-readable",
            )
            for name, content in (attachments or {}).items()
        ]
        document = weasyprint.HTML(string=html, url_fetcher=fetcher, base_url=".")
        pdf = document.write_pdf(attachments=files)
    except RenderError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # WeasyPrint's FatalURLFetchingError is a BaseException
        cause = f" ({error.__cause__})" if error.__cause__ else ""
        raise RenderError(f"WeasyPrint failed to render the PDF: {error}{cause}") from None
    finally:
        logger.removeHandler(collector)
    if collector.messages:
        raise RenderError("WeasyPrint reported errors while rendering the PDF: " + "; ".join(collector.messages[:3]))
    return pdf


def files(report: Any, context: Any) -> dict[str, bytes]:
    """report.pdf (the HTML printed, with results.json and tables/*.csv attached) and the figures/*.svg."""
    attachments = {"results.json": context.get("results.json")}
    attachments.update({Path(name).name: data for name, data in context.get("tables").items()})
    return {**context.get("figure files"), "report.pdf": render_pdf(context.get("html"), attachments=attachments)}
