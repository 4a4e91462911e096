"""`scanbench demo --phantom-report` (the analyses' showcase; `scanbench demo` itself is
the virtual fleet, tests/e2e/test_demo_fleet.py) simulates PET, CT and MRI phantom scans
and clinical studies, analyses and scores each, and writes one report: small (< 5 MB,
plotly.js once), with windowed CT images, the dose and workflow tables, and figures
that headless Chromium draws (screenshotted by scripts/screenshots.py)."""

from __future__ import annotations

import base64
import gzip
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scanbench.report.pdf import find_chromium

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = subprocess.run([sys.executable, "-m", "scanbench", "demo", "--phantom-report",
                           "--out", str(out)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def _figures(html: str) -> list[dict]:
    block = re.search(r'<script id="sb-figures" type="application/octet-stream">([^<]*)'
                      "</script>", html)
    assert block is not None
    return json.loads(gzip.decompress(base64.b64decode(block.group(1))))["figures"]


def test_demo_covers_every_modality_and_a_healthy_virtual_fleet_passes(
        demo: tuple[Path, subprocess.CompletedProcess]) -> None:
    out, proc = demo
    html = (out / "report.html").read_text(encoding="utf-8")
    for analysis in ("pet.nema_nu2_2018.image_quality", "pet.nema_nu2_2018.spatial_resolution",
                     "pet.calibration_uniformity", "ct.water", "ct.acr464",
                     "mr.acr.uniformity", "mr.acr.low_contrast"):
        assert analysis in proc.stdout, analysis
        assert analysis in html, analysis
    # Each scan is scored against its spec, and a correctly calibrated virtual scanner
    # fails none of the limits.
    for spec in ("earl1", "daily-water-qc", "acr-ct", "acr-mri-2022"):
        assert f"spec {spec}" in proc.stdout, spec
    assert "│ pass" in proc.stdout and "│ fail" not in proc.stdout
    assert "Patient dose per study" in proc.stdout
    assert (out / "clinical").is_dir() and (out / "mr-acr" / "ground_truth.json").is_file()


def test_demo_report_is_small_offline_and_shows_dose_workflow_and_resolution(
        demo: tuple[Path, subprocess.CompletedProcess]) -> None:
    report = demo[0] / "report.html"
    html = report.read_text(encoding="utf-8")
    assert report.stat().st_size < 5_000_000  # was 25 MB
    assert html.count('<script id="sb-plotlyjs"') == 1  # plotly.js once, no CDN
    assert re.findall(r"<(?:script|link|img)[^>]*\b(?:src|href)=", html) == []
    # the patient dose and workflow of the simulated studies, the NU 2 resolution table
    for heading in ("<h2>Patient dose</h2>", "Patient dose per study", "<h2>Workflow</h2>",
                    "Per device and day", "Spatial resolution summary"):
        assert heading in html, heading
    # the EARL bands on the recovery plot of the EARL1-scored scan
    names = [t.get("name", "") for f in _figures(html) for t in f["data"]]
    assert "RC max limits, earl1" in names and "RC mean (A50) limits, earl1" in names


def test_demo_ct_images_are_windowed(demo: tuple[Path, subprocess.CompletedProcess]) -> None:
    html = (demo[0] / "report.html").read_text(encoding="utf-8")
    windows = {}
    for f in _figures(html):
        title = f["layout"]["title"]["text"]
        heat = f["data"][0]
        if heat.get("type") == "heatmap" and heat["colorbar"]["title"]["text"].startswith("HU"):
            windows[title.split(":")[0].split(",")[0]] = (heat["zmin"], heat["zmax"])
            z = heat["z"]  # plotly's typed array: {"dtype", "bdata", "shape": "ny, nx"}
            shape = [int(n) for n in z["shape"].split(",")] if isinstance(z, dict) \
                else np.shape(z)
            assert max(shape) <= 256, title
    # ACR 464: CT numbers air to bone, low contrast W 100 on its ~90 HU background,
    # uniformity and the water phantom in the soft-tissue window; before: −3000…+141 HU
    assert windows["Module 1"] == (-1100, 1100)
    lo, hi = windows["Module 2"]
    assert hi - lo == 100 and 40 < (lo + hi) / 2 < 140
    assert windows["Module 3"] == windows["Water phantom"] == (-160, 240)


@pytest.mark.skipif(find_chromium() is None or importlib.util.find_spec("playwright") is None,
                    reason="needs headless Chromium and Playwright for Python")
def test_demo_figures_render_in_chromium_and_screenshots_are_not_blank(
        demo: tuple[Path, subprocess.CompletedProcess], tmp_path: Path) -> None:
    from PIL import Image

    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshots.py"), str(demo[0] / "report.html"),
         str(tmp_path), "--only", "Module 2", "--only", "Source 1", "--only", "spokes"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["figures"] >= 50 and info["screenshots"]
    for name in info["screenshots"]:
        img = np.asarray(Image.open(tmp_path / name).convert("L"), dtype=float)
        assert img.std() > 10, name  # drawn, not an empty box
    module2 = next(n for n in info["screenshots"] if "module-2" in n)
    img = np.asarray(Image.open(tmp_path / module2).convert("L"), dtype=float)
    # the low-contrast slice fills its plot with mid greys (noise around the background),
    # not the flat white of an image stretched over −3000…+141 HU
    middle = img[img.shape[0] // 4: img.shape[0] * 3 // 4, img.shape[1] // 8: img.shape[1] // 2]
    assert 60 < np.median(middle) < 200 and middle.std() > 8
