"""Protocols for automatic analysis on SQLite and PostgreSQL: the most specific scope
wins (device over model over modality), a change is a new version (history kept), a
removed protocol stops applying, parameters are checked against what the analyses
declare, and YAML files with mistakes are refused naming the file and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanbench.errors import ScanbenchError
from scanbench.store import Database, devices, protocols
from scanbench.types import DeviceIdentity

IQ = "pet.nema_nu2_2018.image_quality"
MCT = DeviceIdentity("Siemens", "Biograph mCT", "1001", "PET1")
MCT2 = DeviceIdentity("SIEMENS", "Biograph  mCT", "1002", "PET2")
VISION = DeviceIdentity("Siemens", "Biograph Vision", "2001", "PET3")


def test_device_over_model_over_modality(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        with db.session() as s:
            a = devices.register(s, MCT, modality="PT")
            b = devices.register(s, MCT2, modality="PT")
            c = devices.register(s, VISION, modality="PT")
            protocols.set_protocol(s, "pet-default", {"activity_ratio": 4}, modality="PT")
            protocols.set_protocol(s, "mct", {"activity_ratio": 8}, manufacturer="Siemens",
                                   model="Biograph mCT", analysis=IQ)
            protocols.set_protocol(s, "pet1", {"activity_ratio": 10}, device_id=a.id,
                                   analysis="pet")
            ids = [IQ, "pet.calibration_uniformity"]
            got = {d.id: protocols.resolve(s, d, "PT", ids) for d in (a, b, c)}
            assert got[a.id][IQ].name == "pet1"  # the device's own
            assert got[b.id][IQ].name == "mct"  # its model (names compared normalised)
            assert got[c.id][IQ].name == "pet-default"  # only the modality's
            assert got[b.id]["pet.calibration_uniformity"].name == "pet-default"
            assert protocols.resolve(s, a, "CT", ids) == {IQ: got[a.id][IQ],
                                                          ids[1]: got[a.id][ids[1]]}
            assert protocols.resolve(s, c, "CT", ids) == {}  # a PT protocol: not for CT
    finally:
        db.close()


def test_a_change_is_a_new_version_and_remove_retires(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        with db.session() as s:
            dev = devices.register(s, MCT, modality="PT")
            v1 = protocols.set_protocol(s, "iq", {"activity_ratio": 4}, modality="PT")
            v2 = protocols.set_protocol(s, "iq", {"activity_ratio": 10}, modality="PT")
            assert (v1.version, v2.version) == (1, 2) and v1.id != v2.id
            assert v1.params == {"activity_ratio": 4}  # never rewritten
            assert protocols.resolve(s, dev, "PT", [IQ])[IQ].id == v2.id
            gone = protocols.remove(s, "iq")
            assert (gone.version, gone.active) == (3, False)
            assert protocols.resolve(s, dev, "PT", [IQ]) == {}
            assert [p.version for p in protocols.versions(s, "iq")] == [1, 2, 3]
            with pytest.raises(ScanbenchError, match="no protocol 'iq' in force"):
                protocols.remove(s, "iq")
    finally:
        db.close()


@pytest.mark.parametrize(("params", "analysis", "message"), [
    ({"activty_ratio": 10}, IQ, "activty_ratio: not a parameter of " + IQ),
    ({"activity_ratio": float("nan")}, IQ, "not a finite number"),
    ({"activity_ratio": [4, 10]}, IQ, "not a finite number, text or true/false"),
    ({}, IQ, "at least one parameter"),
    ({"activity_ratio": 10}, "pet.no_such_test", "no analysis 'pet.no_such_test'"),
    ({"axial_window_mm": "wide"}, IQ, "axial_window_mm: 'wide' is not a number"),
])
def test_parameters_are_checked(params: dict[str, object], analysis: str,
                                message: str) -> None:
    with pytest.raises(ScanbenchError, match=message):
        protocols.validate(params, analysis)


def test_declared_parameters_are_accepted() -> None:
    check = protocols.validate({"activity_ratio": 10, "sphere_concentration_bq_ml": 21200.0},
                               IQ)
    assert check.checked and check.analyses == (IQ,)


def test_yaml_mistakes_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("protocols:\n  - name: iq10\n    modality: PT\n    analysis: "
                    f"{IQ}\n    params: {{activity_ratio: 10}}\n")
    (item,) = protocols.load_file(good)
    assert item["params"] == {"activity_ratio": 10}
    for text, message in [("- name: x\n  parms: {a: 1}\n", "unknown key"),
                          ("- name: x\n", "needs name"),
                          ("- name: x\n  params: {a: 1}\n  device: PET1\n", "device is a number"),
                          ("a: [1\n", "not valid YAML"),
                          ("", "expected a list")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ScanbenchError, match=message) as info:
            protocols.load_file(bad)
        assert str(bad) in str(info.value)
