"""``ct.catphan`` — the CatPhan family (500, 503, 504, 600, 604), module by module.

What each measurement implements (STANDARDS.md B.1/B.2 for the methods; the
geometry and its sources in :mod:`scanbench.phantoms.catphan`):

- **Sensitometry (CTP404 / CTP732 / CTP401)**: ``ct_number_hu{material}`` —
  the mean in a 3.5 mm ROI at each insert's centre (well inside the 12.2 mm
  insert, so the blurred edge does not reach it), averaged over the module's
  slices (uncertainty: standard error of the per-slice means; the second air
  insert is ``air_2``). The HU–electron-density line: least squares of the
  measured CT numbers against the inserts' relative electron densities
  (``hu_electron_density_slope_hu``, ``hu_electron_density_intercept_hu``,
  ``hu_electron_density_r_squared``). ``slice_thickness_mm`` — the 23° wire
  ramps: FWHM of each ramp's profile × tan 23° (0.42), over the ramps seen whole
  on every slice, averaged. ``mtf50_lp_per_cm`` / ``mtf10_lp_per_cm``
  ``{method: teflon edge}`` — the circular-edge task transfer function of the
  Teflon insert (AAPM TG-233; :func:`scanbench.analysis.ct.mtf.mtf_from_circular_edge`).
- **Uniformity (CTP486 / CTP712)**: ``ct_number_centre_hu`` (centre ROI mean) and
  ``noise_hu`` (SD in a 30 mm-radius ROI at the centre, averaged over slices),
  ``uniformity_deviation_hu{position}`` (edge − centre, 10 mm ROIs 50 mm out at 12,
  3, 6, 9 o'clock),
  ``uniformity_max_deviation_hu``, and the ICRU 87 NPS of the five ROIs' squares
  (:func:`scanbench.analysis.ct.nps.nps_2d`): ``nps_peak_frequency_per_mm``,
  ``nps_mean_frequency_per_mm``.
- **High resolution (CTP528 / CTP714)**: ``bar_modulation{lp_per_cm}`` — the
  fundamental-harmonic bar MTF of each line-pair group
  (:mod:`scanbench.analysis.ct.phantom_modules`), on the mean of the module's
  slices. The contrast it divides by is the group's own mean over whole periods
  minus the background right next to the group (bands just inside and outside
  the bars at the group's angles), so cone-beam cupping and a partial cut of the
  gauge by a thin slice cancel; each value carries its standard error from the
  pixel noise, and a group whose amplitude is within 3 standard errors of zero
  says so in its note (not resolved, the value is the noise floor).
  ``high_contrast_resolution_lp_per_cm`` (the same objective criterion as
  ``ct.acr464``); ``mtf50_lp_per_cm`` / ``mtf10_lp_per_cm`` ``{method: bead}``
  from the bead's point spread (:func:`scanbench.analysis.ct.mtf.mtf_from_point`),
  refused when the bead's integral is under 10 times its noise (``Catphan._bead``).
- **Low contrast (CTP515)**: ``low_contrast_cnr{diameter_mm, level}`` —
  |mean(rod ROI, 0.4 × diameter) − mean(background)| / SD(background), the
  background a 4 mm ROI on the same radius line at 0.75 of the rods' distance
  (pylinac's placement), per rod, on the mean of the module's slices, with its
  standard error (the pixel noise's correlation measured on the module's centre).
  A lone CTP515 slice is told from a uniform module by its rods (a matched filter
  round their ring, :func:`low_contrast_fit`), which also give its rotation.

Finding the phantom: every slice is classed (inserts with air on the 58.7 mm
ring: sensitometry; bars on the 47 mm ring: resolution; a flat disk: uniform),
and each model's module offsets are fitted to the classes along z; the model
whose layout and sensitometry inserts fit best is taken (``--param model=604``
overrides). Rotation and mirroring come from the inserts (any angle), found by
matching the measured CT numbers to the layout. A series holding one module
(a few slices, as exported for a quick check) is recognised and measured on its
own; which CatPhan it belongs to is then unknown and said so. A series of
isolated slices (one per module, as cone-beam QA exports them: read with their
own positions, :mod:`scanbench.dicom.geometry`) is measured slice by slice as the
module each shows. The insert pose is fitted after a linear calibration of the
nominal CT numbers (cone-beam CT numbers are not calibrated). A slice whose
200 mm housing is cut by a small field of view is fine as long as the module's
features are inside it (the phantom centre then comes from the insert ring).

Which analysis takes a lone uniformity module: ``ct.catphan`` when the CatPhan
outline is recognised (a ~200 mm housing with the 150 mm module's edge inside
it), otherwise ``ct.water`` — a uniform water cylinder is that analysis's
phantom.
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
from scanbench.phantoms import catphan as cp
from scanbench.types import Result, Series

SENS_ROI_RADIUS_MM = 3.5
# A uniform-looking slice is the CTP515 when its rods' pattern stands out this many
# robust SDs (low_contrast_fit); measured: real CTP486 slices (fan-beam, Elekta XVI) 1.9-3.1,
# the real Canon CTP515 slice 7.8.
LOW_CONTRAST_MIN_Z = 5.5
LC_BAND_MM = 10.0  # the band round the rods' ring that low_contrast_fit averages


BEAD_ROI_MM = 4.0
# The bead's integral over its ROI against the noise of that integral, below which its MTF
# is refused (an error of 1/10 of the MTF at every frequency; _bead's docstring).
BEAD_MIN_SNR = 10.0
NOISE_ROI_RADIUS_MM = 30.0
KINDS = ("sensitometry", "uniformity", "resolution", "low_contrast")
#: Separate bright arcs the CTP528 ring must show to be its line-pair groups: ten groups
#: 18-25° apart (the coarse four are resolved on any scanner); a patient's vertebra on
#: that ring is one arc (:func:`phantom_modules.bright_runs`)
MIN_BAR_GROUPS = 4


@dataclass
class SliceInfo:
    kind: str  # one of KINDS, "" when not recognised, "cut" when the body is cut
    centre_yx: tuple[float, float]
    housing: bool  # a ~200 mm body with a module edge inside it


@dataclass
class CatphanLayout:
    z_mm: np.ndarray
    kinds: list[str]
    centres_yx: np.ndarray
    model: str | None  # key of cp.MODELS, None when unknown (one module only)
    anchor_z_mm: float | None
    direction: int
    present: dict[str, np.ndarray] = field(default_factory=dict)
    housing: bool = False
    warnings: list[str] = field(default_factory=list)
    isolated: bool = False  # isolated slices (not a contiguous volume)


def _ring_blobs(img: np.ndarray, spacing: tuple[float, float]) -> tuple[float, float] | None:
    """Centre of the insert ring from the inserts themselves (when the housing is cut by
    the field of view): high-contrast blobs of about the insert size, circle-fitted."""
    dy, dx = spacing
    sm = ndimage.gaussian_filter(np.asarray(img, float), (1.0 / dy, 1.0 / dx))
    valid = sm > -2000
    med = float(np.median(sm[valid]))
    mask = (np.abs(sm - med) > 120.0) & valid
    lab, n = ndimage.label(mask)
    if n == 0:
        return None
    area_ins = math.pi * (cp.INSERT_DIAMETER_MM / 2) ** 2
    sizes = ndimage.sum(np.ones_like(sm), lab, index=np.arange(1, n + 1)) * dy * dx
    keep = [i + 1 for i, a in enumerate(sizes) if 0.5 * area_ins <= a <= 1.6 * area_ins]
    if len(keep) < 4:
        return None
    cents = np.array(ndimage.center_of_mass(mask, lab, keep)) * np.array([dy, dx])
    # vote for the centre that puts the most blobs on the insert ring (other objects —
    # ramps, holes, the housing — are outliers), then least squares on those inliers
    lo, hi = cents.min(axis=0) - cp.INSERT_RING_MM, cents.max(axis=0) + cp.INSERT_RING_MM
    gy, gx = np.mgrid[lo[0]:hi[0]:1.0, lo[1]:hi[1]:1.0]
    d = np.hypot(gy[..., None] - cents[:, 0], gx[..., None] - cents[:, 1])
    votes = (np.abs(d - cp.INSERT_RING_MM) < 3.0).sum(axis=-1)
    if votes.max() < 4:
        return None
    j = np.unravel_index(int(np.argmax(votes)), votes.shape)
    c0 = np.array([gy[j], gx[j]])
    inl = cents[np.abs(np.hypot(*(cents - c0).T) - cp.INSERT_RING_MM) < 3.0]
    # Kåsa circle fit: y² + x² = 2by + 2ax + c
    a_mat = np.column_stack([2 * inl[:, 0], 2 * inl[:, 1], np.ones(len(inl))])
    sol, *_ = np.linalg.lstsq(a_mat, (inl**2).sum(axis=1), rcond=None)
    cy, cx = sol[0], sol[1]
    r = math.sqrt(max(sol[2] + cx * cx + cy * cy, 0.0))
    if abs(r - cp.INSERT_RING_MM) > 0.1 * cp.INSERT_RING_MM:
        return None
    return float(cy / dy), float(cx / dx)


def _housing(img: np.ndarray, frame: pm.Frame) -> bool:
    """A step or a thin ring at the 75 mm module edge inside the housing."""
    _, a = pm.ring_profile(img, frame, cp.MODULE_RADIUS_MM, width_mm=2.0)
    _, b = pm.ring_profile(img, frame, 65.0, width_mm=6.0)
    _, c = pm.ring_profile(img, frame, 87.0, width_mm=6.0)
    edge, inner, outer = float(np.median(a)), float(np.median(b)), float(np.median(c))
    return abs(edge - inner) > 8.0 or abs(outer - inner) > 30.0


def _classify(img: np.ndarray, spacing: tuple[float, float],
              body: pm.Body | pm.LargeBody | None) -> SliceInfo:
    """What one slice shows; ``body``: its :func:`~pm.find_bodies` entry."""
    if isinstance(body, pm.LargeBody):
        # larger than the 200 mm housing (100 ± 10 mm) and not cut: no centre below
        return SliceInfo("", (math.nan, math.nan), False)
    dy, dx = spacing
    centre: tuple[float, float] | None = None
    housing = False
    if body is not None and not body.touches_edge and abs(body.radius_mm - 100.0) < 10.0:
        if body.axis_ratio < pm.MIN_PHANTOM_AXIS_RATIO:
            # the area of the 200 mm housing but not its circle: a patient's body
            return SliceInfo("", (math.nan, math.nan), False)
        centre = body.centre_yx
        housing = True
    elif body is not None and body.touches_edge:
        centre = _ring_blobs(img, spacing)
        if centre is None:
            return SliceInfo("cut", (math.nan, math.nan), False)
    if centre is None:
        return SliceInfo("", (math.nan, math.nan), False)
    frame = pm.Frame(centre, spacing)
    sm = ndimage.gaussian_filter(np.asarray(img, float), (1.0 / dy, 1.0 / dx))
    _, ring_ins = pm.ring_profile(sm, frame, cp.INSERT_RING_MM, width_mm=4.0)
    _, ring_lp = pm.ring_profile(sm, frame, cp.LINE_PAIR_RING_MM, width_mm=3.0)
    if housing:
        housing = _housing(sm, frame)
    if ring_ins.min() < -500.0:
        return SliceInfo("sensitometry", centre, housing)
    # bars stand out of their module by a few hundred HU at least (less on cone-beam CT,
    # where a 1.5 mm slice cuts the 2 mm gauge partly: ~200 HU on an Elekta XVI)
    if ring_lp.max() - float(np.median(ring_lp)) > 120.0 and ring_lp.std() > 30.0 \
            and pm.bright_runs(ring_lp, float(np.median(ring_lp)) + 120.0) >= MIN_BAR_GROUPS:
        return SliceInfo("resolution", centre, housing)
    yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
    r = np.hypot((yy - centre[0]) * dy, (xx - centre[1]) * dx)
    sm2 = ndimage.gaussian_filter(np.asarray(img, float), (2.0 / dy, 2.0 / dx))
    disk = sm2[r < 60.0]
    if disk.size and float(np.percentile(disk, 99) - np.percentile(disk, 1)) < 40.0 \
            and abs(float(np.median(disk))) < 200.0:
        if low_contrast_fit(sm2, frame)[1] >= LOW_CONTRAST_MIN_Z:
            return SliceInfo("low_contrast", centre, housing)
        return SliceInfo("uniformity", centre, housing)
    return SliceInfo("", centre, housing)


def _low_contrast_template(n: int = 720) -> np.ndarray:
    """The CTP515 supra-slice rods' contrast (HU over the module) round their 50 mm ring,
    at n angles from phantom angle 0°."""
    m = cp.MODELS["504"].module("low_contrast")
    assert m is not None
    phi = np.radians(np.arange(n) * 360.0 / n)
    r = cp.LOW_CONTRAST_RING_MM
    ring = cp.hu_at(r * np.cos(phi), r * np.sin(phi), np.full(phi.shape, m.w_mm))
    return np.asarray(ring - m.background_hu, float)


def low_contrast_fit(img: np.ndarray, frame: pm.Frame) -> tuple[pm.Frame, float]:
    """The pose of the CTP515 rods on a smoothed slice, and how far the rods stand out
    (a z-score): the profile round the rods' 50 mm ring is correlated with the rods'
    nominal contrast pattern at every rotation and both mirrors (matched filter); the
    best correlation is compared with the spread of the correlation at rotations more
    than 30° away from it (median and 1.4826 × MAD), which is what noise, streaks and
    shading alone give. A uniform module scores about 0-3, a CTP515 well above."""
    n = 720
    tmpl = _low_contrast_template(n)
    _, prof = pm.ring_profile(img, frame, cp.LOW_CONTRAST_RING_MM, n=n, width_mm=LC_BAND_MM)
    a = prof - np.median(prof)
    best: tuple[float, float, int, np.ndarray] | None = None
    for m in (1, -1):
        b = tmpl if m == 1 else tmpl[(-np.arange(n)) % n]
        corr = np.fft.ifft(np.fft.fft(a) * np.conj(np.fft.fft(b))).real / float((b * b).sum())
        k = int(np.argmax(corr))
        if best is None or corr[k] > best[0]:
            best = (float(corr[k]), k * 360.0 / n, m, corr)
    assert best is not None
    peak, theta, mirror, corr = best
    lag = np.arange(n) * 360.0 / n
    away = np.abs((lag - theta + 180.0) % 360.0 - 180.0) > 30.0
    rest = corr[away]
    spread = 1.4826 * float(np.median(np.abs(rest - np.median(rest))))
    excess = peak - float(np.median(rest))
    z = excess / spread if spread > 0 else (math.inf if excess > 0 else 0.0)
    theta = (theta + 180.0) % 360.0 - 180.0
    return pm.Frame(frame.centre_yx, frame.spacing_yx, theta, mirror), z


def locate(series: Series, model: str | None = None,
           sensitometry: str | None = None) -> CatphanLayout:
    """The modules along z; ``model`` forces a CatPhan model, ``sensitometry`` (CTP404,
    CTP732, CTP401) restricts the models to those with that sensitometry module."""
    return memo(series, f"ct.catphan.layout.{model}.{sensitometry}",
                lambda: _locate(series, model, sensitometry))


def sensitometry_name(model: str) -> str:
    m = cp.MODELS[model].module("sensitometry")
    assert m is not None
    return m.name


def _locate(series: Series, forced: str | None, sensitometry: str | None) -> CatphanLayout:
    v = np.asarray(series.voxels)
    _, dy, dx = series.spacing
    z = pm.slice_positions(series.affine, v.shape[0])
    if series.isolated_positions_mm is not None:  # isolated slices: their own positions
        z = np.asarray(series.isolated_positions_mm, float) - float(
            series.isolated_positions_mm[0])
    step = max(1, int(1.0 / min(dy, dx)))  # classify on pixels of about 1 mm
    bodies = pm.find_bodies(series, step)  # shared with the ACR 464 detector
    infos = [_classify(v[k, ::step, ::step], (dy * step, dx * step), bodies[k])
             for k in range(v.shape[0])]
    kinds = [i.kind for i in infos]
    centres = np.array([(i.centre_yx[0] * step, i.centre_yx[1] * step) for i in infos])
    seen = sorted({k for k in kinds if k in KINDS})
    if not seen and kinds.count("cut") > len(kinds) // 2:
        raise AnalysisError(
            "the object is cut by the edge of the image or the reconstruction circle and no "
            "CatPhan insert ring is inside it: reconstruct with a field of view that holds at "
            "least the module's 150 mm (better the whole 200 mm phantom)")
    if not seen:
        raise AnalysisError("no slice shows a CatPhan module (no insert ring with air, no "
                            "line-pair ring, no uniform 150 mm module): not a CatPhan")
    housing = any(i.housing for i in infos)
    models = [forced] if forced else [k for k in cp.MODELS if sensitometry is None
                                      or sensitometry_name(k) == sensitometry]
    best: tuple[int, str, float, int] | None = None
    code = {k: i + 1 for i, k in enumerate(KINDS)}
    obs = np.array([code.get(k, 0) for k in kinds])  # "" and "cut": no class
    z0s = np.arange(z.min() - 200.0, z.max() + 200.0, 1.0)
    for key in models:
        mdl = cp.MODELS[key]
        for d in (1, -1):
            pred = np.zeros((z0s.size, z.size), dtype=int)
            for m in mdl.modules:
                near = np.abs((z[None, :] - z0s[:, None]) * d - m.w_mm) <= cp.MODULE_DEPTH_MM / 2
                pred[near] = code[m.kind]
            both = (obs[None, :] > 0) & (pred > 0)
            match = both & (pred == obs[None, :])
            excused = both & (pred == code["low_contrast"]) & (obs[None, :] == code["uniformity"])
            score = match.sum(axis=1) - (both & ~match & ~excused).sum(axis=1)
            i = int(np.argmax(score))
            if best is None or int(score[i]) > best[0]:
                # the middle of the run of equally good positions
                j = i
                while j + 1 < score.size and score[j + 1] == score[i]:
                    j += 1
                best = (int(score[i]), key, float(z0s[i:j + 1].mean()), d)
    assert best is not None
    multi = len(seen) > 1
    if multi and series.isolated_positions_mm is not None:
        return _isolated_layout(z, kinds, centres, housing, best, forced)
    layout = CatphanLayout(z, kinds, centres, best[1] if (multi or forced) else None,
                           best[2] if multi else None, best[3] if multi else 0,
                           housing=housing, isolated=series.isolated_positions_mm is not None)
    if multi:
        mdl = cp.MODELS[best[1]]
        for m in mdl.modules:
            idx = np.flatnonzero(np.abs((z - best[2]) * best[3] - m.w_mm)
                                 <= cp.MODULE_DEPTH_MM / 2)
            idx = idx[[kinds[i] in (m.kind, "uniformity") if m.kind == "low_contrast"
                       else kinds[i] == m.kind for i in idx]]
            if idx.size:
                layout.present[m.kind] = idx
        for m in mdl.modules:
            if m.kind not in layout.present:
                layout.warnings.append(f"{m.name} ({m.kind}) is not in this series: not "
                                       "measured")
    else:
        layout.present[seen[0]] = np.flatnonzero([k == seen[0] for k in kinds])
        layout.warnings.append(
            f"only the {seen[0]} module is in this series ({len(layout.present[seen[0]])} "
            "slices): the CatPhan model cannot be told from one module; the other modules are "
            "not measured")
    return layout


def _isolated_layout(z: np.ndarray, kinds: list[str], centres: np.ndarray, housing: bool,
                     best: tuple[int, str, float, int], forced: str | None) -> CatphanLayout:
    """Isolated slices: each slice is the module it shows, wherever it lies. The model
    (and its module offsets) is kept only when every recognised slice sits in a module of
    its kind; otherwise the positions are reported and the model is unknown."""
    classed = sum(k in KINDS for k in kinds)
    fits = best[0] == classed
    layout = CatphanLayout(z, kinds, centres, best[1] if fits or forced else None,
                           best[2] if fits else None, best[3] if fits else 0,
                           housing=housing, isolated=True)
    for kind in KINDS:
        idx = np.flatnonzero([k == kind for k in kinds])
        if idx.size:
            layout.present[kind] = idx
    if not fits:
        where = ", ".join(f"{k} at {zz:+.1f} mm" for k, zz in zip(kinds, z, strict=True) if k)
        layout.warnings.append(
            f"isolated slices ({where}, relative to the first): their spacing fits no CatPhan "
            "model's module offsets within ±10 mm, so the model is not known; each slice is "
            "measured as the module it shows")
    return layout


def _stack(series: Series, idx: np.ndarray) -> np.ndarray:
    return np.asarray(series.voxels[idx], dtype=np.float32)


def _core(layout: CatphanLayout, kind: str, margin_mm: float) -> np.ndarray:
    idx = layout.present[kind]
    if layout.model is None or layout.anchor_z_mm is None:
        return idx
    m = cp.MODELS[layout.model].module(kind)
    assert m is not None
    zc = layout.anchor_z_mm + layout.direction * m.w_mm
    if layout.z_mm.size > 1 and not layout.isolated:
        # module positions are known to about half a slice spacing
        margin_mm += float(np.median(np.diff(layout.z_mm))) / 2
    core = idx[np.abs(layout.z_mm[idx] - zc) <= cp.MODULE_DEPTH_MM / 2 - margin_mm]
    return core if core.size else idx


def _frame(series: Series, layout: CatphanLayout, idx: np.ndarray) -> pm.Frame:
    c = np.nanmean(layout.centres_yx[idx], axis=0)
    return pm.Frame((float(c[0]), float(c[1])), (series.spacing[1], series.spacing[2]))


def _sens_layouts(layout: CatphanLayout) -> dict[str, tuple[cp.Insert, ...]]:
    if layout.model is not None:
        m = cp.MODELS[layout.model].module("sensitometry")
        assert m is not None
        return {m.name: m.inserts}
    return {"CTP404": cp.CTP404_INSERTS, "CTP732": cp.CTP732_INSERTS,
            "CTP401": cp.CTP401_INSERTS}


def _best_sensitometry(series: Series, layout: CatphanLayout) -> tuple[str, float]:
    """The sensitometry insert set that fits best, and its mean mismatch (HU)."""
    return memo(series, "ct.catphan.sensitometry", lambda: _fit_sensitometry(series, layout))


def _fit_sensitometry(series: Series, layout: CatphanLayout) -> tuple[str, float]:
    idx = layout.present["sensitometry"]
    img = _stack(series, idx).mean(axis=0)
    f0 = _frame(series, layout, idx)
    every = {i.angle_deg for ins in (cp.CTP404_INSERTS, cp.CTP732_INSERTS, cp.CTP401_INSERTS)
             for i in ins}
    best = ("CTP404", np.inf)
    for name, inserts in (("CTP404", cp.CTP404_INSERTS), ("CTP732", cp.CTP732_INSERTS),
                          ("CTP401", cp.CTP401_INSERTS)):
        feats = [(i.angle_deg, i.distance_mm, i.material.hu) for i in inserts]
        empty = [(a, cp.INSERT_RING_MM, 100.0) for a in sorted(every)
                 if all(abs(a - i.angle_deg) > 1 for i in inserts)]
        fr, _ = pm.fit_orientation(img, f0, feats, smooth_mm=1.0, calibrate=True)
        _, cost = pm.fit_orientation(img, fr, feats + empty, smooth_mm=1.0,
                                     angles=np.array([fr.angle_deg]), mirrors=(fr.mirror,),
                                     calibrate=True)
        if cost < best[1]:
            best = (name, float(cost))
    return best


@register
class Catphan:
    """CatPhan 500/503/504/600/604: sensitometry, slice width, uniformity, NPS, bar MTF,
    bead and edge MTF, low-contrast CNR."""

    id: ClassVar[str] = "ct.catphan"
    modality: ClassVar[str] = "CT"
    standard: ClassVar[str] = (
        "The Phantom Laboratory, Catphan 500/504/600/604 manuals (module layout); CT number, "
        "uniformity and noise as in IEC 61223-3-5:2019; edge TTF as in AAPM Report 233 (2019); NPS"
        " as in ICRU Report 87 (2012); bar modulation after Droege and Morin (1982) (see "
        "docs/standards/catphan.md)")
    title: ClassVar[str] = "CatPhan (500/503/504/600/604)"
    # a CatPhan exported as one (or a few) slices per module: each slice is classed and
    # measured as the module it shows, at its own position
    accepts_isolated_slices: ClassVar[bool] = True

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("model", "CatPhan model (500, 503, 504, 600, 604)", "",
                  "recognised from the modules found in the image"),
    )

    def detect(self, series: Series) -> float:
        try:
            if series.facts.modality != "CT" or series.voxels.ndim != 3:
                return 0.0
            layout = locate(series)
            if not layout.present:
                return 0.05
            if set(layout.present) == {"uniformity"}:
                return 0.92 if layout.housing else 0.3
            if "sensitometry" in layout.present and \
                    _best_sensitometry(series, layout)[1] > 80.0:
                return 0.1  # air on the insert ring, but not a CatPhan's inserts (an ACR?)
            return 0.95
        except AnalysisError:
            return 0.05
        except Exception:
            return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        from scanbench.analysis.ct.common import check_axial

        check_axial(series)
        forced = str(params["model"]).strip() if "model" in params else None
        if forced is not None and forced not in cp.MODELS:
            raise AnalysisError(f"unknown CatPhan model {forced!r}; known: "
                                f"{', '.join(cp.MODELS)}")
        layout = locate(series, forced)
        if forced is None and layout.model is not None and "sensitometry" in layout.present:
            # the inserts tell CTP404 / CTP732 / CTP401 apart; the model must agree
            name, _ = _best_sensitometry(series, layout)
            if name != sensitometry_name(layout.model):
                layout = locate(series, None, name)
        result = result_for(self, series)
        result.warnings.extend(layout.warnings)
        result.parameters["model"] = cp.MODELS[layout.model].name if layout.model else "unknown"
        result.parameters["modules_found"] = sorted(layout.present)
        thick = series.facts.ct.slice_thickness_mm if series.facts.ct else None
        t_nom = float(thick) if thick else float(series.spacing[0])
        ev: dict[str, Any] = {"spacing_yx": (series.spacing[1], series.spacing[2])}
        frame: pm.Frame | None = None
        if "sensitometry" in layout.present:
            frame = self._sensitometry(series, layout, t_nom, result, ev)
        if "uniformity" in layout.present:
            self._uniformity(series, layout, t_nom, result, ev)
        if "resolution" in layout.present:
            self._resolution(series, layout, frame, result, ev)
        if "low_contrast" in layout.present:
            self._low_contrast(series, layout, frame, t_nom, result, ev)
        result.evidence = ev
        return result

    # ---------------------------------------------------------------- sensitometry
    def _sensitometry(self, series: Series, layout: CatphanLayout, t_nom: float,
                      result: Result, ev: dict[str, Any]) -> pm.Frame:
        idx = _core(layout, "sensitometry", t_nom / 2 + 1.0)
        stack = _stack(series, idx)
        img = stack.mean(axis=0)
        f0 = _frame(series, layout, idx)
        best: tuple[float, str, pm.Frame] | None = None
        every = {i.angle_deg for ins in (cp.CTP404_INSERTS, cp.CTP732_INSERTS,
                                         cp.CTP401_INSERTS) for i in ins}
        for name, inserts in _sens_layouts(layout).items():
            feats = [(i.angle_deg, i.distance_mm, i.material.hu) for i in inserts]
            # where another layout has an insert and this one has none: module background
            # (so CTP404 cannot fit a CTP732 by ignoring its bone inserts)
            bg = cp.MODELS["504"].modules[0].background_hu
            empty = [(a, cp.INSERT_RING_MM, bg) for a in sorted(every)
                     if all(abs(a - i.angle_deg) > 1 for i in inserts)]
            fr, cost = pm.fit_orientation(img, f0, feats, smooth_mm=1.0, calibrate=True)
            for _ in range(2):
                fr = pm.refine_pose(img, fr, feats, cp.INSERT_DIAMETER_MM / 2)
            _, cost = pm.fit_orientation(img, fr, feats + empty, smooth_mm=1.0,
                                         angles=np.array([fr.angle_deg]), mirrors=(fr.mirror,),
                                         calibrate=True)
            if best is None or cost < best[0]:
                best = (cost, name, fr)
        assert best is not None
        cost, name, frame = best
        inserts = dict(_sens_layouts(layout))[name]
        if cost > 150.0:
            raise AnalysisError(
                f"the sensitometry inserts do not match a CatPhan layout (mean mismatch "
                f"{cost:.0f} HU from the nominal CT numbers): not a CatPhan, or a damaged "
                "or unknown insert set")
        result.parameters.update({"sensitometry_module": name,
                                  "rotation_deg": round(frame.angle_deg, 2),
                                  "mirrored": frame.mirror < 0})
        rois = []
        hu_ed = []
        seen: set[str] = set()
        stats = [pm.roi_stats(stack, frame, frame.polar_pixel(i.angle_deg, i.distance_mm),
                              SENS_ROI_RADIUS_MM) for i in inserts]
        sem = pm.pooled_sem(stats)
        for ins, st in zip(inserts, stats, strict=True):
            label = ins.material.name if ins.material.name not in seen \
                else f"{ins.material.name}_2"
            seen.add(ins.material.name)
            c = frame.polar_pixel(ins.angle_deg, ins.distance_mm)
            result.add("ct_number_hu", st.mean, "HU", labels={"material": label},
                       uncertainty=sem if sem is not None else st.sem)
            rois.append((c, SENS_ROI_RADIUS_MM, label))
            if ins.material.electron_density is not None and label == ins.material.name:
                hu_ed.append((ins.material.electron_density, st.mean))
        if len(hu_ed) >= 3:
            x = np.array([h[0] for h in hu_ed])
            y = np.array([h[1] for h in hu_ed])
            slope, icpt = np.polyfit(x, y, 1)
            r2 = 1.0 - float(((y - (slope * x + icpt)) ** 2).sum() / ((y - y.mean()) ** 2).sum())
            result.add("hu_electron_density_slope_hu", float(slope), "HU")
            result.add("hu_electron_density_intercept_hu", float(icpt), "HU")
            result.add("hu_electron_density_r_squared", r2, "1")
            ev["hu_ed"] = (x, y, float(slope), float(icpt))
        self._ramps(series, layout, frame, result, ev)
        self._teflon_mtf(stack, frame, inserts, result, ev)
        ev["sensitometry"] = {"image": img, "rois": rois}
        return frame

    def _ramps(self, series: Series, layout: CatphanLayout, frame: pm.Frame, result: Result,
               ev: dict[str, Any]) -> None:
        idx = layout.present["sensitometry"]
        noise = max(pm.roi_stats(_stack(series, idx), frame, frame.pixel(0.0, 12.0), 4.0).sd,
                    1.0)
        edge = cp.RAMP_HALF_LENGTH_MM - 0.5
        widths, shown = [], []
        for k in idx:
            for angle in (-90.0, 0.0, 90.0, 180.0):
                a = math.radians(angle)
                rp = pm.ramp_profile(series.voxels[k], frame, cp.polar(angle, cp.RAMP_DISTANCE_MM),
                                     (-math.sin(a), math.cos(a)), cp.RAMP_HALF_LENGTH_MM + 8.0,
                                     cp.RAMP_WIDTH_MM)
                if rp is None or rp.peak - rp.background < 8.0 * noise:
                    continue
                if rp.left_mm < -edge or rp.right_mm > edge:
                    continue
                widths.append(rp.fwhm_mm * cp.RAMP_TAN)
                shown.append((int(k), angle, rp))
        if widths:
            w = np.asarray(widths)
            result.add("slice_thickness_mm", float(w.mean()), "mm",
                       uncertainty=float(w.std(ddof=1) / math.sqrt(w.size)) if w.size > 1
                       else None)
            result.parameters["slice_thickness_ramps_used"] = int(w.size)
            ev["ramps"] = shown[:2]
        else:
            result.warnings.append("no wire ramp is seen whole: no slice thickness")

    def _teflon_mtf(self, stack: np.ndarray, frame: pm.Frame, inserts: tuple[cp.Insert, ...],
                    result: Result, ev: dict[str, Any]) -> None:
        from scanbench.analysis.ct.mtf import mtf_from_circular_edge

        tef = [i for i in inserts if i.material.name == "teflon"]
        if not tef:
            return
        c = frame.polar_pixel(tef[0].angle_deg, tef[0].distance_mm)
        try:
            curve = mtf_from_circular_edge(stack, frame.spacing_yx[0], c,
                                           tef[0].diameter_mm / 2)
        except AnalysisError as exc:
            result.warnings.append(f"no MTF from the Teflon edge: {exc.message}")
            return
        lab = {"method": "teflon edge"}
        result.add("mtf50_lp_per_cm", curve.mtf50_lp_per_cm, "lp/cm", labels=lab)
        result.add("mtf10_lp_per_cm", curve.mtf10_lp_per_cm, "lp/cm", labels=lab)
        ev["mtf_edge"] = curve

    # ---------------------------------------------------------------- uniformity
    def _uniformity(self, series: Series, layout: CatphanLayout, t_nom: float, result: Result,
                    ev: dict[str, Any]) -> None:
        from scanbench.analysis.ct.nps import nps_2d

        idx = _core(layout, "uniformity", t_nom / 2 + 1.0)
        stack = _stack(series, idx)
        f = _frame(series, layout, idx)
        centre = pm.roi_stats(stack, f, f.centre_yx, cp.UNIFORMITY_ROI_RADIUS_MM)
        result.add("ct_number_centre_hu", centre.mean, "HU", uncertainty=centre.sem)
        # noise in a 30 mm ROI at the centre of the uniform module: the SD of a 10 mm ROI
        # scatters by ~6 % on one slice (correlated pixels), this one by ~2 %
        result.add("noise_hu", pm.roi_stats(stack, f, f.centre_yx, NOISE_ROI_RADIUS_MM).sd,
                   "HU")
        rois = [(f.centre_yx, cp.UNIFORMITY_ROI_RADIUS_MM, "centre")]
        devs = []
        dy, dx = f.spacing_yx
        squares = []
        half = round(cp.UNIFORMITY_ROI_RADIUS_MM / dx)
        for pos, ang in [("centre", None), *cp.UNIFORMITY_POSITIONS.items()]:
            if ang is None:
                c = f.centre_yx
            else:
                a = math.radians(ang)
                c = (f.centre_yx[0] + cp.UNIFORMITY_ROI_DISTANCE_MM * math.sin(a) / dy,
                     f.centre_yx[1] + cp.UNIFORMITY_ROI_DISTANCE_MM * math.cos(a) / dx)
                st = pm.roi_stats(stack, f, c, cp.UNIFORMITY_ROI_RADIUS_MM)
                d = st.mean - centre.mean
                devs.append(d)
                result.add("uniformity_deviation_hu", d, "HU", labels={"position": pos},
                           uncertainty=math.hypot(st.sem, centre.sem))
                rois.append((c, cp.UNIFORMITY_ROI_RADIUS_MM, pos))
            r0, c0 = round(c[0]), round(c[1])
            for img in stack:
                sq = img[r0 - half:r0 + half, c0 - half:c0 + half]
                if sq.shape == (2 * half, 2 * half):
                    squares.append(sq)
        result.add("uniformity_max_deviation_hu", float(max(abs(d) for d in devs)), "HU")
        if squares and half >= 4:
            nps = nps_2d(np.array(squares), dx)
            result.add("nps_peak_frequency_per_mm", nps.peak_frequency_per_mm, "1/mm")
            result.add("nps_mean_frequency_per_mm", nps.mean_frequency_per_mm, "1/mm")
            ev["nps"] = nps
        ev["uniformity"] = {"image": np.asarray(series.voxels[int(idx[len(idx) // 2])]),
                            "rois": rois}

    # ---------------------------------------------------------------- resolution
    def _resolution(self, series: Series, layout: CatphanLayout, frame: pm.Frame | None,
                    result: Result, ev: dict[str, Any]) -> None:

        idx = _core(layout, "resolution", 2.0)
        img = _stack(series, idx).mean(axis=0)
        f0 = _frame(series, layout, idx)
        patterns = cp.line_pair_patterns()
        if frame is not None:
            f = pm.Frame(f0.centre_yx, f0.spacing_yx, frame.angle_deg, frame.mirror)
        else:
            phi = np.radians(np.arange(720) * 0.5)
            m_res = (cp.MODELS[layout.model] if layout.model else cp.MODELS["504"]).module(
                "resolution")
            assert m_res is not None
            ring = cp.hu_at(cp.LINE_PAIR_RING_MM * np.cos(phi),
                            cp.LINE_PAIR_RING_MM * np.sin(phi), np.full(phi.shape, m_res.w_mm))
            f = pm.ring_correlation(img, f0, cp.LINE_PAIR_RING_MM, ring)
            result.warnings.append("the line-pair ring's rotation was fitted from the bar "
                                   "groups themselves (no sensitometry module in the series)")
        dy, dx = f.spacing_yx
        yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
        r = np.hypot((yy - f.centre_yx[0]) * dy, (xx - f.centre_yx[1]) * dx)
        # image angle of every pixel, turned back to the phantom frame
        phi = (np.degrees(np.arctan2((yy - f.centre_yx[0]) * dy, (xx - f.centre_yx[1]) * dx))
               - f.angle_deg) * f.mirror
        half = cp.LINE_PAIR_BAR_LENGTH_MM / 2
        inner = (r > cp.LINE_PAIR_RING_MM - half - 3.5) & (r < cp.LINE_PAIR_RING_MM - half - 1.5)
        outer = (r > cp.LINE_PAIR_RING_MM + half + 1.5) & (r < cp.LINE_PAIR_RING_MM + half + 3.5)
        mods = []
        for p in patterns:
            a = math.radians(p.angle_deg)
            tu, tv = -math.sin(a), math.cos(a)
            cu, cv = cp.polar(p.angle_deg, cp.LINE_PAIR_RING_MM)
            first = (cu + (-p.length_mm / 2 + p.period_mm / 4) * tu,
                     cv + (-p.length_mm / 2 + p.period_mm / 4) * tv)
            # The background next to the group, just inside and just outside the bars, at
            # the group's angles: cone-beam cupping and shading change the module's CT
            # number by tens of HU from the centre to the ring, as much as the bars' own
            # contrast on a thin cone-beam slice; the mean of the two bands follows a
            # radial trend to first order.
            span = math.degrees((p.length_mm / 2 + 2.0) / cp.LINE_PAIR_RING_MM)
            near = np.abs((phi - p.angle_deg + 180.0) % 360.0 - 180.0) <= span
            bands = [img[band & near] for band in (inner, outer)]
            background = float(np.mean([b.mean() for b in bands]))
            noise = float(np.sqrt(np.mean([b.var(ddof=1) for b in bands])))
            bg_se = noise / 2.0 * math.sqrt(sum(4.0 / b.size for b in bands))
            m = pm.bar_modulation(img, f, first, (tu, tv), p.lp_per_cm, p.n_bars,
                                  cp.LINE_PAIR_BAR_LENGTH_MM, background, noise,
                                  background_se_hu=bg_se)
            mods.append(m)
            meas = result.add("bar_modulation", m.mtf, "1", labels={"lp_per_cm": p.lp_per_cm},
                              uncertainty=m.mtf_se if math.isfinite(m.mtf_se) else None)
            if not m.amplitude_hu > pm.SIGNIFICANCE * m.amplitude_se_hu:
                meas.note = (f"the modulation at {p.lp_per_cm:g} lp/cm is within the noise "
                             f"(amplitude {m.amplitude_hu:.1f} HU, {pm.SIGNIFICANCE:g} standard "
                             f"errors = {pm.SIGNIFICANCE * m.amplitude_se_hu:.1f} HU): not "
                             "resolved; the value is the noise floor")
        best = pm.highest_resolved(mods)
        result.add("high_contrast_resolution_lp_per_cm", best or 0.0, "lp/cm")
        result.parameters["resolution_criterion"] = (
            f"bar MTF >= {pm.RESOLVED_MTF} and amplitude > {pm.SIGNIFICANCE} SE")
        self._bead(series, idx, img, f, result, ev)
        ev["resolution"] = {"image": img, "mods": mods}

    def _bead(self, series: Series, idx: np.ndarray, img: np.ndarray, f: pm.Frame,
              result: Result, ev: dict[str, Any]) -> None:
        """The bead's MTF, or both values refused with the reason.

        The 0.28 mm bead lies in one or two slices of a thin-slice scan: on each slice of
        the module it is looked for within 3 mm of its nominal place (the brightest point
        of the background-subtracted slice smoothed by 0.5 mm) and its integral over the
        4 mm ROI (minus the ring 4–6 mm around it) is compared with the noise of that
        integral. Only the slices that hold the bead (integral at least 3 times its noise
        and half the best slice's) make the point spread and its signal-to-noise (slices
        without it would only add noise: √n worse over n slices). The point spread is only
        usable when the kept slices' summed integral stands at least 10 times above its
        noise: the MTF is
        the transform of that integral's distribution, so a relative error ε of the
        integral is an error of about ε in the MTF at every frequency. Below that the
        values are refused — a background offset of a few HU summed over the ROI then
        outweighs the bead, and the "MTF" becomes that of the 4 mm disc, whose 50 % falls
        at 0.9 lp/cm (what a real cone-beam CatPhan 504 read before). The bead's own size
        is not divided out: a 0.28 mm sphere transfers ≥ 0.98 up to 5 lp/cm, ≥ 0.92 at 10.
        """
        from scanbench.analysis.ct.mtf import mtf_from_point

        dy, dx = f.spacing_yx
        roi = BEAD_ROI_MM
        lab = {"method": "bead"}
        stack = _stack(series, idx).astype(float)
        yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
        c0 = f.pixel(*cp.BEAD_UV)
        r0 = np.hypot((yy - c0[0]) * dy, (xx - c0[1]) * dx)
        ring = (r0 >= roi + 3.0) & (r0 < 1.5 * roi + 3.0)
        near = r0 <= 3.0
        found = []  # (integral, its standard error, centre) per slice
        for sl in stack:
            bg, sd = float(sl[ring].mean()), float(sl[ring].std(ddof=1))
            sm = ndimage.gaussian_filter(sl - bg, 0.5 / dy)
            k = int(np.argmax(np.where(near, sm, -np.inf)))
            centre = (float(yy.ravel()[k]), float(xx.ravel()[k]))
            r = np.hypot((yy - centre[0]) * dy, (xx - centre[1]) * dx)
            inside = r < roi
            local_bg = float(sl[(r >= roi) & (r < 1.5 * roi)].mean())
            integral = float((sl[inside] - local_bg).sum()) * dy * dx
            # white-noise error of a sum of n pixels, doubled for CT's correlated noise
            se = 2.0 * sd * math.sqrt(float(inside.sum())) * dy * dx
            found.append((integral, se, centre))
        best = max(i for i, _, _ in found)
        keep = [j for j, (i, se, _) in enumerate(found) if i >= 3.0 * se and i >= 0.5 * best]
        if not keep:
            keep = [int(np.argmax([i for i, _, _ in found]))]
        integral = sum(found[j][0] for j in keep)
        integral_se = math.sqrt(sum(found[j][1] ** 2 for j in keep))
        ratio = integral / integral_se if integral_se > 0 else math.inf
        result.parameters["bead_signal_to_noise"] = (round(ratio, 1) if math.isfinite(ratio)
                                                     else None)
        result.parameters["bead_slices_used"] = len(keep)
        if not ratio >= BEAD_MIN_SNR:
            why = (f"the bead's point spread is lost in the noise: its integral over the "
                   f"{roi:g} mm ROI is {integral:.0f} HU·mm² against a noise of "
                   f"{integral_se:.0f} HU·mm² ({ratio:.1f}:1, at least {BEAD_MIN_SNR:g}:1 "
                   "needed); a thin slice or a cone-beam scan holds too little of the "
                   "0.28 mm bead: use the Teflon edge MTF or the bar modulation")
            for name in ("mtf50_lp_per_cm", "mtf10_lp_per_cm"):
                result.add(name, float("nan"), "lp/cm", labels=lab).refuse(why)
            return
        try:
            curve = mtf_from_point(stack[keep], dy, [found[j][2] for j in keep],
                                   roi_radius_mm=roi)
        except AnalysisError as exc:
            result.warnings.append(f"no MTF from the bead: {exc.message}")
            return
        result.add("mtf50_lp_per_cm", curve.mtf50_lp_per_cm, "lp/cm", labels=lab)
        result.add("mtf10_lp_per_cm", curve.mtf10_lp_per_cm, "lp/cm", labels=lab)
        ev["mtf_bead"] = curve

    # ---------------------------------------------------------------- low contrast
    def _low_contrast(self, series: Series, layout: CatphanLayout, frame: pm.Frame | None,
                      t_nom: float, result: Result, ev: dict[str, Any]) -> None:
        idx = _core(layout, "low_contrast", t_nom / 2 + 1.0)
        stack = _stack(series, idx)
        f0 = _frame(series, layout, idx)
        mean_img = stack.mean(axis=0)[None]
        if frame is not None:
            f = pm.Frame(f0.centre_yx, f0.spacing_yx, frame.angle_deg, frame.mirror)
        else:
            # no sensitometry module: the rotation from the rods themselves
            dy, dx = f0.spacing_yx
            sm = ndimage.gaussian_filter(np.asarray(mean_img[0], float), (2.0 / dy, 2.0 / dx))
            f, z = low_contrast_fit(sm, f0)
            result.parameters["low_contrast_rotation_deg"] = round(f.angle_deg, 1)
            result.warnings.append(
                "the low-contrast rods' rotation was fitted from the rods themselves (no "
                f"sensitometry module in the series; the rods' pattern stands {z:.1f} robust "
                "SDs above the noise)")
        rois = []
        # How much CT noise's pixel correlation inflates the standard error of an ROI mean
        # over the white-noise SD/√n: measured with 4 mm ROIs tiled over the module's
        # uniform centre (common.roi_mean_standard_error); at least the 2 × 2 of a
        # typical kernel.
        from scanbench.analysis.ct.common import roi_mean_standard_error

        dy, dx = f.spacing_yx
        centre_sd = pm.roi_stats(mean_img, f, f.centre_yx, 18.0).sd
        emp = roi_mean_standard_error(mean_img[0], f.centre_yx, 18.0, 4.0, (dy, dx))
        n_4mm = math.pi * 4.0**2 / (dy * dx)
        # (on a noise-free image the ratio measures residual structure, not noise)
        inflation = max(2.0, emp / (centre_sd / math.sqrt(n_4mm))) \
            if math.isfinite(emp) and centre_sd > 1.0 else 2.0
        result.parameters["low_contrast_noise_correlation_factor"] = round(inflation, 2)
        for d, level, cu, cv in cp.low_contrast_rods():
            c = f.pixel(cu, cv)
            bg = f.pixel(cu * 0.75, cv * 0.75)
            a = pm.roi_stats(mean_img, f, c, 0.4 * d)
            b = pm.roi_stats(mean_img, f, bg, 4.0)
            if b.sd > 0:
                # standard error of the two ROI means, in units of the pixel SD
                n_rod = math.pi * (0.4 * d) ** 2 / (dy * dx)
                se = inflation * math.sqrt(1.0 / n_rod + 1.0 / n_4mm)
                cnr = abs(a.mean - b.mean) / b.sd
                m = result.add("low_contrast_cnr", cnr, "1",
                               labels={"diameter_mm": d, "level": f"{level:g}%"},
                               uncertainty=se)
                if cnr < 2.0 * se:
                    m.note = (f"within the noise: the rod's contrast is under twice its "
                              f"standard error ({2.0 * se:.2f} in CNR): not seen")
            rois.append((c, 0.4 * d, f"{d:g} mm {level:g}%"))
        ev["low_contrast"] = {"image": mean_img[0], "rois": rois}

    # ---------------------------------------------------------------- figures
    def figures(self, result: Result) -> list[Any]:
        """Each module's slice with its ROIs, a ramp profile, HU against electron density,
        bar MTF against frequency, the edge and bead MTF curves."""
        import plotly.graph_objects as go

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

        ev = result.evidence
        if not ev:
            return []
        sp = ev["spacing_yx"]
        figs: list[Any] = []
        # Each module in the window its test is read in (air to Teflon, soft tissue, a
        # narrow window on the low-contrast background).
        for key, title in (("sensitometry", "Sensitometry: CT-number ROIs"),
                           ("uniformity", "Uniformity ROIs"),
                           ("low_contrast", "Low-contrast rod ROIs")):
            if key in ev:
                img = np.asarray(ev[key]["image"], dtype=float)
                window = {"sensitometry": CT_WIDE, "uniformity": CT_SOFT_TISSUE}.get(key) or \
                    window_around(img, LOW_CONTRAST_WIDTH_HU, "low-contrast",
                                  inside=img > -300.0)
                rois = [RoiShape(tuple(c), r, lab) for c, r, lab in ev[key]["rois"]]
                figs.append(slice_with_rois(img, sp, rois, title, unit="HU",
                                            view_margin_mm=15.0, window=window))
        for k, angle, rp in ev.get("ramps", []):
            figs.append(profile_figure(
                rp.position_mm, rp.values,
                title=f"Wire ramp at {angle:+.0f}° (slice {k}): FWHM {rp.fwhm_mm:.2f} mm × "
                      f"tan 23° = {rp.fwhm_mm * cp.RAMP_TAN:.2f} mm",
                levels=[(rp.background, "background"), (rp.peak, "peak")],
                x_title="along the ramp (mm)", y_title="HU"))
        if "hu_ed" in ev:
            x, y, s, b = ev["hu_ed"]
            fig = go.Figure(go.Scatter(x=x, y=y, mode="markers", name="inserts"))
            xs = np.array([0.0, float(np.max(x))])
            fig.add_trace(go.Scatter(x=xs, y=s * xs + b, mode="lines", name="fit"))
            fig.update_layout(title_text="CT number against relative electron density",
                              template="simple_white", xaxis_title="relative electron density",
                              yaxis_title="HU")
            figs.append(fig)
        if "resolution" in ev:
            mods = ev["resolution"]["mods"]
            figs.append(bar_mtf_figure(
                [m.lp_per_cm for m in mods], [m.mtf for m in mods], threshold=pm.RESOLVED_MTF,
                title="Line-pair groups: bar MTF", rule=f"and amplitude > {pm.SIGNIFICANCE:g} SE"))
        for key, title in (("mtf_edge", "Teflon edge TTF"), ("mtf_bead", "Bead MTF")):
            if key in ev:
                c = ev[key]
                figs.append(profile_figure(np.asarray(c.frequency_per_mm) * 10.0, c.mtf,
                                           title=title, x_title="lp/cm", y_title="MTF",
                                           levels=[(0.5, "50 %"), (0.1, "10 %")]))
        return figs
