"""Header facts and the QIBA SUVbw scale, checked against the headers and by hand.

Published values: dose/rdsr/PUBLISHED_VALUES_openrem.md (OpenREM's import tests
for NM-PetIm-GE.dcm and NM-PetIm-Siemens.dcm).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re

import pydicom
import pytest

from scanbench.dicom import decay_factor, read, read_one, suv_bw_scale
from scanbench.errors import AnalysisError, MissingTagError
from scanbench.types import PetFacts

from .helpers import copies, write

F18_HALF_LIFE_GE = 6586.2001953125


@pytest.fixture(scope="module")
def ge_pet(shared_data):
    return read_one(shared_data / "dose/rdsr/NM-PetIm-GE.dcm")


@pytest.fixture(scope="module")
def siemens_pet(shared_data):
    return read_one(shared_data / "dose/rdsr/NM-PetIm-Siemens.dcm")


def test_ge_pet_facts_match_openrem_published_values(ge_pet):
    f = ge_pet.facts
    pet = f.pet
    assert f.modality == "PT"
    assert f.device.manufacturer == "GE MEDICAL SYSTEMS"
    assert f.device.model == "Discovery 690"
    assert f.device.software_versions == "52.00"
    assert f.device.serial is None  # no DeviceSerialNumber in this file
    assert f.series_number == 6 and f.series_description == "FX"
    assert f.naive_times  # (0008,0201) absent
    # OpenREM: series_datetime 2022-03-10 13:31:55; administered activity 221.596288 MBq;
    # radionuclide ^18^Fluorine; half-life 6586.2001953125 s; start 2022-03-10 12:41:00;
    # corrected image first DECY, last NORM
    assert pet.series_datetime == dt.datetime(2022, 3, 10, 13, 31, 55)
    assert pet.injected_activity_bq == pytest.approx(221.596288e6)
    assert pet.radionuclide == "^18^Fluorine"
    assert pet.half_life_s == pytest.approx(F18_HALF_LIFE_GE)
    assert pet.injection_datetime == dt.datetime(2022, 3, 10, 12, 41, 0)
    assert pet.corrected_image[0] == "DECY" and pet.corrected_image[-1] == "NORM"
    assert pet.radiopharmaceutical == "FDG -- fluorodeoxyglucose"
    assert pet.units == "BQML" and pet.decay_correction == "START"
    assert pet.frame_duration_s == pytest.approx(150.0)
    assert pet.patient_weight_kg == pytest.approx(74.0)
    assert f.acquired_at == pet.acquisition_start == dt.datetime(2022, 3, 10, 13, 31, 55)


def test_siemens_pet_facts_match_openrem_published_values(siemens_pet):
    f = siemens_pet.facts
    pet = f.pet
    assert f.device.manufacturer == "SIEMENS"
    assert f.device.model == "Biograph64_Vision 600"
    assert f.device.serial == "11090" and f.device.software_versions == "VG80B"
    assert pet.series_datetime == dt.datetime(2022, 2, 24, 11, 56)
    assert pet.corrected_image == ("NORM", "DTIM", "ATTN", "SCAT", "DECY", "RAN")
    assert pet.injected_activity_bq == pytest.approx(394e6)
    assert pet.injection_datetime == dt.datetime(2022, 2, 24, 10, 48, 30)
    assert pet.acquisition_start == dt.datetime(2022, 2, 24, 11, 55, 59)
    assert pet.frame_duration_s == pytest.approx(119.449)


def test_suv_scale_ge_by_hand(ge_pet):
    # injected 12:41:00, series 13:31:55 → 3055 s of decay
    decayed = 221596288 * 2 ** (-3055 / F18_HALF_LIFE_GE)
    assert suv_bw_scale(ge_pet.facts.pet) == pytest.approx(74_000 / decayed, rel=1e-12)
    assert suv_bw_scale(ge_pet.facts.pet) == pytest.approx(4.6058e-4, rel=1e-4)


def test_suv_scale_uses_earliest_acquisition_when_series_time_is_later(siemens_pet):
    """QIBA App. G: a series time after the first acquisition (here 11:56:00 vs 11:55:59)
    marks a post-processed series; decay to the earliest acquisition instead."""
    decayed = 394e6 * 2 ** (-4049 / 6586.2)  # 10:48:30 → 11:55:59
    assert suv_bw_scale(siemens_pet.facts.pet) == pytest.approx(110_000 / decayed, rel=1e-12)


BASE = PetFacts(units="BQML", decay_correction="START", corrected_image=("ATTN", "DECY"),
                series_datetime=dt.datetime(2024, 1, 1, 11, 0),
                acquisition_start=dt.datetime(2024, 1, 1, 11, 0),
                injected_activity_bq=300e6, injection_datetime=dt.datetime(2024, 1, 1, 10, 0),
                half_life_s=6000.0, patient_weight_kg=80.0)


def test_suv_scale_decay_modes_by_hand():
    # START: 3600 s from injection to series time
    assert suv_bw_scale(BASE) == pytest.approx(80_000 / (300e6 * 2 ** (-0.6)))
    # ADMIN: values already refer to the injection; no decay
    admin = dataclasses.replace(BASE, decay_correction="ADMIN")
    assert suv_bw_scale(admin) == pytest.approx(80_000 / 300e6)
    # NONE: decay to the frame's own acquisition time, then average over the frame
    # as the uncorrected voxel values are: (1 - exp(-lambda T)) / (lambda T)
    none = dataclasses.replace(BASE, decay_correction="NONE", frame_duration_s=600.0)
    frame = dt.datetime(2024, 1, 1, 11, 40)
    lam_t = math.log(2) * 600.0 / 6000
    average = (1 - math.exp(-lam_t)) / lam_t  # 0.9659 for a 600 s frame, half-life 6000 s
    assert suv_bw_scale(none, acquisition_time=frame) == pytest.approx(
        80_000 / (300e6 * 2 ** (-6000 / 6000) * average))
    assert suv_bw_scale(none) == pytest.approx(suv_bw_scale(BASE) / average)
    with pytest.raises(MissingTagError, match=re.escape("ActualFrameDuration (0018,1242)")):
        suv_bw_scale(dataclasses.replace(none, frame_duration_s=None))
    # GML: already SUVbw
    assert suv_bw_scale(dataclasses.replace(BASE, units="GML")) == 1.0


@pytest.mark.parametrize(("change", "tag"), [
    ({"patient_weight_kg": None}, "PatientWeight (0010,1030)"),
    ({"units": None}, "Units (0054,1001)"),
    ({"injected_activity_bq": None}, "RadionuclideTotalDose (0018,1074)"),
    ({"half_life_s": None}, "RadionuclideHalfLife (0018,1075)"),
    ({"injection_datetime": None}, "RadiopharmaceuticalStartDateTime (0018,1078)"),
    ({"decay_correction": None}, "DecayCorrection (0054,1102)"),
    ({"series_datetime": None, "acquisition_start": None}, "SeriesDate/SeriesTime"),
])
def test_suv_scale_names_the_missing_tag(change, tag):
    with pytest.raises(MissingTagError, match=re.escape(tag)):
        suv_bw_scale(dataclasses.replace(BASE, **change))


def test_suv_scale_refuses_what_qiba_excludes():
    with pytest.raises(AnalysisError, match="CNTS"):
        suv_bw_scale(dataclasses.replace(BASE, units="CNTS"))
    with pytest.raises(AnalysisError, match="ATTN and DECY"):
        suv_bw_scale(dataclasses.replace(BASE, corrected_image=("DECY",)))
    with pytest.raises(AnalysisError, match="positive"):
        suv_bw_scale(dataclasses.replace(BASE, injected_activity_bq=0.0))


def test_real_pet_without_units_names_units(pet_series):
    with pytest.raises(MissingTagError, match=re.escape("Units (0054,1001)")):
        suv_bw_scale(pet_series.facts.pet)


def test_decay_factor_by_hand():
    t0 = dt.datetime(2024, 5, 1, 9, 0)
    assert decay_factor(t0, t0 + dt.timedelta(seconds=6586.2), 6586.2) == pytest.approx(0.5)
    assert decay_factor(t0, t0, 6586.2) == 1.0
    assert decay_factor(t0, t0 - dt.timedelta(seconds=2 * 100.0), 100.0) == pytest.approx(4.0)
    assert decay_factor(t0, t0 + dt.timedelta(minutes=30), 6586.2) == pytest.approx(
        math.exp(-math.log(2) * 1800 / 6586.2))
    with pytest.raises(AnalysisError, match="naive"):
        decay_factor(t0, t0.replace(tzinfo=dt.UTC), 6586.2)
    with pytest.raises(AnalysisError, match="positive"):
        decay_factor(t0, t0, 0.0)


def _ge_copy(shared_data):
    return pydicom.dcmread(shared_data / "dose/rdsr/NM-PetIm-GE.dcm")


def test_timezone_offset_makes_times_aware(shared_data, tmp_path):
    ds = _ge_copy(shared_data)
    ds.TimezoneOffsetFromUTC = "+0100"
    ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = \
        "20220310114100+0000"  # its own offset: 11:41 UTC is 12:41 at +0100
    write([ds], tmp_path)
    f = read_one(tmp_path).facts
    tz = dt.timezone(dt.timedelta(hours=1))
    assert f.naive_times is False
    assert f.acquired_at == dt.datetime(2022, 3, 10, 13, 31, 55, tzinfo=tz)
    assert f.pet.series_datetime.utcoffset() == dt.timedelta(hours=1)
    assert f.pet.injection_datetime == dt.datetime(2022, 3, 10, 12, 41, tzinfo=tz)
    decayed = 221596288 * 2 ** (-3055 / F18_HALF_LIFE_GE)
    assert suv_bw_scale(f.pet) == pytest.approx(74_000 / decayed)


def test_injection_time_falls_back_to_start_time_and_series_date(shared_data, tmp_path):
    ds = _ge_copy(shared_data)
    del ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime
    write([ds], tmp_path / "a")
    assert read_one(tmp_path / "a").facts.pet.injection_datetime == dt.datetime(
        2022, 3, 10, 12, 41)
    # a scan just after midnight: the injection was the day before
    ds.SeriesTime, ds.AcquisitionTime = "001000", "001000"
    ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartTime = "231000"
    write([ds], tmp_path / "b")
    pet = read_one(tmp_path / "b").facts.pet
    assert pet.injection_datetime == dt.datetime(2022, 3, 9, 23, 10)
    assert suv_bw_scale(pet) == pytest.approx(
        74_000 / (221596288 * 2 ** (-3600 / F18_HALF_LIFE_GE)))


def test_missing_optional_tags_give_none(shared_data, tmp_path):
    ds = _ge_copy(shared_data)
    for kw in ("Manufacturer", "ManufacturerModelName", "StationName", "SoftwareVersions",
               "RadiopharmaceuticalInformationSequence", "PatientWeight", "Units",
               "DecayCorrection", "CorrectedImage", "SeriesDate", "SeriesTime",
               "AcquisitionDate", "AcquisitionTime", "ActualFrameDuration", "SeriesNumber",
               "SeriesDescription", "StudyDate"):
        delattr(ds, kw)
    write([ds], tmp_path)
    f = read_one(tmp_path).facts
    assert f.device.manufacturer is None and f.device.model is None
    assert f.acquired_at is None and f.series_number is None
    assert f.pet == PetFacts()


def test_multivalued_software_versions_are_joined(shared_data, tmp_path):
    ds = _ge_copy(shared_data)
    ds.SoftwareVersions = ["52.00", "PET 4.1", "CT 2"]
    ds.DeviceSerialNumber = "D690-123"
    write([ds], tmp_path)
    device = read_one(tmp_path).facts.device
    assert device.software_versions == "52.00\\PET 4.1\\CT 2"
    assert device.serial == "D690-123"


def test_acquired_at_is_the_earliest_acquisition(shared_data, tmp_path):
    """Three contiguous slices of the Siemens mCT whole-body series; one bed started earlier."""
    paths = [shared_data / f"pet/uniform-cylinder-mct/PT_PETWB_0{n}.dcm" for n in (34, 35, 36)]
    dss = copies([pydicom.dcmread(p) for p in paths])
    dss[2].AcquisitionTime = "155959.500000"
    write(dss, tmp_path)
    result = read([tmp_path])
    f = result.series[0].facts
    assert f.device.model == "Biograph128_mCT" and f.device.serial == "60005"
    assert f.acquired_at == dt.datetime(2017, 3, 30, 15, 59, 59, 500000)
    assert f.pet.series_datetime == dt.datetime(2017, 3, 30, 16, 4, 59)
    assert f.pet.injected_activity_bq == pytest.approx(89.19e6)
    assert f.pet.patient_weight_kg == pytest.approx(6.28, abs=1e-6)
