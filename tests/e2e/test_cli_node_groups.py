"""``scanbench ingest`` of a real ACR MRI axial series with its localiser stores the full
suite of seven tests (it stored only the geometric accuracy, 12 measurements, before the
node used analyze's grouping), and ``scanbench protocol`` sets, versions and lists the
protocols the node's analyses get."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nodekit import Node, need, running, storescu, wait_for
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from node_results import analyze_rows, assert_same, dicom_files, stored_rows
from scanbench.api import analyze_paths
from scanbench.store import models as m

SCANBENCH = [sys.executable, "-m", "scanbench"]


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SCANBENCH_DATABASE_URL", "SCANBENCH_DASK_SCHEDULER")}
    env["SCANBENCH_HOME"] = str(home)
    return subprocess.run([*SCANBENCH, *args], capture_output=True, text=True, env=env,
                          timeout=600, check=False)


def test_ingest_of_t1_and_localiser_stores_the_full_acr_suite(shared_data: Path,
                                                              tmp_path: Path) -> None:
    acr = shared_data / "mr" / "acr"
    home = tmp_path / "home"
    r = _run(["ingest", str(acr / "PhilipsAchieva"), str(acr / "PhilipsAchievaLocalizer"),
              "--workers", "0"], home)
    assert r.returncode == 0, r.stdout + r.stderr
    engine = create_engine(f"sqlite:///{home / 'scanbench.db'}")
    try:
        with Session(engine) as s:
            results = list(s.scalars(select(m.Result)))
            assert {x.analysis for x in results} == {
                "mr.acr.geometric_accuracy", "mr.acr.high_contrast_resolution",
                "mr.acr.slice_thickness", "mr.acr.slice_position", "mr.acr.uniformity",
                "mr.acr.ghosting", "mr.acr.low_contrast"}
            geo = next(x for x in results if x.analysis == "mr.acr.geometric_accuracy")
            assert len(geo.measurements) == 14  # 12 axial lengths + the localiser's 2
            assert {x.state for x in s.scalars(select(m.Series))} == {"done"}
    finally:
        engine.dispose()


def test_protocol_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    iq = "pet.nema_nu2_2018.image_quality"
    first = _run(["protocol", "set", "iq10", "--param", "activity_ratio=10", "--modality",
                  "PT", "--analysis", iq], home)
    assert first.returncode == 0, first.stderr
    assert "protocol iq10 version 1 (PT)" in first.stdout
    typo = _run(["protocol", "set", "iq10", "--param", "activty_ratio=10", "--analysis", iq],
                home)
    assert typo.returncode == 2
    assert "activty_ratio: not a parameter of " + iq in typo.stderr
    assert "Traceback" not in typo.stderr
    spec = tmp_path / "protocols.yaml"
    spec.write_text(f"- name: iq10\n  modality: PT\n  analysis: {iq}\n"
                    "  params: {activity_ratio: 9.5}\n  description: 'fill of [T1] day'\n")
    assert _run(["protocol", "set", "--file", str(spec)], home).returncode == 0
    listed = json.loads(_run(["protocol", "list", "--json"], home).stdout)
    assert [(p["name"], p["version"], p["params"]) for p in listed] == [
        ("iq10", 2, {"activity_ratio": 9.5})]
    shown = _run(["protocol", "show", "iq10"], home)
    assert shown.returncode == 0 and "activity_ratio=10" in shown.stdout
    assert _run(["protocol", "remove", "iq10"], home).returncode == 0
    assert json.loads(_run(["protocol", "list", "--json"], home).stdout) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: x\n  parms: {a: 1}\n")
    r = _run(["protocol", "set", "--file", str(bad)], home)
    assert r.returncode == 2 and str(bad) in r.stderr and "unknown key" in r.stderr


def test_node_receiving_t1_then_localiser_over_c_store_stores_analyze_results(
        shared_data: Path, tmp_path: Path) -> None:
    """Sent by C-STORE one after the other to a running ``scanbench node``: whether the
    localiser comes within the group wait or after it (then the group runs again and
    supersedes), the node ends with exactly what analyze gives for the two series."""
    need("storescu", "echoscu")
    acr = shared_data / "mr" / "acr"
    t1, loc = acr / "PhilipsAchieva", acr / "PhilipsAchievaLocalizer"
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'scanbench.db'}"
    node = Node(home, quiet_seconds=1.0, args=("--group-wait-seconds", "3"))
    want = analyze_rows(analyze_paths([t1, loc]).results)

    def current() -> dict:
        engine = create_engine(url)
        try:
            with Session(engine) as s:
                return stored_rows(s)
        finally:
            engine.dispose()

    with running(node):
        for folder in (t1, loc):
            r = storescu(node.port, dicom_files(folder))
            assert r.returncode == 0, r.stderr
        wait_for("the ACR suite with the localiser's length",
                 lambda: any(k[2] == "length_mm" and "localiser" in k[3] for k in current()),
                 timeout=300)
    assert_same(current(), want, "T1 and localiser over C-STORE")
