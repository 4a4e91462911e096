"""PET calibration and uniformity from a uniform cylinder.

What each measurement implements:

- ``activity_concentration_bq_ml`` — the mean activity concentration in a
  central volume of interest: a cylinder coaxial with the phantom, of 75 % of
  its radius and 75 % of its length, centred on it. Partial voxels at the VOI
  edge are weighted by the fraction of their area inside the circle
  (:func:`scanbench.analysis.roi.circle_weights`) and, at the two ends, by the
  fraction of the slice thickness inside the VOI. The 75 % / 75 % geometry is
  the scanbench choice for "a large central VOI away from the edges" of the EARL
  calibration QC (STANDARDS.md A.9; EARL does not fix the VOI size publicly [U]).
- ``expected_activity_concentration_bq_ml`` — the activity at the calibration
  time divided by the phantom volume, decay-corrected to the instant the image
  values refer to (see :func:`reference_instant`).
- ``activity_concentration_bias_percent`` — EARL calibration QC (STANDARDS.md
  A.9, [C]): 100 × (C_measured / C_expected − 1).
- ``suv_mean`` (g/mL) — the mean concentration times the body-weight SUV scale
  of :func:`scanbench.dicom.pet.suv_bw_scale` (for a phantom, PatientWeight is
  usually set to the filled mass, so SUV ≈ 1 when calibrated).
- ``axial_nonuniformity_percent`` — over the slices whose centres lie in the
  central 75 % of the length, the slice means m_k in the 75 %-radius circle:
  max_k |m_k − m̄| / m̄ × 100 with m̄ the mean of the m_k. This is the
  slice-to-slice (axial) uniformity check of the daily/EARL cylinder QC in the
  spirit of IEC 61675-1's volume uniformity [U: the IEC text was not read].
- ``transverse_cv_percent`` — in each of those slices, the means of a grid of
  square ROIs of about 10 mm side (the nearest whole number of pixels, at least
  one) lying entirely inside the 75 %-radius circle, one ROI centred on the
  axis; the coefficient of variation (sample SD / mean × 100) of these ROI means
  per slice, averaged over the slices. A grid of small square ROIs is the
  NEMA NU 2-1994 / IEC 61675-1 style of non-uniformity measurement [U]; NU
  2-2018 itself has no uniformity test (its section 7 is image quality).
- ``voxel_cv_percent`` — the (weighted) voxel standard deviation over the mean
  in the central VOI × 100: a noise figure, not a uniformity figure.

Decay: the expected concentration at the calibration time ``t_cal`` is decayed
to the reference instant of the stored values, ``C = A / V · 2^(−(t_ref − t_cal)
/ T½)`` (:func:`scanbench.dicom.pet.decay_factor`, the one shared with the SUV
scale). For DecayCorrection (0054,1102) START the reference is the series time, or
the earliest acquisition time if that is earlier (QIBA FDG-PET/CT profile App. G,
as in :func:`scanbench.dicom.pet.suv_bw_scale`); for ADMIN it is the injection
time; for NONE the values are not decay corrected, so they are the mean
concentration over the frame: the concentration at the acquisition start times
(1 − e^(−λT)) / (λT) for frame duration T (:func:`frame_average_factor`).
For a multi-bed series with NONE the earliest acquisition time is used for all beds.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis import ndi
from scanbench.analysis.base import Parameter, result_for
from scanbench.analysis.memo import memo
from scanbench.analysis.registry import register
from scanbench.analysis.roi import circle_weights
from scanbench.dicom.pet import (
    Reference,
    decay_factor,
    frame_average_factor,
    reference_instant,
    suv_bw_scale,
)
from scanbench.errors import AnalysisError, MissingTagError
from scanbench.types import PetFacts, Result, Series

VOI_RADIUS_FRACTION = 0.75
VOI_LENGTH_FRACTION = 0.75
GRID_ROI_SIDE_MM = 10.0


# --------------------------------------------------------------------------- decay arithmetic


def expected_concentration(activity_bq: float, volume_ml: float, calibration_time: dt.datetime,
                           reference: Reference, half_life_s: float) -> float:
    """Activity concentration (Bq/mL) the image should show: A / V decayed from the
    calibration time to the reference instant (and averaged over the frame for NONE)."""
    if not volume_ml > 0:
        raise AnalysisError(f"volume_ml must be positive, got {volume_ml}")
    c = activity_bq / volume_ml * decay_factor(calibration_time, reference.instant, half_life_s)
    if reference.frame_duration_s is not None:
        c *= frame_average_factor(half_life_s, reference.frame_duration_s)
    return c


# --------------------------------------------------------------------------- finding the cylinder


@dataclass
class CylinderFit:
    """A uniform cylinder found in the image, in voxel-index units of the series.

    ``centre_yx`` holds the fitted axis position (row, column) for every slice;
    ``z_start`` / ``z_end`` the fractional slice indices of the half-maximum
    crossings of the axial profile (or the volume edge when truncated).
    """

    centre_yx: np.ndarray  # (nz, 2)
    radius_mm: float
    z_start: float
    z_end: float
    truncated: tuple[bool, bool]
    plateau: float
    axial_profile: np.ndarray  # mean in a 50 %-radius disk per slice

    def length_mm(self, dz: float) -> float:
        return (self.z_end - self.z_start) * dz


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _half_crossing(profile: np.ndarray, start: int, step: int, level: float) -> float | None:
    """Fractional index where ``profile`` first falls below ``level`` walking from
    ``start`` by ``step`` (±1), linearly interpolated; None if it never does."""
    k = start
    while 0 <= k + step < len(profile):
        a, b = profile[k], profile[k + step]
        if b < level <= a:
            return k + step * (a - level) / (a - b)
        k += step
    return None


def find_cylinder(voxels: np.ndarray, spacing_zyx: tuple[float, float, float]) -> CylinderFit:
    """Locate a uniform cylinder whose axis runs along the slices.

    The interior level is the median of the voxels above half the 99th
    percentile; each slice is thresholded at half that level and its largest
    connected region gives the area-equivalent radius; the centroid is weighted by
    activity over that region grown by two pixels (no pixelisation bias). The axis
    is a straight-line fit of the centroids against the slice index over the
    slices fully inside; the axial ends are the half-maximum crossings of the
    slice means in a central disk of half the radius. Raises AnalysisError when
    the object is not a flat, circular cylinder.
    """
    v = np.asarray(voxels, dtype=np.float32)
    nz = v.shape[0]
    dz, dy, dx = (float(s) for s in spacing_zyx)
    if not float(v.max()) > 0:
        raise AnalysisError("the image has no activity: no cylinder to find")
    p99 = float(np.percentile(v[:: max(1, nz // 32)], 99.0))
    if not p99 > 0:
        raise AnalysisError("activity fills under 1 % of the image: not a uniform cylinder "
                            "(point sources?)")
    plateau0 = float(np.median(v[v > 0.5 * p99]))
    thr = 0.5 * plateau0
    areas = np.zeros(nz)
    cents = np.full((nz, 2), np.nan)
    for k in range(nz):
        m = v[k] > thr
        if not m.any():
            continue
        m = _largest_component(m)
        areas[k] = m.sum() * dy * dx
        # Activity-weighted centroid over the region grown by two pixels: unlike the
        # centroid of the thresholded pixels it has no pixelisation bias.
        grown = ndi.binary_dilation_cross(m, iterations=2)
        w = np.where(grown, np.clip(v[k], 0, None), 0.0)
        cents[k] = (np.argwhere(grown) * w[grown][:, None]).sum(axis=0) / w[grown].sum()
    full = areas >= 0.5 * areas.max()
    r0 = float(np.median(np.sqrt(areas[full] / np.pi)))
    c0 = np.nanmedian(cents[full], axis=0)
    yy, xx = np.mgrid[: v.shape[1], : v.shape[2]]
    core = ((yy - c0[0]) * dy) ** 2 + ((xx - c0[1]) * dx) ** 2 <= (0.5 * r0) ** 2
    profile = v[:, core].mean(axis=1) if core.any() else np.zeros(nz)
    plateau = float(np.median(profile[full]))
    mid = int(np.flatnonzero(full)[len(np.flatnonzero(full)) // 2])
    lo = _half_crossing(profile, mid, -1, 0.5 * plateau)
    hi = _half_crossing(profile, mid, +1, 0.5 * plateau)
    truncated = (lo is None, hi is None)
    z_start = -0.5 if lo is None else lo
    z_end = nz - 0.5 if hi is None else hi
    inner = np.arange(nz)
    inner = inner[(inner >= z_start + 1.0) & (inner <= z_end - 1.0) & full]
    if inner.size == 0:
        inner = np.flatnonzero(full)
    if inner.size >= 3:
        fit = [np.polyfit(inner, cents[inner, a], 1) for a in range(2)]
        centre = np.stack([np.polyval(f, np.arange(nz)) for f in fit], axis=1)
    else:
        centre = np.tile(np.nanmean(cents[inner], axis=0), (nz, 1))
    radius = float(np.median(np.sqrt(areas[inner] / np.pi)))
    fitres = CylinderFit(centre, radius, float(z_start), float(z_end), truncated, plateau,
                         profile)
    _check_cylinder(v, fitres, (dz, dy, dx), inner, thr)
    return fitres


def _clearly_not_a_cylinder(v: np.ndarray, spacing_zyx: tuple[float, float, float]) -> bool:
    """A quick look at one central slice, for detection: True when it is plainly not
    a uniform cylinder (far from circular, or a large cold region inside).

    The same tests as :func:`find_cylinder` on a subsample and one slice, with
    looser limits (0.6 instead of 0.75 for circularity, 4 % instead of 1 % of
    cold voxels), so that whatever it refuses the full fit would refuse too;
    anything else is left to the full fit.
    """
    nz = v.shape[0]
    _, dy, dx = (float(s) for s in spacing_zyx)
    sub = v[:: max(1, nz // 32), ::2, ::2]
    p99 = float(np.percentile(sub, 99.0))
    if not p99 > 0:
        return False
    above = sub[sub > 0.5 * p99]
    if above.size == 0:
        return False
    plateau = float(np.median(above))
    thr = 0.5 * plateau
    areas = (v[:, ::2, ::2] > thr).sum(axis=(1, 2))
    full = np.flatnonzero(areas >= 0.5 * areas.max())
    if full.size == 0:
        return False
    k = int(full[full.size // 2])
    m = _largest_component(v[k] > thr)
    pts = np.argwhere(m)
    if pts.shape[0] < 10:
        return False
    c = pts.mean(axis=0)
    d = np.hypot((pts[:, 0] - c[0]) * dy, (pts[:, 1] - c[1]) * dx)
    area = pts.shape[0] * dy * dx
    if area / (np.pi * d.max() ** 2) < 0.6:
        return True
    img = ndi.gaussian_filter(v[k].astype(float), (4.0 / dy, 4.0 / dx))
    yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
    inner = (((yy - c[0]) * dy) ** 2 + ((xx - c[1]) * dx) ** 2
             <= (VOI_RADIUS_FRACTION * float(np.sqrt(area / np.pi))) ** 2)
    return float(np.mean(img[inner] < 0.5 * plateau)) > 0.04


def cylinder_fit(series: Series) -> CylinderFit:
    """:func:`find_cylinder` once per series (detection finds it, the run reuses it)."""
    return memo(series, "pet.calibration_uniformity.cylinder",
                lambda: find_cylinder(np.asarray(series.voxels, dtype=np.float32),
                                      series.spacing))


def _check_cylinder(v: np.ndarray, cyl: CylinderFit, spacing: tuple[float, float, float],
                    inner: np.ndarray, thr: float) -> None:
    """Refuse what is not a flat, circular cylinder (IEC body phantom, point sources)."""
    _, dy, dx = spacing
    if cyl.radius_mm < 5 * max(dy, dx) or cyl.radius_mm < 20.0:
        raise AnalysisError(
            f"the hot object has an equivalent radius of {cyl.radius_mm:.1f} mm: not a "
            "uniform cylinder (point sources or a small object)")
    k = int(inner[len(inner) // 2])
    m = _largest_component(v[k] > thr)
    pts = np.argwhere(m)
    d = np.hypot((pts[:, 0] - cyl.centre_yx[k, 0]) * dy, (pts[:, 1] - cyl.centre_yx[k, 1]) * dx)
    circularity = float(m.sum() * dy * dx / (np.pi * d.max() ** 2))
    if circularity < 0.75:
        raise AnalysisError(
            f"the phantom cross-section is not circular (area / circumscribed circle "
            f"{circularity:.2f}): not a uniform cylinder (IEC body phantom?)")
    # Inserts and spheres are 10-50 mm across; noise is voxel-scale. Average up to five
    # central slices and smooth by a 4 mm SD Gaussian so only structure remains.
    ks = inner[max(len(inner) // 2 - 2, 0): len(inner) // 2 + 3]
    img = ndi.gaussian_filter(v[ks].mean(axis=0).astype(float), (4.0 / dy, 4.0 / dx))
    w = circle_weights(v.shape[1:], tuple(cyl.centre_yx[k]), VOI_RADIUS_FRACTION * cyl.radius_mm,
                       (dy, dx)) >= 0.5
    cold = float(np.mean(img[w] < 0.5 * cyl.plateau))
    hot = float(np.mean(img[w] > 1.6 * cyl.plateau))
    if cold > 0.01 or hot > 0.01:
        raise AnalysisError(
            f"the phantom interior is not uniform ({100 * cold:.1f} % of the central voxels "
            f"below half and {100 * hot:.1f} % above 1.6 times the interior level, after "
            "smoothing): not a uniform cylinder (inserts or spheres?)")


# --------------------------------------------------------------------------- the analysis


def _parse_datetime(value: Any, name: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise AnalysisError(f"{name} must be an ISO date-time such as 2024-05-01T08:30:00, "
                            f"got {value!r}") from exc


def _align(t: dt.datetime, like: dt.datetime) -> dt.datetime:
    """``t`` comparable with ``like``: a naive parameter is read in the header's time
    zone; an aware one is converted to it (or made naive for a naive header)."""
    if (t.tzinfo is None) == (like.tzinfo is None):
        return t
    if t.tzinfo is None:
        return t.replace(tzinfo=like.tzinfo)
    return t.replace(tzinfo=None) if like.tzinfo is None else t.astimezone(like.tzinfo)


def _param_or_tag(params: dict[str, Any], key: str, header: float | None,
                  tag: str) -> tuple[float, str]:
    """A number from ``--param key=`` if given, else from the header tag, with its source;
    MissingTagError naming the tag when neither has it."""
    if key in params:
        return float(params[key]), f"parameter {key}"
    if header is not None:
        return header, tag
    raise MissingTagError(f"{tag} is missing and no {key} parameter was given")


@register
class CalibrationUniformity:
    """EARL calibration QC (activity-concentration bias) and uniformity of a uniform cylinder."""

    id: ClassVar[str] = "pet.calibration_uniformity"
    modality: ClassVar[str] = "PT"
    standard: ClassVar[str] = (
        "EARL FDG-PET/CT accreditation: calibration QC with a uniform cylinder (see "
        "docs/standards/earl.md#calibration-qc); uniformity (axial slice means, transverse "
        "ROI-grid CV) as in NEMA NU 2-1994 and IEC 61675-1 (see "
        "docs/standards/earl.md#uniformity-of-the-calibration-cylinder)")
    title: ClassVar[str] = "PET calibration and uniformity (uniform cylinder)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("volume_ml", "filled volume of the cylinder; without it no expected "
                  "concentration and no calibration bias are reported", "mL", None),
        Parameter("activity_bq", "activity put into the cylinder, at calibration_time", "Bq",
                  "from Radionuclide Total Dose (0018,1074) if absent"),
        Parameter("half_life_s", "half-life of the radionuclide", "s",
                  "from Radionuclide Half Life (0018,1075) if absent"),
        Parameter("calibration_time", "date and time the activity was measured (ISO 8601)",
                  "", "from Radiopharmaceutical Start DateTime (0018,1078) if absent"),
    )

    def detect(self, series: Series) -> float:
        """High for a circular, flat-interior cylinder; low for the IEC phantom or points."""
        try:
            v = np.asarray(series.voxels)
            if v.ndim != 3 or v.shape[0] < 1:
                return 0.0
            if _clearly_not_a_cylinder(v, series.spacing):
                return 0.05
            cylinder_fit(series)
            return 0.9
        except AnalysisError:
            return 0.05
        except Exception:
            return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        pet = series.facts.pet
        if pet is None or not pet.units:
            raise MissingTagError("Units (0054,1001) is missing: the activity concentration "
                                  "needs images in Bq/mL (BQML)")
        if pet.units.upper() != "BQML":
            raise AnalysisError(f"Units (0054,1001) is {pet.units!r}; the calibration QC needs "
                                "images in Bq/mL (BQML)")
        result = result_for(self, series)
        v = np.asarray(series.voxels, dtype=np.float32)
        dz, dy, dx = (float(s) for s in series.spacing)
        cyl = cylinder_fit(series)
        length = cyl.length_mm(dz)
        for end, trunc in zip(("first", "last"), cyl.truncated, strict=True):
            if trunc:
                result.warnings.append(
                    f"the cylinder reaches the {end} slice of the image: its axial extent is "
                    "taken as the imaged range, and the central 75 % refers to that range")
        voi_r = VOI_RADIUS_FRACTION * cyl.radius_mm
        mid = 0.5 * (cyl.z_start + cyl.z_end)
        half = 0.5 * VOI_LENGTH_FRACTION * (cyl.z_end - cyl.z_start)
        k = np.arange(v.shape[0])
        # Fraction of each slice's thickness [k - 0.5, k + 0.5] inside the VOI.
        zw = np.clip(np.minimum(k + 0.5, mid + half) - np.maximum(k - 0.5, mid - half), 0, 1)
        central = np.flatnonzero(np.abs(k - mid) <= half)
        if central.size == 0:
            raise AnalysisError("no slice centre lies in the central 75 % of the cylinder")
        slice_means = np.full(v.shape[0], np.nan)
        num = den = sq = 0.0
        for kk in np.flatnonzero((k >= np.floor(cyl.z_start)) & (k <= np.ceil(cyl.z_end))):
            w = circle_weights(v.shape[1:], tuple(cyl.centre_yx[kk]), voi_r, (dy, dx))
            sw = float(w.sum())
            if sw <= 0:
                continue
            img = v[kk].astype(float)
            slice_means[kk] = float((img * w).sum() / sw)
            if zw[kk] > 0:
                num += zw[kk] * float((img * w).sum())
                sq += zw[kk] * float((img * img * w).sum())
                den += zw[kk] * sw
        c_meas = num / den
        voxel_sd = math.sqrt(max(sq / den - c_meas**2, 0.0))
        m = slice_means[central]
        axial_nu = float(np.max(np.abs(m - m.mean())) / m.mean() * 100.0)
        n_side = max(1, round(GRID_ROI_SIDE_MM / dx))
        cvs = [self._grid_cv(v[kk], cyl.centre_yx[kk], voi_r, (dy, dx), n_side) for kk in central]
        cvs_ok = [c for c in cvs if np.isfinite(c)]

        result.add("activity_concentration_bq_ml", c_meas, "Bq/mL")
        result.add("axial_nonuniformity_percent", axial_nu, "%")
        if cvs_ok:
            result.add("transverse_cv_percent", float(np.mean(cvs_ok)), "%")
        else:
            result.warnings.append("fewer than two grid ROIs fit in the central circle: "
                                   "no transverse CV")
        result.add("voxel_cv_percent", voxel_sd / c_meas * 100.0, "%")
        result.parameters.update({
            "cylinder_radius_mm": round(cyl.radius_mm, 2),
            "cylinder_length_mm": round(length, 2),
            "cylinder_truncated": list(cyl.truncated),
            "voi_radius_mm": round(voi_r, 2),
            "voi_length_mm": round(VOI_LENGTH_FRACTION * length, 2),
            "central_slices": int(central.size),
            "grid_roi_side_mm": round(n_side * dx, 2),
        })
        self._bias(pet, c_meas, params, result)
        self._suv(pet, c_meas, result)
        z_mm = np.array([float(series.index_to_patient((int(kk), 0, 0))[2]) for kk in k])
        kc = int(central[len(central) // 2])
        result.evidence = {
            "slice_image": v[kc].copy(), "slice_index": kc, "slice_z_mm": float(z_mm[kc]),
            "spacing_yx": (dy, dx), "centre_yx": tuple(float(c) for c in cyl.centre_yx[kc]),
            "cylinder_radius_mm": cyl.radius_mm, "voi_radius_mm": voi_r,
            "z_mm": z_mm, "slice_means": slice_means, "central": central,
            "central_mean": float(m.mean()), "axial_nonuniformity_percent": axial_nu,
            "transverse_cv_per_slice": np.asarray(cvs),
        }
        return result

    @staticmethod
    def _grid_cv(img: np.ndarray, centre: np.ndarray, radius_mm: float,
                 spacing_yx: tuple[float, float], n: int) -> float:
        """CV (%) of the means of n×n-pixel square ROIs inside the circle, one centred
        on ``centre``; NaN when fewer than two fit."""
        dy, dx = spacing_yx
        cy, cx = (round(float(c)) for c in centre)
        steps = int(radius_mm / (n * min(dy, dx))) + 1
        means = []
        for a in range(-steps, steps + 1):
            for b in range(-steps, steps + 1):
                y0 = cy + a * n - n // 2
                x0 = cx + b * n - n // 2
                if y0 < 0 or x0 < 0 or y0 + n > img.shape[0] or x0 + n > img.shape[1]:
                    continue
                corners_y = np.array([y0 - 0.5, y0 + n - 0.5]) - centre[0]
                corners_x = np.array([x0 - 0.5, x0 + n - 0.5]) - centre[1]
                far = np.hypot(np.max(np.abs(corners_y)) * dy, np.max(np.abs(corners_x)) * dx)
                if far <= radius_mm:
                    means.append(float(img[y0:y0 + n, x0:x0 + n].mean()))
        if len(means) < 2:
            return float("nan")
        arr = np.asarray(means)
        return float(arr.std(ddof=1) / arr.mean() * 100.0)

    def _bias(self, pet: PetFacts, c_meas: float, params: dict[str, Any],
              result: Result) -> None:
        """EARL calibration QC: 100 × (C_measured / C_expected − 1) (STANDARDS.md A.9)."""
        volume = params.get("volume_ml")
        if volume is None:
            result.warnings.append(
                "no volume_ml parameter: the expected concentration and the calibration bias "
                "need the phantom's filled volume (--param volume_ml=...)")
            return
        volume = float(volume)
        activity, activity_src = _param_or_tag(params, "activity_bq", pet.injected_activity_bq,
                                               "RadionuclideTotalDose (0018,1074)")
        half_life, hl_src = _param_or_tag(params, "half_life_s", pet.half_life_s,
                                          "RadionuclideHalfLife (0018,1075)")
        ref = reference_instant(pet)
        if "calibration_time" in params:
            t_cal = _align(_parse_datetime(params["calibration_time"], "calibration_time"),
                           ref.instant)
            t_src = "parameter calibration_time"
        elif pet.injection_datetime is not None:
            t_cal = _align(pet.injection_datetime, ref.instant)
            t_src = "RadiopharmaceuticalStartDateTime (0018,1078)"
        else:
            raise MissingTagError("RadiopharmaceuticalStartDateTime (0018,1078) is missing and "
                                  "no calibration_time parameter was given")
        c_exp = expected_concentration(activity, volume, t_cal, ref, half_life)
        result.add("expected_activity_concentration_bq_ml", c_exp, "Bq/mL")
        result.add("activity_concentration_bias_percent", 100.0 * (c_meas / c_exp - 1.0), "%")
        result.parameters.update({
            "activity_bq": activity, "activity_source": activity_src,
            "calibration_time": t_cal.isoformat(), "calibration_time_source": t_src,
            "volume_ml": volume, "half_life_s": half_life, "half_life_source": hl_src,
            "decay_reference": ref.mode, "decay_reference_time": ref.instant.isoformat(),
            "decay_reference_description": ref.description,
        })

    @staticmethod
    def _suv(pet: PetFacts, c_meas: float, result: Result) -> None:
        try:
            scale = suv_bw_scale(pet)
        except AnalysisError as exc:  # includes MissingTagError, whose message names the tag
            result.warnings.append(f"no SUV: {exc.message}")
            return
        result.add("suv_mean", c_meas * scale, "g/mL")

    def figures(self, result: Result) -> list[Any]:
        """The central transverse slice with the cylinder outline and the 75 % VOI circle,
        and the axial profile of slice means with the central range and ± the measured
        axial non-uniformity around the mean."""
        import plotly.graph_objects as go

        from scanbench.report.figures import RoiShape, slice_with_rois
        from scanbench.report.numbers import format_number

        ev = result.evidence
        if not ev:
            return []
        rois = [RoiShape(ev["centre_yx"], ev["cylinder_radius_mm"], "cylinder", "#4363d8"),
                RoiShape(ev["centre_yx"], ev["voi_radius_mm"], "75 % VOI", "#e6194b")]
        fig1 = slice_with_rois(ev["slice_image"], ev["spacing_yx"], rois,
                               "Central slice (z = "
                               f"{format_number(ev['slice_z_mm'], decimals=1)} mm) "
                               "with the VOI", invert=True)
        z, means, central = ev["z_mm"], ev["slice_means"], ev["central"]
        mean, nu = ev["central_mean"], ev["axial_nonuniformity_percent"]
        fig2 = go.Figure()
        fig2.add_trace(go.Scatter(x=z, y=means, mode="lines+markers", name="slice mean",
                                  line={"color": "#888888"}))
        fig2.add_trace(go.Scatter(x=z[central], y=means[central], mode="markers",
                                  name="central 75 %", marker={"color": "#e6194b"}))
        # The mean and the ± lines lie a fraction of a percent apart: their labels go to
        # different corners (mean left, + above right, − below right) so none overlaps.
        fig2.add_hline(y=mean, line={"color": "#333333"}, annotation_text="mean",
                       annotation_position="top left")
        for sgn, where in ((1, "top right"), (-1, "bottom right")):
            fig2.add_hline(y=mean * (1 + sgn * nu / 100), line={"dash": "dot",
                           "color": "#4363d8"}, annotation_position=where,
                           annotation_text=("+" if sgn > 0 else "−")
                           + f"{format_number(abs(nu), digits=2)} %")
        fig2.update_layout(title_text="Axial profile of slice means in the 75 % circle",
                           xaxis_title="z (mm)", yaxis_title="mean (Bq/mL)",
                           template="simple_white")
        return [fig1, fig2]
