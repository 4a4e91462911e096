"""Browser fixtures for the page tests: Debian's Chromium driven by Playwright for
Python (``executable_path``: Playwright downloads no browser), one browser per test
session. (``pages_world.serving`` serves an app on a free port in a thread.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scanbench.report.pdf import find_chromium

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium for the whole session (new pages/contexts per test)."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    assert chromium is not None, "Debian's chromium is needed (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()
