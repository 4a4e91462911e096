"""`scanbench node` as a subprocess on 127.0.0.1, fed by dcmtk's storescu: a phantom
series (the virtual PET scanner's uniform cylinder) and clinical dose reports (real RDSRs
from shared/data/dose/rdsr) become analysis results and dose rows in the database;
nothing sent twice, or by two senders at once, is stored twice; a `kill -9` in the
middle of a transfer loses no acknowledged instance and leaves no half-written file; a
corrupt instance gets a DICOM failure status and a log line while the association goes
on. The storage tests run on SQLite and on a real PostgreSQL server (tests/pg.py)."""

from __future__ import annotations

import copy
import io
import subprocess
import threading
from pathlib import Path

import pydicom
import pynetdicom
import pytest
from nodekit import Node, count, db_url_of, need, query, running, storescu, wait_for
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import generate_uid
from pynetdicom import AE

from pg import database_url, pg_server  # noqa: F401  (fixtures: SQLite and PostgreSQL)
from scanbench.simulate.pet import simulate_uniform

RDSRS = ("CT-RDSR-Siemens-Multi-2.dcm", "NM-RRDSR-Siemens.dcm")


@pytest.fixture(scope="module", autouse=True)
def _dcmtk() -> None:
    need("storescu", "echoscu")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], str]:
    """A uniform-cylinder PET series (74 slices) and its Series Instance UID."""
    folder = tmp_path_factory.mktemp("uniform")
    truth = simulate_uniform(folder, seed=11)
    return sorted(folder.glob("*.dcm")), str(truth["series_instance_uid"])


def _files_in_store(home: Path) -> list[Path]:
    return [p for p in (home / "files").rglob("*") if p.is_file()]


def _jobs_settled(url: str) -> bool:
    return count(url, "job", "where state in ('queued', 'running')") == 0 and count(
        url, "series", "where state in ('receiving', 'queued')") == 0


def test_phantom_and_clinical_study_reach_the_database(
        tmp_path: Path, database_url: str, phantom: tuple[list[Path], str],  # noqa: F811
        shared_data: Path) -> None:
    files, series_uid = phantom
    rdsrs = [shared_data / "dose/rdsr" / n for n in RDSRS]
    home = tmp_path / "home"
    url = db_url_of(home, database_url)
    node = Node(home, database_url)
    with running(node):
        sent = storescu(node.port, [*files, *rdsrs])
        assert sent.returncode == 0, sent.stdout + sent.stderr
        wait_for("the analysis result and the dose rows", lambda: count(
            url, "result", f"where series_uid = '{series_uid}'") and count(url, "dose_event")
            and _jobs_settled(url), timeout=180)
        failed = query(url, "select kind, target_uid, error from job where state = 'failed'")
        assert not failed, failed
        n_instances, n_results, n_doses = (count(url, "instance"), count(url, "result"),
                                           count(url, "dose_event"))
        assert n_instances == len(files) + len(rdsrs)
        assert count(url, "measurement") > 0
        analysis = query(url, f"select analysis from result where series_uid = '{series_uid}'")
        assert analysis[0][0].startswith("pet.")
        stored_files = len(_files_in_store(home))
        assert stored_files == n_instances

        # The same study again, and two senders at once: acknowledged, never stored twice.
        results: dict[str, subprocess.CompletedProcess[str]] = {}

        def send(aet: str, what: list[Path]) -> None:
            results[aet] = storescu(node.port, what, aet=aet)

        threads = [threading.Thread(target=send, args=(aet, [*files, *rdsrs]))
                   for aet in ("SENDER1", "SENDER2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        for aet, r in results.items():
            assert r.returncode == 0, (aet, r.stdout + r.stderr)
            assert r.stdout.count("Success") + r.stderr.count("Success") >= len(files)
        wait_for("jobs to settle", lambda: _jobs_settled(url), timeout=60)
        assert count(url, "instance") == n_instances
        assert len(_files_in_store(home)) == stored_files
        assert count(url, "result") == n_results
        assert count(url, "dose_event") == n_doses
        assert count(url, "series") == len(query(url, "select distinct series_uid from series"))
    assert node.stop() == 0


def _copies(files: list[Path], folder: Path, n_series: int) -> list[Path]:
    """``n_series`` copies of a series, each with new Series and SOP Instance UIDs."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    originals = [pydicom.dcmread(f) for f in files]
    for k in range(n_series):
        series_uid = generate_uid()
        for i, ds in enumerate(originals):
            c = copy.deepcopy(ds)
            c.SeriesInstanceUID = series_uid
            c.SOPInstanceUID = c.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            path = folder / f"s{k}_{i:03d}.dcm"
            c.save_as(path, enforce_file_format=True)
            out.append(path)
    return out


def test_kill_9_mid_transfer_loses_no_acknowledged_instance(
        tmp_path: Path, database_url: str, phantom: tuple[list[Path], str]  # noqa: F811
) -> None:
    files = _copies(phantom[0], tmp_path / "send", 2)  # 148 instances, 47 kB each
    home = tmp_path / "home"
    url = db_url_of(home, database_url)
    node = Node(home, database_url, quiet_seconds=3600).start()
    acked: list[Path] = []
    try:
        proc = subprocess.Popen(
            ["storescu", "-R", "-v", "-aec", "SCANBENCH", "127.0.0.1", str(node.port),
             *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        current: Path | None = None
        assert proc.stdout is not None
        for line in proc.stdout:  # "Sending file: X" ... "Received Store Response (Success)"
            if "Sending file:" in line:
                current = Path(line.split("Sending file:", 1)[1].strip())
            elif "Received Store Response (Success)" in line and current is not None:
                acked.append(current)
                if len(acked) == 50:
                    node.kill9()  # mid-transfer: storescu is still sending
        proc.wait(60)
    finally:
        node.kill9()
    assert 50 <= len(acked) < len(files), "the kill did not land mid-transfer"

    node = Node(home, database_url, port=node.port, quiet_seconds=3600).start()  # recovers
    try:
        uids = {r[0] for r in query(url, "select sop_uid from instance")}
        for f in acked:
            uid = str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
            assert uid in uids, f"acknowledged {f.name} lost"
        stored = _files_in_store(home)
        assert not [p for p in stored if p.name.startswith(".tmp")], "half-written file left"
        for p in stored:  # every file complete: pixel data of the declared size
            ds = pydicom.dcmread(p)
            assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
        assert {p.stem for p in stored} == uids
        # The sender retries everything: each instance ends up stored exactly once.
        again = storescu(node.port, files)
        assert again.returncode == 0, again.stdout + again.stderr
        assert count(url, "instance") == len(files)
        assert len(_files_in_store(home)) == len(files)
    finally:
        node.stop()


def test_corrupt_instance_is_refused_and_the_association_goes_on(
        tmp_path: Path, phantom: tuple[list[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, second = phantom[0][0], phantom[0][1]
    bad = pydicom.dcmread(phantom[0][2])
    bad.SOPInstanceUID = bad.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.99.7"
    bad.PixelData = bad.PixelData[: len(bad.PixelData) // 2]  # image cut in half
    bad_path = tmp_path / "bad.dcm"
    bad.save_as(bad_path, enforce_file_format=True)
    garbage = tmp_path / "garbage.dcm"  # a valid file meta, then bytes that are no data set
    meta = copy.deepcopy(pydicom.dcmread(good, stop_before_pixels=True).file_meta)
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.99.8"
    buf = io.BytesIO()
    write_file_meta_info(buf, meta)
    garbage.write_bytes(b"\0" * 128 + b"DICM" + buf.getvalue() + b"\xff\xfe\x01\x00" * 64)
    home = tmp_path / "home"
    url = db_url_of(home, None)
    node = Node(home, quiet_seconds=3600)
    with running(node):
        r = storescu(node.port, [bad_path, good])  # the image cut in half, then a good one
        out = r.stdout + r.stderr
        assert out.count("Error: CannotUnderstand") == 1, out  # 0xC000
        assert out.count("Received Store Response (Success)") == 1, out
        # storescu will not send bytes it cannot parse; pynetdicom sends a file undecoded
        monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)
        ae = AE(ae_title="GARBLER")
        ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", node.port, ae_title="SCANBENCH")
        assert assoc.is_established
        try:
            statuses = [assoc.send_c_store(garbage).Status, assoc.send_c_store(second).Status]
        finally:
            assoc.release()
        assert statuses[0] == 0xC000 and statuses[1] == 0x0000
        uids = {x[0] for x in query(url, "select sop_uid from instance")}
        for f in (good, second):
            assert str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) in uids
        assert not {"1.2.826.0.1.99.7", "1.2.826.0.1.99.8"} & uids
        for uid, why in (("1.2.826.0.1.99.7", "Pixel Data"), ("1.2.826.0.1.99.8", "truncated")):
            log = wait_for("the log line", lambda uid=uid: uid in node.text() and node.text())
            line = next(x for x in log.splitlines() if uid in x)
            assert "rejected" in line and why in line, line
    assert node.stop() == 0
