"""Liver noise of a clinical whole-body FDG PET series, with its CT (issue 16, PET part).

The reference region of PERCIST — Wahl RL, Jacene H, Kasamon Y, Lodge MA. From RECIST
to PERCIST: evolving considerations for PET response criteria in solid tumors. J Nucl
Med 2009;50(Suppl 1):122S–150S — is a 3 cm diameter spherical VOI in the normal right
lobe of the liver (its mean and SD; PERCIST normalises by lean body mass, SUL) and, where
the liver is abnormal, a 1 cm diameter × 2 cm long cylinder in the descending thoracic
aorta (blood pool). EARL accreditation and the EANM FDG PET/CT guideline version 2.0
(Boellaard R et al., Eur J Nucl Med Mol Imaging 2015;42:328–354) use the liver VOI's
coefficient of variation as the image-noise indicator of a clinical study, and prescribe
injected activity per kg and acquisition time per bed together. This analysis measures
them without an operator:

1. **CT on the PET grid.** The CT series on the PET's Frame of Reference UID (0020,0052)
   is block-averaged in-plane to about the PET pixel, linearly interpolated at the PET
   voxel centres and smoothed (Gaussian, σ 0.7 voxel) against CT noise. Both series must
   be axial (axes parallel to the patient's).
2. **Right hemidiaphragm.** Lungs are CT < −400 HU inside the body (> −500 HU, largest
   region, holes filled); the right lung is the part on the patient's right of the body
   centre. The dome level is the lowest slice whose right-lung area is at least half the
   right lung's largest slice area.
3. **Liver.** Seed: soft tissue (``liver_low_hu``–``liver_high_hu``, 20–100 HU) on the
   patient's right, 20–60 mm below the dome, in the middle of the body's AP extent. The
   liver level L is the median PET value there; the liver is the connected region of CT
   soft tissue with a PET value (Gaussian σ 1 voxel) within 0.7–1.4 L that holds the
   seed, holes filled (a lesion inside stays part of the liver).
4. **VOI.** The right lobe is the liver on the patient's right of the body centre; the
   VOI (``voi_diameter_mm`` 30 mm sphere, the voxels whose centres lie inside it) is
   centred at the right-lobe point farthest from the liver's edge; the field of view's
   ends count as edges. It must lie ``edge_margin_mm`` (5 mm) inside the liver.
5. **Values.** SUVbw = value × weight / decayed injected activity
   (:func:`scanbench.dicom.pet.suv_bw_scale`, QIBA FDG-PET/CT profile App. G); the VOI's
   mean, SD (ddof 1) and COV = SD / mean; the blood pool as PERCIST (point 6); injected
   activity per kg (Radionuclide Total Dose (0018,1074) / Patient Weight (0010,1030)),
   uptake time (series start − Radiopharmaceutical Start DateTime (0018,1078)),
   acquisition time per bed (Actual Frame Duration (0018,1242); with continuous bed
   motion that is the time a slice spends in the field, not a bed time) and their
   product per kg (the EANM guideline's activity × time).
6. **Blood pool.** On the slices 30–130 mm above the dome, the vertebral body is the CT
   bone (> 200 HU) near the posterior midline; the descending aorta is the PET maximum
   in soft tissue up to 60 mm to its left and 70 mm anterior of it; the median of these
   positions is the centre of the 1 cm × 2 cm cylinder.

Refused (status ``refused``, the reason in the note) when the VOI cannot be placed
safely: no CT on the same frame of reference; no right lung or liver found in the field;
the liver reaching the field's superior or inferior end (cut); no right-lobe point
``voi_diameter_mm / 2 + edge_margin_mm`` inside the liver; a lesion in or within
``edge_margin_mm`` of the VOI — at least two liver voxels above the liver's median by
more than ``outlier_sd`` (4) robust SDs (1.4826 × the median absolute deviation of the
liver interior), i.e. beyond what the noise allows. The VOI is not moved around a
lesion: a reader would choose another normal-liver position; this analysis says why it
did not measure. Not measured: SUL (needs height and sex), cold lesions.

Validation against virtual PET/CT patients with a known liver SUV and noise:
``docs/clinical-image-quality.md``; names and units of the measurements are stable
(``docs/standards/pet-liver-noise.md``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.base import Parameter, result_for
from scanbench.analysis.registry import register
from scanbench.dicom.pet import suv_bw_scale
from scanbench.errors import AnalysisError
from scanbench.types import Measurement, Result, Series

LIVER_NAMES = ("liver_suv_mean", "liver_suv_sd", "liver_cov_percent", "liver_voi_volume_ml")
_LIVER_UNITS = {"liver_suv_mean": "g/mL", "liver_suv_sd": "g/mL", "liver_cov_percent": "%",
                "liver_voi_volume_ml": "mL"}
DEFAULTS = {"voi_diameter_mm": 30.0, "edge_margin_mm": 5.0, "outlier_sd": 4.0,
            "liver_low_hu": 20.0, "liver_high_hu": 100.0}


class Refusal(Exception):
    """The liver VOI cannot be placed safely; the message says why. ``partial``: what was
    located before (the hemidiaphragm, for the blood pool), or None."""

    def __init__(self, message: str, partial: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.partial = partial


def _opt(params: dict[str, Any], name: str) -> float:
    try:
        v = float(params.get(name, DEFAULTS[name]))
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"--param {name}={params.get(name)!r} is not a number") from exc
    if not np.isfinite(v):
        raise AnalysisError(f"--param {name} must be finite")
    return v


def _axial_axes(series: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Patient z of each slice, y of each row, x of each column; None if not axial."""
    d = series.affine[:3, :3]
    off = d.copy()
    off[2, 0] = off[1, 1] = off[0, 2] = 0.0
    if np.abs(off).max() > 1e-3 * np.abs(d).max():
        return None
    a = series.affine
    nz, ny, nx = series.shape
    return (a[2, 0] * np.arange(nz) + a[2, 3], a[1, 1] * np.arange(ny) + a[1, 3],
            a[0, 2] * np.arange(nx) + a[0, 3])


def _interp_axis(vol: np.ndarray, coords: np.ndarray, axis: int, fill: float) -> np.ndarray:
    """Linear interpolation of ``vol`` along ``axis`` at fractional indices ``coords``."""
    n = vol.shape[axis]
    c = np.clip(coords, 0.0, n - 1.0)
    i0 = np.clip(np.floor(c).astype(np.int64), 0, max(n - 2, 0))
    w = (c - i0) if n > 1 else np.zeros_like(c)
    i1 = np.minimum(i0 + 1, n - 1)
    shape = [1, 1, 1]
    shape[axis] = -1
    w = w.reshape(shape)
    out = np.take(vol, i0, axis=axis) * (1 - w) + np.take(vol, i1, axis=axis) * w
    outside = ((coords < -0.5) | (coords > n - 0.5)).reshape(shape)
    return np.where(np.broadcast_to(outside, out.shape), fill, out)


def ct_on_pet_grid(pet: Series, ct: Series) -> np.ndarray:
    """CT numbers (HU) at the PET voxel centres (module docstring, step 1)."""
    from scipy import ndimage  # only when this analysis runs: the PET detector scan needs none

    pa, ca = _axial_axes(pet), _axial_axes(ct)
    if pa is None or ca is None:
        raise Refusal("the PET and the CT must both be axial (axes parallel to the patient's)"
                      ": oblique series are not handled")
    f = max(1, int(min(pet.spacing[1] / ct.spacing[1], pet.spacing[2] / ct.spacing[2])))
    v = np.asarray(ct.voxels, dtype=np.float32)
    nz, ny, nx = v.shape
    ny2, nx2 = ny // f, nx // f
    small = v[:, :ny2 * f, :nx2 * f].reshape(nz, ny2, f, nx2, f).mean(axis=(2, 4))
    cz, cy, cx = ca
    # block centres in patient coordinates
    cy2 = cy[:ny2 * f].reshape(ny2, f).mean(axis=1)
    cx2 = cx[:nx2 * f].reshape(nx2, f).mean(axis=1)
    pz, py, px = pa

    def frac(target: np.ndarray, axis_pos: np.ndarray) -> np.ndarray:
        step = (axis_pos[-1] - axis_pos[0]) / (len(axis_pos) - 1) if len(axis_pos) > 1 else 1.0
        return (target - axis_pos[0]) / step

    out = _interp_axis(small, frac(pz, cz), 0, -1000.0)
    out = _interp_axis(out, frac(py, cy2), 1, -1000.0)
    out = _interp_axis(out, frac(px, cx2), 2, -1000.0)
    return np.asarray(ndimage.gaussian_filter(out, 0.7), dtype=np.float32)


def _largest(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage  # only when this analysis runs: the PET detector scan needs none

    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return np.asarray(lab == int(np.argmax(sizes)))


def locate_liver(pet: Series, ct_hu: np.ndarray, params: dict[str, float]) -> dict[str, Any]:
    """Steps 2–4 of the module docstring: the liver mask, the VOI centre and radius.

    Raises :class:`Refusal` with the reason when the VOI cannot be placed."""
    from scipy import ndimage  # only when this analysis runs: the PET detector scan needs none

    axes = _axial_axes(pet)
    if axes is None:
        raise Refusal("the PET series is not axial: oblique series are not handled")
    z, y, x = axes
    dz, dy, dx = (abs(s) for s in pet.spacing)
    body = _largest(ct_hu > -500.0)
    if not body.any():
        raise Refusal("no body in the CT on the PET's grid (no voxel above -500 HU)")
    body = np.stack([ndimage.binary_fill_holes(s) for s in body])
    xc = float(np.median(np.broadcast_to(x, body.shape)[body]))
    right = x < xc  # LPS: +x is the patient's left
    lung = body & (ct_hu < -400.0)
    r_area = (lung & right[None, None, :]).sum(axis=(1, 2)) * dy * dx / 100.0  # cm²
    if r_area.max() < 10.0:
        raise Refusal("no right lung in the field of view (less than 10 cm² below -400 HU on "
                      "any slice): the liver is found under the right hemidiaphragm, which is "
                      "not imaged (liver out of field or cut)")
    order = np.argsort(z)
    big = [k for k in order if r_area[k] >= 0.5 * r_area.max()]
    k_dome = big[0]
    z_dome = float(z[k_dome])
    partial = {"z_dome_mm": z_dome, "axes": axes, "ct_hu": ct_hu}
    lo_hu, hi_hu = params["liver_low_hu"], params["liver_high_hu"]
    soft = body & (ct_hu >= lo_hu) & (ct_hu <= hi_hu)
    yb = np.broadcast_to(y[None, :, None], body.shape)[body]
    y_lo, y_hi = float(np.percentile(yb, 5)), float(np.percentile(yb, 95))
    y_mid, y_half = (y_lo + y_hi) / 2, (y_hi - y_lo) / 2
    xb = np.broadcast_to(x[None, None, :], body.shape)[body]
    x_lo = float(np.percentile(xb, 5))
    seed_z = (z <= z_dome - 20.0) & (z >= z_dome - 60.0)
    seed_y = np.abs(y - y_mid) <= 0.5 * y_half
    seed_x = (x < xc - 0.15 * (xc - x_lo)) & (x > x_lo + 0.15 * (xc - x_lo))
    seed = soft & seed_z[:, None, None] & seed_y[None, :, None] & seed_x[None, None, :]
    v = np.asarray(pet.voxels, dtype=np.float32)
    if int(seed.sum()) < 20:
        raise Refusal(f"no soft tissue ({lo_hu:g}-{hi_hu:g} HU) under the right hemidiaphragm "
                      f"(20-60 mm below the dome at z = {z_dome:.0f} mm): no liver found "
                      "(out of field or cut)", partial)
    level = float(np.median(v[seed]))
    if not level > 0:
        raise Refusal("no uptake under the right hemidiaphragm: no liver found", partial)
    smooth = ndimage.gaussian_filter(v, 1.0)
    cand = soft & (smooth >= 0.7 * level) & (smooth <= 1.4 * level)
    lab, _n = ndimage.label(cand)
    hits = np.bincount(lab[seed & cand], minlength=lab.max() + 1)
    hits[0] = 0
    if hits.max() == 0:
        raise Refusal("no region of uniform uptake under the right hemidiaphragm: no liver "
                      "found", partial)
    liver = lab == int(np.argmax(hits))
    liver = ndimage.binary_fill_holes(liver)
    liver = np.stack([ndimage.binary_fill_holes(s) for s in liver])
    for k, end in ((int(np.argmin(z)), "inferior"), (int(np.argmax(z)), "superior")):
        if liver[k].any():
            raise Refusal(f"the liver reaches the {end} end of the PET field of view "
                          f"(z = {z[k]:.0f} mm): it is cut, its right lobe is not wholly "
                          "imaged", partial)
    dist = ndimage.distance_transform_edt(np.pad(liver, 1), sampling=(dz, dy, dx))[1:-1, 1:-1,
                                                                                   1:-1]
    radius = params["voi_diameter_mm"] / 2.0
    need = radius + params["edge_margin_mm"]
    lobe = liver & right[None, None, :]
    d_lobe = np.where(lobe, dist, 0.0)
    best = np.unravel_index(int(np.argmax(d_lobe)), d_lobe.shape)
    if d_lobe[best] < need:
        raise Refusal(f"no point of the right liver lobe lies {need:g} mm inside the liver "
                      f"(deepest {d_lobe[best]:.1f} mm): a {2 * radius:g} mm sphere does not "
                      "fit (small or cut liver)", partial)
    return {"liver": liver, "dist": dist, "centre": best, "radius_mm": radius,
            "level": level, "z_dome_mm": z_dome, "axes": axes, "ct_hu": ct_hu}


def _ball(shape: tuple[int, ...], centre: tuple[float, float, float],
          spacing: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    g = np.ogrid[:shape[0], :shape[1], :shape[2]]
    d2 = sum(((gi - c) * s) ** 2 for gi, c, s in zip(g, centre, spacing, strict=True))
    return np.asarray(d2 <= radius_mm ** 2)


def blood_pool(pet: Series, loc: dict[str, Any]) -> tuple[tuple[int, int, int], np.ndarray]:
    """Step 6: the voxel index of the aorta cylinder's centre and its mask (PET grid)."""
    from scipy import ndimage  # only when this analysis runs: the PET detector scan needs none

    z, y, x = loc["axes"]
    ct_hu = loc["ct_hu"]
    dz, dy, dx = (abs(s) for s in pet.spacing)
    v = ndimage.gaussian_filter(np.asarray(pet.voxels, dtype=np.float32), 1.0)
    picks = []
    for k in np.nonzero((z >= loc["z_dome_mm"] + 30.0) & (z <= loc["z_dome_mm"] + 130.0))[0]:
        s = ct_hu[k]
        body = s > -500.0
        if not body.any():
            continue
        xc = float(np.median(np.broadcast_to(x, s.shape)[body]))
        yc = float(np.median(np.broadcast_to(y[:, None], s.shape)[body]))
        bone = (s > 200.0) & (np.abs(x - xc)[None, :] < 40.0) & (y > yc)[:, None]
        if bone.sum() < 3:
            continue
        jj, ii = np.nonzero(bone)
        xs, ys = float(x[ii].mean()), float(y[jj].mean())
        box = (((x >= xs) & (x <= xs + 60.0))[None, :]
               & ((y >= ys - 70.0) & (y <= ys))[:, None] & (s >= 0.0) & (s <= 100.0))
        if not box.any():
            continue
        vals = np.where(box, v[k], -np.inf)
        j, i = np.unravel_index(int(np.argmax(vals)), vals.shape)
        picks.append((k, j, i))
    if not picks:
        raise Refusal("no descending aorta found: no vertebral body (CT > 200 HU) with soft "
                      "tissue left-anterior of it on the slices 30-130 mm above the "
                      "hemidiaphragm")
    arr = np.array(picks)
    kc, jc, ic = (round(float(np.median(arr[:, a]))) for a in range(3))
    kk, jj, ii = np.ogrid[:pet.shape[0], :pet.shape[1], :pet.shape[2]]
    mask = ((((jj - jc) * dy) ** 2 + ((ii - ic) * dx) ** 2 <= 5.0 ** 2)
            & (np.abs((kk - kc) * dz) <= 10.0))
    return (kc, jc, ic), np.asarray(mask)


def _refuse_all(result: Result, names: Sequence[str], units: dict[str, str],
                reason: str) -> None:
    for name in names:
        m = Measurement(name, float("nan"), units[name])
        m.refuse(reason)
        result.measurements.append(m)


def measure_liver_noise(pet: Series, ct: Series | None, analysis: Any = None,
                        **params: Any) -> Result:
    """The liver-noise Result of ``pet`` located with ``ct`` (module docstring); ``ct``
    None: the liver values are refused with the reason."""
    analysis = analysis or ClinicalLiverNoise()
    if pet.facts.modality != "PT" or pet.facts.pet is None:
        raise AnalysisError(f"{ClinicalLiverNoise.id} needs a PET series, not "
                            f"{pet.facts.modality}", pet.uid)
    p = {name: _opt(params, name) for name in DEFAULTS}
    if p["voi_diameter_mm"] <= 0 or p["edge_margin_mm"] < 0 or p["outlier_sd"] <= 0 \
            or p["liver_high_hu"] <= p["liver_low_hu"]:
        raise AnalysisError("voi_diameter_mm and outlier_sd must be positive, edge_margin_mm "
                            "not negative, liver_high_hu above liver_low_hu")
    result = result_for(analysis, pet, parameters=dict(p))
    facts = pet.facts.pet
    try:
        scale: float | None = suv_bw_scale(facts)
        suv_reason = ""
    except AnalysisError as exc:
        scale, suv_reason = None, f"no SUV: {exc.message}"
    units = {**_LIVER_UNITS, "blood_pool_suv_mean": "g/mL"}
    reason = None
    loc: dict[str, Any] | None = None
    partial: dict[str, Any] | None = None
    if ct is None:
        reason = ("no CT series on the same Frame of Reference UID (0020,0052) as this PET: "
                  "the liver is located with the CT")
    elif ct.facts.frame_of_reference_uid != pet.facts.frame_of_reference_uid:
        reason = ("the CT is not on the PET's Frame of Reference UID (0020,0052): "
                  "the two cannot be overlaid")
    else:
        try:
            loc = locate_liver(pet, ct_on_pet_grid(pet, ct), p)
        except Refusal as exc:
            reason, partial = str(exc), exc.partial
    if loc is None:
        _refuse_all(result, LIVER_NAMES, units, reason or "")
    else:
        _liver_values(result, pet, loc, p, scale, suv_reason)
    where = loc or partial
    if where is None:
        _refuse_all(result, ["blood_pool_suv_mean"], units, reason or "")
    else:
        try:
            centre, cyl = blood_pool(pet, where)
            vals = np.asarray(pet.voxels, dtype=np.float64)[cyl]
            if scale is None:
                _refuse_all(result, ["blood_pool_suv_mean"], units, suv_reason)
            else:
                result.add("blood_pool_suv_mean", float(vals.mean()) * scale, "g/mL")
            kc, jc, ic = centre
            result.evidence.update({
                "aorta_axial": np.asarray(pet.voxels[kc], dtype=np.float32) * (scale or 1.0),
                "aorta_yx": (float(jc), float(ic)),
                "spacing_yx": (abs(pet.spacing[1]), abs(pet.spacing[2]))})
            result.parameters["blood_pool_centre_lps_mm"] = [
                float(v) for v in pet.index_to_patient(np.array(centre, dtype=float))]
        except Refusal as exc:
            _refuse_all(result, ["blood_pool_suv_mean"], units, str(exc))
    _header_values(result, pet)
    return result


def _liver_values(result: Result, pet: Series, loc: dict[str, Any], p: dict[str, float],
                  scale: float | None, suv_reason: str) -> None:
    spacing = tuple(abs(s) for s in pet.spacing)
    centre, radius = loc["centre"], loc["radius_mm"]
    voi = _ball(pet.shape, centre, spacing, radius)  # type: ignore[arg-type]
    v = np.asarray(pet.voxels, dtype=np.float64)
    liver = loc["liver"]
    interior = liver & (loc["dist"] >= p["edge_margin_mm"])
    med = float(np.median(v[interior]))
    rsd = 1.4826 * float(np.median(np.abs(v[interior] - med)))
    near = _ball(pet.shape, centre, spacing, radius + p["edge_margin_mm"]) & liver  # type: ignore[arg-type]
    hot = near & (v > med + p["outlier_sd"] * rsd)
    centre_mm = [float(c) for c in pet.index_to_patient(np.array(centre, dtype=float))]
    result.parameters.update({"voi_centre_lps_mm": centre_mm, "voi_radius_mm": radius,
                              "voi_voxels": int(voi.sum()),
                              "hemidiaphragm_z_mm": loc["z_dome_mm"]})
    k, j, i = (int(c) for c in centre)
    coronal = np.asarray(pet.voxels[:, j, :], dtype=np.float32) * (scale or 1.0)
    z_up = pet.affine[2, 0] > 0  # slice index grows superior: flip so the head is on top
    result.evidence.update({
        "voi_centre_index": (k, j, i), "unit": "g/mL" if scale else "Bq/mL",
        "coronal": coronal[::-1] if z_up else coronal,
        "coronal_yx": (float(pet.shape[0] - 1 - k if z_up else k), float(i)),
        "spacing_zx": (abs(pet.spacing[0]), abs(pet.spacing[2])), "voi_radius_mm": radius,
        "spacing_yx": (abs(pet.spacing[1]), abs(pet.spacing[2]))})
    if int(hot.sum()) >= 2:
        s = scale or 1.0
        unit = "" if scale else " Bq/mL"
        _refuse_all(result, LIVER_NAMES, _LIVER_UNITS,
                    f"lesion in the right-lobe VOI: {int(hot.sum())} voxels in or within "
                    f"{p['edge_margin_mm']:g} mm of the {2 * radius:g} mm sphere exceed the "
                    f"liver's median ({med * s:.2f}{unit}) by more than {p['outlier_sd']:g} "
                    f"robust SD (up to {float(v[hot].max()) * s:.2f}{unit}), beyond what the "
                    "noise allows; PERCIST measures normal liver")
        return
    vals = v[voi]
    mean, sd = float(vals.mean()), float(vals.std(ddof=1))
    if scale is None:
        _refuse_all(result, ["liver_suv_mean", "liver_suv_sd"], _LIVER_UNITS, suv_reason)
    else:
        result.add("liver_suv_mean", mean * scale, "g/mL")
        result.add("liver_suv_sd", sd * scale, "g/mL")
    result.add("liver_cov_percent", 100.0 * sd / mean, "%")
    result.add("liver_voi_volume_ml", vals.size * float(np.prod(spacing)) / 1000.0, "mL")


def _header_values(result: Result, pet: Series) -> None:
    """Injected activity per kg, uptake time, time per bed, their product, weight."""
    f = pet.facts.pet
    assert f is not None
    weight, activity = f.patient_weight_kg, f.injected_activity_bq
    bed = f.frame_duration_s
    uptake = None
    start = f.series_datetime or f.acquisition_start
    if f.acquisition_start is not None and start is not None and f.acquisition_start < start:
        start = f.acquisition_start  # a post-processed series: QIBA App. G
    if start is not None and f.injection_datetime is not None:
        try:
            uptake = (start - f.injection_datetime) / dt.timedelta(minutes=1)
        except TypeError:  # one aware, one naive: not comparable
            uptake = None
    per_kg = activity / 1e6 / weight if activity and weight else None
    rows: list[tuple[str, str, float | None, str]] = [
        ("injected_activity_per_kg_mbq_kg", "MBq/kg", per_kg,
         "Radionuclide Total Dose (0018,1074) or Patient Weight (0010,1030)"),
        ("uptake_time_min", "min", uptake,
         "Series Date/Time (0008,0021/0031) or Radiopharmaceutical Start DateTime (0018,1078)"),
        ("acquisition_time_per_bed_s", "s", bed, "Actual Frame Duration (0018,1242)"),
        ("activity_time_per_kg_mbq_min_kg", "MBq·min/kg",
         per_kg * bed / 60.0 if per_kg is not None and bed else None,
         "injected activity per kg or Actual Frame Duration (0018,1242)"),
        ("patient_weight_kg", "kg", weight, "Patient Weight (0010,1030)"),
    ]
    for name, unit, value, tags in rows:
        if value is None:
            m = Measurement(name, float("nan"), unit)
            m.not_judged(f"not in the DICOM header: {tags}")
            result.measurements.append(m)
        else:
            result.add(name, float(value), unit)


@register
class ClinicalLiverNoise:
    """PET liver noise from a clinical whole-body PET/CT (module docstring)."""

    id: ClassVar[str] = "pet.clinical_liver_noise"
    modality: ClassVar[str] = "PT"
    #: never chosen without ``--analysis`` (it would claim every PET/CT study)
    automatic: ClassVar[bool] = False
    standard: ClassVar[str] = (
        "PERCIST 1.0, Wahl et al., J Nucl Med 2009;50(Suppl 1):122S-150S (3 cm spherical VOI "
        "in the normal right liver lobe; descending-aorta blood pool); EANM FDG PET/CT "
        "guideline 2.0, Boellaard et al., Eur J Nucl Med Mol Imaging 2015;42:328-354 (see "
        "docs/standards/pet-liver-noise.md)")
    title: ClassVar[str] = "PET liver noise (3 cm right-lobe VOI) from a clinical PET/CT"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("voi_diameter_mm", "diameter of the spherical liver VOI", "mm", 30.0),
        Parameter("edge_margin_mm", "least distance of the VOI from the liver's edge, and "
                  "the shell around it searched for lesions", "mm", 5.0),
        Parameter("outlier_sd", "a voxel this many robust SDs above the liver's median is "
                  "hot (two such voxels near the VOI: a lesion, refused)", "", 4.0),
        Parameter("liver_low_hu", "lower end of the CT soft-tissue window of the liver",
                  "HU", 20.0),
        Parameter("liver_high_hu", "upper end of the CT soft-tissue window of the liver",
                  "HU", 100.0),
    )

    def detect(self, series: Series) -> float:
        """0: a measurement of patients, never chosen automatically; run it with
        ``--analysis pet.clinical_liver_noise`` on a folder with the PET and its CT."""
        return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        """One PET series alone: located without a CT, so the liver values are refused."""
        return measure_liver_noise(series, None, self, **params)

    def group(self, series: Sequence[Series]) -> list[tuple[Series, ...]]:
        """Each PET series with the CT on its Frame of Reference UID (the first such CT
        with the most slices), or alone when there is none."""
        cts = [s for s in series if s.facts.modality == "CT"]
        out: list[tuple[Series, ...]] = []
        for p in series:
            if p.facts.modality != "PT":
                continue
            mine = [c for c in cts if p.facts.frame_of_reference_uid
                    and c.facts.frame_of_reference_uid == p.facts.frame_of_reference_uid]
            if mine:
                out.append((p, max(mine, key=lambda c: c.shape[0])))
            else:
                out.append((p,))
        return out

    def run_group(self, group: tuple[Series, ...], **params: Any) -> list[Result]:
        pet = next((s for s in group if s.facts.modality == "PT"), None)
        ct = next((s for s in group if s.facts.modality == "CT"), None)
        if pet is None:
            raise AnalysisError("the liver noise needs a PET series")
        return [measure_liver_noise(pet, ct, self, **params)]

    def figures(self, result: Result) -> list[Any]:
        """The coronal PET slice through the liver VOI with its outline (where a VOI was
        placed) and the axial slice through the blood-pool cylinder with its outline."""
        from scanbench.report.figures import RoiShape, slice_with_rois

        ev = result.evidence
        figs: list[Any] = []
        unit = ev.get("unit", "g/mL")
        if "coronal" in ev:
            figs.append(slice_with_rois(
                ev["coronal"], ev["spacing_zx"],
                [RoiShape(ev["coronal_yx"], ev["voi_radius_mm"], "liver VOI", "#e6194b")],
                "Coronal PET through the liver VOI (3 cm sphere, right lobe)", unit=unit,
                view_margin_mm=120.0, y_title="mm from the top slice (head on top)"))
        if "aorta_axial" in ev:
            figs.append(slice_with_rois(
                ev["aorta_axial"], ev["spacing_yx"],
                [RoiShape(ev["aorta_yx"], 5.0, "blood pool", "#4363d8")],
                "Axial PET through the descending-aorta blood pool (1 cm × 2 cm cylinder)",
                unit=unit, view_margin_mm=80.0))
        return figs
