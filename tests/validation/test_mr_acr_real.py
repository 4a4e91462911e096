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
  z >= 1.41, i.e. d' = 1 at 50 % human efficiency); every slice within 1 spoke of
  hazen's newer task and every total within 2, except the two slices in
  ``LCD_DISAGREE`` (both at the threshold, reasons there). Before this model the
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
    ("GE_Signa_Artist_1.5T_T2", 8): (3, "1.4 % contrast: spoke 4's 12.5 mm disc reads z 1.3 "
                                     "(threshold 1.41) while its 25 and 38 mm discs read 4.5 "
                                     "and 6.3; the noise is blotchy (disc-sized ROI means vary "
                                     "1.5x more than white noise predicts), the figure shows no "
                                     "disc standing out there: a disagreement at the threshold, "
                                     "not shown to be hazen's error"),
    ("Siemens_Aera_1.5T_T1", 8): (10, "spokes 9 and 10 clear the threshold narrowly (lowest "
                                      "disc z 2.2 and 1.6, spoke 7's 1.6, all on the 38 mm "
                                      "ring after the rim's ringing is removed); hazen stops "
                                      "at 8. A disagreement "
                                      "at the threshold, not shown to be hazen's error"),
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
#: disc that stopped the count (the result's note names it).
LCD_NOT_MONOTONE = {"GE_Signa_Artist_1.5T_T2": 11, "Siemens_Aera_1.5T_T1": 9,
                    "Siemens_Aera_1.5T_T2": 9}


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
