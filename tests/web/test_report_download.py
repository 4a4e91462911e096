"""Download a PDF report in a real browser (issue 12, "Must show"): Debian's Chromium
through Playwright signs in, opens a device page, clicks its PDF report link; the file
arrives with a safe name and is a PDF whose text (pdftotext) is the device's QC report.
Another site's user gets a 404 for the same report URL, in the same browser."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pages_world import PW, populate, serving
from scanbench.store import Database
from scanbench.web.api import create_app

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                reason="needs poppler-utils (pdftotext), installed by .ci/run")


@dataclass
class Served:
    url: str
    ids: dict[str, int]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("report-download")
    db = Database(url=f"sqlite:///{home / 'scanbench.db'}")
    try:
        ids = populate(db)
        with serving(create_app(db)) as url:
            yield Served(url, ids)
    finally:
        db.close()


def _sign_in(browser: Any, served: Served, username: str) -> Any:
    page = browser.new_context(accept_downloads=True).new_page()
    page.goto(f"{served.url}/login?next=/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PW)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state("load")
    return page


def test_download_a_pdf_report_from_the_device_page(browser: Any, served: Served,
                                                    tmp_path: Path) -> None:
    device_id = served.ids["device_failing"]
    page = _sign_in(browser, served, "ph_a")
    try:
        page.goto(f"{served.url}/devices/{device_id}")
        with page.expect_download(timeout=120_000) as info:
            page.click("#report-pdf")
        download = info.value
        name = download.suggested_filename
        assert name.startswith(f"device-{device_id}-qc-") and name.endswith(".pdf")
        pdf = tmp_path / name
        download.save_as(pdf)
        assert pdf.read_bytes()[:5] == b"%PDF-"
        text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                                       text=True, check=True).stdout.split())
        assert "Device QC report" in text and "Lifecycle and reliability" in text
    finally:
        page.context.close()
    other = _sign_in(browser, served, "vi_b")
    try:
        r = other.request.get(f"{served.url}/api/v1/devices/{device_id}/report?format=pdf")
        assert r.status == 404
    finally:
        other.context.close()
