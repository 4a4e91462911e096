"""``scanbench ingest`` as a user runs it: phantom series analysed, a real CT dose report's
dose rows stored, a software update seen as a lifecycle event, nothing stored twice (run
twice, or two ingesters at once), bad files named, and ``kill -9`` in the middle of an
ingest losing nothing that was stored."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from node_dicom import ct_series, uniform_phantom
from pg import database_url, pg_server  # noqa: F401  (fixtures)
from scanbench.simulate.pet import ScannerModel
from scanbench.store import models as m

SCANBENCH = [sys.executable, "-m", "scanbench"]
RDSR = "dose/rdsr/CT-RDSR-GEPixelMed.dcm"


def _run(args: list[str], env: dict[str, str], timeout: float = 300
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCANBENCH, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


def _env(home: Path, url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SCANBENCH_DATABASE_URL", "SCANBENCH_DASK_SCHEDULER")}
    env["SCANBENCH_HOME"] = str(home)
    if url:
        env["SCANBENCH_DATABASE_URL"] = url
    return env


def _count(url: str, model: type[m.Base], *where: object) -> int:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def site_folder(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """Two uniform-cylinder QC scans a month apart, the scanner's software updated in
    between, and a real GE CT dose report, plus a note that is not DICOM."""
    root = tmp_path_factory.mktemp("site")
    old = ScannerModel(software_versions="VG70A")
    new = ScannerModel(software_versions="VG80B")
    uniform_phantom(root / "qc-jan", scanner=old, scan_start=dt.datetime(2026, 1, 5, 8, 0))
    uniform_phantom(root / "qc-feb", scanner=new, scan_start=dt.datetime(2026, 2, 5, 8, 0),
                    seed=2)
    (root / "dose").mkdir()
    shutil.copy(shared_data / RDSR, root / "dose" / "rdsr.dcm")
    return root


def test_ingest_a_site_folder(site_folder: Path, tmp_path: Path,
                              database_url: str) -> None:  # noqa: F811  (the fixture)
    url = database_url
    env = _env(tmp_path / "home", url)
    r = _run(["ingest", str(site_folder), "--workers", "0"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"instances stored\s*│\s*73 ", r.stdout), r.stdout  # 2 × 36 + RDSR
    assert "skipped" in r.stderr and "ground_truth.json" in r.stderr
    assert _count(url, m.Instance) == 2 * 36 + 1
    assert _count(url, m.Result, m.Result.analysis == "pet.calibration_uniformity") == 2
    assert _count(url, m.Measurement) == 10
    events = _count(url, m.LifecycleEvent, m.LifecycleEvent.kind == "software_change")
    assert events == 1
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            ev = s.scalars(select(m.LifecycleEvent)).one()
            assert (ev.details["from"], ev.details["to"]) == ("VG70A", "VG80B")
            if _clinical():
                # OpenREM's published values for this file: total DLP 586.34 mGy·cm, two
                # events, the first with CTDIvol 60.41 mGy.
                total = s.scalars(select(m.DoseEvent).where(m.DoseEvent.kind == "study")).one()
                assert total.dlp_mgycm == pytest.approx(586.34, abs=0.005)
                cts = list(s.scalars(select(m.DoseEvent).where(m.DoseEvent.kind == "ct")
                                     .order_by(m.DoseEvent.id)))
                assert len(cts) == 2 and cts[0].ctdivol_mgy == pytest.approx(60.41, abs=0.005)
                ge = s.get_one(m.Device, total.device_id)
                assert ge.manufacturer == "GE MEDICAL SYSTEMS"
            if importlib.util.find_spec("scanbench.clinical.workflow") is not None:
                # Exam start and end from the report's irradiation times (issue 4).
                (timing,) = s.scalars(select(m.ExamTiming)).all()
                assert timing.started_at is not None and timing.duration_s is not None
                assert timing.duration_s >= 0
    finally:
        engine.dispose()

    again = _run(["ingest", str(site_folder), "--workers", "0"], env)
    assert again.returncode == 0, again.stderr
    assert _count(url, m.Instance) == 2 * 36 + 1
    assert _count(url, m.Result) == 2 and _count(url, m.Job, m.Job.state == "failed") == 0
    assert _count(url, m.LifecycleEvent) == 1


def _clinical() -> bool:
    from scanbench.service.jobs import clinical_available

    return clinical_available()


def test_bad_files_are_named_and_the_rest_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    raws = ct_series(3)[2]
    for k, raw in enumerate(raws):
        (folder / f"{k}.dcm").write_bytes(raw)
    (folder / "broken.dcm").write_bytes(raws[0][:-50])
    with zipfile.ZipFile(folder / "more.zip", "w") as zf:  # a zip is read in memory
        for k, raw in enumerate(ct_series(2)[2]):
            zf.writestr(f"series/{k}.dcm", raw)
    r = _run(["ingest", str(folder), "--workers", "0"], _env(tmp_path / "home"))
    assert r.returncode == 1
    assert "broken.dcm" in r.stderr and "truncated" in r.stderr
    url = f"sqlite:///{tmp_path / 'home' / 'scanbench.db'}"
    assert _count(url, m.Instance) == 5 and _count(url, m.Series) == 2
    missing = _run(["ingest", str(tmp_path / "nope")], _env(tmp_path / "home"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_two_ingesters_at_once_store_nothing_twice(site_folder: Path, tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    env["SCANBENCH_HOME"] = str(tmp_path / "home")
    procs = [subprocess.Popen([*SCANBENCH, "ingest", str(site_folder), "--no-analyse"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    url = f"sqlite:///{tmp_path / 'home' / 'scanbench.db'}"
    assert _count(url, m.Instance) == 73 and _count(url, m.Series) == 3
    files = [p for p in (tmp_path / "home" / "files").rglob("*") if p.is_file()]
    assert len(files) == 73


def test_kill_9_mid_ingest_loses_nothing_stored(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    uniform_phantom(folder / "a")
    uniform_phantom(folder / "b", seed=3)
    uniform_phantom(folder / "c", seed=4)
    home = tmp_path / "home"
    proc = subprocess.Popen([*SCANBENCH, "ingest", str(folder), "--no-analyse"],
                            env=_env(home), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    files = home / "files"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once some instances are in
        if files.exists() and sum(1 for p in files.rglob("*.dcm")) >= 20:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    on_disk = {p.name[:-4] for p in files.rglob("*.dcm")}
    assert 20 <= len(on_disk) < 108, "the kill came too late to test anything"
    # Restart: every file on disk is indexed, no temporary file is left, and the ingest
    # finishes the rest without a duplicate.
    r = _run(["ingest", str(folder), "--no-analyse"], _env(home))
    assert r.returncode == 0, r.stderr
    url = f"sqlite:///{home / 'scanbench.db'}"
    assert _count(url, m.Instance) == 108
    assert not [p for p in files.rglob(".tmp-*")]
    assert len(list(files.rglob("*.dcm"))) == 108


def test_a_failed_job_is_listed_and_retried(tmp_path: Path) -> None:
    """Files of a stored series go missing (a disk problem): its job fails with the reason,
    the rest of the node goes on; once they are back, `scanbench jobs retry` analyses it."""
    folder = tmp_path / "in"
    uniform_phantom(folder / "qc")
    for r in ct_series(2)[2]:
        (folder / f"ct-{len(list(folder.glob('*')))}.dcm").write_bytes(r)
    home = tmp_path / "home"
    env = _env(home)
    assert _run(["ingest", str(folder), "--no-analyse"], env).returncode == 0
    url = f"sqlite:///{home / 'scanbench.db'}"
    engine = create_engine(url)
    with Session(engine) as s:
        series = s.scalars(select(m.Series).where(m.Series.modality == "PT")).one()
        paths = [home / "files" / i for i in s.scalars(
            select(m.Instance.path).where(m.Instance.series_id == series.id))]
    engine.dispose()
    aside = tmp_path / "aside"
    aside.mkdir()
    for k, path in enumerate(paths):
        path.rename(aside / f"{k}")

    run = _run(["jobs", "run", "--workers", "0"], env)
    assert run.returncode == 1
    assert "failed" in run.stderr and "retry with: scanbench jobs retry" in run.stderr
    assert "(series 1.2" in run.stdout  # the CT series' job went on and is done
    listed = _run(["jobs", "list", "--state", "failed"], env)
    assert listed.returncode == 0 and "failed" in listed.stdout
    assert "could not be read" in listed.stdout

    for k, path in enumerate(paths):
        (aside / f"{k}").rename(path)
    retry = _run(["jobs", "retry", "--workers", "0"], env)
    assert retry.returncode == 0, retry.stderr
    assert "done" in retry.stdout and "pet.calibration_uniformity" in retry.stdout
    assert _count(url, m.Result) == 1 and _count(url, m.Job, m.Job.state == "failed") == 0
