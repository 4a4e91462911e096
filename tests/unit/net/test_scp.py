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

from dicom_tls import make_pki
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
    bad.SOPInstanceUID = bad.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(
        "1.2.3.4.5.6.7")
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


# -- access control (issue 11 §3): AE titles, addresses, idle connections, TLS -------------

def _associate(port: int, *, aet: str = "MODALITY1", bind: str | None = None,
               tls: Any = None) -> Any:
    """A pynetdicom association to the SCP from ``bind`` (a loopback address)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        PositronEmissionTomographyImageStorage,
        RadiopharmaceuticalRadiationDoseSRStorage,
        Verification,
        XRayRadiationDoseSRStorage,
    )

    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.network_timeout = 10
    for sop_class in (Verification, XRayRadiationDoseSRStorage,  # the classes of `files`
                      PositronEmissionTomographyImageStorage,
                      RadiopharmaceuticalRadiationDoseSRStorage):
        ae.add_requested_context(sop_class)
    kw: dict[str, Any] = {"ae_title": "SBTEST"}
    if bind:
        kw["bind_address"] = (bind, 0)
    if tls is not None:
        kw["tls_args"] = (tls, "localhost")
    return ae.associate("127.0.0.1", port, **kw)


def _echo_ok(port: int, **kw: Any) -> bool:
    assoc = _associate(port, **kw)
    if not assoc.is_established:
        return False
    try:
        return bool(assoc.send_c_echo().Status == 0)
    finally:
        assoc.release()


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed this idle connection (bounded wait, no timing
    asserted: the bound is only there so that a broken server fails the test)."""
    sock.settimeout(20)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _idle(n: int, port: int) -> list[socket.socket]:
    """n TCP connections that never send anything (what locked real scanners out)."""
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]


def test_ae_titles_compare_exactly_after_stripping_spaces(files: list[Path]) -> None:
    """PS3.5 6.2: leading and trailing spaces are not significant; case is. An empty
    entry is refused rather than read as "anyone"."""
    assert ScpConfig(allow=(" PET1 ", "PET1")).allow == ("PET1",)
    for bad in ("", "   ", "A\\B", "X" * 17, "CT\x01"):
        with pytest.raises(InputError):
            ScpConfig(allow=(bad,))
    with pytest.raises(InputError, match="empty entry"):
        parse_allow(["CT1,"])
    with pytest.raises(InputError, match="empty entry"):
        parse_allow([" "])
    sink = Sink()
    scp = _scp(sink, allow=(" PET1",), allow_hosts=("127.0.0.1",))
    try:
        exact = _run(["storescu", "-aet", "PET1", "-aec", "SBTEST", "127.0.0.1",
                      str(scp.port), str(files[1])])
        lower = _run(["storescu", "-aet", "pet1", "-aec", "SBTEST", "127.0.0.1",
                      str(scp.port), str(files[1])])
        padded = _echo_ok(scp.port, aet="PET1  ")
    finally:
        scp.stop()
    assert exact.returncode == 0, exact.stderr
    assert lower.returncode != 0 and "reject" in (lower.stdout + lower.stderr).lower()
    assert padded
    assert sink.calls == [("c-store", "PET1")]


def test_address_allow_list(files: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    scp = _scp(sink, allow_hosts=("127.0.0.2/32", "10.0.0.0/8"))
    try:
        denied = _run(["storescu", "-aec", "SBTEST", "127.0.0.1", str(scp.port),
                       str(files[1])])
        allowed = _echo_ok(scp.port, bind="127.0.0.2")
        other = _echo_ok(scp.port, bind="127.0.0.3")
    finally:
        scp.stop()
    assert denied.returncode != 0 and not sink.data
    assert allowed and not other
    assert any("127.0.0.1" in m and "not on the allow-list" in m for m in caplog.messages)
    with pytest.raises(InputError, match="not an IP address"):
        ScpConfig(allow_hosts=("hospital.example",))


def test_idle_connections_are_closed_and_do_not_lock_out_a_scanner(
        files: list[Path]) -> None:
    """40 connections that never ask for an association held all 32 association slots
    until ARTIM expired (30 s), so a real scanner was rejected meanwhile. With a short
    ARTIM they are closed, and the scanner (storescu, same address) gets in."""
    sink = Sink()
    scp = _scp(sink, artim_timeout_s=1.0, max_per_peer=100)
    idle = _idle(40, scp.port)
    try:
        assert all(_closed_by_server(s) for s in idle)
        errors = []
        for _ in range(20):  # bounded polling: the slots free as the threads end
            r = _run(["storescu", "-aet", "CT1", "-aec", "SBTEST", "127.0.0.1",
                      str(scp.port), str(files[1])])
            if r.returncode == 0:
                break
            errors.append(r.stderr)
            threading.Event().wait(0.25)
        assert len(errors) < 20, errors[-1]
    finally:
        for s in idle:
            s.close()
        scp.stop()
    assert len(sink.data) == 1


def test_per_peer_limit_leaves_room_for_other_senders(files: list[Path]) -> None:
    """With a long ARTIM, one host's idle connections stop at the per-address limit (the
    others are closed at once), and a scanner at another address (127.0.0.2) stores."""
    import pydicom as _pydicom

    sink = Sink()
    scp = _scp(sink, artim_timeout_s=120.0, max_per_peer=8, max_associations=32)
    idle = _idle(40, scp.port)
    try:
        # the 32 over the limit are closed by the server (the first 8 are held open)
        for s in idle[8:]:
            assert _closed_by_server(s)
        stored = False
        for _ in range(20):  # bounded polling, no timing asserted
            assoc = _associate(scp.port, aet="CT1", bind="127.0.0.2")
            if assoc.is_established:
                status = assoc.send_c_store(_pydicom.dcmread(files[1]))
                assoc.release()
                stored = bool(status and status.Status == 0)
                break
            threading.Event().wait(0.25)
        assert stored
    finally:
        for s in idle:
            s.close()
        scp.stop()
    assert len(sink.data) == 1


def test_node_without_allow_lists_warns_at_start(caplog: pytest.LogCaptureFixture) -> None:
    scp = _scp(Sink())
    scp.stop()
    assert any("any sender" in m and "--allow-host" in m for m in caplog.messages)
    caplog.clear()
    scp = _scp(Sink(), allow_hosts=("127.0.0.1",), allow=("CT1",))
    scp.stop()
    assert not any("any sender" in m for m in caplog.messages)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_dicom_tls_with_client_certificates(files: list[Path], tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """DICOM TLS (PS3.15 B.9): a sender with a certificate from the CA stores over TLS
    (pynetdicom and dcmtk's storescu); a plain TCP sender, and a TLS sender without a
    client certificate, are refused; a silent connection does not stall the listener."""
    import ssl

    import pydicom as _pydicom

    make_pki(tmp_path)
    sink = Sink()
    scp = _scp(sink, tls_cert=tmp_path / "server.pem", tls_key=tmp_path / "server.key",
               tls_ca=tmp_path / "ca.pem", artim_timeout_s=5.0)
    silent = socket.create_connection(("127.0.0.1", scp.port))  # never says hello
    try:
        client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        client.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
        assoc = _associate(scp.port, tls=client)
        assert assoc.is_established
        status = assoc.send_c_store(_pydicom.dcmread(files[1]))
        assoc.release()
        assert status.Status == 0
        plain = _associate(scp.port)
        assert not plain.is_established
        no_cert = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        anonymous = _associate(scp.port, tls=no_cert)
        if anonymous.is_established:  # TLS 1.3 reports the missing certificate late
            assert anonymous.send_c_echo().Status != 0
        dcmtk = _run(["storescu", "+tls", str(tmp_path / "client.key"),
                      str(tmp_path / "client.pem"), "+cf", str(tmp_path / "ca.pem"),
                      "-aet", "CT1", "-aec", "SBTEST", "127.0.0.1", str(scp.port),
                      str(files[0])])
        dcmtk_plain = _run(["storescu", "-R", "-aet", "CT1", "-aec", "SBTEST", "127.0.0.1",
                            str(scp.port), str(files[2])])
    finally:
        silent.close()
        scp.stop()
    assert dcmtk.returncode == 0, dcmtk.stderr
    assert dcmtk_plain.returncode != 0
    assert any("TLS handshake failed" in m for m in caplog.messages)  # refused by the node
    assert set(sink.data) == {str(_pydicom.dcmread(f).SOPInstanceUID) for f in files[:2]}
    with pytest.raises(InputError, match="both a certificate and its private key"):
        ScpConfig(tls_cert=tmp_path / "server.pem")
    with pytest.raises(InputError, match="cannot load the TLS certificate"):
        ScpConfig(tls_cert=tmp_path / "ca.pem", tls_key=tmp_path / "client.key").tls_context()
