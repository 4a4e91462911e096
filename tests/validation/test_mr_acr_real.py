"""ACR MRI tests on real scans of several vendors and field strengths vs hazen's published values.

Data: ``mr/acr/`` (shared data, MANIFEST.md): hazen's ACR test data (Apache-2.0):
GE Signa HDxt 1.5 T (512 matrix), GE SIGNA Artist 1.5 T (two sets), Philips
Achieva 3 T and Achieva dStream 3 T, Siemens Skyra 3 T, Aera 1.5 T and
MAGNETOM Sola 1.5 T (one enhanced multi-frame file), and two sagittal
localisers. ``PUBLISHED_VALUES_hazen.json`` holds the values hazen 2.0's own
tests assert for these series.

Where scanbench and hazen measure differently, the tolerance below says why;
where they disagree beyond it, the test names the case and the reason, and
pins scanbench's value so that a change is noticed:

* **Geometric accuracy**: hazen counts the pixels of a mask thresholded at 7 %
  of the maximum (so its lengths are whole pixels, 0.98 mm, and its edge lies
  outside the half-height edge the ACR guidance's "window at half the signal"
  implies); scanbench interpolates the half-plateau crossing. Tolerance 1.6 mm
  (one pixel plus the threshold difference). The Siemens 3 T vertical is the
  exception: its slice 1 and 5 have an air bubble at the top; hazen's convex
  hull of the water signal follows the bubble's flat lower edge (187.5 mm),
  scanbench bridges it with the ellipse fitted to the rest of the outline
  (190.5 mm). The guidance measures the phantom, not the air in it, so
  scanbench follows the ellipse.
* **Localiser length**: the same methods on the sagittal image; 2 mm.
* **PIU**: the same definition (200 cm², 1 cm² extremes); the small-ROI search
  grids differ: 0.5 points.
* **Ghosting**: the same formula; the ellipses' exact placement differs (hazen
  places them at fixed offsets): 0.1 points.
* **Slice thickness**: the same 0.2 ab/(a+b) formula; the Philips series agree
  within 0.15 mm. On the Siemens 3 T series hazen reports 5.89 mm: hazen keeps,
  of seven single-line profiles, the value closest to the header's slice
  thickness, with each line's minimum as baseline; scanbench averages a 2 mm
  band per ramp and takes the slab's 10th percentile as baseline, and reads
  streaks of 51.5 and 46.2 mm (4.86 mm). scanbench never uses the header's
  value in the measurement: a slice-thickness test must be able to disagree
  with the header.
* **Slice position**: both take the bar length difference right minus left;
  hazen shifts one profile against the other in 0.2-pixel steps, scanbench
  finds each bar's half-height end: 0.7 mm. On the GE HDxt slice 11 hazen
  reports 4.47 mm; the two bars end at the same row in the image (scanbench
  0.1 mm), hazen's profile pair there straddles the bars' common edge.
* **Resolution**: scanbench applies the sampling theorem (no hole pitch finer
  than two acquired samples counts; 256 samples over 250 mm never resolve
  0.9 mm holes) and needs a stated dip between holes (module docstring); hazen
  accepts any dip. Asserted: equal on the 512-matrix GE; otherwise scanbench is
  never finer than hazen and within one size step of it where it resolves.
* **Low contrast**: the judged count is a human-observer model (module docstring:
  matched template per disc on pixels with the sheet rim's ringing removed, seen at
  z >= 1.41, i.e. d' = 1 at 50 % human efficiency), with the disc pattern fitted jointly on
  slices 8-11 (shared ring radii; each slice its own centre and rotation); every slice
  within 1 spoke of hazen's newer task and every total within 2, except the two slices in
  ``LCD_DISAGREE`` (reasons there, shown by ``test_low_contrast_slice_8_against_slice_11``
  and the figure docs/figures/acr-lcd-slice8.png). Before this model the
  judged count was the strict statistical one (z > 2.94 on the disc mean), which
  read GE Artist T1 7/9/10/10, Philips 8/9/10/10, SIGNA Artist T1 6/9/10/10, SIGNA
  Artist T2 3/5/6/6, Aera T1 4/6/9/10 and the Siemens 3 T total 36; it is still
  reported as ``spokes_detected_strict`` and never exceeds the observer's count.
  The Siemens 3 T has only hazen's older task (slice 8 and the total). The GE HDxt
  score 0 of hazen's older task is not a reading of the image (its low-contrast
  discs are plainly visible on slices 10 and 11): that task failed on the 512
  matrix; not compared.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scanbench import dicom
from scanbench.analysis.mr import (
    acr_geometry,
    acr_ghosting,
    acr_low_contrast,
    acr_resolution,
    acr_slice_position,
    acr_slice_thickness,
    acr_uniformity,
)
from scanbench.analysis.mr.acr_locate import axial_geometry
from scanbench.types import Result, Series

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published(shared_data: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (shared_data / "mr" / "acr" / "PUBLISHED_VALUES_hazen.json").read_text())
    return data


_SERIES: dict[str, Series] = {}


@pytest.fixture(scope="module")
def series(shared_data: Path) -> Any:
    def get(name: str) -> Series:
        if name not in _SERIES:
            read = dicom.read([shared_data / "mr" / "acr" / name])
            assert not read.errors and len(read.series) == 1, (name, read.errors)
            _SERIES[name] = read.series[0]
        return _SERIES[name]
    return get


def _run(analysis: Any, s: Series) -> Result:
    return analysis().run(s)


GEOMETRY = ["Siemens", "Siemens_Aera_1.5T_T1", "Siemens_Sola_1.5T_T2", "GE", "GE_Artist_1.5T_T1",
            "GE_Artist_1.5T_T2", "PhilipsAchieva"]


@pytest.mark.parametrize("name", GEOMETRY)
def test_geometric_lengths_vs_hazen(name: str, series: Any, published: dict[str, Any]) -> None:
    r = _run(acr_geometry.AcrGeometricAccuracy, series(name))
    hz = published[name]["geometric_accuracy"]
    if "L1" in hz:
        for direction, value in zip(("horizontal", "vertical"), hz["L1"], strict=True):
            got = r.get("length_mm", slice=1, direction=direction).value
            if name == "Siemens" and direction == "vertical":
                assert got == pytest.approx(190.5, abs=0.5)  # bubble bridged (docstring)
                continue
            assert abs(got - value) <= 1.6, (name, 1, direction, got, value)
    l5 = hz["L5"]
    for direction, value in zip(("horizontal", "vertical"), l5[:2], strict=True):
        got = r.get("length_mm", slice=5, direction=direction).value
        if name == "Siemens" and direction == "vertical":
            assert got == pytest.approx(190.4, abs=0.5)
            continue
        assert abs(got - value) <= 1.6, (name, 5, direction, got, value)
    diagonals = sorted(r.get("length_mm", slice=5, direction=d).value
                       for d in ("diagonal_down", "diagonal_up"))
    for got, value in zip(diagonals, sorted(l5[2:]), strict=True):
        assert abs(got - value) <= 1.6, (name, 5, "diagonal", got, value)


@pytest.mark.parametrize("name", ["PhilipsAchievaLocalizer", "GE_Signa_1.5T_Sagittal_Localizer"])
def test_localiser_length_vs_hazen(name: str, series: Any, published: dict[str, Any]) -> None:
    r = _run(acr_geometry.AcrGeometricAccuracy, series(name))
    got = r.get("length_mm", slice="localiser").value
    assert abs(got - published[name]["sagittal_geometric_accuracy"]["L1"]) <= 2.0


@pytest.mark.parametrize("name", ["Siemens", "GE", "PhilipsAchieva", "GE_Signa_Artist_1.5T_T1"])
def test_uniformity_vs_hazen(name: str, series: Any, published: dict[str, Any]) -> None:
    got = _run(acr_uniformity.AcrUniformity, series(name)).get(
        "percent_integral_uniformity").value
    assert abs(got - published[name]["uniformity"]["piu"]) <= 0.5


@pytest.mark.parametrize("name", ["Siemens", "GE"])
def test_ghosting_vs_hazen(name: str, series: Any, published: dict[str, Any]) -> None:
    got = _run(acr_ghosting.AcrGhosting, series(name)).get("percent_signal_ghosting").value
    assert abs(got - published[name]["ghosting"]["psg"]) <= 0.1


@pytest.mark.parametrize("name", ["PhilipsAchieva", "Philips3TdStream", "Siemens"])
def test_slice_thickness_vs_hazen(name: str, series: Any, published: dict[str, Any]) -> None:
    got = _run(acr_slice_thickness.AcrSliceThickness, series(name)).get(
        "slice_thickness_mm").value
    if name == "Siemens":  # the documented disagreement (docstring)
        assert got == pytest.approx(4.86, abs=0.1)
        return
    assert abs(got - published[name]["slice_thickness"]["dz"]) <= 0.15


@pytest.mark.parametrize("name", ["Siemens", "GE", "PhilipsAchieva", "Philips3TdStream"])
def test_slice_position_vs_hazen(name: str, series: Any, published: dict[str, Any]) -> None:
    r = _run(acr_slice_position.AcrSlicePosition, series(name))
    for sl, value in zip((1, 11), published[name]["slice_position"]["dL"], strict=True):
        got = r.get("bar_length_difference_mm", slice=sl).value
        if name == "GE" and sl == 11:  # the documented disagreement (docstring)
            assert abs(got) < 0.5
            continue
        assert abs(got - value) <= 0.7, (name, sl, got, value)
        assert r.get("slice_position_error_mm", slice=sl).value == pytest.approx(got / 2)


@pytest.mark.parametrize("name", ["GE", "PhilipsAchieva", "Siemens"])
def test_resolution_vs_hazen(name: str, series: Any, published: dict[str, Any]) -> None:
    r = _run(acr_resolution.AcrResolution, series(name))
    hz = published[name]["spatial_resolution"]
    for direction, key in (("left_right", "EXPECTED_UL_RESOLUTION"),
                           ("top_bottom", "EXPECTED_LR_RESOLUTION")):
        got = r.get("resolved_hole_mm", direction=direction).value
        if name == "GE":  # 512 matrix: no sampling limit at these sizes; must agree
            assert got == pytest.approx(hz[key]), (direction, got)
            continue
        assert np.isnan(got) or got >= hz[key] - 1e-9, (name, direction, got)
        if not np.isnan(got):
            assert got - hz[key] <= 0.2 + 1e-9, (name, direction, got)


def _slice_scores(expr: str) -> dict[int, int]:
    return {int(a): int(b) for a, b in re.findall(r"SliceScore\((\d+), (\d+)\)", expr)}


LCD = ["GE_Artist_1.5T_T1", "PhilipsAchieva", "GE_Signa_Artist_1.5T_T1", "Siemens",
       "GE_Signa_Artist_1.5T_T2", "Siemens_Aera_1.5T_T1"]
#: (series, slice or "total") -> (scanbench's observer count, why it differs from hazen by
#: more than the issue's ±1 per slice / ±2 per total). Pinned so that a change is noticed.
LCD_DISAGREE: dict[tuple[str, int | str], tuple[int, str]] = {
    ("GE_Signa_Artist_1.5T_T2", 8): (3, "hazen's 5 is not a reading this image supports: the "
                                     "disc that stops the count (spoke 4, 12.5 mm ring) reads "
                                     "matched z 1.41 (threshold 1.41) and 11 % of the disc-free "
                                     "places of the same slice, read with the same template "
                                     "and background, read at least that much (their z has SD "
                                     "1.4: correlated noise of the discs' own size), so on this "
                                     "image that disc cannot be told from the noise; hazen "
                                     "finds it by a search of 3,721 template places per spoke "
                                     "(+-3 pixels in 0.1-pixel steps, the best kept, p-values "
                                     "corrected for 30 tests but not for the search): hazen "
                                     "2.0.0 at its nominal place counts 0 on this slice and, "
                                     "with the search, 6 on slice 8 against 5 on the "
                                     "higher-contrast slice 9 (its test asserts 5 and 6)"),
    ("Siemens_Aera_1.5T_T1", 8): (10, "hazen's 8 is below what the image's own contrast "
                                      "predicts: slice 11's z of every disc of spokes 9-10 "
                                      "scaled by the measured slice 8/slice 11 contrast ratio "
                                      "of spokes 1-3 (0.22) gives z 1.9-3.2, above the "
                                      "observer's 1.41, and slice 8 reads 1.7-4.6 there; "
                                      "hazen tests a 1-D radial profile through each spoke "
                                      "(a line of pixels, not the disc's area) at a 1.25 % "
                                      "false-discovery rate, a statistical criterion that "
                                      "stops early on the faintest slice"),
}


@pytest.mark.parametrize("name", LCD)
def test_low_contrast_vs_hazen(name: str, series: Any, published: dict[str, Any]) -> None:
    """The judged (human-observer) count against hazen's published scores: every slice
    within 1 spoke and the total within 2, except where ``LCD_DISAGREE`` says why; the
    strict statistical count never exceeds the observer's; per-disc evidence is in the
    result's data."""
    r = _run(acr_low_contrast.AcrLowContrast, series(name))
    hz = published[name]
    if "low_contrast_object_detectability" in hz:
        scores = _slice_scores(hz["low_contrast_object_detectability"]["SCORES"]["expr"])
    else:
        scores = {8: hz["object_detectability"]["SCORE_8"]}
    for sl, value in scores.items():
        got = r.get("spokes_detected", slice=sl).value
        if (name, sl) in LCD_DISAGREE:
            assert got == LCD_DISAGREE[name, sl][0], (name, sl, got, value)
        else:
            assert abs(got - value) <= 1, (name, sl, got, value)
    total = (sum(scores.values()) if len(scores) == 4
             else hz["object_detectability"]["TOTAL_SCORE"])
    got_total = r.get("spokes_detected_total").value
    if (name, "total") in LCD_DISAGREE:
        assert got_total == LCD_DISAGREE[name, "total"][0], (name, got_total, total)
    else:
        assert abs(got_total - total) <= 2, (name, got_total, total)
    for sl in (8, 9, 10, 11):
        assert (r.get("spokes_detected_strict", slice=sl).value
                <= r.get("spokes_detected", slice=sl).value)
        disc = r.data["low_contrast_discs"]["slices"][str(sl)]
        assert np.asarray(disc["z"]).shape == (10, 3) and np.asarray(disc["cnr"]).shape == (10, 3)


#: series whose observer count falls from one slice to a higher-contrast one, with the
#: disc that stopped the count (the result's note names it). None since the pattern is fitted
#: jointly on slices 8-11 (it was SIGNA Artist T2 slice 11, Aera T1 and T2 slice 9).
LCD_NOT_MONOTONE: dict[str, int] = {}


@pytest.mark.parametrize("name", [*LCD, "GE", "GE_Artist_1.5T_T2", "Siemens_Aera_1.5T_T2",
                                  "Siemens_Sola_1.5T_T2", "Philips3TdStream"])
def test_low_contrast_counts_do_not_fall_as_contrast_rises(name: str, series: Any) -> None:
    """Slices 8-11 rise in contrast, so the count should not fall; where it does, the
    slice's measurement says why (the disc that stopped it, its z and the same disc's z on
    the lower-contrast slice) and the case is listed in ``LCD_NOT_MONOTONE``."""
    r = _run(acr_low_contrast.AcrLowContrast, series(name))
    counts = [r.get("spokes_detected", slice=sl).value for sl in (8, 9, 10, 11)]
    falls = [sl for i, sl in enumerate((8, 9, 10, 11)) if counts[i] < max(counts[: i + 1])]
    assert falls == ([LCD_NOT_MONOTONE[name]] if name in LCD_NOT_MONOTONE else []), counts
    for sl in (8, 9, 10, 11):
        note = r.get("spokes_detected", slice=sl).note
        assert (note is not None) == (sl in falls), (sl, note)
        if note:
            assert "although its contrast is higher" in note and "z =" in note


@pytest.mark.parametrize("name", [*LCD, "Siemens_Aera_1.5T_T2"])
def test_low_contrast_joint_pattern_fit_places_the_discs_better(name: str, series: Any) -> None:
    """The joint fit of slices 8-11 (``acr_low_contrast.fit_pattern``) raises the pattern's
    matched statistic (all 30 discs, weighted by template energy) over the per-slice affine
    fit on every slice. On the Aera T2, slice 9, spoke 7's 38 mm disc read z 0.2 at the
    per-slice place between neighbours at 5.2 and 6.4 (its z peaks 1.7 mm inwards), which
    stopped the count at 6 below slice 8's 9; at the joint place it is seen."""
    r = _run(acr_low_contrast.AcrLowContrast, series(name))
    for sl, ev in r.evidence["slices"].items():
        before, after = ev["pattern_score"]
        assert after >= before, (sl, before, after)
        assert np.allclose(ev["ring_radii_mm"], acr_low_contrast.RING_RADII_MM, rtol=0.05)
    if name == "Siemens_Aera_1.5T_T2":
        z = np.asarray(r.data["low_contrast_discs"]["slices"]["9"]["z"])
        assert z[6, 2] >= acr_low_contrast.OBSERVER_Z_THRESHOLD, z[6]
        assert r.get("spokes_detected", slice=9).value == 10


def test_low_contrast_slice_8_against_slice_11(series: Any) -> None:
    """The two slices in ``LCD_DISAGREE``, checked against the image's own physics, in two
    ways. (1) Prediction: a disc's z on slice 8 is expected to be its z on slice 11 times the
    ratio of the two slices' contrast, measured on the large discs of spokes 1-3 (noise on
    slice 11 is independent of slice 8's). (2) Empirical null
    (``acr_low_contrast.disc_free_z``): the same statistic at disc-free places of the same
    slice, so correlated noise counts as it is, not as the white-noise model states.

    Aera T1: every disc of spokes 9-10 is predicted above the observer's threshold and
    reads above it, and each reads higher than at least 97 % of the disc-free places (their
    z has SD 0.9: white noise), so 10 spokes is the reading the image supports (hazen: 8).

    SIGNA Artist T2: spoke 4's 12.5 mm disc is predicted at about 5 (so a repeat scan would
    probably show it) but on this image reads 1.41, and at least 5 % of the disc-free places
    read as much (SD of their z 1.3-1.5: noise blobs of the discs' own size, visible in the
    figure docs/figures/acr-lcd-slice8.png): this image does not show that disc apart from
    its noise, the count stops there (scanbench 3). hazen's 5 comes from a search of 3,721
    template places per spoke, the best kept (LCD_DISAGREE)."""
    thr = acr_low_contrast.OBSERVER_Z_THRESHOLD
    for name in ("Siemens_Aera_1.5T_T1", "GE_Signa_Artist_1.5T_T2"):
        s = series(name)
        r = _run(acr_low_contrast.AcrLowContrast, s)
        z = {sl: np.asarray(r.data["low_contrast_discs"]["slices"][str(sl)]["z"])
             for sl in (8, 11)}
        ratio = float(np.median(z[8][:3] / z[11][:3]))
        predicted = z[11] * ratio
        acr = axial_geometry(s)
        ev = r.evidence["slices"][8]
        sheet = (*ev["centre_uv"], ev["rim_radius"])
        image = acr_low_contrast.rim_corrected(acr, 8, ev["centres"], sheet)

        def null(spoke: int, acr: Any = acr, ev: Any = ev, sheet: Any = sheet,
                 image: Any = image) -> np.ndarray:
            return acr_low_contrast.disc_free_z(acr, 8, ev["centres"], ev["sigma"], sheet,
                                                image, acr_low_contrast.DIAMETERS_MM[spoke],
                                                step_mm=2.0)
        if name == "Siemens_Aera_1.5T_T1":
            assert 0.15 < ratio < 0.3, ratio  # ACR: 1.4 % against 5.1 %, i.e. 0.27
            assert (predicted[8:10] >= thr).all() and (z[8][8:10] >= thr).all()
            for spoke in (8, 9):
                free = null(spoke)
                assert free.size > 300 and 0.8 < free.std() < 1.1, (spoke, free.std())
                assert all(np.mean(free >= v) < 0.03 for v in z[8][spoke]), (spoke, z[8][spoke])
            assert r.get("spokes_detected", slice=8).value == 10
        else:
            assert predicted[3, 0] > 3.0 and z[8][3, 0] < thr, (predicted[3, 0], z[8][3, 0])
            free = null(3)
            assert free.size > 300 and 1.3 < free.std() < 1.5, free.std()
            assert np.mean(free >= z[8][3, 0]) > 0.05, np.mean(free >= z[8][3, 0])
            # the discs of spokes 1-3 stand clear of the same noise
            assert np.mean(free >= z[8][:3].min()) < 0.05
            assert r.get("spokes_detected", slice=8).value == 3
