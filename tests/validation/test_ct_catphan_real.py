"""ct.catphan on the real CatPhan scans in shared/data/ct/catphan (MANIFEST.md).

Published values are imageQC's (imageQCpy tests/test_calculations.py), on file
CTP404_FOV150_001.dcm alone: the CT numbers of the first (Teflon) and eighth
(air) inserts, 931 and −1006 HU rounded, and the MTF of the Teflon circular
edge ×100 rounded [36, 66, 86] — read here as MTF50, MTF10 and MTF2 in
cycles/mm (0.36, 0.66, 0.86 /mm = 3.6, 6.6, 8.6 lp/cm), which is how imageQC
reports its edge MTF.

Both tools take the mean of a small ROI at each insert's centre, so the CT
numbers agree to rounding. The edge MTF differs by up to ~10 %: scanbench's
is the TG-233 task transfer function (ESF binned at 0.1 pixel against the
refined radius, derivative, Tukey window, Fourier transform —
:func:`scanbench.analysis.ct.mtf.mtf_from_circular_edge`, the method the
issue and STANDARDS.md B.2 name), imageQC fits and smooths its LSF before
transforming, which moves the 50 % and 10 % crossings; the test holds the
two within 15 %.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scanbench.analysis.ct.catphan import Catphan
from scanbench.analysis.ct.water import WaterPhantomQc
from scanbench.analysis.registry import choose
from scanbench.dicom.read import read


@pytest.fixture(scope="module")
def ctp404_001(shared_data: Path):  # type: ignore[no-untyped-def]
    s = read([shared_data / "ct/catphan/CTP404_FOV150/CTP404_FOV150_001.dcm"]).series[0]
    return Catphan().run(s)


def test_ctp404_ct_numbers_match_imageqc(ctp404_001) -> None:  # type: ignore[no-untyped-def]
    r = ctp404_001
    assert round(r.get("ct_number_hu", material="teflon").value) == 931
    assert round(r.get("ct_number_hu", material="air").value) == -1006
    # the 150 mm field of view cuts the 200 mm housing: the centre came from the insert ring
    assert r.parameters["sensitometry_module"] == "CTP404"
    assert r.parameters["model"] == "unknown"
    assert abs(abs(r.parameters["rotation_deg"]) - 180.0) < 3.0  # mounted the other way up


def test_ctp404_teflon_edge_mtf_near_imageqc(ctp404_001) -> None:  # type: ignore[no-untyped-def]
    r = ctp404_001
    mtf50 = r.get("mtf50_lp_per_cm", method="teflon edge").value
    mtf10 = r.get("mtf10_lp_per_cm", method="teflon edge").value
    assert abs(mtf50 / 3.6 - 1) < 0.15, mtf50
    assert abs(mtf10 / 6.6 - 1) < 0.15, mtf10


def test_ctp404_three_slices(shared_data: Path) -> None:
    s = read([shared_data / "ct/catphan/CTP404_FOV150"]).series[0]
    assert choose(s)[0].id == "ct.catphan"
    r = Catphan().run(s)
    # the slices are 4.8 mm (SliceThickness); the ramps give the measured FWHM
    assert abs(r.get("slice_thickness_mm").value - 4.8) < 0.5
    assert r.get("hu_electron_density_r_squared").value > 0.99


def test_ctp486_goes_to_catphan_not_water(shared_data: Path) -> None:
    s = read([shared_data / "ct/catphan/CTP486"]).series[0]
    analysis, score = choose(s)
    assert analysis.id == "ct.catphan", (analysis.id, score, WaterPhantomQc().detect(s))
    r = Catphan().run(s)
    assert r.parameters["modules_found"] == ["uniformity"]
    assert r.get("uniformity_max_deviation_hu").value < 2.0
    assert 5.0 < r.get("noise_hu").value < 10.0


def test_wire_insert_is_not_a_catphan_module(shared_data: Path) -> None:
    s = read([shared_data / "ct/catphan/Wire_FOV50"]).series[0]
    assert Catphan().detect(s) < 0.5
