"""Browser fixtures for the page tests: Debian's Chromium driven by Playwright for
Python (``executable_path``: Playwright downloads no browser), one browser per test
module: module scope, not session, because Playwright's sync API allows one running
instance per thread, and a test that starts its own (``with sync_playwright()``) must
find none left running by another module. (``pages_world.serving`` serves an app on a
free port in a thread.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scanbench.report.pdf import find_chromium

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for the module's tests (a new context per test)."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    assert chromium is not None, "Debian's chromium is needed (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()
