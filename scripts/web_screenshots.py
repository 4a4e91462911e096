"""Screenshots of the web application's pages: sign-in, fleet overview, a device with its
control chart, a result, the dose page.

Usage: python scripts/web_screenshots.py BASE_URL USERNAME OUT_DIR [--result ID]
           [--device ID [--chart NAME]] [--no-dose]
       (the password is read from $SCANBENCH_SCREENSHOT_PASSWORD)

On the demo fleet (``scanbench demo``, docs/demo.md) with the drifting CT's id as
``--device`` this writes the images of docs/screenshots/ (tests/web/test_demo_browser.py
runs it; SCANBENCH_SCREENSHOTS_DIR=docs/screenshots keeps them).

Signs in through the sign-in page in headless Chromium (the Debian one, through
Playwright for Python; $SCANBENCH_CHROMIUM or chromium on the PATH), and writes

- ``OUT_DIR/web-login.png``: the sign-in page;
- ``OUT_DIR/web-fleet.png``: the fleet overview (failing, drifting, overdue first);
- ``OUT_DIR/web-device.png``: the device ``--device`` (its identity, alerts and
  scorecard), and ``OUT_DIR/web-device-chart.png``: its control chart of the measurement
  ``--chart`` (default: the first chart on the page) once drawn, trend-rule marks and all;
- ``OUT_DIR/web-result.png``: the result ``--result`` (default: the result the device's
  first alert was raised on, else the first result the fleet links), once every figure
  on it is drawn (a result kept without figures has them drawn first, through the page's
  own "Draw the figures" button);
- ``OUT_DIR/web-dose.png``: the dose page (unless ``--no-dose``), its figure drawn;

and prints one JSON line: the files written and how long each page took to load (ms).
The test tests/web/test_pages_browser.py runs it.

On the central node of the programme demo (``scanbench demo --programme``,
docs/programme.md): ``python scripts/web_screenshots.py --programme HOME/programme-demo.json
BASE_URL OUT_DIR`` signs in as the demo's reviewer and writes
``OUT_DIR/web-review-queue.png`` (the review queue, most unusual first), then as its
physicist and writes ``OUT_DIR/web-reader-study-results.png`` (the closed reader study's
results); the demo's passwords are in the summary file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """The Chromium to drive: $SCANBENCH_CHROMIUM, else chromium on the PATH."""
    env = os.environ.get("SCANBENCH_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _wait_drawn(page: Any) -> None:
    """Wait until every plotly figure of the page (``script[data-plot]``) is drawn."""
    for block in page.query_selector_all("script[data-plot]"):
        target = block.get_attribute("data-plot")
        page.wait_for_selector(f"#{target}[data-drawn]", timeout=120_000)


def shoot(base_url: str, username: str, password: str, out_dir: Path,
          result_id: int | None = None, width: int = 1400, device_id: int | None = None,
          chart: str | None = None, dose: bool = True) -> dict[str, Any]:
    """Sign in at ``base_url`` and screenshot the pages into ``out_dir``."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise SystemExit("headless Chromium not found (apt-get install chromium)")
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, int] = {}
    written: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            t0 = time.perf_counter()
            page.goto(f"{base_url}/login", wait_until="load")
            timings["login_ms"] = round((time.perf_counter() - t0) * 1000)
            page.screenshot(path=str(out_dir / "web-login.png"))
            written.append("web-login.png")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            t0 = time.perf_counter()
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("table#fleet")
            timings["fleet_ms"] = round((time.perf_counter() - t0) * 1000)
            page.screenshot(path=str(out_dir / "web-fleet.png"), full_page=True)
            written.append("web-fleet.png")
            if result_id is None:
                link = page.query_selector("table#fleet a.test")
                href = link.get_attribute("href") if link else None
                result_id = int(href.rsplit("/", 1)[1]) if href else None
            if device_id is not None:
                t0 = time.perf_counter()
                page.goto(f"{base_url}/devices/{device_id}", wait_until="load")
                timings["device_ms"] = round((time.perf_counter() - t0) * 1000)
                page.screenshot(path=str(out_dir / "web-device.png"))
                written.append("web-device.png")
                alerted = page.query_selector("#alerts-table a[href^='/results/']")
                href = alerted.get_attribute("href") if alerted else None
                if href:
                    result_id = int(href.rsplit("/", 1)[1])
                # Charts load when scrolled into view (htmx "revealed").
                slot = (f'.chart-slot[data-series-name="{chart}"]' if chart
                        else ".chart-slot")
                page.locator(slot).first.scroll_into_view_if_needed()
                t0 = time.perf_counter()
                page.wait_for_selector(f"{slot} [data-drawn]", timeout=120_000)
                timings["chart_ms"] = round((time.perf_counter() - t0) * 1000)
                page.locator(slot).first.screenshot(path=str(out_dir / "web-device-chart.png"))
                written.append("web-device-chart.png")
            if result_id is not None:
                t0 = time.perf_counter()
                page.goto(f"{base_url}/results/{result_id}", wait_until="load")
                if page.query_selector("form.draw-figures"):
                    page.click("form.draw-figures button[type=submit]")
                    page.wait_for_selector("script[data-plot], .figures-note",
                                           timeout=300_000)
                _wait_drawn(page)
                timings["result_ms"] = round((time.perf_counter() - t0) * 1000)
                page.screenshot(path=str(out_dir / "web-result.png"), full_page=True)
                written.append("web-result.png")
            if dose:
                t0 = time.perf_counter()
                page.goto(f"{base_url}/dose", wait_until="load")
                _wait_drawn(page)
                timings["dose_ms"] = round((time.perf_counter() - t0) * 1000)
                page.screenshot(path=str(out_dir / "web-dose.png"), full_page=True)
                written.append("web-dose.png")
        finally:
            browser.close()
    return {"screenshots": written, **timings}


def _sign_in(browser: Any, base_url: str, username: str, password: str,
             width: int) -> Any:
    """A new browser context signed in as ``username`` through the sign-in page."""
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.goto(f"{base_url}/login", wait_until="load")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("#login-form button[type=submit]")
    return page


def shoot_programme(summary: Path, base_url: str, out_dir: Path,
                    width: int = 1400) -> dict[str, Any]:
    """The central node of the programme demo: the reviewer's queue and the reader
    study's results (module docstring)."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise SystemExit("headless Chromium not found (apt-get install chromium)")
    users = {u["username"]: u["password"]
             for u in json.loads(summary.read_text(encoding="utf-8"))["users"]["central"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, int] = {}
    written: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=_ARGS, headless=True)
        try:
            page = _sign_in(browser, base_url, "reviewer", users["reviewer"], width)
            t0 = time.perf_counter()
            page.goto(f"{base_url}/review", wait_until="load")
            timings["review_ms"] = round((time.perf_counter() - t0) * 1000)
            page.screenshot(path=str(out_dir / "web-review-queue.png"))
            written.append("web-review-queue.png")
            page = _sign_in(browser, base_url, "physicist", users["physicist"], width)
            page.goto(f"{base_url}/reader-studies", wait_until="load")
            link = page.query_selector("a[href$='/results']")
            if link is None:
                raise SystemExit("no reader study results link on /reader-studies")
            t0 = time.perf_counter()
            page.goto(f"{base_url}{link.get_attribute('href')}", wait_until="load")
            timings["reader_study_results_ms"] = round((time.perf_counter() - t0) * 1000)
            page.screenshot(path=str(out_dir / "web-reader-study-results.png"),
                            full_page=True)
            written.append("web-reader-study-results.png")
        finally:
            browser.close()
    return {"screenshots": written, **timings}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--programme"]:
        if len(argv) != 4:
            print("usage: web_screenshots.py --programme SUMMARY_JSON BASE_URL OUT_DIR",
                  file=sys.stderr)
            return 2
        print(json.dumps(shoot_programme(Path(argv[1]), argv[2].rstrip("/"),
                                         Path(argv[3]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base_url")
    ap.add_argument("username")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--result", type=int, default=None, help="the result page to show")
    ap.add_argument("--device", type=int, default=None,
                    help="the device page to show, with its control chart")
    ap.add_argument("--chart", default=None,
                    help="the measurement whose chart is shown (default: the first)")
    ap.add_argument("--no-dose", action="store_true", help="leave out the dose page")
    args = ap.parse_args(argv)
    password = os.environ.get("SCANBENCH_SCREENSHOT_PASSWORD")
    if not password:
        print("error: set SCANBENCH_SCREENSHOT_PASSWORD to the user's password",
              file=sys.stderr)
        return 2
    print(json.dumps(shoot(args.base_url.rstrip("/"), args.username, password, args.out_dir,
                           args.result, device_id=args.device, chart=args.chart,
                           dose=not args.no_dose)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
