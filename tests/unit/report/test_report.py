"""The report: every number, unit, warning and banner in the HTML; real headless
Chromium renders it (plotly.js offline) and prints a valid PDF."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from scanbench.errors import ScanbenchError
from scanbench.evaluation import apply_spec
from scanbench.report import write_report
from scanbench.report.figures import RoiShape, bar_figure, slice_with_rois
from scanbench.report.html import format_limits, format_value, render_html
from scanbench.report.pdf import find_chromium, html_to_png
from scanbench.specs import load_spec
from scanbench.types import DeviceIdentity, Result

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")


CST = dt.timezone(dt.timedelta(hours=8))


def _iq_result() -> Result:
    r = Result(analysis="pet.nema_nu2_2018.image_quality",
               standard="NEMA NU 2-2018 section 7.4", series_instance_uid="1.2.826.0.1.99.7",
               device=DeviceIdentity("UIH", "uMI 550", "SN-0042", "PETCT1", "R002"),
               acquired_at=dt.datetime(2026, 3, 4, 10, 30, tzinfo=CST),
               source="/data/iq-phantom", parameters={"activity_ratio": 10.0})
    for s, v in zip((37, 28, 22, 17, 13, 10), (0.912, 0.873, 0.851, 0.793, 0.702, 0.455),
                    strict=True):
        r.add("rc_mean", v, "1", labels={"sphere_mm": s}, uncertainty=0.0137)
        r.add("rc_max", v * 1.3, "1", labels={"sphere_mm": s})
        r.add("percent_contrast", 100 * v - 7.25, "%", labels={"sphere_mm": s})
    r.add("background_mean_bq_ml", 2034.567, "Bq/mL", uncertainty=12.5)
    r.add("lung_residual", 3.81, "%")
    r.warnings.append("sphere plane found 2.1 mm from the expected position")
    return apply_spec(r, load_spec("earl2"))


def _cal_result() -> Result:
    r = Result(analysis="pet.calibration_uniformity", standard="EARL calibration QC",
               series_instance_uid="1.2.826.0.1.99.8", device=DeviceIdentity("ACME", "PET 1"),
               acquired_at=dt.datetime(2026, 3, 5, 9, 0), source="/data/cylinder")
    r.add("activity_concentration_bias_percent", 12.4, "%")
    r.add("activity_concentration_bq_ml", 5123.0, "Bq/mL")
    return apply_spec(r, load_spec("earl-calibration"))


def _figures(result: Result) -> list[go.Figure]:
    img = np.full((80, 100), 2000.0)
    yy, xx = np.mgrid[:80, :100]
    img[(yy - 40) ** 2 + (xx - 50) ** 2 < 15**2] = 20000.0
    return [slice_with_rois(img, (2.0, 2.0), [RoiShape((40, 50), 30.0, "37 mm")],
                            f"slice of {result.analysis}"),
            bar_figure(["37", "28"], [0.9, 0.8], title="RC", bands=[(0.85, 1.0), (0.82, 0.97)])]


FAILURES = [("/data/broken/IM0001", "truncated pixel data")]
SKIPPED = [("/data/iq-phantom/README.txt", "not a DICOM file")]


@pytest.fixture(scope="module")
def results() -> list[Result]:
    return [_iq_result(), _cal_result()]


@pytest.fixture(scope="module")
def html_file(results: list[Result], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(results, path, title="Acceptance of PET 1", failures=FAILURES,
                 skipped=SKIPPED, figures=_figures)
    return path


def test_html_holds_every_measurement_value_unit_and_limits(
        html_file: Path, results: list[Result]) -> None:
    html = html_file.read_text(encoding="utf-8")
    for r in results:
        for m in r.measurements:
            value = format_value(m.value, uncertainty=m.uncertainty)
            assert f'<td class="num">{value}</td><td>{m.unit}</td>' in html
            if m.uncertainty is not None:
                assert f"± {format_value(m.uncertainty, 2)}" in html
            if m.limits:
                assert format_limits(m.limits.low, m.limits.high) in html
        assert r.series_instance_uid in html and r.standard in html
    # the value to its uncertainty's last digit (0.912 ± 0.014, 2035 ± 12), else 4 digits
    assert ">0.912<" in html and ">2035<" in html and ">12.4<" in html
    assert "0.85 – 1" in html and "-10 – 10" in html
    assert html.count('class="status status-fail">fail') >= 2  # the rows and the summary


def test_html_warnings_banner_failures_and_provenance(html_file: Path) -> None:
    html = html_file.read_text(encoding="utf-8")
    assert "sphere plane found 2.1 mm from the expected position" in html
    assert html.count('class="banner unverified-banner"') == 2  # header and its result
    assert "UNVERIFIED SPEC: earl2" in html and "pynemaiqpet" in html
    assert "(unconfirmed)" in html
    assert "UIH uMI 550 (serial SN-0042, station PETCT1, software R002)" in html
    assert "2026-03-04T10:30:00+08:00" in html and "no timezone in the header" in html
    for where, why in FAILURES + SKIPPED:
        assert where in html and why in html
    assert "activity_ratio" in html and "Acceptance of PET 1" in html
    for lib in ("scanbench", "python", "numpy", "plotly", "pydicom"):
        assert f"<td>{lib}</td>" in html


def _blocks(html: str) -> tuple[str, dict]:
    """plotly.js and the figure data the page carries (each gzip + base64)."""
    def block(name: str) -> bytes:
        found = re.findall(rf'<script id="{name}" type="application/octet-stream">([^<]*)'
                           "</script>", html)
        assert len(found) == 1, f"{name} appears {len(found)} times"
        return gzip.decompress(base64.b64decode(found[0]))

    return block("sb-plotlyjs").decode("utf-8"), json.loads(block("sb-figures"))


def test_html_is_self_contained_with_plotlyjs_once(html_file: Path) -> None:
    html = html_file.read_text(encoding="utf-8")
    js, figures = _blocks(html)
    from plotly.offline import get_plotlyjs

    assert js == get_plotlyjs()  # the whole library, once, compressed
    assert html.count("Plotly.newPlot(") == 1  # one loader draws every figure
    assert len(figures["figures"]) == 4  # two figures for each of two results
    assert len(figures["templates"]) == 1  # the shared template travels once
    assert len(html) < 2_500_000  # 4.8 MB of plotly.js travel as ~2 MB
    # nothing is fetched: no external scripts, stylesheets or images
    assert re.findall(r"<(?:script|link|img)[^>]*\b(?:src|href)=", html) == []


def test_figure_errors_do_not_lose_the_report(results: list[Result]) -> None:
    def broken(result: Result) -> list[go.Figure]:
        raise ValueError("evidence has no slice")

    html = render_html(results, figures=broken)
    assert "Figures could not be drawn: ValueError: evidence has no slice" in html
    assert "sb-plotlyjs" not in html and len(html) < 500_000  # no plotly.js without figures
    assert ">0.912<" in html


def test_escaping_and_empty_report() -> None:
    r = _cal_result()
    r.warnings.append("<script>alert(1)</script>")
    html = render_html([r], figures=None)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "Results</td><td>0 (" in render_html([], figures=None)


@pytest.mark.parametrize(("value", "text"), [
    (0.7634, "0.7634"), (54.236, "54.24"), (5312.456, "5312"), (123456.0, "123456"),
    (0.0, "0"), (-12.5, "-12.5"), (2.5e-5, "2.5 × 10⁻⁵"), (3.2e7, "3.2 × 10⁷"),
    (6.771e-04, "0.0006771"), (None, "—"), (float("nan"), "n/a"),
])
def test_format_value(value: float | None, text: str) -> None:
    assert format_value(value) == text


def test_format_limits() -> None:
    assert format_limits(0.76, 0.89) == "0.76 – 0.89"
    assert format_limits(None, 3.0) == "≤ 3" and format_limits(-10.0, None) == "≥ -10"


def test_pdf_without_chromium_says_how_to_install(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  results: list[Result]) -> None:
    monkeypatch.setenv("SCANBENCH_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(ScanbenchError, match="apt-get install chromium"):
        write_report(results, tmp_path / "r.pdf", figures=None)
    assert not (tmp_path / "r.pdf").exists()


@needs_chromium
def test_chromium_runs_plotlyjs_offline(html_file: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", f"--user-data-dir={profile}",
             "--virtual-time-budget=10000", "--dump-dom", html_file.as_uri()],
            capture_output=True, text=True, timeout=120, check=True).stdout
    # plotly.js replaced each figure's empty div with rendered SVG
    assert dom.count('class="main-svg"') >= 4
    assert "UNVERIFIED SPEC: earl2" in dom


@needs_chromium
def test_screenshot_is_not_blank(html_file: Path, tmp_path: Path) -> None:
    from PIL import Image

    png = html_to_png(html_file, tmp_path / "shot.png", width=1000, height=1400)
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert img.shape == (1400, 1000, 3)
    non_white = (img.sum(axis=2) < 720).mean()
    assert non_white > 0.03
    banner = np.all(np.abs(img - (0xFF, 0xF4, 0xD6)) <= 2, axis=2).sum()
    assert banner > 2000  # the amber unverified-spec banner is on screen


@needs_chromium
def test_pdf_is_valid_with_pages_and_text(results: list[Result], tmp_path: Path) -> None:
    pdf = write_report(results, tmp_path / "out" / "report.pdf", failures=FAILURES,
                       figures=_figures)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-1024:]
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                              check=True).stdout
        pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
        assert "A4" in info
    else:
        pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert pages >= 2
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                              text=True, check=True).stdout
        assert "UNVERIFIED SPEC: earl2" in text
        assert "0.912" in text and "truncated pixel data" in text
