"""Size-specific dose estimate (AAPM Reports 204 and 220) from CT images.

Water-equivalent diameter, AAPM Report 220 (STANDARDS.md B.3 [C]):

    D_w = 2 · sqrt( (mean HU_ROI / 1000 + 1) · A_ROI / π )

with the ROI the whole patient cross-section, so that mean HU × area is the
integral of (HU/1000 + 1) over the patient. Here the ROI is the largest
connected region above a threshold (default −400 HU, between lung and soft
tissue: air outside the patient falls out, the lungs, enclosed by the body
wall, are filled back in as holes), grown by two pixels to take in the
partial-volume edge; the table, a separate object below the patient, is not
counted. D_w is reported for the central slice of
the scan range, or as the mean of D_w(z) over all slices — the two choices
Report 220 describes (DICOM codes 113981 "representative value" and 113982
"integrated across scan range"); the result says which.

Conversion to SSDE, AAPM Report 204 fit (STANDARDS.md B.3 [C], D in cm):

    32 cm phantom: f = 3.704369 · exp(−0.03671937 · D)
    16 cm phantom: f = 1.874799 · exp(−0.03871313 · D)
    SSDE = f × CTDIvol

The fit is defined for 8–45 cm; outside it scanbench refuses (AnalysisError)
rather than extrapolate [P]. The phantom of the CTDIvol must be known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from scanbench.errors import AnalysisError
from scanbench.types import Series

FIT = {32: (3.704369, 0.03671937), 16: (1.874799, 0.03871313)}
FIT_RANGE_CM = (8.0, 45.0)
Method = Literal["central", "mean"]


def conversion_factor(diameter_cm: float, phantom_cm: int) -> float:
    """AAPM 204 conversion factor f(D) for a water-equivalent or effective diameter in cm."""
    if phantom_cm not in FIT:
        raise AnalysisError(f"CTDIvol phantom {phantom_cm} cm: SSDE needs the 16 or 32 cm "
                            "phantom (DICOM 113690 / 113691)")
    lo, hi = FIT_RANGE_CM
    if not lo <= diameter_cm <= hi:
        raise AnalysisError(f"diameter {diameter_cm:.1f} cm is outside the {lo:g}–{hi:g} cm "
                            "range of the AAPM Report 204 fit; no SSDE extrapolated")
    a, b = FIT[phantom_cm]
    return a * math.exp(-b * diameter_cm)


def ssde_mgy(ctdivol_mgy: float, diameter_cm: float, phantom_cm: int) -> float:
    """SSDE = f(D) × CTDIvol (mGy)."""
    return conversion_factor(diameter_cm, phantom_cm) * ctdivol_mgy


def water_equivalent_diameter_slice(hu: np.ndarray, pixel_area_mm2: float,
                                    threshold_hu: float = -400.0) -> float:
    """D_w (mm) of one axial slice in HU (AAPM Report 220 eq. 2 over the patient ROI)."""
    mask = hu > threshold_hu
    if not mask.any():
        return 0.0
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    mask = ndimage.binary_fill_holes(mask)
    # Grow the ROI by two pixels so that partial-volume edge pixels count with the
    # fraction of patient they hold: (HU/1000 + 1) of an air pixel is 0, so the
    # integral below does not depend on how much air the ROI takes in.
    mask = ndimage.binary_dilation(mask, iterations=2)
    water_area = float(np.clip(hu[mask] / 1000.0 + 1.0, 0.0, None).sum()) * pixel_area_mm2
    return 2.0 * math.sqrt(water_area / math.pi)


@dataclass(frozen=True)
class WaterEquivalentDiameter:
    diameter_mm: float
    method: Method
    per_slice_mm: tuple[float, ...]
    threshold_hu: float

    @property
    def method_text(self) -> str:
        return ("central slice of the scan range (AAPM 220 representative value)"
                if self.method == "central" else
                "mean of D_w(z) over all slices (AAPM 220 integrated across scan range)")


def water_equivalent_diameter(series: Series, method: Method = "central",
                              threshold_hu: float = -400.0) -> WaterEquivalentDiameter:
    """D_w of a CT series (voxels in HU) by the central slice or the mean over z."""
    if series.facts.modality != "CT":
        raise AnalysisError(f"water-equivalent diameter needs a CT series, not "
                            f"{series.facts.modality}", series.uid)
    _, dy, dx = series.spacing
    per_slice = tuple(water_equivalent_diameter_slice(series.voxels[k], dy * dx, threshold_hu)
                      for k in range(series.shape[0]))
    if method == "central":
        value = per_slice[len(per_slice) // 2]
    elif method == "mean":
        value = float(np.mean(per_slice))
    else:
        raise AnalysisError(f"method '{method}': use 'central' or 'mean'")
    if value <= 0:
        raise AnalysisError("no patient found above the threshold "
                            f"{threshold_hu:g} HU", series.uid)
    return WaterEquivalentDiameter(value, method, per_slice, threshold_hu)
