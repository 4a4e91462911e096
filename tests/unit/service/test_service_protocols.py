"""A 10:1 NEMA IQ scan analysed by the node with a protocol for its scanner model gives
exactly what ``scanbench analyze --param activity_ratio=10`` gives; every stored result
names the protocol version it used, and a re-run after a protocol change records the new
version while the old results keep theirs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from node_results import analyze_rows, assert_same, dicom_files, stored_rows
from scanbench.api import analyze_paths
from scanbench.service.jobs import InlineExecutor
from scanbench.service.pipeline import Pipeline
from scanbench.store import models as m
from scanbench.store import protocols

IQ = "pet.nema_nu2_2018.image_quality"


@pytest.fixture(scope="module")
def iq10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("iq10")
    r = subprocess.run([sys.executable, "-m", "scanbench", "simulate", "pet-iq", "--out",
                        str(out), "--ratio", "10", "--device", "Siemens/Biograph mCT/1001"],
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr
    return out


def test_iq_10_to_1_via_the_node_with_a_protocol_equals_analyze(iq10: Path,
                                                                 tmp_path: Path) -> None:
    pipe = Pipeline(tmp_path / "home", f"sqlite:///{tmp_path / 'db.sqlite'}",
                    quiet_seconds=5.0, executor=InlineExecutor())
    try:
        with pipe.db.session() as s:
            # A modality-wide 4:1 protocol, and the model's own 10:1 one: the model wins.
            # The model's also holds a parameter of another analysis (the calibration
            # QC's half-life), which the IQ analysis would refuse as unknown: it is not
            # given to it.
            protocols.set_protocol(s, "pet-4to1", {"activity_ratio": 4}, modality="PT",
                                   analysis=IQ)
            v1 = protocols.set_protocol(s, "mct-iq", {"activity_ratio": 10,
                                                      "half_life_s": 6586.2},
                                        manufacturer="SIEMENS", model="Biograph mCT")
            v1_id = v1.id
        for f in dicom_files(iq10):
            assert pipe.store_path(f).ok
        pipe.drain(timeout=600)
        with pipe.db.session() as s:
            (result,) = s.scalars(select(m.Result)).all()
            assert result.analysis == IQ and result.protocol_id == v1_id
            assert result.parameters["protocol"] == {
                "id": v1_id, "name": "mct-iq", "version": 1,
                "params": {"activity_ratio": 10, "half_life_s": 6586.2}}
            stored = stored_rows(s)
            (job,) = s.scalars(select(m.Job).where(m.Job.kind == "series")).all()
            job_id = job.id
        given = analyze_paths([iq10], params={"activity_ratio": 10})
        assert_same(stored, analyze_rows(given.results), "IQ 10:1 with a protocol")
        default = analyze_rows(analyze_paths([iq10]).results)
        assert default != analyze_rows(given.results)  # the parameter changes the numbers

        with pipe.db.session() as s:  # the fill changes: a new version, history kept
            v2_id = protocols.set_protocol(s, "mct-iq", {"activity_ratio": 9.5},
                                           manufacturer="SIEMENS", model="Biograph mCT",
                                           analysis=IQ).id
        pipe.retry(job_id)
        pipe.drain(timeout=600)
        with pipe.db.session() as s:
            old, new = s.scalars(select(m.Result).order_by(m.Result.id)).all()
            assert (old.protocol_id, new.protocol_id) == (v1_id, v2_id)
            assert new.supersedes_id == old.id
            assert new.parameters["protocol"]["version"] == 2
            assert s.get_one(m.Protocol, v1_id).params["activity_ratio"] == 10
    finally:
        pipe.close()
