"""The DICOMweb pull's bookkeeping with an in-test PACS (the real one, Orthanc, is in
tests/e2e/test_node_dicomweb.py): which studies are fetched, what is remembered, errors."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from scanbench.errors import InputError
from scanbench.net.dicomweb import PullState, client_for, pull


class Pacs:
    """search_for_studies / iter_study as dicomweb-client offers them."""

    def __init__(self, studies: dict[str, list[Dataset]]) -> None:
        self.studies = studies
        self.fetched: list[str] = []
        self.fail: set[str] = set()
        self.filters: list[Any] = []

    def search_for_studies(self, search_filters: dict[str, str], fields: list[str],
                           get_remaining: bool) -> list[dict[str, Any]]:
        self.filters.append(search_filters)
        return [{"0020000D": {"vr": "UI", "Value": [uid]},
                 "00201208": {"vr": "IS", "Value": [len(dss)]}}
                for uid, dss in self.studies.items()]

    def iter_study(self, uid: str, media_types: Any = None) -> Any:
        self.fetched.append(uid)
        if uid in self.fail:
            raise ConnectionError("PACS went away")
        yield from self.studies[uid]


class Sink:
    def __init__(self) -> None:
        self.got: list[Dataset] = []

    def store_instance(self, raw: bytes, *, source: str, calling_ae: str | None = None) -> str:
        ds = pydicom.dcmread(io.BytesIO(raw))
        if any(d.SOPInstanceUID == ds.SOPInstanceUID for d in self.got):
            return "DUPLICATE"
        self.got.append(ds)
        return "STORED"


@pytest.fixture
def instances(shared_data: Path) -> list[Dataset]:
    return [pydicom.dcmread(shared_data / "dose/rdsr" / n)
            for n in ("CT-RDSR-Siemens-Multi-1.dcm", "CT-RDSR-Siemens-Multi-2.dcm",
                      "NM-PetIm-GE.dcm")]


def test_each_study_pulled_once_until_it_grows(tmp_path: Path,
                                               instances: list[Dataset]) -> None:
    pacs = Pacs({"1.2.3": instances[:1], "1.2.4": instances[2:]})
    sink = Sink()
    day = dt.date(2024, 5, 1)
    r1 = pull("http://pacs/dicom-web", sink, tmp_path, day, client=pacs,
              today=dt.date(2024, 5, 3))
    assert (r1.studies_found, r1.studies_pulled, r1.stored) == (2, 2, 2)
    assert pacs.filters[-1] == {"StudyDate": "20240501-"}
    assert [g.SOPInstanceUID for g in sink.got] == [instances[0].SOPInstanceUID,
                                                    instances[2].SOPInstanceUID]
    assert sink.got[0] == instances[0]  # the data set as the PACS holds it
    r2 = pull("http://pacs/dicom-web", sink, tmp_path, day, client=pacs)
    assert (r2.studies_pulled, r2.studies_unchanged) == (0, 2)
    pacs.studies["1.2.3"] = instances[:2]  # a late instance arrives on the PACS
    r3 = pull("http://pacs/dicom-web", sink, tmp_path, day, client=pacs)
    assert (r3.studies_pulled, r3.stored, r3.duplicate) == (1, 1, 1)
    state = PullState(tmp_path)
    assert state.studies("http://pacs/dicom-web") == {"1.2.3": 2, "1.2.4": 1}
    assert state.last_pull("http://pacs/dicom-web") is not None
    assert state.studies("http://other/dicom-web") == {}


def test_a_failed_study_is_tried_again(tmp_path: Path, instances: list[Dataset]) -> None:
    pacs = Pacs({"1.2.3": instances[:1], "1.2.4": instances[2:]})
    pacs.fail = {"1.2.4"}
    sink = Sink()
    r = pull("http://pacs", sink, tmp_path, dt.date(2024, 1, 1), client=pacs)
    assert r.studies_pulled == 1 and r.errors == ["study 1.2.4: ConnectionError: PACS went away"]
    assert PullState(tmp_path).last_pull("http://pacs") is None  # not a complete pull
    pacs.fail = set()
    r = pull("http://pacs", sink, tmp_path, dt.date(2024, 1, 1), client=pacs)
    assert (r.studies_pulled, r.studies_unchanged, r.errors) == (1, 1, [])


def test_bad_url_and_broken_state_file(tmp_path: Path, instances: list[Dataset]) -> None:
    with pytest.raises(InputError, match="http"):
        client_for("pacs.example/dicom-web")
    (tmp_path / "pull-state.json").write_text("{not json")
    assert PullState(tmp_path).studies("http://pacs") == {}
    r = pull("http://pacs", Sink(), tmp_path, dt.date(2024, 1, 1),
             client=Pacs({"1.2.3": instances[:1]}))
    assert r.stored == 1 and PullState(tmp_path).studies("http://pacs") == {"1.2.3": 1}
