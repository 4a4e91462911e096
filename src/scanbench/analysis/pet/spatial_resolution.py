"""PET spatial resolution from point sources, by the NEMA NU 2-2018 section 3 method.

Procedure (STANDARDS.md A.1; details marked there [U] are stated as choices here):

1. **Find the sources.** Every local maximum that is the highest voxel within
   ``separation_mm`` (default 10 mm) in each direction and exceeds
   ``threshold_fraction`` (default 0.1) of the hottest voxel — and at least 8
   robust noise SDs above the background median — is one point source. More than
   ``max_sources`` (30) such maxima means the image is not a sparse point-source
   image and the analysis refuses it.
2. **Directions.** Radial and tangential are taken relative to the scanner axis,
   the line x = y = 0 in patient LPS unless ``axis_mm="x,y"`` says otherwise.
   Radial points from the axis to the source, tangential is perpendicular to it
   in the transverse plane, axial is z. For a source closer than 20 mm to the
   axis the direction from the axis is ill-determined (a 1 mm error in the axis
   turns it by 6° at 1 cm), so the NU 2 convention for the 1 cm position is used:
   NU 2 displaces that source vertically, hence radial = vertical (y, image rows)
   and tangential = horizontal (x, image columns).
3. **Response functions.** NU 2-2007 and later form each 1-D response function
   by summing the profiles parallel to the direction of measurement that lie
   within a band around the peak in the two perpendicular directions
   ([U]: "within two times the FWHM"). Here the band is ``sum_width_fwhm``
   (default 2) times the FWHM in each perpendicular direction, centred on the
   peak voxel — i.e. all parallel profiles offset by at most one FWHM; the
   perpendicular FWHMs come from a first pass with single profiles through the
   peak voxel. ``sum_width_fwhm=0`` gives the single-profile (NU 2-2001) method.
   The sum of a separable PSF over the perpendicular directions has the same
   shape as the central profile, so the band changes the noise, not the width.
   No background is subtracted (point sources in air, NU 2).
4. **Sampling.** A profile direction within 3° of an image axis is snapped to
   that axis and the profile is the exact row, column or slice samples through
   the peak voxel (the NU 2 positions lie on the vertical axis, so this is the
   usual case; a 3° misalignment changes the measured variance by at most
   sin²3° = 0.27 % of the radial–tangential variance difference). Any other
   direction is sampled at one pixel spacing by cubic-spline interpolation,
   which smooths far less than linear interpolation.
5. **Width.** The peak value is the vertex of the parabola through the maximum
   sample and its two neighbours; the FWHM (FWTM) is the distance between the
   linearly interpolated crossings of one half (one tenth) of that peak value,
   found walking outwards from the maximum, converted to mm with the sample
   spacing (NU 2-2018 section 3; STANDARDS.md A.1, [P]).
6. **Report.** ``fwhm_mm`` and ``fwtm_mm`` per source and direction, labelled
   with ``direction``, ``position_cm`` (the distance from the axis rounded to
   the nearest NU 2 position: 1, 10 or 20 cm), ``radius_mm`` and ``axial_mm``
   (patient z of the source). Where one NU 2 position has sources at more than
   one axial position, ``fwhm_mean_mm`` / ``fwtm_mean_mm`` give the arithmetic
   mean over those sources per direction, as NU 2 reports the values averaged
   over the two axial positions ([U]). A warning is raised when the sample
   spacing exceeds one third of the FWHM in a direction (NU 2 asks for voxels
   at most FWHM/3, [U]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis import ndi
from scanbench.analysis.base import Parameter
from scanbench.analysis.memo import voxel_max
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError
from scanbench.types import Result, Series

DIRECTIONS = ("radial", "tangential", "axial")
NEMA_POSITIONS_CM = (1, 10, 20)
NEAR_AXIS_MM = 20.0
SNAP_DEGREES = 3.0


# --------------------------------------------------------------------------- NEMA profile maths


def parabolic_peak(profile: np.ndarray, index: int) -> tuple[float, float]:
    """Vertex ``(position, value)`` of the parabola through samples ``index - 1 .. index + 1``.

    NU 2-2018 section 3: the peak value of a response function is found by a
    parabolic fit through the maximum sample and its two nearest neighbours.
    ``position`` is in samples (fractional); at a profile end, or where the three
    samples are not concave, the sample itself is returned.
    """
    y = np.asarray(profile, dtype=float)
    if index <= 0 or index >= len(y) - 1:
        return float(index), float(y[index])
    y0, y1, y2 = y[index - 1], y[index], y[index + 1]
    curvature = y0 - 2.0 * y1 + y2
    if not curvature < 0:
        return float(index), float(y1)
    delta = 0.5 * (y0 - y2) / curvature
    return float(index + delta), float(y1 - 0.25 * (y0 - y2) * delta)


def crossings(profile: np.ndarray, index: int, level: float) -> tuple[float, float] | None:
    """Fractional sample positions where the profile first falls below ``level`` on
    each side of ``index``, by linear interpolation between the straddling samples
    (NU 2-2018 section 3). None when the profile does not fall below ``level`` on
    both sides."""
    y = np.asarray(profile, dtype=float)
    right = np.nonzero(y[index + 1:] < level)[0]
    left = np.nonzero(y[:index][::-1] < level)[0]
    if right.size == 0 or left.size == 0:
        return None
    jr = index + 1 + int(right[0])  # first sample below the level, right side
    jl = index - 1 - int(left[0])  # first sample below the level, left side
    xr = (jr - 1) + (y[jr - 1] - level) / (y[jr - 1] - y[jr])
    xl = (jl + 1) - (y[jl + 1] - level) / (y[jl + 1] - y[jl])
    return float(xl), float(xr)


@dataclass(frozen=True)
class Width:
    """FWHM and FWTM of one response function, with what a figure needs to check them."""

    fwhm_mm: float
    fwtm_mm: float
    peak_mm: float
    peak_value: float
    half_mm: tuple[float, float]
    tenth_mm: tuple[float, float]


def nema_width(profile: np.ndarray, step_mm: float, centre: int | None = None) -> Width | None:
    """FWHM and FWTM (mm) of a 1-D response function by the NU 2-2018 section 3 method.

    ``profile`` is sampled every ``step_mm``; positions in the result are in mm
    from sample 0. The maximum sample is searched within two samples of
    ``centre`` (default: the whole profile), so that a neighbouring source cannot
    take its place. None when the profile does not fall below one tenth of the
    peak on both sides.
    """
    y = np.asarray(profile, dtype=float)
    if centre is None:
        imax = int(np.argmax(y))
    else:
        lo, hi = max(centre - 2, 0), min(centre + 3, len(y))
        imax = lo + int(np.argmax(y[lo:hi]))
    pos, peak = parabolic_peak(y, imax)
    if not peak > 0:
        return None
    half = crossings(y, imax, 0.5 * peak)
    tenth = crossings(y, imax, 0.1 * peak)
    if half is None or tenth is None:
        return None
    return Width(
        fwhm_mm=(half[1] - half[0]) * step_mm,
        fwtm_mm=(tenth[1] - tenth[0]) * step_mm,
        peak_mm=pos * step_mm,
        peak_value=peak,
        half_mm=(half[0] * step_mm, half[1] * step_mm),
        tenth_mm=(tenth[0] * step_mm, tenth[1] * step_mm),
    )


# --------------------------------------------------------------------------- finding sources


def find_point_sources(
    voxels: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    *,
    separation_mm: float = 10.0,
    threshold_fraction: float = 0.1,
    max_sources: int = 30,
) -> list[tuple[int, int, int]]:
    """Voxel indices ``(k, j, i)`` of the point sources, hottest first.

    A source is a voxel that is the maximum of a box of ±``separation_mm`` around
    it and exceeds both ``threshold_fraction`` of the hottest voxel and the
    background median plus 8 robust noise SDs (1.4826 × MAD). Maxima closer than
    ``separation_mm`` to a hotter one (plateaus) are dropped.
    """
    v = np.asarray(voxels, dtype=np.float32)
    vmax = float(v.max()) if v.size else 0.0
    if not vmax > 0:
        raise AnalysisError("the image has no positive voxel, so no point source")
    step = max(1, v.size // 2_000_000)
    sample = v.ravel()[::step]
    bg = float(np.median(sample))
    noise = 1.4826 * float(np.median(np.abs(sample - bg)))
    threshold = max(bg + threshold_fraction * (vmax - bg), bg + 8.0 * noise)
    d = np.asarray(spacing_zyx, dtype=float)
    size = tuple(int(max(3, 2 * np.ceil(separation_mm / s) + 1)) for s in d)
    from scipy import ndimage  # the run only: the detector, asked on every series, needs none

    peaks = (v >= threshold) & (v == ndimage.maximum_filter(v, size=size, mode="constant"))
    idx = np.argwhere(peaks)
    if len(idx) > 20 * max_sources:
        raise AnalysisError(
            f"{len(idx)} separated hot maxima: this is not a sparse point-source image")
    order = np.argsort(-v[tuple(idx.T)], kind="stable")
    kept: list[np.ndarray] = []
    for row in idx[order]:
        if all(np.linalg.norm((row - k) * d) > separation_mm for k in kept):
            kept.append(row)
    if len(kept) > max_sources:
        raise AnalysisError(
            f"{len(kept)} separated hot maxima (more than {max_sources}): this is not "
            "a sparse point-source image")
    return [(int(r[0]), int(r[1]), int(r[2])) for r in kept]


def _subvoxel_index(v: np.ndarray, p: tuple[int, int, int]) -> np.ndarray:
    """Peak position refined by 3-point parabolas along the three grid axes."""
    out = np.asarray(p, dtype=float)
    for ax in range(3):
        lo, hi = p[ax] - 1, p[ax] + 1
        if lo < 0 or hi >= v.shape[ax]:
            continue
        sl = list(p)
        vals = []
        for q in (lo, p[ax], hi):
            sl[ax] = q
            vals.append(float(v[tuple(sl)]))
        out[ax] = parabolic_peak(np.array(vals), 1)[0] - 1 + p[ax]
    return out


# --------------------------------------------------------------------------- profile sampling


def _position_class_cm(radius_mm: float) -> int:
    return min(NEMA_POSITIONS_CM, key=lambda c: abs(10.0 * c - radius_mm))


def _direction_steps(series: Series, e_lps: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """Index step for one sample along a patient-LPS unit vector, the step in mm,
    and whether the direction was snapped onto an image axis."""
    m = np.asarray(series.affine, dtype=float)[:3, :3]
    d_idx = np.linalg.solve(m, e_lps)  # index change per mm
    spacing = np.asarray(series.spacing, dtype=float)
    cosines = d_idx * spacing  # direction cosines against the index axes
    cosines /= np.linalg.norm(cosines)
    ax = int(np.argmax(np.abs(cosines)))
    if abs(cosines[ax]) >= np.cos(np.deg2rad(SNAP_DEGREES)):
        step = np.zeros(3)
        step[ax] = np.sign(cosines[ax])
        return step, float(spacing[ax]), True
    h = float(min(spacing[1], spacing[2])) if abs(cosines[0]) < 0.5 else float(spacing[0])
    return h * cosines / spacing, h, False


def _sample(v: np.ndarray, centre: np.ndarray, steps: list[np.ndarray],
            half_lengths: list[int], exact: bool) -> np.ndarray:
    """Samples on the lattice ``centre + a·steps[0] + b·steps[1] + c·steps[2]``
    with |a| ≤ half_lengths[0] etc., shape ``(2L0+1, 2L1+1, 2L2+1)``; zero outside
    the volume. ``exact``: all points are voxel centres (no interpolation)."""
    grids = np.meshgrid(*[np.arange(-n, n + 1) for n in half_lengths], indexing="ij")
    pts = centre[:, None] + sum(np.outer(s, g.ravel()) for s, g in zip(steps, grids, strict=True))
    shape = grids[0].shape
    if exact:
        idx = np.rint(pts).astype(int)
        inside = np.all((idx >= 0) & (idx < np.array(v.shape)[:, None]), axis=0)
        out = np.zeros(idx.shape[1], dtype=float)
        out[inside] = v[tuple(idx[:, inside])]
        return out.reshape(shape)
    lo = np.maximum(np.floor(pts.min(axis=1)).astype(int) - 3, 0)
    hi = np.minimum(np.ceil(pts.max(axis=1)).astype(int) + 4, v.shape)
    if np.any(hi <= lo):
        return np.zeros(shape)
    crop = v[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(float)
    from scipy import ndimage  # cubic spline sampling: the run only

    vals = ndimage.map_coordinates(crop, pts - lo[:, None], order=3, mode="constant", cval=0.0)
    return vals.reshape(shape)


@dataclass
class _Axis:
    name: str
    step: np.ndarray
    step_mm: float
    snapped: bool


def _response_function(v: np.ndarray, p: np.ndarray, axes: list[_Axis], band: tuple[int, int],
                       half_length: int) -> np.ndarray:
    """Sum of the parallel profiles along axes[0] within ±band samples along axes[1], axes[2]."""
    exact = all(a.snapped for a in axes)
    vals = _sample(v, p, [a.step for a in axes], [half_length, band[0], band[1]], exact)
    return vals.sum(axis=(1, 2))


# --------------------------------------------------------------------------- the analysis


def _parse_axis(value: Any) -> tuple[float, float]:
    if value is None:
        return 0.0, 0.0
    if isinstance(value, str):
        parts = [p for p in value.replace(";", ",").split(",") if p.strip()]
    else:
        parts = list(value)
    if len(parts) != 2:
        raise AnalysisError(f"axis_mm must be 'x,y' in mm, got {value!r}")
    try:
        return float(parts[0]), float(parts[1])
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"axis_mm must be 'x,y' in mm, got {value!r}") from exc


@register
class SpatialResolution:
    """NEMA NU 2-2018 section 3: FWHM and FWTM of point sources, radial/tangential/axial."""

    id: ClassVar[str] = "pet.nema_nu2_2018.spatial_resolution"
    modality: ClassVar[str] = "PT"
    standard: ClassVar[str] = (
        "NEMA NU 2-2018 section 3: spatial resolution (see "
        "docs/standards/nema-nu2-2018.md#spatial-resolution)")
    title: ClassVar[str] = "PET spatial resolution (point sources)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("axis_mm", "x,y of the scanner axis in patient coordinates (radial and "
                  "tangential directions are taken from it)", "mm", "0,0"),
        Parameter("sum_width_fwhm", "width of the band of neighbouring profiles summed "
                  "into each response function, in multiples of the FWHM", "FWHM", 2.0),
        Parameter("separation_mm", "two point sources closer than this are one source",
                  "mm", 10.0),
        Parameter("threshold_fraction", "a local maximum above this fraction of the "
                  "brightest one is a point source", "", 0.1),
    )

    def detect(self, series: Series) -> float:
        """High for a few small hot spots on an almost empty background.

        Thresholds the volume at 10 % of its maximum: point sources give 1–20 small
        connected regions (each under 2 mL) covering under 0.1 % of the voxels; a
        cylinder or the IEC phantom covers tens of percent.
        """
        try:
            v = np.asarray(series.voxels)
            vmax = voxel_max(series)
            if not vmax > 0:
                return 0.0
            # Quick look first: the every-2nd-voxel subsample holds at least 1/8 of
            # the voxels, so more than 8 % of it above the threshold means more than
            # 1 % of the volume is.
            if float((v[::2, ::2, ::2] > 0.1 * vmax).mean()) > 0.08:
                return 0.02
            mask = v > 0.1 * vmax
            frac = float(mask.mean())
            if frac > 0.01:
                return 0.02
            voxel_ml = float(np.prod(series.spacing)) / 1000.0
            if frac * mask.size * voxel_ml > 50 * 2.0:
                # more than 50 regions of 2 mL could hold: not point sources, and no
                # need to label speckle (labelling is the slow part of this look)
                return 0.05
            labels, n = ndi.label(mask)
            if n == 0 or n > 50:
                return 0.05
            sizes_ml = np.bincount(labels.ravel())[1:] * voxel_ml
            if np.any(sizes_ml > 2.0):
                return 0.1
            bg = float(np.median(v[::max(1, v.shape[0] // 16)]))
            score = 0.95 if n <= 20 else 0.6
            return score if bg < 0.02 * vmax else 0.3
        except Exception:
            return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        axis = _parse_axis(params.get("axis_mm"))
        sum_width = float(params.get("sum_width_fwhm", 2.0))
        separation = float(params.get("separation_mm", 10.0))
        threshold = float(params.get("threshold_fraction", 0.1))
        result = Result(
            analysis=self.id, standard=self.standard,
            series_instance_uid=series.uid, device=series.facts.device,
            acquired_at=series.facts.acquired_at,
            parameters={
                "axis_mm": list(axis),
                # where the axis came from (no silent defaults): the header does not say
                "axis_mm_source": "given" if params.get("axis_mm") is not None else
                "not given: patient x = y = 0, where most scanners put the gantry axis",
                "sum_width_fwhm": sum_width,
                "separation_mm": separation, "threshold_fraction": threshold,
                "near_axis_mm": NEAR_AXIS_MM, "snap_degrees": SNAP_DEGREES,
                "radial_tangential_near_axis": "radial = vertical (y), tangential = "
                                               "horizontal (x), the NU 2 1 cm convention",
            })
        v = np.asarray(series.voxels, dtype=np.float32)
        peaks = find_point_sources(v, series.spacing, separation_mm=separation,
                                   threshold_fraction=threshold)
        if not peaks:
            raise AnalysisError("no point source found")
        sources: list[dict[str, Any]] = []
        for p in peaks:
            src = self._measure_source(series, v, p, axis, sum_width, result)
            if src is not None:
                sources.append(src)
        sources.sort(key=lambda s: (s["axial_mm"], s["radius_mm"]))
        for n, src in enumerate(sources, start=1):
            src["number"] = n
            for direction, w in src["widths"].items():
                if w is None:
                    continue
                labels = {"direction": direction, "position_cm": src["position_cm"],
                          "radius_mm": src["radius_mm"], "axial_mm": src["axial_mm"]}
                result.add("fwhm_mm", w.fwhm_mm, "mm", labels=dict(labels))
                result.add("fwtm_mm", w.fwtm_mm, "mm", labels=dict(labels))
        self._axial_averages(sources, result)
        mip_z = v.max(axis=0)
        mip_y = v.max(axis=1)
        result.evidence = {
            "sources": sources,
            "mip_transverse": mip_z, "mip_coronal": mip_y,
            "spacing": tuple(float(s) for s in series.spacing),
        }
        return result

    def _measure_source(self, series: Series, v: np.ndarray, p: tuple[int, int, int],
                        axis: tuple[float, float], sum_width: float,
                        result: Result) -> dict[str, Any] | None:
        pos_idx = _subvoxel_index(v, p)
        x, y, z = (float(c) for c in series.index_to_patient(pos_idx))
        dx, dy = x - axis[0], y - axis[1]
        radius = float(np.hypot(dx, dy))
        if radius < NEAR_AXIS_MM:
            e_r, e_t = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])
        else:
            e_r = np.array([dx / radius, dy / radius, 0.0])
            e_t = np.array([-e_r[1], e_r[0], 0.0])
        e_a = np.array([0.0, 0.0, 1.0])
        axes = {}
        for name, e in zip(DIRECTIONS, (e_r, e_t, e_a), strict=True):
            step, step_mm, snapped = _direction_steps(series, e)
            axes[name] = _Axis(name, step, step_mm, snapped)
        centre = np.asarray(p, dtype=float)

        def perpendicular(name: str) -> list[_Axis]:
            return [axes[name]] + [axes[o] for o in DIRECTIONS if o != name]

        # First pass: single profiles through the peak voxel, long enough to fall
        # below a tenth of the peak on both sides (doubling up to 256 samples).
        first: dict[str, Width | None] = {}
        half_len: dict[str, int] = {}
        for name in DIRECTIONS:
            n = 16
            while True:
                prof = _response_function(v, centre, perpendicular(name), (0, 0), n)
                w = nema_width(prof, axes[name].step_mm, centre=n)
                if w is not None or n >= 256:
                    break
                n *= 2
            first[name], half_len[name] = w, n
        where = f"source at ({x + 0.0:.1f}, {y + 0.0:.1f}, {z + 0.0:.1f}) mm"
        widths: dict[str, Width | None] = {}
        profiles: dict[str, dict[str, Any]] = {}
        for name in DIRECTIONS:
            others = [o for o in DIRECTIONS if o != name]
            band = []
            for o in others:
                w_o = first[o]
                m = 0 if w_o is None else int(np.floor(0.5 * sum_width * w_o.fwhm_mm
                                                        / axes[o].step_mm + 1e-9))
                band.append(m)
            n = half_len[name]
            prof = _response_function(v, centre, perpendicular(name), (band[0], band[1]), n)
            w = nema_width(prof, axes[name].step_mm, centre=n)
            if w is None:
                result.warnings.append(
                    f"{where}: the {name} response function does not fall below a tenth "
                    "of its peak inside the image; no width reported")
            elif axes[name].step_mm > w.fwhm_mm / 3.0:
                result.warnings.append(
                    f"{where}: {name} sample spacing {axes[name].step_mm:.2f} mm is larger "
                    f"than a third of the FWHM ({w.fwhm_mm:.2f} mm); NU 2 asks for at most "
                    "FWHM/3")
            widths[name] = w
            s_mm = (np.arange(len(prof)) - n) * axes[name].step_mm
            profiles[name] = {
                "position_mm": s_mm, "values": prof, "offset_mm": n * axes[name].step_mm,
                "step_mm": axes[name].step_mm, "band_samples": tuple(band),
                "snapped": axes[name].snapped,
            }
        if all(w is None for w in widths.values()):
            return None
        return {
            "index_kji": tuple(float(c) for c in pos_idx),
            "position_mm": (x, y, z),
            "radius_mm": round(radius, 1) + 0.0,
            "axial_mm": round(z, 1) + 0.0,
            "position_cm": _position_class_cm(radius),
            "widths": widths,
            "profiles": profiles,
        }

    @staticmethod
    def _axial_averages(sources: list[dict[str, Any]], result: Result) -> None:
        """NU 2 reports each transverse position's widths averaged over the axial
        positions ([U]); here: the arithmetic mean over all sources of one position
        class, per direction, when they lie at more than one axial position (5 mm apart)."""
        for cm in NEMA_POSITIONS_CM:
            group = [s for s in sources if s["position_cm"] == cm]
            axial = sorted({s["axial_mm"] for s in group})
            if len(axial) < 2 or axial[-1] - axial[0] < 5.0:
                continue
            for direction in DIRECTIONS:
                ws = [s["widths"][direction] for s in group if s["widths"][direction]]
                if not ws:
                    continue
                labels = {"direction": direction, "position_cm": cm, "n_sources": len(ws)}
                result.add("fwhm_mean_mm", float(np.mean([w.fwhm_mm for w in ws])), "mm",
                           labels=dict(labels))
                result.add("fwtm_mean_mm", float(np.mean([w.fwtm_mm for w in ws])), "mm",
                           labels=dict(labels))

    def figures(self, result: Result) -> list[Any]:
        """Per source: its three response functions side by side, each with the fitted
        parabola, its vertex, and the half/tenth-maximum crossings; then transverse and
        coronal maximum-intensity projections with the sources numbered."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        from scanbench.report.figures import RoiShape, slice_with_rois
        from scanbench.report.numbers import format_number

        ev = result.evidence
        if not ev:
            return []
        figs: list[Any] = []
        for src in ev["sources"]:
            drawn = [d for d in DIRECTIONS if src["widths"][d] is not None]
            if not drawn:
                continue
            fig = make_subplots(rows=1, cols=len(drawn), horizontal_spacing=0.07,
                                # two short lines: three titles side by side must fit
                                # a printed page's width without running into each other
                                subplot_titles=[
                                    f"{d}<br>FWHM "
                                    f"{format_number(src['widths'][d].fwhm_mm, decimals=2)} mm, "
                                    f"FWTM {format_number(src['widths'][d].fwtm_mm, decimals=2)}"
                                    " mm" for d in drawn])
            fig.update_annotations(font={"size": 12})
            for col, name in enumerate(drawn, start=1):
                w: Width = src["widths"][name]
                pr = src["profiles"][name]
                off = pr["offset_mm"]
                s_mm, vals = pr["position_mm"], np.asarray(pr["values"])
                i = int(np.argmin(np.abs(s_mm - (w.peak_mm - off))))
                i = min(max(i, 1), len(vals) - 2)
                xs = np.linspace(s_mm[i - 1], s_mm[i + 1], 21)
                coef = np.polyfit(s_mm[i - 1:i + 2], vals[i - 1:i + 2], 2)
                hm, tm = 0.5 * w.peak_value, 0.1 * w.peak_value
                first = col == 1
                fig.add_trace(go.Scatter(x=s_mm, y=vals, mode="lines+markers",
                                         name="response function", showlegend=first,
                                         line={"color": "#333333"}, marker={"size": 4}),
                              row=1, col=col)
                fig.add_trace(go.Scatter(x=xs, y=np.polyval(coef, xs), mode="lines",
                                         name="parabola through the peak", showlegend=first,
                                         line={"color": "#4363d8", "dash": "dash"}),
                              row=1, col=col)
                fig.add_trace(go.Scatter(
                    x=[w.peak_mm - off], y=[w.peak_value], mode="markers", name="peak",
                    showlegend=first, marker={"color": "#4363d8", "size": 9}), row=1, col=col)
                for level, crossing, label, colour in (
                        (hm, w.half_mm, "half maximum", "#e6194b"),
                        (tm, w.tenth_mm, "tenth maximum", "#f58231")):
                    fig.add_trace(go.Scatter(
                        x=[crossing[0] - off, crossing[1] - off], y=[level, level],
                        mode="lines+markers", name=label, showlegend=first,
                        line={"color": colour, "width": 1.5}, marker={"symbol": "x", "size": 8}),
                        row=1, col=col)
                fig.update_xaxes(title_text=f"{name} (mm from the peak voxel)", row=1, col=col)
            fig.update_yaxes(title_text="sum of voxel values (a.u.)", row=1, col=1)
            fig.update_layout(
                title_text=(f"Source {src['number']}: r = {format_number(src['radius_mm'])} mm "
                            f"from the axis, z = {format_number(src['axial_mm'])} mm"),
                template="simple_white", legend={"orientation": "h", "y": -0.25},
                margin={"l": 60, "r": 20, "t": 95, "b": 60}, height=420)
            figs.append(fig)
        dz, dy, dx = ev["spacing"]
        # Sources that project onto the same spot (the 1, 10 and 20 cm sources share x in
        # the coronal view; the two axial positions share x and y in the transverse one)
        # get one label, "1, 4", instead of labels printed over each other.
        for key, axes, spacing, title, y_title in (
                ("mip_transverse", (1, 2), (dy, dx),
                 "Transverse maximum-intensity projection, sources numbered", "y (mm)"),
                ("mip_coronal", (0, 2), (dz, dx),
                 "Coronal maximum-intensity projection, sources numbered", "z (mm)")):
            groups: list[tuple[tuple[float, float], list[str]]] = []
            for s in ev["sources"]:
                c = (s["index_kji"][axes[0]], s["index_kji"][axes[1]])
                near = next((g for g in groups
                             if np.hypot((g[0][0] - c[0]) * spacing[0],
                                         (g[0][1] - c[1]) * spacing[1]) < 12.0), None)
                if near is None:
                    groups.append((c, [str(s["number"])]))
                else:
                    near[1].append(str(s["number"]))
            rois = [RoiShape(c, 5.0, ", ".join(nums), "#e6194b") for c, nums in groups]
            figs.append(slice_with_rois(ev[key], spacing, rois, title, invert=True,
                                        reduce="max", y_title=y_title, view_margin_mm=30.0))
        return figs
