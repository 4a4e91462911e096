"""HTML to PDF (and PNG) with headless Chromium.

Plotly's own static export needs the Kaleido package, which scanbench does not
depend on; instead Chromium runs the embedded plotly.js and prints the page,
so the PDF holds the same vector figures as the HTML, fully offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from scanbench.errors import ScanbenchError

# Flags that keep a headless Chromium offline, quiet and independent of any profile.
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-extensions", "--disable-default-apps", "--mute-audio",
          "--hide-scrollbars", "--run-all-compositor-stages-before-draw")
_INSTALL_HINT = ("install Chromium (Debian/Ubuntu: apt-get install chromium) or set "
                 "SCANBENCH_CHROMIUM to its path")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable: $SCANBENCH_CHROMIUM, then the PATH."""
    env = os.environ.get("SCANBENCH_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(args: list[str], out: Path, what: str, timeout_s: float) -> None:
    chromium = find_chromium()
    if chromium is None:
        raise ScanbenchError(f"writing a {what} needs headless Chromium, which was not found; "
                             + _INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="scanbench-chromium-") as profile:
        cmd = [chromium, *_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise ScanbenchError(f"Chromium did not finish the {what} within {timeout_s:.0f} s",
                                 where=out) from exc
        except OSError as exc:
            raise ScanbenchError(f"cannot run Chromium at {chromium} ({exc}); " + _INSTALL_HINT,
                                 where=out) from exc
    if not out.is_file() or out.stat().st_size == 0:
        tail = (proc.stderr or "").strip().splitlines()[-5:]
        raise ScanbenchError(f"Chromium wrote no {what} (exit status {proc.returncode}): "
                             + " | ".join(tail), where=out)


def html_to_pdf(html_file: Path, pdf_file: Path, *, timeout_s: float = 120.0,
                render_budget_ms: int = 15000) -> Path:
    """Print ``html_file`` to ``pdf_file`` (A4 per the page's CSS) after its scripts ran.

    ``render_budget_ms`` is Chromium's virtual time budget: how long the page's
    JavaScript (plotly.js drawing the figures) may run before printing.
    """
    pdf_file = pdf_file.resolve()
    pdf_file.unlink(missing_ok=True)
    _run([f"--virtual-time-budget={render_budget_ms}", "--no-pdf-header-footer",
          f"--print-to-pdf={pdf_file}", html_file.resolve().as_uri()],
         pdf_file, "PDF", timeout_s)
    with pdf_file.open("rb") as fh:
        if fh.read(5) != b"%PDF-":
            raise ScanbenchError("Chromium's output is not a PDF", where=pdf_file)
    return pdf_file


def save_report(html: str, path: Path) -> Path:
    """Write a rendered report page to ``path``: the HTML itself, or printed to PDF by
    headless Chromium when ``path`` ends in ``.pdf``. A file that cannot be written is a
    :class:`ScanbenchError` naming it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() != ".pdf":
            path.write_text(html, encoding="utf-8")
            return path
        with tempfile.TemporaryDirectory(prefix="scanbench-report-") as tmp:
            page = Path(tmp) / "report.html"
            page.write_text(html, encoding="utf-8")
            return html_to_pdf(page, path)
    except OSError as exc:
        raise ScanbenchError(f"cannot write the report ({exc.strerror or exc})",
                             where=path) from exc


def html_to_png(html_file: Path, png_file: Path, *, width: int = 1200, height: int = 1600,
                timeout_s: float = 120.0, render_budget_ms: int = 15000) -> Path:
    """A screenshot of the top ``width`` × ``height`` px of ``html_file``."""
    png_file = png_file.resolve()
    png_file.unlink(missing_ok=True)
    _run([f"--virtual-time-budget={render_budget_ms}", f"--window-size={width},{height}",
          f"--screenshot={png_file}", html_file.resolve().as_uri()],
         png_file, "screenshot", timeout_s)
    return png_file
