"""Calibration QC on a real Siemens Biograph mCT uniform-cylinder scan, against imageQC.

Data: ``pet/uniform-cylinder-mct/`` (MANIFEST.md), five 200 × 200 slices of 4.07 mm
pixels from a whole-body series: z = −120, −111, −39, −36, −33 mm (files 007, 010,
034, 035, 036). All five lie inside the cylinder, so its axial ends are not imaged.
The slices are not contiguous; scanbench's reader refuses to stack a series with
missing slices, so the test reads the contiguous block 034–036 and the single
slices 007 and 010 as three series.

imageQC's PET cross-calibration test (imageQCpy ``tests/test_calculations.py``,
``test_PET_Cro``; method in ``src/imageQC/scripts/calculate_qc.py``, ``Cro``) gives
the values [73, 11599, 11835, 1.0, 1.0]. Read from its source, these columns are:

1. activity at scan, MBq: RadionuclideTotalDose decayed from the
   RadiopharmaceuticalStartTime to the AcquisitionTime with the F-18 half-life;
2. the expected concentration, Bq/mL: (1) / the phantom volume, its default
   6283 mL (a 200 mm × 200 mm cylinder; the header's PatientWeight is 6.28 kg);
3. the measured concentration, Bq/mL: the mean over all five slices of the mean
   in a 60 mm-radius circle at the image centre (slice auto-selection is skipped
   because the outer slices are not below half maximum);
4. (3) / (2), an SUV-like ratio, and 5. its inverse, the suggested new
   calibration factor (both round to 1.0).

What is compared, and why the tolerances:

- Header facts and the expected concentration: the same formula, time interval
  (15:33:00 to 16:04:59) and half-life (6586.2 s = 109.77 min), so within 1 Bq/mL
  (imageQC's value is rounded to 1 Bq/mL).
- imageQC's ROI reproduced with scanbench's ROI code on scanbench's voxels:
  within 0.1 %, the difference between a binary circle mask and partial-voxel
  weights and a half-pixel choice of the image centre. This checks the pixel
  data, rescale and geometry that scanbench reads.
- scanbench's own measurement (75 % radius, 75 % length VOI around the found axis;
  the five slices averaged with equal weight over the three series): within 1 %
  of imageQC's 11835 Bq/mL, and its bias within 1 percentage point of imageQC's
  implied 100 × (11835 / 11599 − 1) = 2.0 %. The methods differ in ROI radius
  (74 mm vs 60 mm: −0.2 % on these slices) and in slice weighting inside the
  contiguous block (central 75 % of three slices vs all three); the five slices'
  ROI means themselves spread from 11709 to 12081 Bq/mL (3 %), so a weighting
  difference alone can move a mean by about 0.5 %.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from scanbench.analysis.pet.calibration_uniformity import CalibrationUniformity
from scanbench.analysis.roi import circle_mean
from scanbench.dicom import read
from scanbench.types import Series

IMAGEQC = {"activity_at_scan_mbq": 73, "expected_bq_ml": 11599, "measured_bq_ml": 11835,
           "ratio": 1.0, "new_calibration_factor": 1.0}
VOLUME_ML = 6283.0  # imageQC's default cro_volume


@pytest.fixture(scope="module")
def blocks(shared_data: Path) -> list[Series]:
    folder = shared_data / "pet" / "uniform-cylinder-mct"
    out = []
    for group in (["034", "035", "036"], ["007"], ["010"]):
        res = read([folder / f"PT_PETWB_{n}.dcm" for n in group])
        assert len(res.series) == 1, res
        out.append(res.series[0])
    return out


def test_header_facts(blocks: list[Series]) -> None:
    for s in blocks:
        pet = s.facts.pet
        assert pet is not None
        assert s.facts.device.manufacturer == "SIEMENS"
        assert s.facts.device.model == "Biograph128_mCT"
        assert pet.units == "BQML"
        assert pet.decay_correction == "START"
        assert {"ATTN", "DECY"} <= set(pet.corrected_image)
        assert pet.injected_activity_bq == 89.19e6
        assert pet.injection_datetime.replace(tzinfo=None) == dt.datetime(2017, 3, 30, 15, 33, 0)
        assert pet.series_datetime.replace(tzinfo=None) == dt.datetime(2017, 3, 30, 16, 4, 59)
        assert pet.half_life_s == 6586.2
        assert pet.frame_duration_s == 179.0
        assert pet.patient_weight_kg == pytest.approx(6.28)
        assert s.spacing[1:] == pytest.approx((4.0728302002, 4.0728302002))
    z = sorted(float(s.index_to_patient((k, 0, 0))[2]) for s in blocks
               for k in range(s.shape[0]))
    assert z == pytest.approx([-120.0, -111.0, -39.0, -36.0, -33.0])


def test_expected_concentration_matches_imageqc(blocks: list[Series]) -> None:
    result = CalibrationUniformity().run(blocks[0], volume_ml=VOLUME_ML)
    expected = result.get("expected_activity_concentration_bq_ml").value
    assert expected == pytest.approx(IMAGEQC["expected_bq_ml"], abs=1.0)
    at_scan_mbq = expected * VOLUME_ML / 1e6
    assert round(at_scan_mbq) == IMAGEQC["activity_at_scan_mbq"]
    # by hand: 89.19 MBq × 2^(−1919 s / 6586.2 s) / 6283 mL
    assert expected == pytest.approx(89.19e6 * 2 ** (-1919 / 6586.2) / 6283, rel=1e-9)
    assert result.parameters["decay_reference"] == "START"


def test_imageqc_roi_reproduced_on_scanbench_voxels(blocks: list[Series]) -> None:
    means = []
    for s in blocks:
        ny, nx = s.shape[1:]
        for k in range(s.shape[0]):
            means.append(circle_mean(s.voxels[k], ((ny - 1) / 2, (nx - 1) / 2), 60.0,
                                     s.spacing[1:]))
    assert len(means) == 5
    assert np.mean(means) == pytest.approx(IMAGEQC["measured_bq_ml"], rel=0.001)


def test_scanbench_calibration_against_imageqc(blocks: list[Series]) -> None:
    analysis = CalibrationUniformity()
    results = [analysis.run(s, volume_ml=VOLUME_ML) for s in blocks]
    n_slices = [s.shape[0] for s in blocks]
    conc = np.average([r.get("activity_concentration_bq_ml").value for r in results],
                      weights=n_slices)
    bias = np.average([r.get("activity_concentration_bias_percent").value for r in results],
                      weights=n_slices)
    assert conc == pytest.approx(IMAGEQC["measured_bq_ml"], rel=0.01)
    imageqc_bias = 100 * (IMAGEQC["measured_bq_ml"] / IMAGEQC["expected_bq_ml"] - 1)
    assert bias == pytest.approx(imageqc_bias, abs=1.0)
    suv = np.average([r.get("suv_mean").value for r in results], weights=n_slices)
    # PatientWeight 6.28 kg ≈ the 6283 mL fill, so SUV ≈ C / C_expected: imageQC's 1.0
    assert round(suv, 1) == IMAGEQC["ratio"]
    assert round(1 / suv, 1) == IMAGEQC["new_calibration_factor"]
    for r in results:
        assert r.parameters["cylinder_radius_mm"] == pytest.approx(100.0, abs=1.5)
        assert r.parameters["cylinder_truncated"] == [True, True]
        assert math.isfinite(r.get("transverse_cv_percent").value)
