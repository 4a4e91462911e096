"""The README's first command: `scanbench demo` simulates PET, CT and MRI phantom scans
and clinical studies, analyses and scores each, and writes one report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_covers_every_modality_and_a_healthy_virtual_fleet_passes(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "scanbench", "demo", "--out", str(out)],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-3000:]
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
