"""Finding a modular CT phantom (ACR 464, CatPhan) in an image and measuring its modules.

Shared by :mod:`scanbench.analysis.ct.acr464` and
:mod:`scanbench.analysis.ct.catphan`. Geometry is in the phantom frame of
:mod:`scanbench.phantoms.acr_ct` (``u`` right, ``v`` down, angles clockwise on
screen from 3 o'clock). A :class:`Frame` says where that frame lies on a
slice: the centre (fractional pixel), the rotation θ and whether the layout is
mirrored (a phantom scanned from the other end shows its inserts in the
opposite order). A phantom point at angle α lies at image angle θ + m·α.

Methods, each with its source:

- **CT number of an insert**: the mean in a circular ROI of partial-pixel
  weights (:func:`scanbench.analysis.roi.circle_patch`) at the insert's
  centre, averaged over the module's slices.
- **Slice thickness from a ramp** (ACR module 1 ramps; CatPhan CTP404 23°
  wire ramps, the CatPhan manual's "scan slice geometry"): the profile along
  the ramp (the maximum across its width, background subtracted), its full
  width at half maximum by linear interpolation, times the ramp's rise in z per
  mm across (0.5 for the ACR ramps, tan 23° = 0.42 for the CatPhan wires).
- **Bar-pattern modulation**: the profile across the bars (the mean along
  them) between the centres of the first and last bar — a whole number of
  periods — is fitted by least squares with a constant and the fundamental
  sinusoid of the pattern's frequency. A square wave of contrast C has a
  fundamental of amplitude 2C/π, and over whole periods the constant is the
  background plus C/2 whatever the blur, so the modulation transfer at the
  pattern frequency is MTF(f) = π·A / (4·(mean − background)) — the
  fundamental-harmonic form of the bar-pattern method of Droege and Morin
  (Med Phys 1982;9:758). A pattern counts as **resolved** when this MTF is at
  least :data:`RESOLVED_MTF` (0.10) and its amplitude is more than three
  standard errors above zero, and its frequency is below the Nyquist frequency
  of the pixel grid (above it the bars alias into a moiré, which is not a
  resolved pattern whatever its fitted amplitude): the objective criterion
  scanbench uses in place of the ACR's visual reading (stated, not an ACR
  number).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from scanbench.analysis.masks import fill_holes, largest_region_in_box
from scanbench.analysis.memo import memo
from scanbench.analysis.roi import circle_patch

if TYPE_CHECKING:
    from scanbench.types import Series

RESOLVED_MTF = 0.10
SIGNIFICANCE = 3.0
# The gain a calibrated orientation fit allows between measured and nominal CT numbers
# (an Elekta XVI cone-beam CatPhan reads about 0.73 × nominal).
CALIBRATION_GAIN = (0.5, 1.5)


@dataclass(frozen=True)
class Frame:
    """Where the phantom frame lies on an image: centre (row, col), rotation, mirror."""

    centre_yx: tuple[float, float]
    spacing_yx: tuple[float, float]
    angle_deg: float = 0.0
    mirror: int = 1

    def image_angle(self, phantom_angle_deg: float) -> float:
        return self.angle_deg + self.mirror * phantom_angle_deg

    def pixel(self, u: float, v: float) -> tuple[float, float]:
        """Fractional (row, col) of phantom point (u, v) mm."""
        row, col = self.pixels(np.asarray(u), np.asarray(v))
        return float(row), float(col)

    def pixels(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`pixel` for arrays of phantom points."""
        a = math.radians(self.angle_deg)
        v = self.mirror * np.asarray(v, float)
        u = np.asarray(u, float)
        x = u * math.cos(a) - v * math.sin(a)
        y = u * math.sin(a) + v * math.cos(a)
        cy, cx = self.centre_yx
        return cy + y / self.spacing_yx[0], cx + x / self.spacing_yx[1]

    def polar_pixel(self, angle_deg: float, distance_mm: float) -> tuple[float, float]:
        a = math.radians(angle_deg)
        return self.pixel(distance_mm * math.cos(a), distance_mm * math.sin(a))

    def direction(self, du: float, dv: float) -> tuple[float, float]:
        """The image (dy, dx) in mm of a phantom-frame direction (du, dv)."""
        a = math.radians(self.angle_deg)
        dv = self.mirror * dv
        return du * math.sin(a) + dv * math.cos(a), du * math.cos(a) - dv * math.sin(a)


# ------------------------------------------------------------------ finding the body


@dataclass(frozen=True)
class Body:
    centre_yx: tuple[float, float]
    radius_mm: float
    touches_edge: bool  # the object is cut by the image or reconstruction circle
    area_mm2: float
    #: minor / major axis of the ellipse with the object's second moments: 1 for the
    #: circular section of a cylindrical phantom, about 0.65-0.85 for a patient's body
    #: (wider than deep) (see :data:`MIN_PHANTOM_AXIS_RATIO`)
    axis_ratio: float = 1.0


#: The least :attr:`Body.axis_ratio` of a cylindrical phantom's section. A right circular
#: cylinder scanned axially has a circular section (ratio 1; 0.999 measured on the
#: rendered CatPhan and ACR 464, with a table under them); a gantry tilt or a phantom
#: tilted by t makes it an ellipse of ratio cos t, so 0.97 admits up to 14° (the CatPhan
#: manual and the ACR CT testing instructions ask for the phantom levelled, gantry at 0°).
#: A patient's body is wider than deep: lateral / AP about 1.2-1.5 in adults and
#: children (AAPM Report 204 (2011), section 2 and table 1B, lateral and AP dimensions),
#: a ratio of 0.65-0.85, and an outline 200 × 190 mm (0.95) still deviates 2.5 mm from
#: its circle: such a body is not taken for a 200 mm phantom of the same area.
MIN_PHANTOM_AXIS_RATIO = 0.97


#: No CT phantom detector takes a body whose area-equivalent radius is above this: the
#: ACR 464 detector wants its 200 mm section, 100 ± 12 mm (``acr464._classify``), the
#: CatPhan detector its 200 mm housing, 100 ± 10 mm (``catphan._classify``); both read
#: nothing else of such a body unless it is cut by the image or reconstruction circle.
LARGEST_PHANTOM_RADIUS_MM = 112.0


@dataclass(frozen=True)
class LargeBody:
    """A slice's largest object known only to be larger than any phantom the detectors
    take (area-equivalent radius above :data:`LARGEST_PHANTOM_RADIUS_MM`; at least
    ``radius_min_mm``) and not cut by the image or reconstruction circle: what
    :func:`find_bodies` keeps for such a slice (an adult patient's trunk) instead of the
    :class:`Body`, whose hole filling, centre and moments no detector would read."""

    radius_min_mm: float
    touches_edge: bool = False


def find_body(img: np.ndarray, spacing_yx: tuple[float, float],
              threshold_hu: float = -400.0) -> Body | None:
    """The largest object above ``threshold_hu`` (holes filled): centroid, the radius
    of the circle of the same area and the axis ratio of the ellipse of the same second
    moments (how round the section is); None if there is none."""
    body = _find_body(img, spacing_yx, threshold_hu, None)
    assert not isinstance(body, LargeBody)
    return body


def _find_body(img: np.ndarray, spacing_yx: tuple[float, float], threshold_hu: float,
               larger_than_mm: float | None) -> Body | LargeBody | None:
    """:func:`find_body`; with ``larger_than_mm``, a :class:`LargeBody` instead when the
    object's radius is above it and the object is not cut.

    Why that is exact: the filled object F is the largest region L plus its holes, so
    its area is at least L's and, computed by the same float steps (which round
    monotonically), its radius at least L's; a hole is background not 4-connected to the
    image border, so F meets the border where L does, and a hole within two pixels (the
    dilation below) of the padding would be joined to the padding unless L lay between
    them, so F meets the dilated padding exactly when L does. L's size and edges thus
    decide both without filling the holes."""
    mask = np.asarray(img) > threshold_hu
    if larger_than_mm is not None and threshold_hu > -1010.0:  # (padding not in the mask)
        large = _large_body(img, mask, spacing_yx, larger_than_mm)
        if large is not None:
            return large
    found = largest_region_in_box(mask)
    if found is None:
        return None
    box, region = found
    dy, dx = spacing_yx
    edge: bool | None = None
    if larger_than_mm is not None:
        radius_min = math.sqrt(float(np.count_nonzero(region)) * dy * dx / math.pi)
        if radius_min > larger_than_mm:
            outline = np.zeros_like(mask)
            outline[box] = region
            edge = _touches_edge(img, outline)  # the filled object's (docstring)
            if not edge:
                return LargeBody(radius_min)
    # label + largest + binary_fill_holes, exactly, within the mask's bounding box by
    # labelling (scipy's iterated hole filling cost 7 of the 11 ms a 512² slice took,
    # and the CatPhan and ACR 464 detectors call this on every slice of every CT series):
    # largest_region_filled's steps
    mask = np.zeros_like(mask)
    mask[box] = fill_holes(region)
    n = int(np.count_nonzero(mask))
    area = float(n) * dy * dx
    # ndimage.center_of_mass's value by the row and column counts: its sums of pixel
    # indices are integers (exact in float64 below 2**53, as here), and so is this one;
    # both are then one correctly rounded division. A tenth of the time.
    rows, cols = np.count_nonzero(mask, axis=1), np.count_nonzero(mask, axis=0)
    cy = int(rows @ np.arange(rows.size)) / n
    cx = int(cols @ np.arange(cols.size)) / n
    if edge is None:
        edge = _touches_edge(img, mask)
    # second central moments of the filled object (pixel counts in mm²): the
    # eigenvalues are the squared semi-axes / 4 of the equivalent ellipse
    ys, xs = np.nonzero(mask)
    cov = np.cov(np.vstack(((ys - cy) * dy, (xs - cx) * dx))) if ys.size > 2 else None
    ratio = 1.0
    if cov is not None:
        lo, hi = np.linalg.eigvalsh(cov)
        ratio = math.sqrt(max(float(lo), 0.0) / float(hi)) if hi > 0 else 1.0
    return Body((cy, cx), math.sqrt(area / math.pi), edge, area, ratio)


def _large_body(img: np.ndarray, mask: np.ndarray, spacing_yx: tuple[float, float],
                larger_than_mm: float) -> LargeBody | None:
    """The :class:`LargeBody` :func:`_find_body` gives, from one pass over its ``mask``
    (:func:`~scanbench.analysis.ct.slice_kernels.largest_region`: the largest region's
    size, whether it meets the image border or comes within two pixels of the padding),
    or None when that pass cannot show it (the caller then labels as before).

    Exact: the same region (the first of equal largest in raster order) and the same
    float steps to its radius. :func:`_touches_edge`'s padding test matters only when
    :func:`~scanbench.analysis.ct.common.reconstruction_mask` finds padding: a corner
    value below air whose regions meeting the border hold over 2 % of the slice. A value
    whose such regions hold only a few pixels (a flood from the border, :func:`~scanbench.\
analysis.ct.slice_kernels.border_region_area`) is none; the padding of any other lies
    among the pixels of that value, so a region farther than two pixels (the cross
    twice, as ``binary_dilation(iterations=2)``) from every one of them is not cut. A
    region nearer is left to the labelling."""
    from scanbench.analysis.ct.common import PADDING_BELOW_HU

    a = np.asarray(img)
    dy, dx = spacing_yx
    # all the mask's pixels, a bound of the largest region's: a phantom's slice (100 mm
    # radius) ends here, without numba (whose import a phantom's command line would pay)
    if math.sqrt(float(np.count_nonzero(mask)) * dy * dx / math.pi) <= larger_than_mm:
        return None
    from scanbench.analysis.ct.slice_kernels import border_region_area, largest_region

    values = np.zeros(0)  # no padding: nothing to stay away from
    corners = a[[0, 0, -1, -1], [0, -1, 0, -1]]
    if float(corners.min()) < -1005.0:  # (_touches_edge looks for padding only then)
        # a value whose regions meeting the border hold at most this many pixels is not
        # padding (that needs over 2 % of the slice: noisy air gives a few); one with more
        # is taken for padding, which only makes the pixels to stay away from more (the
        # flood stops there, instead of walking 2 % of the slice to be sure)
        few = min(256, int(0.02 * a.size))
        padding = [v for v in {float(c) for c in corners if c <= PADDING_BELOW_HU}
                   if border_region_area(a, v, few) > few]
        values = np.asarray(padding, dtype=np.float64)
    size, touches, close = largest_region(mask, a, values)
    if size == 0 or touches or close:
        return None
    radius_min = math.sqrt(float(size) * dy * dx / math.pi)
    if radius_min <= larger_than_mm:
        return None
    return LargeBody(radius_min)


def _touches_edge(img: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the object ``mask`` meets the image's edge or, when the slice has padding
    outside its reconstruction circle, comes within two pixels of that padding."""
    if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
        return True
    from scanbench.analysis.ct.common import reconstruction_mask

    # (a constant corner value below air is padding; a noise-free −1000 is just air)
    corners = np.asarray(img)[[0, 0, -1, -1], [0, -1, 0, -1]]
    data = reconstruction_mask(img) if float(corners.min()) < -1005.0 else None
    if data is not None and not data.all():
        return bool((mask & ndimage.binary_dilation(~data, iterations=2)).any())
    return False


def find_bodies(series: Series, step: int) -> list[Body | LargeBody | None]:
    """:func:`find_body` of every slice of ``series`` sampled every ``step`` pixels,
    computed once per series (memoised): the CatPhan and the ACR 464 detectors both look
    at every slice of every CT series the node receives, a patient's 500 slices too. A
    slice whose object is larger than any phantom they take and not cut gets a
    :class:`LargeBody` (its size from the largest region alone, about a seventh of the
    work): the detectors class it as showing no phantom, as they would its :class:`Body`."""
    v = np.asarray(series.voxels)
    _, dy, dx = series.spacing
    return memo(series, f"ct.find_body.{step}", lambda: [
        _find_body(v[k, ::step, ::step], (dy * step, dx * step), -400.0,
                   LARGEST_PHANTOM_RADIUS_MM) for k in range(v.shape[0])])


def bright_runs(values: np.ndarray, threshold: float, min_gap: int = 4) -> int:
    """How many separate arcs of a closed ring profile lie above ``threshold``.

    Gaps shorter than ``min_gap`` samples (2° at the 720 samples of
    :func:`ring_profile`) join the arcs on either side, so the bars of one bar group and
    noise flickering at the threshold count once. Why: a phantom's bar patterns are
    several separate objects spread round their ring (CatPhan CTP528: ten line-pair
    groups 18-25° apart; ACR 464 module 4: eight patterns 45° apart), while the bone a
    patient's body puts on that ring (a vertebra) is one arc or two.
    """
    above = np.asarray(values) > threshold
    if above.all():
        return 1
    if not above.any():
        return 0
    a = np.roll(above, -int(np.argmin(above)))  # starts below: an arc over the seam is one
    starts = np.flatnonzero(a[1:] & ~a[:-1]) + 1
    ends = np.flatnonzero(a[:-1] & ~a[1:]) + 1  # one past each arc
    if a[-1]:
        ends = np.append(ends, a.size)
    # gap before each arc after the first, and the one from the last arc round to the first
    gaps = np.append(starts[1:] - ends[:-1], starts[0] + a.size - ends[-1])
    return max(1, int(np.count_nonzero(gaps >= min_gap)))


def ring_profile(img: np.ndarray, frame: Frame, radius_mm: float, n: int = 720,
                 width_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(image angles deg, values) sampled round a circle about the frame centre;
    with ``width_mm`` the mean over radii within ±width/2."""
    ang = np.arange(n) * 360.0 / n
    radii = [radius_mm] if width_mm <= 0 else list(
        np.linspace(radius_mm - width_mm / 2, radius_mm + width_mm / 2, 5))
    dy, dx = frame.spacing_yx
    vals = np.zeros(n)
    for r in radii:
        rows = frame.centre_yx[0] + r * np.sin(np.radians(ang)) / dy
        cols = frame.centre_yx[1] + r * np.cos(np.radians(ang)) / dx
        vals += ndimage.map_coordinates(np.asarray(img, float), [rows, cols], order=1,
                                        mode="nearest")
    return ang, vals / len(radii)


def fit_orientation(img: np.ndarray, frame: Frame, features: list[tuple[float, float, float]],
                    *, angles: np.ndarray | None = None, mirrors: tuple[int, ...] = (1, -1),
                    smooth_mm: float = 1.5, clip_hu: float = 300.0,
                    calibrate: bool = False) -> tuple[Frame, float]:
    """The rotation and mirror that best put ``features`` ((angle°, distance mm, HU)) on the
    image: the mean of min(|image − nominal|, clip) at the predicted centres of a lightly
    smoothed image, minimised over a 1° grid then refined to 0.1°. Returns the frame and
    that mean cost (HU).

    With ``calibrate`` the nominal values are first mapped to the image by the least-squares
    line image = a·nominal + b at each trial pose (gain ``a`` held within
    :data:`CALIBRATION_GAIN`): cone-beam CT numbers are not calibrated like diagnostic CT
    (air reads about −800 HU on an Elekta XVI) while the inserts keep their order, so the
    pattern, not the absolute CT numbers, tells the pose."""
    dy, dx = frame.spacing_yx
    sm = ndimage.gaussian_filter(np.asarray(img, float), (smooth_mm / dy, smooth_mm / dx))
    a_feat = np.radians(np.array([f[0] for f in features]))
    d_feat = np.array([f[1] for f in features])
    hu = np.array([f[2] for f in features])
    grid = np.arange(-180.0, 180.0, 1.0) if angles is None else np.asarray(angles, float)

    def costs(thetas: np.ndarray, m: int) -> np.ndarray:
        t = np.radians(thetas)[:, None] + m * a_feat[None, :]
        rows = frame.centre_yx[0] + d_feat * np.sin(t) / dy
        cols = frame.centre_yx[1] + d_feat * np.cos(t) / dx
        v = ndimage.map_coordinates(sm, [rows.ravel(), cols.ravel()], order=1,
                                    mode="nearest").reshape(rows.shape)
        pred = np.broadcast_to(hu[None, :], v.shape)
        if calibrate and hu.std() > 0:
            hc = hu - hu.mean()
            gain = np.clip((v - v.mean(axis=1, keepdims=True)) @ hc / (hc @ hc),
                           *CALIBRATION_GAIN)
            pred = gain[:, None] * hc[None, :] + v.mean(axis=1, keepdims=True)
        return np.minimum(np.abs(v - pred), clip_hu).mean(axis=1)

    best: tuple[float, float, int] | None = None
    for m in mirrors:
        c = costs(grid, m)
        i = int(np.argmin(c))
        fine = grid[i] + np.arange(-1.0, 1.0001, 0.1)
        cf = costs(fine, m)
        j = int(np.argmin(cf))
        if best is None or cf[j] < best[0]:
            best = (float(cf[j]), float(fine[j]), m)
    assert best is not None
    return Frame(frame.centre_yx, frame.spacing_yx, best[1], best[2]), best[0]


def ring_correlation(img: np.ndarray, frame: Frame, radius_mm: float, model_values: np.ndarray,
                     width_mm: float = 6.0) -> Frame:
    """Rotation (and mirror) by circular cross-correlation of the image's ring profile with
    the model's (``model_values`` sampled at 0.5° steps from phantom angle 0°)."""
    n = model_values.size
    _, prof = ring_profile(img, frame, radius_mm, n=n, width_mm=width_mm)
    a = prof - prof.mean()
    best = (-np.inf, 0.0, 1)
    for m in (1, -1):
        b = model_values if m == 1 else model_values[(-np.arange(n)) % n]
        b = b - b.mean()
        # image angle = θ + m·α: image profile is the model profile shifted by θ
        corr = np.fft.ifft(np.fft.fft(a) * np.conj(np.fft.fft(b))).real
        k = int(np.argmax(corr))
        if corr[k] > best[0]:
            best = (float(corr[k]), k * 360.0 / n, m)
    theta = (best[1] + 180.0) % 360.0 - 180.0
    return Frame(frame.centre_yx, frame.spacing_yx, theta, best[2])


def refine_pose(img: np.ndarray, frame: Frame, features: list[tuple[float, float, float]],
                radius_mm: float) -> Frame:
    """Refine the centre and rotation from the inserts' intensity centroids (|image −
    local background| weighted, within 1.25 radii of each predicted centre): the centre
    moves by the median centroid shift, then the rotation by the mean angular offset
    of the centroids about the new centre. Inserts within 80 HU of their surroundings
    are not used; with fewer than three usable the frame is returned unchanged."""
    dy, dx = frame.spacing_yx
    img = np.asarray(img, float)
    found = []
    for ang, dist, hu in features:
        r0, c0 = frame.polar_pixel(ang, dist)
        ry, rx = radius_mm / dy, radius_mm / dx
        y0, y1 = int(max(r0 - 1.7 * ry, 0)), int(min(r0 + 1.7 * ry + 1, img.shape[0]))
        x0, x1 = int(max(c0 - 1.7 * rx, 0)), int(min(c0 + 1.7 * rx + 1, img.shape[1]))
        if y1 - y0 < 3 or x1 - x0 < 3:
            continue
        patch = img[y0:y1, x0:x1]
        yy, xx = np.mgrid[y0:y1, x0:x1]
        ring = np.hypot((yy - r0) * dy, (xx - c0) * dx)
        bg_pix = patch[(ring > 1.35 * radius_mm) & (ring < 1.7 * radius_mm)]
        if bg_pix.size < 5:
            continue
        bg = float(np.median(bg_pix))
        if abs(hu - bg) < 80.0:
            continue
        w = np.clip((patch - bg) * np.sign(hu - bg), 0.0, None)
        w = np.where(ring <= 1.25 * radius_mm, w, 0.0)
        if w.sum() <= 0:
            continue
        found.append((ang, dist, (yy * w).sum() / w.sum(), (xx * w).sum() / w.sum(), r0, c0))
    if len(found) < 3:
        return frame
    shift = np.median(np.array([(f[2] - f[4], f[3] - f[5]) for f in found]), axis=0)
    cy, cx = frame.centre_yx[0] + float(shift[0]), frame.centre_yx[1] + float(shift[1])
    offs = []
    for ang, _dist, fy, fx, _r0, _c0 in found:
        meas = math.degrees(math.atan2((fy - cy) * dy, (fx - cx) * dx))
        pred = frame.image_angle(ang)
        offs.append((meas - pred + 180.0) % 360.0 - 180.0)
    return Frame((cy, cx), frame.spacing_yx, frame.angle_deg + float(np.median(offs)),
                 frame.mirror)


# ------------------------------------------------------------------ ROI statistics


@dataclass(frozen=True)
class RoiStats:
    mean: float
    sd: float
    sem: float  # standard error of the mean over slices (or from pixels for one slice)
    n_slices: int
    slice_means: np.ndarray = field(default_factory=lambda: np.zeros(0))


def roi_stats(stack: np.ndarray, frame: Frame, centre_yx: tuple[float, float],
              radius_mm: float) -> RoiStats:
    """Mean and SD of a circular ROI on each slice of ``stack`` ``(k, y, x)``; the mean
    of the per-slice means, their standard error (slices' noise is independent), the
    mean per-slice pixel SD."""
    (sy, sx), w = circle_patch(stack.shape[1:], centre_yx, radius_mm, frame.spacing_yx)
    tot = float(w.sum())
    if tot <= 0:
        return RoiStats(float("nan"), float("nan"), float("nan"), 0, np.zeros(0))
    sub = np.asarray(stack[:, sy, sx], float)
    means = (sub * w).sum(axis=(1, 2)) / tot
    var = ((sub - means[:, None, None]) ** 2 * w).sum(axis=(1, 2)) / tot
    sd = float(np.sqrt(var.mean()))
    k = len(means)
    sem = float(means.std(ddof=1) / math.sqrt(k)) if k >= 3 else sd / math.sqrt(max(tot, 1.0) * k)
    return RoiStats(float(means.mean()), sd, sem, k, means)


def pooled_sem(stats: list[RoiStats]) -> float | None:
    """Standard error of an ROI mean from the slice-to-slice scatter pooled over ROIs of
    one size (each ROI's own mean removed): many more degrees of freedom than one ROI's
    few slices give. None with fewer than two slices."""
    devs = [s.slice_means - s.slice_means.mean() for s in stats if s.slice_means.size >= 2]
    if not devs:
        return None
    dof = sum(d.size - 1 for d in devs)
    var = sum(float((d**2).sum()) for d in devs) / dof
    return math.sqrt(var / devs[0].size)


# ------------------------------------------------------------------ slice thickness


@dataclass(frozen=True)
class RampProfile:
    position_mm: np.ndarray
    values: np.ndarray
    background: float
    peak: float
    fwhm_mm: float
    left_mm: float
    right_mm: float


def ramp_profile(img: np.ndarray, frame: Frame, centre_uv: tuple[float, float],
                 along_uv: tuple[float, float], half_length_mm: float,
                 half_width_mm: float) -> RampProfile | None:
    """The profile along a ramp (the mean across ±``half_width_mm``), its background
    (median of the profile's outer sixths) and FWHM (linear interpolation at half the peak above
    background). None when no peak stands out."""
    dy, dx = frame.spacing_yx
    step = 0.25 * min(dy, dx)
    s = np.arange(-half_length_mm, half_length_mm + step / 2, step)
    t = np.arange(-half_width_mm, half_width_mm + step / 2, step)
    au, av = along_uv
    cu, cv = centre_uv
    uu = cu + s[:, None] * au - t[None, :] * av
    vv = cv + s[:, None] * av + t[None, :] * au
    rows, cols = frame.pixels(uu, vv)
    vals = ndimage.map_coordinates(np.asarray(img, float), [rows.ravel(), cols.ravel()],
                                   order=1, mode="nearest").reshape(uu.shape)
    prof = vals.mean(axis=1)
    q = max(len(prof) // 6, 2)
    bg = float(np.median(np.concatenate([prof[:q], prof[-q:]])))
    i0 = int(np.argmax(prof))
    peak = float(prof[i0])
    if not peak - bg > 0:
        return None
    half = bg + 0.5 * (peak - bg)
    left = _crossing(prof, i0, -1, half)
    right = _crossing(prof, i0, +1, half)
    if left is None or right is None:
        return None
    return RampProfile(s, prof, bg, peak, (right - left) * step,
                       float(s[0] + left * step), float(s[0] + right * step))


def _crossing(p: np.ndarray, start: int, step: int, level: float) -> float | None:
    k = start
    while 0 <= k + step < len(p):
        a, b = p[k], p[k + step]
        if b < level <= a:
            return k + step * (a - level) / (a - b)
        k += step
    return None


# ------------------------------------------------------------------ bar patterns


@dataclass(frozen=True)
class BarModulation:
    lp_per_cm: float
    mtf: float
    amplitude_hu: float
    amplitude_se_hu: float
    mean_hu: float
    background_hu: float
    resolved: bool
    position_mm: np.ndarray
    profile: np.ndarray
    # standard error of ``mtf`` from the pixel noise (amplitude, window mean, background)
    mtf_se: float = float("nan")


def bar_modulation(img: np.ndarray, frame: Frame, first_bar_uv: tuple[float, float],
                   across_uv: tuple[float, float], lp_per_cm: float, n_bars: int,
                   bar_length_mm: float, background_hu: float, noise_sd_hu: float,
                   threshold: float = RESOLVED_MTF, *,
                   background_se_hu: float = 0.0) -> BarModulation:
    """Modulation at a bar pattern's frequency (module docstring). ``first_bar_uv`` is
    the centre of the first bar, ``across_uv`` the unit direction across the bars; the
    window runs n_bars − 1 whole periods to the centre of the last bar, over the central
    2/3 of the bar length. The pixels themselves are fitted at their exact positions
    across the bars (no interpolation, which would blur the profile); ``noise_sd_hu`` is
    the pixel noise of ``img``, for the amplitude's standard error (pixels taken as
    correlated over 2 × 2)."""
    dy, dx = frame.spacing_yx
    period = 10.0 / lp_per_cm
    length = (n_bars - 1) * period
    au, av = across_uv
    cu, cv = first_bar_uv
    # bounding box of the window on the image
    corners = [(cu + s_ * au - t_ * av, cv + s_ * av + t_ * au)
               for s_ in (0.0, length) for t_ in (-bar_length_mm / 3, bar_length_mm / 3)]
    pr, pc = frame.pixels(np.array([c[0] for c in corners]), np.array([c[1] for c in corners]))
    r0, r1 = int(max(np.floor(pr.min()) - 1, 0)), int(min(np.ceil(pr.max()) + 2, img.shape[0]))
    c0, c1 = int(max(np.floor(pc.min()) - 1, 0)), int(min(np.ceil(pc.max()) + 2, img.shape[1]))
    rr, cc = np.mgrid[r0:r1, c0:c1]
    # image mm offsets from the first bar's centre, back to the phantom frame (s, t)
    fr, fc = frame.pixel(cu, cv)
    ey, ex = (rr - fr) * dy, (cc - fc) * dx
    sy, sx = frame.direction(au, av)  # image direction of +s
    ty, tx = frame.direction(-av, au)  # image direction of +t
    s = ey * sy + ex * sx
    t = ey * ty + ex * tx
    sel = (s >= 0) & (s <= length) & (np.abs(t) <= bar_length_mm / 3)
    s_sel = s[sel]
    vals = np.asarray(img, float)[r0:r1, c0:c1][sel]
    if s_sel.size < 8:
        nan = float("nan")
        return BarModulation(lp_per_cm, nan, nan, nan, nan, background_hu, False,
                             np.zeros(0), np.zeros(0))
    ph = 2 * math.pi * s_sel / period
    design = np.stack([np.ones_like(s_sel), np.cos(ph), np.sin(ph)], axis=1)
    coef, *_ = np.linalg.lstsq(design, vals, rcond=None)
    amp = float(math.hypot(coef[1], coef[2]))
    mean = float(coef[0])
    n_indep = max(s_sel.size / 4.0, 1.0)
    amp_se = noise_sd_hu * math.sqrt(2.0 / n_indep)
    contrast = 2.0 * (mean - background_hu)
    mtf = float(math.pi * amp / (2.0 * contrast)) if abs(contrast) > 1e-6 else float("nan")
    # first-order propagation: MTF = π·A / (2·C), C = 2·(mean − background)
    contrast_se = 2.0 * math.hypot(noise_sd_hu / math.sqrt(n_indep), background_se_hu)
    mtf_se = (math.hypot(math.pi * amp_se / (2.0 * contrast), mtf * contrast_se / contrast)
              if abs(contrast) > 1e-6 else float("nan"))
    nyquist_lp_cm = 10.0 / (2.0 * max(dy, dx))
    resolved = bool(np.isfinite(mtf) and mtf >= threshold and amp > SIGNIFICANCE * amp_se
                    and lp_per_cm < nyquist_lp_cm)
    order = np.argsort(s_sel)
    return BarModulation(lp_per_cm, mtf, amp, amp_se, mean, background_hu, resolved,
                         s_sel[order], vals[order], abs(mtf_se))


def highest_resolved(mods: list[BarModulation]) -> float | None:
    """The highest frequency of the run of resolved patterns from the lowest up
    (a pattern beyond an unresolved one does not count: aliasing can fake modulation)."""
    best = None
    for m in sorted(mods, key=lambda m: m.lp_per_cm):
        if not m.resolved:
            break
        best = m.lp_per_cm
    return best


def module_slices(z_mm: np.ndarray, centre_mm: float, half_range_mm: float) -> np.ndarray:
    """Indices of slices whose centres lie within ±half_range of a module centre."""
    return np.flatnonzero(np.abs(z_mm - centre_mm) <= half_range_mm + 1e-6)


def slice_positions(series_affine: np.ndarray, n: int) -> np.ndarray:
    """Position of each slice along the slice normal (mm), from the affine's k column."""
    k = np.arange(n, dtype=float)
    col = series_affine[:3, 0]
    norm = float(np.linalg.norm(col))
    if norm == 0:
        return k
    return k * norm
