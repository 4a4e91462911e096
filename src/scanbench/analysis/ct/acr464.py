"""``ct.acr464`` — the ACR CT accreditation phantom (Gammex 464), all four modules.

What each measurement implements (STANDARDS.md B.1; ACR CT phantom testing
instructions and the ACR phantom scoring page):

- module 1: ``ct_number_hu{material}`` — the mean CT number of water, air,
  polyethylene, acrylic and the bone-mimicking insert in a 10 mm ROI at each
  insert's centre (pylinac's placement), averaged over the module's slices;
  uncertainty the standard error of the per-slice means. ``slice_thickness_mm``
  — the FWHM of each of the two ramps' profiles along the ramp times its rise
  in z per mm (0.5), averaged over ramps and slices
  (:mod:`scanbench.analysis.ct.phantom_modules`).
- module 2: ``low_contrast_cnr`` — |mean(25 mm rod ROI) − mean(background
  ROI)| / SD(background ROI), 6 mm ROIs 60 mm from the centre at 12 o'clock and
  at −115° (the ACR guidance as quoted by pylinac [C]), per slice, averaged.
- module 3: ``ct_number_water_hu`` (centre ROI mean), ``noise_hu`` (centre ROI
  SD, per slice, averaged), ``uniformity_deviation_hu{position}`` (edge − centre
  at 12, 3, 6 and 9 o'clock, 11 mm ROIs 66 mm out) and
  ``uniformity_max_deviation_hu`` (the largest |edge − centre|: the ACR scoring
  page counts 5–7 HU a minor and > 7 HU a major deficiency — the acr-ct spec
  puts ±5 on each position and 7 on the maximum, so a position failing while the
  maximum passes is a minor deficiency). ``distance_accuracy_mm`` — the distance
  between the two BBs (intensity centroids) minus its nominal 100 mm; the
  measured distance is ``bb_distance_mm``. ``mtf50_lp_per_cm`` /
  ``mtf10_lp_per_cm`` — the task transfer function of the phantom's own circular
  edge against air (AAPM TG-233's circular-edge method, via
  :func:`scanbench.analysis.ct.mtf.mtf_from_circular_edge`).
- module 4: ``bar_modulation{lp_per_cm}`` — MTF at each bar pattern's
  frequency by the fundamental-harmonic bar method, on the mean of the module's
  slices, and ``high_contrast_resolution_lp_per_cm`` — the highest pattern
  resolved by the objective criterion (MTF ≥ 0.10 and amplitude > 3 standard
  errors), patterns counted upwards from 4 lp/cm until the first one that is not.

The phantom is found automatically: each slice is classed by what it shows
(module 1: the air insert on the 63 mm ring; module 2: a ~90 HU background;
module 3: a uniform water-equivalent disk; module 4: bar patterns on the
70 mm ring) and the four-module layout (40 mm each) is fitted to the classes
along z, so any table position, a partial phantom, missing end slices or a
single-module series are handled. The rotation (and a mirrored layout) comes
from module 1's inserts, or module 4's bar patterns when module 1 is absent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from scanbench.analysis.base import Parameter, result_for
from scanbench.analysis.ct import phantom_modules as pm
from scanbench.analysis.memo import memo
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError
from scanbench.phantoms import acr_ct as acr
from scanbench.types import Result, Series


@dataclass
class AcrLayout:
    """Where the ACR phantom lies in a series."""

    z_mm: np.ndarray  # slice positions along the normal, mm
    classes: np.ndarray  # per slice: 0 none / not recognised, 1..4 module
    body_ok: np.ndarray
    centres_yx: np.ndarray  # (nz, 2) body centre per slice (NaN where no body)
    module1_z_mm: float
    direction: int  # +1: module 2 at larger z; 0 unknown (one module only)
    present: dict[int, np.ndarray] = field(default_factory=dict)  # module -> slice indices
    frame: pm.Frame | None = None
    warnings: list[str] = field(default_factory=list)
    z_refined: bool = False  # module positions from partial-volume slices at a boundary

    def module_z(self, k: int) -> float:
        return self.module1_z_mm + (self.direction or 1) * acr.MODULE_DEPTH_MM * (k - 1)


def _thickness(series: Series) -> float:
    ct = series.facts.ct
    return float(ct.slice_thickness_mm) if ct and ct.slice_thickness_mm else float(
        series.spacing[0])


def _refine_z(z: np.ndarray, level: np.ndarray, z1: float, d: int, t: float
              ) -> tuple[float, bool]:
    """Module 1's centre from the slices that straddle the module 1|2 or 2|3 boundary.

    The median HU near the centre is ~0 in modules 1 and 3 and ~90 in module 2; a slice
    that straddles a boundary reads the fraction of its (rectangular) sensitivity profile
    in module 2 times 90, which places the boundary to a fraction of a millimetre. The
    fitted layout (good to half a slice spacing) says which boundary a slice is near."""
    est = []
    for k in np.flatnonzero(np.isfinite(level)):
        frac = level[k] / acr.LOW_CONTRAST_BACKGROUND_HU
        if not 0.1 < frac < 0.9:
            continue
        for b_rel, m2_side in ((acr.MODULE_DEPTH_MM / 2, +1), (1.5 * acr.MODULE_DEPTH_MM, -1)):
            zb = z1 + d * b_rel  # boundary position (1|2 or 2|3) predicted by the fit
            if abs(z[k] - zb) > t / 2 + 5.0:
                continue
            # module 2 lies at +m2_side·d from the boundary: slice centre offset
            # (frac − 0.5)·t into module 2
            est.append(z[k] - m2_side * d * (frac - 0.5) * t - d * b_rel)
    if not est:
        return z1, False
    return float(np.median(est)), True


def _z_positions(series: Series) -> np.ndarray:
    return pm.slice_positions(series.affine, series.shape[0])


def _classify(img: np.ndarray, spacing: tuple[float, float],
              body: pm.Body | pm.LargeBody | None
              ) -> tuple[int, tuple[float, float], bool, float]:
    """(module class 0..4, body centre, body recognised, median HU within 40 mm of the
    centre) of one slice; ``body``: its :func:`~pm.find_bodies` entry (a
    :class:`~pm.LargeBody`, larger than 112 mm and not cut, is what the size test below
    turns away)."""
    if body is None or isinstance(body, pm.LargeBody) or body.radius_mm < 50.0:
        return 0, (math.nan, math.nan), False, math.nan
    if body.touches_edge:
        return -1, body.centre_yx, True, math.nan
    if abs(body.radius_mm - acr.RADIUS_MM) > 12.0 or body.axis_ratio < pm.MIN_PHANTOM_AXIS_RATIO:
        # not the 200 mm circular section: another object, or a patient's body (wider
        # than deep) of about the phantom's area
        return 0, (math.nan, math.nan), False, math.nan
    frame = pm.Frame(body.centre_yx, spacing)
    sm = ndimage.gaussian_filter(np.asarray(img, float), (1.0 / spacing[0], 1.0 / spacing[1]))
    _, ring63 = pm.ring_profile(sm, frame, acr.INSERT_DISTANCE_MM, width_mm=6.0)
    _, ring70 = pm.ring_profile(sm, frame, acr.BAR_DISTANCE_MM, width_mm=6.0)
    yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
    r = np.hypot((yy - body.centre_yx[0]) * spacing[0], (xx - body.centre_yx[1]) * spacing[1])
    centre = float(np.median(img[r < 40.0]))
    if ring63.min() < -500.0:
        return 1, body.centre_yx, True, centre
    if ring70.max() > 300.0 and ring70.std() > 80.0 and pm.bright_runs(ring70, 300.0) >= 4:
        # module 4's eight bar patterns, 45° apart round the ring: at least half of them
        # stand apart (a patient's vertebra on the ring is one arc)
        return 4, body.centre_yx, True, centre
    if 45.0 <= centre <= 150.0 and ring70.std() < 40.0 \
            and abs(float(np.median(ring70)) - centre) < 30.0:
        # module 2 is one material (90 HU) out to its edge, its rods 6 HU above it: the
        # 70 mm ring reads the centre's level (a patient's trunk there holds bone, fat and
        # organs of other CT numbers)
        return 2, body.centre_yx, True, centre
    if -45.0 <= centre < 45.0 and ring70.std() < 40.0:
        return 3, body.centre_yx, True, centre
    return 0, body.centre_yx, True, centre


def locate(series: Series) -> AcrLayout:
    """Find the phantom's modules along z (memoised per series)."""
    return memo(series, "ct.acr464.layout", lambda: _locate(series))


def _locate(series: Series) -> AcrLayout:
    v = np.asarray(series.voxels)
    if v.ndim != 3:
        raise AnalysisError("not a volume")
    _, dy, dx = series.spacing
    z = _z_positions(series)
    n = v.shape[0]
    classes = np.zeros(n, dtype=int)
    body_ok = np.zeros(n, dtype=bool)
    centres = np.full((n, 2), np.nan)
    level = np.full(n, np.nan)
    # classify on pixels of about 1.2 mm: the features are centimetres across
    step = max(1, int(1.2 / min(dy, dx)))
    bodies = pm.find_bodies(series, step)  # shared with the CatPhan detector
    for k in range(n):
        c, cen, ok, level[k] = _classify(v[k, ::step, ::step], (dy * step, dx * step),
                                         bodies[k])
        classes[k] = c
        body_ok[k] = ok
        centres[k] = (cen[0] * step, cen[1] * step)
    if (classes == -1).sum() > max(1, 0.3 * body_ok.sum()):
        raise AnalysisError(
            "the phantom is cut by the edge of the image or of the reconstruction circle "
            f"on {(classes == -1).sum()} of {n} slices: reconstruct with a field of view "
            "larger than the 200 mm phantom (ACR asks for about 210-250 mm)")
    seen = sorted({int(c) for c in classes if c > 0})
    if not seen:
        raise AnalysisError("no slice shows an ACR CT 464 module (no 200 mm phantom with the "
                            "module 1 inserts, the module 4 bar patterns, or the uniform "
                            "module): not the ACR phantom")
    best: tuple[int, float, int] | None = None
    zmin, zmax = float(z.min()), float(z.max())
    cand = np.arange(zmin - 4 * acr.MODULE_DEPTH_MM, zmax + 4 * acr.MODULE_DEPTH_MM, 0.5)
    scores_by: dict[tuple[int, float], int] = {}
    for d in (1, -1):
        for z1 in cand:
            pred = np.zeros(n, dtype=int)
            rel = (z - z1) * d
            kmod = np.floor((rel + acr.MODULE_DEPTH_MM / 2) / acr.MODULE_DEPTH_MM).astype(int) + 1
            inside = (kmod >= 1) & (kmod <= 4)
            pred[inside] = kmod[inside]
            obs = classes > 0
            score = int(((pred == classes) & obs).sum() - ((pred != classes) & obs).sum()
                        - (inside & ~body_ok).sum())
            scores_by[(d, float(z1))] = score
            if best is None or score > best[0]:
                best = (score, float(z1), d)
    assert best is not None
    # the centre of the plateau of equally good positions, for that direction
    top = [z1 for (d, z1), s in scores_by.items() if d == best[2] and s == best[0]]
    top_arr = np.array(sorted(top))
    runs = np.split(top_arr, np.flatnonzero(np.diff(top_arr) > 0.75) + 1)
    run = min(runs, key=lambda r: abs(float(r.mean()) - best[1]))
    z1 = float(run.mean())
    direction = best[2] if len(seen) > 1 else 0
    z1, refined = _refine_z(z, level, z1, best[2], _thickness(series))
    layout = AcrLayout(z, classes, body_ok, centres, z1, direction)
    layout.z_refined = refined
    for k in range(1, 5):
        zc = layout.module_z(k) if direction else z1 + acr.MODULE_DEPTH_MM * (k - 1) * best[2]
        idx = np.flatnonzero((np.abs(z - zc) < acr.MODULE_DEPTH_MM / 2) & (classes == k))
        if idx.size:
            layout.present[k] = idx
    if len(seen) == 1:
        layout.warnings.append(
            f"only {acr.MODULE_TITLES[seen[0]]} is in this series: the other modules are "
            "not measured")
    else:
        for k in range(1, 5):
            if k not in layout.present:
                layout.warnings.append(f"{acr.MODULE_TITLES[k]} is not in this series "
                                       "(partial scan): it is not measured")
    return layout


def _stack(series: Series, idx: np.ndarray) -> np.ndarray:
    return np.asarray(series.voxels[idx], dtype=np.float32)


def _core(layout: AcrLayout, k: int, margin_mm: float) -> np.ndarray:
    """The module's slices at least ``margin_mm`` inside its faces, plus half the slice
    spacing when the module positions are only known to that (not refined)."""
    idx = layout.present.get(k, np.zeros(0, dtype=int))
    zc = layout.module_z(k) if layout.direction else float(layout.z_mm[idx].mean())
    if not layout.z_refined and layout.z_mm.size > 1:
        margin_mm += float(np.median(np.diff(layout.z_mm))) / 2
    half = acr.MODULE_DEPTH_MM / 2 - margin_mm
    core = idx[np.abs(layout.z_mm[idx] - zc) <= max(half, 0.0)]
    return core if core.size else idx


def _frame_for(series: Series, layout: AcrLayout, idx: np.ndarray) -> pm.Frame:
    _, dy, dx = series.spacing
    c = np.nanmean(layout.centres_yx[idx], axis=0)
    return pm.Frame((float(c[0]), float(c[1])), (dy, dx))


def _module1_mismatch(series: Series, layout: AcrLayout) -> float:
    """Mean |measured − nominal| (HU, clipped at 300) of the module 1 materials at the
    best rotation: small for the ACR phantom, large for another phantom with air inserts."""
    idx = _core(layout, 1, 3.0)
    img = _stack(series, idx).mean(axis=0)
    feats = [(i.angle_deg, i.distance_mm, i.hu) for i in acr.MATERIALS]
    _, cost = pm.fit_orientation(img, _frame_for(series, layout, idx), feats, smooth_mm=3.0)
    return cost


def _orientation(series: Series, layout: AcrLayout) -> tuple[pm.Frame | None, str]:
    """The rotation from module 1's inserts, else module 4's patterns."""
    _, _dy, _dx = series.spacing
    if 1 in layout.present:
        idx = _core(layout, 1, 3.0)
        img = _stack(series, idx).mean(axis=0)
        f0 = _frame_for(series, layout, idx)
        feats = [(i.angle_deg, i.distance_mm, i.hu) for i in acr.MATERIALS]
        frame, cost = pm.fit_orientation(img, f0, feats, smooth_mm=3.0)
        for _ in range(2):
            frame = pm.refine_pose(img, frame, feats, acr.INSERT_DIAMETER_MM / 2)
        return frame, f"module 1 inserts (mean mismatch {cost:.0f} HU)"
    if 4 in layout.present:
        idx = layout.present[4]
        img = _stack(series, idx).mean(axis=0)
        f0 = _frame_for(series, layout, idx)
        feats = [(a, acr.BAR_DISTANCE_MM, acr.BAR_HU / 2) for a in acr.BAR_PATTERNS.values()]
        feats += [(a + 22.5, acr.BAR_DISTANCE_MM, 0.0) for a in acr.BAR_PATTERNS.values()]
        fr, _ = pm.fit_orientation(img, f0, feats, smooth_mm=3.0, mirrors=(1,))
        # the eight squares look alike: which one is 4 lp/cm is told by the bars' own
        # frequencies (the wrong assignment fits its bars at the wrong frequency)
        best: tuple[float, pm.Frame] | None = None
        for m in (1, -1):
            for k in range(8):
                # the squares sit every 45°, so a mirrored layout also lies at θ + 45°k
                cand = pm.Frame(fr.centre_yx, fr.spacing_yx, fr.angle_deg + 45.0 * k, m)
                amp = sum(abs(_bar(img, cand, lp, 0.0, 1.0).amplitude_hu)
                          for lp in list(acr.BAR_PATTERNS)[:4])
                if best is None or amp > best[0]:
                    best = (amp, cand)
        assert best is not None
        return best[1], "module 4 bar patterns (their frequencies)"
    return None, "no module with a rotation reference"


def _bar(img: np.ndarray, f: pm.Frame, lp: float, background: float,
         noise: float) -> pm.BarModulation:
    """The bar MTF of the ``lp`` lp/cm square of module 4 (bars across the radius)."""
    ang = acr.BAR_PATTERNS[lp]
    p = 10.0 / lp
    half = acr.BAR_SQUARE_MM / 2
    n_bars = math.floor((acr.BAR_SQUARE_MM - p / 2) / p) + 1
    a = math.radians(ang)
    ru, rv = math.cos(a), math.sin(a)
    cu, cv = acr.polar(ang, acr.BAR_DISTANCE_MM)
    first = (cu + (-half + p / 4) * ru, cv + (-half + p / 4) * rv)
    return pm.bar_modulation(img, f, first, (ru, rv), lp, n_bars, acr.BAR_SQUARE_MM,
                             background, noise)


@register
class Acr464:
    """ACR CT accreditation phantom: CT numbers, slice width, low contrast, uniformity,
    noise, distance accuracy, high-contrast resolution."""

    id: ClassVar[str] = "ct.acr464"
    modality: ClassVar[str] = "CT"
    standard: ClassVar[str] = (
        "ACR CT Accreditation Program: CT phantom testing instructions and phantom scoring "
        "(revised 12-21-2021) for the ACR 464 phantom; bar modulation by the fundamental-harmonic "
        "method (Droege and Morin 1982); edge TTF as in AAPM Report 233 (2019) (see "
        "docs/standards/acr-ct.md)")
    title: ClassVar[str] = "ACR CT phantom (464)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("protocol", "the ACR protocol the scan follows (adult_head, adult_abdomen, "
                  "pediatric_head, pediatric_abdomen): chooses the ACR CTDIvol limit", "",
                  "none: CTDIvol reported without a limit"),
    )

    def detect(self, series: Series) -> float:
        try:
            if series.facts.modality != "CT" or series.voxels.ndim != 3:
                return 0.0
            layout = locate(series)
            n = len(layout.present)
            if n == 0:
                return 0.05
            if 1 in layout.present and _module1_mismatch(series, layout) > 80.0:
                return 0.1  # air on the insert ring, but not the ACR materials (a CatPhan?)
            if n == 1 and 3 in layout.present:
                # a lone uniform module is also a water phantom: claim it only with its BBs
                return 0.9 if self._bbs(series, layout) is not None else 0.3
            return 0.95 if n >= 2 or 1 in layout.present or 4 in layout.present else 0.7
        except AnalysisError:
            return 0.05
        except Exception:
            return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        from scanbench.analysis.ct.common import check_axial

        check_axial(series)  # localisers and reformats are refused by name
        layout = locate(series)
        result = result_for(self, series)
        result.warnings.extend(layout.warnings)
        frame, how = _orientation(series, layout)
        layout.frame = frame
        if frame is not None:
            result.parameters["rotation_deg"] = round(frame.angle_deg, 2)
            result.parameters["mirrored"] = frame.mirror < 0
            result.parameters["rotation_from"] = how
            if abs(frame.angle_deg) > 15.0 and frame.mirror > 0:
                result.warnings.append(
                    f"the phantom is rotated {frame.angle_deg:.1f}° about its axis: level it "
                    "(ACR asks for the phantom aligned to the lasers)")
        result.parameters["modules_found"] = sorted(layout.present)
        result.parameters["module1_z_mm"] = round(layout.module1_z_mm, 2)
        thick = series.facts.ct.slice_thickness_mm if series.facts.ct else None
        t_nom = float(thick) if thick else float(series.spacing[0])
        ev: dict[str, Any] = {"spacing_yx": tuple(series.spacing[1:])}
        if 1 in layout.present and frame is not None:
            self._module1(series, layout, frame, t_nom, result, ev)
        if 2 in layout.present:
            self._module2(series, layout, frame, t_nom, result, ev)
        if 3 in layout.present:
            self._module3(series, layout, frame, t_nom, result, ev)
        if 4 in layout.present:
            self._module4(series, layout, frame, result, ev)
        ct = series.facts.ct
        if ct is not None and ct.ctdivol_mgy is not None:
            result.add("ctdivol_mgy", ct.ctdivol_mgy, "mGy",
                       labels={"phantom_cm": ct.ctdi_phantom_cm or "unknown"})
        if "protocol" in params:
            # which ACR protocol this scan is (adult_head, adult_abdomen, pediatric_head,
            # pediatric_abdomen): the acr-ct spec's CTDIvol limits depend on it
            result.parameters["protocol"] = str(params["protocol"]).strip().lower()
        result.evidence = ev
        return result

    # ---------------------------------------------------------------- module 1
    def _module1(self, series: Series, layout: AcrLayout, frame: pm.Frame, t_nom: float,
                 result: Result, ev: dict[str, Any]) -> None:
        idx = _core(layout, 1, t_nom / 2 + 2.0)
        stack = _stack(series, idx)
        rois = []
        stats = []
        for ins in acr.MATERIALS:
            c = frame.polar_pixel(ins.angle_deg, ins.distance_mm)
            stats.append(pm.roi_stats(stack, frame, c, acr.HU_ROI_RADIUS_MM))
            rois.append((c, acr.HU_ROI_RADIUS_MM, ins.name))
        sem = pm.pooled_sem(stats)
        for ins, st in zip(acr.MATERIALS, stats, strict=True):
            result.add("ct_number_hu", st.mean, "HU", labels={"material": ins.name},
                       uncertainty=sem if sem is not None else st.sem)
        # slice width: ramps, on slices whose visible ramp part lies inside the profile
        widths = []
        profiles = []
        noise_sd = max(self._noise(series, layout, idx, frame), 1.0)
        edge = acr.RAMP_HALF_LENGTH_MM - 0.5
        for k in layout.present[1]:
            for v0 in acr.RAMP_V_MM:
                rp = pm.ramp_profile(series.voxels[k], frame, (0.0, v0), (1.0, 0.0),
                                     acr.RAMP_HALF_LENGTH_MM + 8.0, acr.RAMP_WIDTH_MM)
                if rp is None or rp.peak - rp.background < 10.0 * noise_sd:
                    continue
                # the ramp seen whole: neither half-maximum crossing at its ends
                if rp.left_mm < -edge or rp.right_mm > edge:
                    continue
                widths.append(rp.fwhm_mm * acr.RAMP_DZ_PER_MM)
                profiles.append((int(k), v0, rp))
        if widths:
            w = np.asarray(widths)
            result.add("slice_thickness_mm", float(w.mean()), "mm",
                       uncertainty=float(w.std(ddof=1) / math.sqrt(w.size)) if w.size > 1
                       else None)
            result.parameters["slice_thickness_ramps_used"] = int(w.size)
        else:
            result.warnings.append("no slice shows a whole slice-width ramp in module 1: no "
                                   "slice thickness")
        k_mid = int(idx[len(idx) // 2])
        ev["module1"] = {"image": np.asarray(series.voxels[k_mid], np.float32),
                         "rois": rois, "ramps": profiles[:2]}

    @staticmethod
    def _noise(series: Series, layout: AcrLayout, idx: np.ndarray, frame: pm.Frame) -> float:
        """Pixel SD in a 15 mm ROI at the module's centre (free of inserts and ramps)."""
        st = pm.roi_stats(_stack(series, idx), frame, frame.centre_yx, 15.0)
        return st.sd

    # ---------------------------------------------------------------- module 2
    def _module2(self, series: Series, layout: AcrLayout, frame: pm.Frame | None, t_nom: float,
                 result: Result, ev: dict[str, Any]) -> None:
        idx = _core(layout, 2, t_nom / 2 + 2.0)
        f = frame or _frame_for(series, layout, idx)
        if frame is None:
            result.warnings.append("module 2 read with the phantom assumed level (no rotation "
                                   "reference in this series)")
        c = np.nanmean(layout.centres_yx[idx], axis=0)
        f = pm.Frame((float(c[0]), float(c[1])), f.spacing_yx, f.angle_deg, f.mirror)
        rod = f.polar_pixel(acr.LOW_CONTRAST_ROD.angle_deg, acr.LOW_CONTRAST_ROD.distance_mm)
        bg = f.polar_pixel(acr.LOW_CONTRAST_BACKGROUND_ANGLE_DEG, acr.LOW_CONTRAST_ROD.distance_mm)
        cnrs = []
        for k in idx:
            s = _stack(series, np.array([k]))
            a = pm.roi_stats(s, f, rod, acr.LOW_CONTRAST_ROI_RADIUS_MM)
            b = pm.roi_stats(s, f, bg, acr.LOW_CONTRAST_ROI_RADIUS_MM)
            if b.sd > 0:
                cnrs.append(abs(a.mean - b.mean) / b.sd)
        if cnrs:
            c = np.asarray(cnrs)
            result.add("low_contrast_cnr", float(c.mean()), "1",
                       uncertainty=float(c.std(ddof=1) / math.sqrt(c.size)) if c.size > 1
                       else None)
        k_mid = int(idx[len(idx) // 2])
        ev["module2"] = {"image": np.asarray(series.voxels[k_mid], np.float32),
                         "rois": [(rod, acr.LOW_CONTRAST_ROI_RADIUS_MM, "25 mm rod"),
                                  (bg, acr.LOW_CONTRAST_ROI_RADIUS_MM, "background")]}

    # ---------------------------------------------------------------- module 3
    def _bbs(self, series: Series, layout: AcrLayout) -> tuple[tuple[float, float],
                                                                tuple[float, float]] | None:
        idx = layout.present.get(3)
        if idx is None or idx.size == 0:
            return None
        img = _stack(series, idx).mean(axis=0)
        f = _frame_for(series, layout, idx)
        _, dy, dx = series.spacing
        yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
        r = np.hypot((yy - f.centre_yx[0]) * dy, (xx - f.centre_yx[1]) * dx)
        ring = (np.abs(r - 50.0) < 6.0)
        cand = np.where(ring, img, -np.inf)
        bg = float(np.median(img[ring]))
        found = []
        for _ in range(2):
            i = int(np.argmax(cand))
            py, px = divmod(i, img.shape[1])
            if not cand[py, px] > bg + 150.0:
                return None
            win = (np.abs(yy - py) * dy <= 2.5) & (np.abs(xx - px) * dx <= 2.5)
            w = np.clip(img - bg, 0, None) * win
            found.append((float((yy * w).sum() / w.sum()), float((xx * w).sum() / w.sum())))
            cand[(np.abs(yy - py) * dy <= 8.0) & (np.abs(xx - px) * dx <= 8.0)] = -np.inf
        (y0, x0), (y1, x1) = found
        if abs(math.hypot((y1 - y0) * dy, (x1 - x0) * dx) - acr.DISTANCE_NOMINAL_MM) > 10.0:
            return None
        return found[0], found[1]

    def _module3(self, series: Series, layout: AcrLayout, frame: pm.Frame | None, t_nom: float,
                 result: Result, ev: dict[str, Any]) -> None:
        idx = _core(layout, 3, t_nom / 2 + 2.0)
        stack = _stack(series, idx)
        f0 = _frame_for(series, layout, idx)
        f = pm.Frame(f0.centre_yx, f0.spacing_yx, frame.angle_deg if frame else 0.0,
                     frame.mirror if frame else 1)
        centre = pm.roi_stats(stack, f, f.centre_yx, acr.UNIFORMITY_ROI_RADIUS_MM)
        result.add("ct_number_water_hu", centre.mean, "HU", uncertainty=centre.sem)
        result.add("noise_hu", centre.sd, "HU")
        rois = [(f.centre_yx, acr.UNIFORMITY_ROI_RADIUS_MM, "centre")]
        devs = []
        for pos, ang in acr.UNIFORMITY_POSITIONS.items():
            # the o'clock positions are on the image, whatever the phantom's rotation
            a = math.radians(ang)
            c = (f.centre_yx[0] + acr.UNIFORMITY_ROI_DISTANCE_MM * math.sin(a) / f.spacing_yx[0],
                 f.centre_yx[1] + acr.UNIFORMITY_ROI_DISTANCE_MM * math.cos(a) / f.spacing_yx[1])
            st = pm.roi_stats(stack, f, c, acr.UNIFORMITY_ROI_RADIUS_MM)
            d = st.mean - centre.mean
            devs.append(d)
            result.add("uniformity_deviation_hu", d, "HU", labels={"position": pos},
                       uncertainty=math.hypot(st.sem, centre.sem))
            rois.append((c, acr.UNIFORMITY_ROI_RADIUS_MM, pos))
        result.add("uniformity_max_deviation_hu", float(max(abs(d) for d in devs)), "HU")
        bbs = self._bbs(series, layout)
        if bbs is not None:
            (y0, x0), (y1, x1) = bbs
            dy, dx = f.spacing_yx
            dist = math.hypot((y1 - y0) * dy, (x1 - x0) * dx)
            result.add("bb_distance_mm", dist, "mm")
            result.add("distance_accuracy_mm", dist - acr.DISTANCE_NOMINAL_MM, "mm")
        else:
            result.warnings.append("the module 3 BBs were not found: no distance accuracy")
        self._edge_mtf(series, stack, f, result, ev)
        k_mid = int(idx[len(idx) // 2])
        ev["module3"] = {"image": np.asarray(series.voxels[k_mid], np.float32), "rois": rois,
                         "bbs": bbs}

    def _edge_mtf(self, series: Series, stack: np.ndarray, f: pm.Frame, result: Result,
                  ev: dict[str, Any]) -> None:
        try:
            from scanbench.analysis.ct.mtf import mtf_from_circular_edge
        except ImportError:
            return
        mid = len(stack) // 2  # three central slices hold plenty of edge
        try:
            curve = mtf_from_circular_edge(stack[max(mid - 1, 0):mid + 2], f.spacing_yx[0],
                                           f.centre_yx, acr.RADIUS_MM)
        except Exception as exc:  # an edge that cannot be read leaves the rest standing
            result.warnings.append(f"no MTF from the phantom edge: {exc}")
            return
        lab = {"method": "phantom edge"}
        result.add("mtf50_lp_per_cm", curve.mtf50_lp_per_cm, "lp/cm", labels=lab)
        result.add("mtf10_lp_per_cm", curve.mtf10_lp_per_cm, "lp/cm", labels=lab)
        ev["mtf"] = curve

    # ---------------------------------------------------------------- module 4
    def _module4(self, series: Series, layout: AcrLayout, frame: pm.Frame | None,
                 result: Result, ev: dict[str, Any]) -> None:
        idx = _core(layout, 4, 3.0)
        img = _stack(series, idx).mean(axis=0)
        f0 = _frame_for(series, layout, idx)
        f = pm.Frame(f0.centre_yx, f0.spacing_yx, frame.angle_deg if frame else 0.0,
                     frame.mirror if frame else 1)
        _, dy, dx = series.spacing
        yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
        r = np.hypot((yy - f.centre_yx[0]) * dy, (xx - f.centre_yx[1]) * dx)
        bg_pix = img[(r > 30.0) & (r < 45.0)]
        background = float(np.median(bg_pix))
        noise = float(np.asarray(series.voxels[idx][:, r < 25.0], float).std(axis=1).mean())
        noise_mean = noise / math.sqrt(len(idx))
        mods = []
        half = acr.BAR_SQUARE_MM / 2
        for lp, ang in acr.BAR_PATTERNS.items():
            p = 10.0 / lp
            n_bars = math.floor((acr.BAR_SQUARE_MM - p / 2) / p) + 1
            a = math.radians(ang)
            ru, rv = math.cos(a), math.sin(a)
            cu, cv = acr.polar(ang, acr.BAR_DISTANCE_MM)
            first = (cu + (-half + p / 4) * ru, cv + (-half + p / 4) * rv)
            m = pm.bar_modulation(img, f, first, (ru, rv), lp, n_bars, acr.BAR_SQUARE_MM,
                                  background, noise_mean)
            mods.append(m)
            result.add("bar_modulation", m.mtf, "1", labels={"lp_per_cm": lp})
        best = pm.highest_resolved(mods)
        if best is None:
            result.warnings.append("no bar pattern is resolved (not even 4 lp/cm)")
            result.add("high_contrast_resolution_lp_per_cm", 0.0, "lp/cm")
        else:
            result.add("high_contrast_resolution_lp_per_cm", best, "lp/cm")
        result.parameters["resolution_criterion"] = (
            f"bar MTF >= {pm.RESOLVED_MTF} and amplitude > {pm.SIGNIFICANCE} SE")
        ev["module4"] = {"image": img, "frame": f, "mods": mods}

    # ---------------------------------------------------------------- figures
    def figures(self, result: Result) -> list[Any]:
        """Each module's slice with its ROIs; the ramp profiles; bar modulation against
        frequency; the edge MTF when measured."""
        from scanbench.report.figures import (
            CT_SOFT_TISSUE,
            CT_WIDE,
            LOW_CONTRAST_WIDTH_HU,
            RoiShape,
            bar_mtf_figure,
            profile_figure,
            slice_with_rois,
            window_around,
        )
        from scanbench.report.numbers import format_number

        ev = result.evidence
        if not ev:
            return []
        figs: list[Any] = []
        sp = ev["spacing_yx"]
        # Each module in the window its test is read in: air to bone for the CT-number
        # inserts, a narrow window on the background for the low-contrast rod, soft
        # tissue for uniformity.
        for key, title in (("module1", "Module 1: CT-number ROIs"),
                           ("module2", "Module 2: low-contrast ROIs"),
                           ("module3", "Module 3: uniformity ROIs")):
            if key in ev:
                img = np.asarray(ev[key]["image"], dtype=float)
                window = {"module1": CT_WIDE, "module3": CT_SOFT_TISSUE}.get(key) or \
                    window_around(img, LOW_CONTRAST_WIDTH_HU, "low-contrast",
                                  inside=img > -300.0)
                rois = [RoiShape(tuple(c), r, lab) for c, r, lab in ev[key]["rois"]]
                figs.append(slice_with_rois(img, sp, rois, title, unit="HU",
                                            view_margin_mm=20.0, window=window))
        if "module1" in ev:
            for k, v0, rp in ev["module1"]["ramps"]:
                fwhm = format_number(rp.fwhm_mm, decimals=2)
                width = format_number(rp.fwhm_mm * acr.RAMP_DZ_PER_MM, decimals=2)
                figs.append(profile_figure(
                    rp.position_mm, rp.values,
                    title=f"Slice-width ramp at v = {format_number(v0, digits=3)} mm "
                          f"(slice {k}): FWHM {fwhm} mm × {acr.RAMP_DZ_PER_MM} = {width} mm",
                    markers=[(rp.left_mm, rp.background + (rp.peak - rp.background) / 2, "½"),
                             (rp.right_mm, rp.background + (rp.peak - rp.background) / 2, "½")],
                    levels=[(rp.background, "background"), (rp.peak, "peak")],
                    x_title="along the ramp (mm)", y_title="HU"))
        if "module4" in ev:
            mods = ev["module4"]["mods"]
            figs.append(bar_mtf_figure(
                [m.lp_per_cm for m in mods], [m.mtf for m in mods], threshold=pm.RESOLVED_MTF,
                title="Module 4: bar-pattern MTF",
                rule=f"and amplitude > {pm.SIGNIFICANCE:g} SE"))
        if "mtf" in ev:
            c = ev["mtf"]
            figs.append(profile_figure(np.asarray(c.frequency_per_mm) * 10.0, c.mtf,
                                       title="Edge TTF (phantom edge)", x_title="lp/cm",
                                       y_title="MTF", levels=[(0.5, "50 %"), (0.1, "10 %")]))
        return figs
