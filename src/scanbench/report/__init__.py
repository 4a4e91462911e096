"""HTML and PDF reports, and the shared Plotly figure helpers the analyses use.

``write_report(results, path)`` writes one self-contained file: HTML with
plotly.js embedded (no network needed to view it), or PDF when ``path`` ends
in ``.pdf`` (the same page printed by headless Chromium). Figures are drawn
here, on request, from each result's analysis (``Analysis.figures``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from scanbench.errors import ScanbenchError

if TYPE_CHECKING:
    from scanbench.report.html import ExtraSection, FigureSource
    from scanbench.types import Result

# What the package re-exports from report.html, imported on first use: importing a
# submodule (``scanbench.report.cli`` for ``scanbench --help``) must not pull in numpy,
# plotly and jinja2.
_LAZY = {"ExtraSection", "FigureSource", "registry_figures", "render_html"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from scanbench.report import html

        return getattr(html, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Figure size for print: fits the width of an A4 page with default margins.
PDF_FIGURE_SIZE = (680, 440)


def write_report(
    results: Sequence[Result],
    path: str | Path,
    *,
    title: str = "scanbench report",
    failures: Sequence[tuple[str, str]] = (),
    skipped: Sequence[tuple[str, str]] = (),
    inputs: Sequence[str | Path] = (),
    figures: FigureSource | Literal["registry"] | None = "registry",
    extra_sections: Sequence[ExtraSection] = (),
) -> Path:
    """Write an HTML report, or a PDF one when ``path`` ends in ``.pdf``.

    ``failures`` and ``skipped`` are ``(where, reason)`` pairs listed at the
    end; ``inputs`` the paths analysed (default: the results' sources);
    ``figures`` maps a result to its Plotly figures (default ``"registry"``: its
    analysis's ``figures``; None for none); ``extra_sections`` (e.g. patient dose and workflow
    tables) follow the results. Returns the path written. Raises
    :class:`ScanbenchError` when the file cannot be written, or for PDF when
    Chromium is missing or fails.
    """
    from scanbench.report.html import registry_figures, render_html
    from scanbench.report.pdf import find_chromium, save_report

    if isinstance(figures, str):  # "registry", the default: each result's analysis draws
        figures = registry_figures

    path = Path(path)
    as_pdf = path.suffix.lower() == ".pdf"
    if as_pdf and find_chromium() is None:
        raise ScanbenchError("a PDF report needs headless Chromium, which was not found; "
                             "install it (Debian/Ubuntu: apt-get install chromium) or write "
                             "an .html report instead", where=path)
    html = render_html(results, title=title, failures=failures, skipped=skipped,
                       inputs=inputs, figures=figures, extra_sections=extra_sections,
                       figure_size=PDF_FIGURE_SIZE if as_pdf else None)
    return save_report(html, path)


__all__ = ["PDF_FIGURE_SIZE", "ExtraSection", "render_html", "write_report"]
