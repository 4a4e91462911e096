"""What the node says at INFO on the ``scanbench.node`` logger between "node ready" and
shutdown (issue 11 §2): each association (peer AE, address, accepted or rejected), each
series when it is complete (UID, description quoted, instance count), each job's start
and outcome. The real storage SCP with dcmtk's storescu, and the real pipeline."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from pathlib import Path

import pydicom
import pytest

from scanbench.console import PlainFormatter
from scanbench.net.scp import ScpConfig, StorageScp
from scanbench.service.jobs import InlineExecutor
from scanbench.service.pipeline import Pipeline
from scanbench.simulate.ct import CtScannerModel, render_water, write_ct_series

HOSTILE = "T2 [/b] \x1b[31mred\nINFO forged line"


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("ct")
    model = CtScannerModel()
    volume, _ = render_water(model, n_slices=3, seed=2)
    return list(write_ct_series(volume, folder, model=model, description=HOSTILE))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The node's records as its log handler writes them (PlainFormatter)."""
    fmt = PlainFormatter("%(levelname)s %(name)s: %(message)s")
    return [fmt.format(r) for r in caplog.records if r.name == "scanbench.node"]


def test_series_and_job_lines(ct_files: list[Path], tmp_path: Path,
                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scanbench.node")
    pipe = Pipeline(tmp_path, executor=InlineExecutor(), quiet_seconds=0.0, recover=False)
    try:
        for f in ct_files:
            assert pipe.store_path(f).stored
        pipe.drain()
    finally:
        pipe.close()
    uid = str(pydicom.dcmread(ct_files[0], stop_before_pixels=True).SeriesInstanceUID)
    lines = _node_lines(caplog)
    complete = [x for x in lines if "complete" in x and uid in x]
    assert len(complete) == 1, lines
    assert "'T2 [/b] \\x1b[31mred\\nINFO forged line'" in complete[0]
    assert "3 instance(s)" in complete[0]
    assert all("\n" not in x and "\x1b" not in x for x in lines)  # one line, no escapes
    assert any(x.startswith("INFO") and "submitted" in x and uid in x for x in lines)
    assert any(x.startswith("INFO") and " done: " in x and uid in x for x in lines), lines


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")
def test_each_association_accepted_or_rejected(ct_files: list[Path], tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scanbench.node")
    pipe = Pipeline(tmp_path, executor=InlineExecutor(), recover=False)
    scp = StorageScp(pipe, ScpConfig(ae_title="SBTEST", port=_free_port(), allow=("CT1",)))
    scp.start()
    try:
        for calling in ("CT1", "INTRUDER"):
            subprocess.run(["storescu", "-aet", calling, "-aec", "SBTEST", "127.0.0.1",
                            str(scp.port), str(ct_files[0])], capture_output=True, timeout=60,
                           check=False)
    finally:
        scp.stop()
        pipe.close()
    lines = _node_lines(caplog)
    assert any("association from 'CT1' (127.0.0.1:" in x and "accepted" in x for x in lines)
    assert any("association from 'CT1' (127.0.0.1:" in x and "released" in x for x in lines)
    assert any("association from 'INTRUDER' (127.0.0.1:" in x and "rejected" in x
               for x in lines), lines
