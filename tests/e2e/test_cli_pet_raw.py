"""The real command line on raw data from the raw-mode virtual scanner: simulate, analyse,
JSON, spec and report, and bad raw input named with the right exit status."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanbench", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("raw")
    sim = run("simulate", "pet-count-rate", "--out", d / "cr.h5", "--frames", "5",
              "--frame-s", "30", "--scanner", "analog-pmt")
    assert sim.returncode == 0, sim.stderr
    assert "true peak NECR" in sim.stdout
    sim = run("simulate", "pet-tof", "--out", d / "tof.h5", "--events", "60000",
              "--activity", "20")
    assert sim.returncode == 0, sim.stderr
    return d


def test_simulate_then_analyze_raw_files(raw_dir: Path, tmp_path: Path) -> None:
    out = run("analyze", raw_dir, "--json", "--spec", "nema-nu2-2018",
              "--report", tmp_path / "r.html")
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    ids = sorted(r["analysis"] for r in results)
    assert ids == ["pet.nema_nu2_2018.count_rate", "pet.nema_nu2_2018.tof_resolution"]
    by_id = {r["analysis"]: r for r in results}
    names = {m["name"] for m in by_id["pet.nema_nu2_2018.count_rate"]["measurements"]}
    assert {"peak_necr_kcps", "scatter_fraction_percent", "necr_kcps"} <= names
    assert by_id["pet.nema_nu2_2018.count_rate"]["parameters"]["convention"].startswith("NEMA")
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_bad_raw_input_is_named(raw_dir: Path, tmp_path: Path) -> None:
    cr = tmp_path / "cr.h5"
    shutil.copy(raw_dir / "cr.h5", cr)
    with h5py.File(cr, "a") as h:
        for name in h["frames"]:
            if "delayed" in h["frames"][name]:
                del h["frames"][name]["delayed"]
    out = run("analyze", cr)
    assert out.returncode == 1
    err = " ".join(out.stderr.split())  # rich wraps long lines
    assert "missing delayed sinogram" in err and "cr.h5" in err
    assert "Traceback" not in out.stderr
    junk = tmp_path / "junk.hs"
    junk.write_text("not interfile")
    out = run("analyze", junk)
    assert out.returncode == 2
    assert "not an Interfile header" in " ".join(out.stderr.split())
    out = run("simulate", "pet-tof", "--out", tmp_path / "x.txt")
    assert out.returncode == 2 and ".h5" in out.stderr
