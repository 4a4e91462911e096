"""DICOMweb pull from a real PACS: Orthanc (Debian `orthanc` + `orthanc-dicomweb`) started
on 127.0.0.1 with its storage in a temp folder, holding a clinical study (real RDSRs
from shared/data/dose/rdsr) and a PET image; `scanbench pull` and the node's scheduled
pull bring them into the node, once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from nodekit import Node, Orthanc, count, db_url_of, need, query, wait_for

FILES = ("CT-RDSR-Siemens-Multi-1.dcm", "CT-RDSR-Siemens-Multi-2.dcm", "NM-PetIm-GE.dcm")


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Orthanc]:
    need("Orthanc")
    orthanc = Orthanc(tmp_path_factory.mktemp("orthanc"))
    orthanc.start()
    try:
        orthanc.upload([shared_data / "dose/rdsr" / n for n in FILES])
        yield orthanc
    finally:
        orthanc.stop()


def _pull(home: Path, url: str, since: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SCANBENCH_HOME=str(home))
    env.pop("SCANBENCH_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "scanbench", "pull", "--url", url, "--since",
                           since, "--workers", "0"], capture_output=True, text=True,
                          timeout=300, env=env, check=False)


def test_pull_on_demand_brings_the_studies_once(tmp_path: Path, pacs: Orthanc,
                                                 shared_data: Path) -> None:
    home = tmp_path / "home"
    url = db_url_of(home, None)
    first = _pull(home, pacs.dicomweb, "1990-01-01")
    assert first.returncode == 0, first.stdout + first.stderr
    uids = {r[0] for r in query(url, "select sop_uid from instance")}
    expected = {str(pydicom.dcmread(shared_data / "dose/rdsr" / n,
                                    stop_before_pixels=True).SOPInstanceUID) for n in FILES}
    assert uids == expected
    assert count(url, "dose_event") > 0  # the pulled dose reports were extracted
    assert "3 instances stored" in first.stdout.replace("\n", " ")
    # Every pulled file is the instance as the scanner made it (same data set).
    for n in FILES:
        original = pydicom.dcmread(shared_data / "dose/rdsr" / n)
        rel = query(url, "select path from instance where sop_uid = "
                    f"'{original.SOPInstanceUID}'")[0][0]
        assert pydicom.dcmread(home / "files" / rel) == original
    second = _pull(home, pacs.dicomweb, "1990-01-01")
    assert second.returncode == 0, second.stderr
    assert "0 pulled" in second.stdout and "already complete" in second.stdout
    assert count(url, "instance") == len(FILES)


def test_pull_errors_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad URL, unreachable PACS, bad date: a message and exit status 2, no traceback."""
    from typer.testing import CliRunner

    from scanbench import cli

    cli._mount_subapps()
    monkeypatch.setenv("SCANBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SCANBENCH_DATABASE_URL", raising=False)
    runner = CliRunner()
    for url, since, message in (("ftp://nowhere", "2024-01-01", "http://"),
                                ("http://127.0.0.1:9/dicom-web", "2024-01-01",
                                 "DICOMweb search failed"),
                                ("http://127.0.0.1:9/dicom-web", "yesterday", "YYYY-MM-DD")):
        r = runner.invoke(cli.app, ["pull", "--url", url, "--since", since, "--workers", "0"])
        assert r.exit_code == 2, r.output
        assert message in r.output and "Traceback" not in r.output


def test_node_pulls_on_a_schedule(tmp_path: Path, pacs: Orthanc) -> None:
    home = tmp_path / "home"
    url = db_url_of(home, None)
    node = Node(home, args=("--pull-url", pacs.dicomweb, "--pull-every", "2",
                            "--pull-since", "1990-01-01"))
    node.start()
    try:
        wait_for("the scheduled pull", lambda: count(url, "instance") == len(FILES), 90)
        wait_for("a second scheduled pull", lambda: node.text().count("scheduled pull:") >= 2,
                 60)
        assert "0 pulled" in node.text().split("scheduled pull:")[-1]
    finally:
        assert node.stop() == 0
    assert count(url, "instance") == len(FILES)
