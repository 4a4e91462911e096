"""Screenshots of an HTML report's figures, and how long headless Chromium takes to draw them.

Usage: python scripts/screenshots.py REPORT.html OUT_DIR [--only SUBSTRING ...]

Opens the report in headless Chromium (the Debian one, through Playwright for Python;
$SCANBENCH_CHROMIUM or /usr/bin/chromium), waits until every figure is drawn (the page
sets ``data-figures-drawn`` on <body>), and writes

- ``OUT_DIR/<n>-<title>.png``: one PNG per figure (all of them, or those whose title
  contains one of the ``--only`` substrings);
- ``OUT_DIR/report-top.png``: the top of the page (summary and status legend);
- ``OUT_DIR/table-<n>.png`` and ``section-<n>.png`` (without ``--only``): the tables a
  standard lays out (NEMA NU 2 resolution summary) and the sections after the results
  (patient dose, workflow);
- prints a JSON line: the report's size in bytes, the number of figures, and the
  milliseconds until the first figure and until the last one were drawn.

The test tests/e2e/test_demo_report.py runs it on the demo report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """The Chromium to drive: $SCANBENCH_CHROMIUM, else chromium on the PATH."""
    env = os.environ.get("SCANBENCH_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "figure"


def shoot(report: Path, out_dir: Path, only: list[str] | None = None,
          width: int = 1200, timeout_s: float = 180.0) -> dict[str, object]:
    """Render ``report``, screenshot its figures into ``out_dir``, return the timings."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise SystemExit("headless Chromium not found (apt-get install chromium)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            t0 = time.perf_counter()
            page.goto(report.resolve().as_uri(), wait_until="load",
                      timeout=timeout_s * 1000)
            page.wait_for_selector(".figure .main-svg", timeout=timeout_s * 1000)
            first_ms = (time.perf_counter() - t0) * 1000
            page.wait_for_selector("body[data-figures-drawn]", timeout=timeout_s * 1000)
            all_ms = (time.perf_counter() - t0) * 1000
            page.screenshot(path=str(out_dir / "report-top.png"))
            figures = page.query_selector_all(".figure")
            written = []
            for n, fig in enumerate(figures, start=1):
                title_el = fig.query_selector(".gtitle")
                title = (title_el.text_content() or "") if title_el else f"figure {n}"
                if only and not any(o.lower() in title.lower() for o in only):
                    continue
                fig.scroll_into_view_if_needed()
                path = out_dir / f"{n:02d}-{_slug(title)}.png"
                fig.screenshot(path=str(path))
                written.append(path.name)
            if not only:  # the standard-layout tables and the sections after the results
                for kind, selector in (("table", "section.result:not(.extra) table.standard"),
                                       ("section", "section.extra")):
                    for n, el in enumerate(page.query_selector_all(selector), start=1):
                        el.scroll_into_view_if_needed()
                        path = out_dir / f"{kind}-{n}.png"
                        el.screenshot(path=str(path))
                        written.append(path.name)
        finally:
            browser.close()
    return {"report_bytes": report.stat().st_size, "figures": len(figures),
            "first_figure_ms": round(first_ms), "all_figures_ms": round(all_ms),
            "screenshots": written}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--only", action="append", default=None,
                    help="screenshot only figures whose title contains this (repeatable)")
    ap.add_argument("--width", type=int, default=1200)
    ns = ap.parse_args(argv)
    print(json.dumps(shoot(ns.report, ns.out_dir, ns.only, ns.width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
