"""The storage SCP against a real sender (dcmtk's storescu/echoscu) on 127.0.0.1, with an
in-test sink in place of the ingest pipeline: what reaches the sink, which DICOM status
each outcome gives, the allow-list, compressed transfer syntaxes."""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pydicom
import pytest

from scanbench.errors import InputError
from scanbench.net.scp import ScpConfig, StorageScp, outcome_kind, parse_allow

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None,
                                reason="dcmtk (storescu, echoscu) not installed")


class Outcome:
    def __init__(self, status: str, reason: str = "") -> None:
        self.status, self.reason = status, reason


class Sink:
    """Stores in memory; rejects what pydicom cannot parse, like the pipeline."""

    def __init__(self, fail: bool = False) -> None:
        self.data: dict[str, bytes] = {}
        self.calls: list[tuple[str, str | None]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def store_instance(self, data: bytes, *, source: str, calling_ae: str | None = None) -> Any:
        if self.fail:
            raise OSError(28, "No space left on device")
        with self.lock:
            self.calls.append((source, calling_ae))
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
            uid = str(ds.SOPInstanceUID)
            if "PatientID" in ds and str(ds.PatientID) == "CORRUPT":
                raise ValueError("cannot parse the data set")
        except Exception as exc:
            return Outcome("REJECTED", str(exc))
        with self.lock:
            if uid in self.data:
                return "DUPLICATE"
            self.data[uid] = data
        return "STORED"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def files(shared_data: Path) -> list[Path]:
    d = shared_data / "dose" / "rdsr"
    return [d / "NM-PetIm-GE.dcm", d / "CT-RDSR-Siemens-Multi-2.dcm", d / "NM-RRDSR-Siemens.dcm"]


def _scp(sink: Sink, **kw: Any) -> StorageScp:
    scp = StorageScp(sink, ScpConfig(ae_title="SBTEST", port=_free_port(), **kw))
    scp.start()
    return scp


def test_echo_and_store(files: list[Path]) -> None:
    sink = Sink()
    scp = _scp(sink)
    try:
        assert _run(["echoscu", "-aec", "SBTEST", "127.0.0.1", str(scp.port)]).returncode == 0
        r = _run(["storescu", "-R", "-aet", "MODALITY1", "-aec", "SBTEST", "127.0.0.1",
                  str(scp.port), *map(str, files)])
        assert r.returncode == 0, r.stderr
    finally:
        scp.stop()
    for f in files:
        original = pydicom.dcmread(f)
        got = pydicom.dcmread(io.BytesIO(sink.data[str(original.SOPInstanceUID)]))
        assert got.SOPClassUID == original.SOPClassUID
        assert got.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
        assert got == original  # every element as sent
    assert set(sink.calls) == {("c-store", "MODALITY1")}
    assert scp.stats.stored == 3


def test_duplicate_is_success_and_not_stored_twice(files: list[Path]) -> None:
    sink = Sink()
    scp = _scp(sink)
    try:
        for _ in range(2):
            r = _run(["storescu", "-aec", "SBTEST", "127.0.0.1", str(scp.port), str(files[1])])
            assert r.returncode == 0, r.stderr
    finally:
        scp.stop()
    assert len(sink.data) == 1 and scp.stats.duplicate == 1


def test_rejected_instance_gives_failure_status_and_the_association_goes_on(
        files: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = pydicom.dcmread(files[1])
    bad.PatientID = "CORRUPT"
    bad.SOPInstanceUID = bad.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.7"
    bad_path = tmp_path / "bad.dcm"
    bad.save_as(bad_path)
    sink = Sink()
    scp = _scp(sink)
    try:
        r = _run(["storescu", "-v", "-nh", "-aec", "SBTEST", "127.0.0.1", str(scp.port),
                  str(bad_path),
                  str(files[0])])
    finally:
        scp.stop()
    # storescu names the failure status 0xC000 "cannot understand"
    assert "error: cannotunderstand" in (r.stdout + r.stderr).lower()
    assert str(pydicom.dcmread(files[0]).SOPInstanceUID) in sink.data  # the next one stored
    assert "1.2.3.4.5.6.7" not in sink.data
    assert any("1.2.3.4.5.6.7" in m and "cannot parse" in m for m in caplog.messages)


def test_store_error_gives_out_of_resources(files: list[Path],
                                            caplog: pytest.LogCaptureFixture) -> None:
    scp = _scp(Sink(fail=True))
    try:
        r = _run(["storescu", "-v", "-aec", "SBTEST", "127.0.0.1", str(scp.port), str(files[1])])
    finally:
        scp.stop()
    assert "refused: outofresources" in (r.stdout + r.stderr).lower()  # 0xA7xx
    assert any("No space left" in m for m in caplog.messages)


def test_allow_list_rejects_other_callers(files: list[Path]) -> None:
    sink = Sink()
    scp = _scp(sink, allow=("CT1", "PET1"))
    try:
        denied = _run(["storescu", "-aet", "INTRUDER", "-aec", "SBTEST", "127.0.0.1",
                       str(scp.port), str(files[1])])
        allowed = _run(["storescu", "-aet", "PET1", "-aec", "SBTEST", "127.0.0.1",
                        str(scp.port), str(files[1])])
        wrong_called = _run(["echoscu", "-aet", "PET1", "-aec", "NOTUS", "127.0.0.1",
                             str(scp.port)])
    finally:
        scp.stop()
    assert denied.returncode != 0 and "reject" in (denied.stdout + denied.stderr).lower()
    assert allowed.returncode == 0
    assert wrong_called.returncode != 0
    assert sink.calls == [("c-store", "PET1")]


@pytest.mark.parametrize("codec,propose", [("dcmcjpeg", "-xs"), ("dcmcrle", "-xr")])
def test_compressed_transfer_syntaxes(tmp_path: Path, shared_data: Path, codec: str,
                                      propose: str) -> None:
    if shutil.which(codec) is None:
        pytest.skip(f"{codec} not installed")
    src = shared_data / "dose/rdsr/NM-PetIm-GE.dcm"
    out = tmp_path / "c.dcm"
    assert _run([codec, str(src), str(out)]).returncode == 0
    sink = Sink()
    scp = _scp(sink)
    try:
        r = _run(["storescu", propose, "-aec", "SBTEST", "127.0.0.1", str(scp.port), str(out)])
        assert r.returncode == 0, r.stderr
    finally:
        scp.stop()
    sent = pydicom.dcmread(out)
    got = pydicom.dcmread(io.BytesIO(next(iter(sink.data.values()))))
    assert got.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
    assert got.file_meta.TransferSyntaxUID.is_compressed
    assert (got.pixel_array == pydicom.dcmread(src).pixel_array).all()


def test_outcome_kinds_and_config_errors() -> None:
    assert outcome_kind("STORED") == ("stored", "")
    assert outcome_kind(Outcome("REJECTED", "no SOP Instance UID")) == (
        "rejected", "no SOP Instance UID")
    assert outcome_kind(Outcome("duplicate"))[0] == "duplicate"
    assert parse_allow(["CT1", "PET1,MR1 "]) == ("CT1", "PET1", "MR1")
    with pytest.raises(InputError):
        ScpConfig(ae_title="A" * 17)
    with pytest.raises(InputError):
        ScpConfig(port=70000)
    busy = _scp(Sink())
    try:
        with pytest.raises(InputError, match="cannot listen"):
            StorageScp(Sink(), ScpConfig(port=busy.port)).start()
    finally:
        busy.stop()
