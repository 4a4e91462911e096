"""ACR large MRI phantom: low-contrast object detectability (``mr.acr.low_contrast``).

ACR Large and Medium Phantom Test Guidance, test 7 (slices 8–11) [C]
(STANDARDS.md C.1 #7; pylinac docs; hazen): each slice holds a thin plastic
sheet with 10 spokes of 3 discs at 12.5, 25.0 and 38.0 mm from the sheet's
centre, the disc diameter falling from 7.0 mm (spoke 1) to 1.5 mm (spoke 10);
the contrast rises from slice 8 (1.4 %) to slice 11 (5.1 %). A spoke counts
when all three of its discs are seen; counting starts at spoke 1 and stops at
the first incomplete spoke; the score of a series is the sum over the four slices.

Observer model (what "visible" means). Each disc gets one statistic, the
non-prewhitening matched-filter (Rose-model) signal-to-noise ratio of the disc as imaged
(a uniform disc blurred by the reconstruction's point-spread function,
:func:`disc_matched`) against a local plane background, in white noise of SD σ:

    z = (Σ w x − aᵀβ) / (σ √(Σ w² + aᵀ (XᵀX)⁻¹ a)),

computed on the slice after the sheet's rotationally symmetric structure beyond 30 mm
(the Gibbs ringing and shading at the sheet's dark rim, 6 mm outside the 38 mm ring) is
removed (:func:`rim_corrected`). With the template right, z is the ideal observer's
detectability d' for that disc on this image. A trained human observer detects such a signal
with a statistical efficiency of about 50 % of the
ideal observer (Burgess, Wagner, Jennings and Barlow, Science 214:93-94, 1981), so their
d' is √0.5 · z; the disc counts as *seen* when that reaches d' = 1, the conventional
detection threshold (76 % correct in two-alternative forced choice), i.e. when
**z ≥ 1/√0.5 ≈ 1.41** (``OBSERVER_Z_THRESHOLD``). The ACR rule then counts a spoke only
when all three of its discs are seen, from spoke 1 to the first incomplete spoke; for a
spoke with no signal an observer at this threshold sees all three discs by chance with
probability 0.079³ ≈ 5·10⁻⁴, so the all-three rule itself keeps false spokes rare. This
count, ``spokes_detected{slice}`` and ``spokes_detected_total``, is the one judged.

Published automated methods calibrate a detector against human readers empirically
(Golestani and Gee, JACMP 2025;26:e70173: radial profiles through each spoke compared
with a disc template by a general linear model, p-values corrected for false discovery
rate at 1.25 % over a search of spoke angles, compared with two human raters); this
module keeps
one fixed statistic per disc at its fitted place and takes the threshold from the
psychophysics above rather than from a fit to readers.

The strict statistical count (``spokes_detected_strict{slice}``, ``..._total``; reported,
not judged) uses the disc-mean statistic below (:func:`disc_z`, raw pixels) with
**z > 2.94**, a one-sided test whose false-positive rate is 5 % over the 30 discs of a slice
(Bonferroni: 0.17 % per disc); it is the rule
the virtual scanner states for its truth (``scanbench.simulate.mr.lcd_disc_z``).
Slices 8 to 11 rise in contrast, so a count that falls from one slice to the next is
not physical: the measurement's note then names the disc that stopped the count, its z
and the same disc's z on the lower-contrast slice.

The disc-mean statistic is computed on the image's own pixels (:func:`disc_z`): the disc is
the n_d pixels
whose centres lie inside it; the background is a plane fitted by least squares
to the pixels from 1 mm (at least two pixels, the edge blur) outside every
disc's edge out to 6 mm beyond this disc's edge, inside the sheet (outside it
there is no plastic and the fill is as bright as a disc); b̄ is that plane
averaged over the disc's pixels and v_b σ² its variance (≈ σ²/n_background for
a ring around the disc). The plane makes the background local in the way that
matters: a linear B1 shading across the 15–20 mm region cancels exactly. σ is
the image noise of the slice (:func:`difference_sigma`: the ±4σ-clipped SD of
differences of horizontally neighbouring pixels in a 60 mm square about the sheet's
centre, / √2). For white noise of SD σ the statistic is standard normal
when there is no disc, so the stated false-positive rate holds. Limits: noise
positively correlated between neighbouring pixels (interpolated or filtered
reconstructions) makes the neighbour-difference σ too small and region means
noisier than σ/√n, so more false positives than stated; on high-contrast slices
disc edges enter the σ window and raise it (virtual scanner, slice 11: σ 21.8
against 19.9, z about 10 % low), which errs towards fewer spokes.

An earlier version compared the disc with a 1–3 mm annulus of interpolated
samples. On the virtual scanner (cases without a ghost) its statistic ran 0.5–4.0
below the truth's z on average per slice, this one −1.4 to +0.2: the small
annulus's standard error, and bilinear samples blurring the disc into its
surroundings and not being independent. It stopped counts early (gradient-error
case, slices 8–11: 5/7/8/9 against a truth of 7/9/10/10, now 6/8/10/10); on real
scans the annulus of an outer-ring disc could reach the sheet's dark rim (a z of
146 on a 1.4 % disc). Pixels rather than interpolated samples make n_d exact.

Finding the discs: the sheet's dark rim is found on rays from the phantom
centre (the inward edge of the rim, half-way crossing) and a circle fitted to it
gives the sheet's centre (the phantom centre when no rim of 38–52 mm radius is
seen); the spoke pattern's rotation (and whether sizes fall
clockwise or counter-clockwise) is the one that maximises the
summed disc-minus-annulus contrast of spokes 1–3, which are well above noise on
every slice of a working scanner; the pattern is then refitted as an affine map
(shift, rotation, scale within 5 %, and up to 5 % of anisotropic scale or shear,
which a gradient-calibration error gives) to the signal-weighted centroids of
the discs of spokes 1–4, so that the small discs are sampled where they are
(virtual scanner with a 1 % / −0.5 % gradient error: outer-ring misplacement
0.7 mm → 0.3 mm). That per-slice fit is the start of a joint fit of slices 8–11
(:func:`fit_pattern`): the maximum-likelihood place of the whole pattern of 30 discs of one
contrast in white noise (the sum of every disc's matched statistic, so discs weigh with their
template's energy), each slice with its own centre and rotation (the sheets are rotated about
9° from one another), the three ring radii and the anisotropic part shared by the four
slices. Spokes 1–4 lie on one side of the sheet, so on their own they trade centre against
rotation and misplace the small discs opposite them; on the real scans of the shared data the
joint fit raised the pattern statistic on every slice and removed every count that fell as
contrast rose (Siemens Aera T2 slice 9: spoke 7's 38 mm disc z 0.2 → 3.4). The ring radii it
finds are 12.7–12.9, 25.5–25.8 and 38.4–38.7 mm on every vendor's scan, against the
12.5/25/38 mm of the published descriptions.

Correlated noise: z is exact for white noise of SD σ. :func:`disc_free_z` reads the same
statistic at the disc-free places of the same slice (the empirical null, correlated noise as
it is); on the real scans of the shared data its SD is 0.7-2.0 where the sheet is uniform
between the discs, up to 7.6 where it holds structure (Siemens 3 T slice 8), so it is not
used to rescale the judged z (docs/mr-acr.md, Limits) but to check a disputed disc.

Per-disc evidence (z, contrast-to-noise Δ/σ, whether seen) is in the result's data
(``low_contrast_discs``) with both thresholds, and drawn on the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.mr.acr_locate import (
    AcrAxial,
    AcrAxialTest,
    _row_quantile,
    axial_geometry,
)
from scanbench.analysis.mr.ndi import erf, map_coordinates_linear
from scanbench.analysis.registry import register
from scanbench.phantoms.acr_mri import LCD_SHEET_RADIUS_MM
from scanbench.types import Result, Series

LCD_SLICES = (8, 9, 10, 11)  # [C]
RING_RADII_MM = (12.5, 25.0, 38.0)  # [C]
N_SPOKES = 10  # [C]
DIAMETERS_MM = tuple(float(d) for d in np.linspace(7.0, 1.5, N_SPOKES))  # [C]
#: one-sided normal quantile at a family-wise false-positive rate of 5 % over the 30 discs
#: of a slice (Bonferroni, α = 0.05 / 30): z ≈ 2.94. The virtual scanner states the same
#: rule for its truth (scanbench.simulate.mr.lcd_z_threshold).
# upper-tail normal quantile (statistics.NormalDist: scipy.stats costs ~0.5 s to import)
Z_THRESHOLD = NormalDist().inv_cdf(1.0 - 0.05 / (N_SPOKES * 3))
#: statistical efficiency of a human observer detecting a disc of known size and place in
#: white noise, relative to the ideal observer: about 50 % (Burgess, Wagner, Jennings and
#: Barlow, "Efficiency of human visual signal discrimination", Science 214:93-94, 1981).
HUMAN_EFFICIENCY = 0.5
#: detectability index at which a trained observer reports a disc as seen: d' = 1, the
#: conventional detection threshold of signal detection theory (76 % correct in a
#: two-alternative forced choice; Green and Swets, "Signal detection theory and
#: psychophysics", 1966).
HUMAN_D_PRIME = 1.0
#: the ideal-observer z a disc needs to be seen by that observer: d' / √efficiency ≈ 1.41.
OBSERVER_Z_THRESHOLD = HUMAN_D_PRIME / float(np.sqrt(HUMAN_EFFICIENCY))
ANNULUS_GAP_MM = 1.0
ANNULUS_WIDTH_MM = 2.0


def _grid(d: float) -> float:
    """Sampling step for a disc of diameter ``d``: about 10 samples across it."""
    return float(np.clip(d / 10.0, 0.1, 0.5))


def _disc_points(radius: float) -> tuple[np.ndarray, np.ndarray]:
    step = _grid(2 * radius)
    ax = np.arange(-radius + step / 2, radius, step)
    uu, vv = np.meshgrid(ax, ax)
    sel = uu ** 2 + vv ** 2 <= radius ** 2
    return uu[sel], vv[sel]


def _annulus_points(r0: float, r1: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    ax = np.arange(-r1 + step / 2, r1, step)
    uu, vv = np.meshgrid(ax, ax)
    rr = uu ** 2 + vv ** 2
    sel = (rr >= r0 ** 2) & (rr <= r1 ** 2)
    return uu[sel], vv[sel]


_DISC = {d: _disc_points(d / 2) for d in DIAMETERS_MM}
_ANNULUS = {d: _annulus_points(d / 2 + ANNULUS_GAP_MM, d / 2 + ANNULUS_GAP_MM + ANNULUS_WIDTH_MM,
                               _grid(d)) for d in DIAMETERS_MM}


def sheet_centre(acr: AcrAxial, n: int) -> tuple[float, float, float]:
    """(u, v, inner radius) of the low-contrast sheet on slice ``n``, phantom frame (mm)."""
    angles = np.radians(np.arange(0.0, 360.0, 3.0))
    r = np.arange(25.0, 60.0, 0.1)
    u = r[None, :] * np.cos(angles)[:, None]
    v = r[None, :] * np.sin(angles)[:, None]
    prof = acr.sample(n, u, v)
    level = acr.outline(len(acr.order)).level  # the fill's signal (slice 11's outline)
    inside = _row_quantile(np.where(r[None, :] < 32.0, prof, np.nan), 0.5)
    floor = np.nanmin(np.nan_to_num(prof, nan=np.inf), axis=1)
    half = floor + 0.5 * (inside - floor)
    below = np.nan_to_num(prof, nan=np.inf) < half[:, None]
    j = np.argmax(below, axis=1)
    rows = np.arange(angles.size)
    ok = below.any(axis=1) & (j > 0) & (inside >= 0.3 * level)
    jm = np.maximum(j - 1, 0)
    p0, p1 = prof[rows, jm], prof[rows, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(p0 != p1, (p0 - half) / (p0 - p1), 0.5)
    rr = r[jm] + t * (r[j] - r[jm])
    pts = [(float(rr[i] * np.cos(angles[i])), float(rr[i] * np.sin(angles[i])))
           for i in np.flatnonzero(ok & np.isfinite(rr))]
    if len(pts) < 30:
        return 0.0, 0.0, float("nan")  # no rim seen: start from the phantom centre
    x, y = np.array(pts).T
    keep = np.ones(x.size, bool)
    cu = cv = rad = 0.0
    for _ in range(3):
        a = np.column_stack([x[keep], y[keep], np.ones(int(keep.sum()))])
        c, *_ = np.linalg.lstsq(a, x[keep] ** 2 + y[keep] ** 2, rcond=None)
        cu, cv = c[0] / 2, c[1] / 2
        rad = float(np.sqrt(c[2] + cu ** 2 + cv ** 2))
        keep = np.abs(np.hypot(x - cu, y - cv) - rad) < 1.5
    if not 38.0 < rad < 52.0 or np.hypot(cu, cv) > 10.0:
        return 0.0, 0.0, float("nan")  # not the sheet's rim: start from the phantom centre
    return float(cu), float(cv), rad


def difference_sigma(img: np.ndarray) -> float:
    """White-noise SD from differences of horizontally neighbouring pixels, / √2.

    A robust scale (median absolute deviation × 1.4826) sets a ±4σ clip against disc and
    rim edges; σ is then the plain SD of the clipped differences (× 1.0012, the SD of a
    normal truncated at ±4σ). The median absolute deviation alone is not used as the
    estimate: scanners store integer pixels, so differences are integers and their median
    absolute deviation moves in whole steps (σ = 9.4 or 10.5 for a true 10, a z off by up to
    5 %)."""
    d = np.diff(np.asarray(img, dtype=float), axis=1).ravel()
    d = d[np.isfinite(d)]
    if d.size < 10:
        return float("nan")
    med = float(np.median(d))
    mad = 1.4826 * float(np.median(np.abs(d - med)))
    if mad <= 0:
        mad = float(np.std(d))
    kept = d[np.abs(d - med) <= 4.0 * mad]
    return 1.0012 * float(np.std(kept)) / np.sqrt(2.0)


def noise_sigma(acr: AcrAxial, n: int, cu: float, cv: float) -> float:
    """Image noise σ inside the sheet (:func:`difference_sigma` of the raw pixels in a 60 mm
    square about the sheet's centre: an interpolated resampling would smooth the noise)."""
    rows, cols = acr.to_pixel(n, np.array([cu]), np.array([cv]))
    r, c = round(float(rows[0])), round(float(cols[0]))
    h = max(4, round(30.0 / max(acr.pixel_mm)))
    img = acr.image(n)[max(r - h, 0): r + h + 1, max(c - h, 0): c + h + 1]
    return difference_sigma(img)


def model_positions(angle0: float, sense: float, spokes: int = N_SPOKES) -> np.ndarray:
    """Disc centres (spoke, ring) as complex u + iv about the sheet centre, unit scale."""
    k = np.arange(spokes)[:, None]
    rr = np.asarray(RING_RADII_MM)[None, :]
    return rr * np.exp(1j * np.radians(angle0 + sense * 36.0 * k))


def disc_t(acr: AcrAxial, n: int, centres: np.ndarray, sigma: float) -> np.ndarray:
    """Disc-minus-annulus t of discs at ``centres`` (complex, shape (..., spokes, rings)),
    the spoke index giving the diameter, on interpolated samples: fast for many trial
    patterns, so it scores the pattern search; detection uses :func:`disc_z`."""
    image = acr.image(n)
    pix_area = acr.pixel_mm[0] * acr.pixel_mm[1]
    out = np.zeros(centres.shape)
    for k in range(centres.shape[-2]):
        d = DIAMETERS_MM[k]
        du, dv = _DISC[d]
        au, av = _ANNULUS[d]
        n_disc = max(1.0, np.pi * (d / 2) ** 2 / pix_area)
        r_in, r_out = d / 2 + ANNULUS_GAP_MM, d / 2 + ANNULUS_GAP_MM + ANNULUS_WIDTH_MM
        n_ann = max(1.0, np.pi * (r_out ** 2 - r_in ** 2) / pix_area)
        se = sigma * np.sqrt(1.0 / n_disc + 1.0 / n_ann)
        c = centres[..., k, :].ravel()
        pu, pv = c.real[:, None], c.imag[:, None]
        m_disc = np.nanmean(acr.sample(n, pu + du[None, :], pv + dv[None, :], image), axis=1)
        m_ann = np.nanmean(acr.sample(n, pu + au[None, :], pv + av[None, :], image), axis=1)
        out[..., k, :] = ((m_disc - m_ann) / se).reshape(centres[..., k, :].shape)
    return out


#: background region of a disc: from ``max(BACKGROUND_GAP_MM, 2 pixels)`` outside the edge of
#: every disc of the slice (so no disc's blurred edge enters it) out to
#: ``BACKGROUND_REACH_MM`` beyond this disc's edge, inside the sheet.
BACKGROUND_GAP_MM = 1.0
BACKGROUND_REACH_MM = 6.0


def _near_any(rr: np.ndarray, cc: np.ndarray, rows: np.ndarray, cols: np.ndarray,
              radii: np.ndarray, gap: float, pixel_mm: tuple[float, float]) -> np.ndarray:
    """Pixels (rows ``rr`` x columns ``cc``) within ``gap`` mm of the edge of any disc
    (centres ``rows``/``cols`` in pixels, ``radii`` in mm): every disc at once, the same
    distances as one disc at a time."""
    py, px = pixel_mm
    d2 = np.hypot((rr[None, :, None] - np.ravel(rows)[:, None, None]) * py,
                  (cc[None, None, :] - np.ravel(cols)[:, None, None]) * px)
    near: np.ndarray = (d2 <= (np.ravel(radii) + gap)[:, None, None]).any(axis=0)
    return near


def disc_z(acr: AcrAxial, n: int, centres: np.ndarray, sigma: float,
           sheet: tuple[float, float, float] | None = None,
           delta_out: np.ndarray | None = None) -> np.ndarray:
    """Detection statistic of every disc at ``centres`` (complex u + iv, shape (spokes,
    rings), the spoke index giving the diameter), on the image's own pixels.

    The disc is the set of pixels whose centres lie inside it (n_d pixels; the nearest
    pixel if none). The background is a plane a + b·x + c·y fitted by least squares to
    the pixels from the gap outside every disc's edge out to ``BACKGROUND_REACH_MM``
    beyond this disc's edge (and inside the sheet), so linear B1 shading across the
    region cancels; its value averaged over the disc's pixels, x̄_dᵀβ, is compared with
    the disc's mean:

        z = (mean_disc − x̄_dᵀβ) / (σ √(1/n_d + x̄_dᵀ (XᵀX)⁻¹ x̄_d)),

    whose standard error is exact for white noise of SD σ (the second term is the
    variance of the fitted background at the disc, ≈ 1/n_background for a ring around
    it). Under the null (no disc) z is standard normal, so z > ``Z_THRESHOLD`` has a
    5 % false-positive rate over the 30 discs of a slice. ``delta_out`` (same shape as
    ``centres``), when given, receives each disc's mean minus its background (signal
    units), from which the contrast-to-noise Δ/σ follows."""
    image = acr.image(n)
    py, px = acr.pixel_mm
    gap = max(BACKGROUND_GAP_MM, 2.0 * max(py, px))
    rows, cols = acr.to_pixel(n, centres.real, centres.imag)
    radii = np.broadcast_to(np.asarray(DIAMETERS_MM)[: centres.shape[0], None] / 2,
                            centres.shape)
    reach = float(radii.max()) + BACKGROUND_REACH_MM
    h_r, h_c = int(np.ceil(reach / py)) + 1, int(np.ceil(reach / px)) + 1
    if sheet is not None:
        # inside the sheet (outside it there is no plastic and the fill is as bright as a
        # disc): its rim's fitted radius, or the nominal radius where no rim was seen
        radius = sheet[2] if np.isfinite(sheet[2]) else LCD_SHEET_RADIUS_MM
        sr, sc = acr.to_pixel(n, np.array(sheet[0]), np.array(sheet[1]))
        sheet_rc: tuple[float, float, float] | None = (float(sr), float(sc), radius - gap)
    else:
        sheet_rc = None
    out = np.zeros(centres.shape)
    for k, j in np.ndindex(centres.shape):
        r0, c0, rad = float(rows[k, j]), float(cols[k, j]), float(radii[k, j])
        ir, ic = round(r0), round(c0)
        rr = np.arange(max(ir - h_r, 0), min(ir + h_r + 1, image.shape[0]))
        cc = np.arange(max(ic - h_c, 0), min(ic + h_c + 1, image.shape[1]))
        if rr.size == 0 or cc.size == 0:
            out[k, j] = np.nan
            continue
        shape = (rr.size, cc.size)
        dy = np.broadcast_to((rr[:, None] - r0) * py, shape)
        dx = np.broadcast_to((cc[None, :] - c0) * px, shape)
        dist = np.hypot(dy, dx)
        vals = image[np.ix_(rr, cc)]
        disc = dist <= rad
        if not disc.any():
            disc = dist <= dist.min()
        near_any = _near_any(rr, cc, rows, cols, radii, gap, (py, px))
        bg = ~near_any & (dist <= rad + BACKGROUND_REACH_MM) & np.isfinite(vals)
        if sheet_rc is not None:
            bg &= np.hypot((rr[:, None] - sheet_rc[0]) * py,
                           (cc[None, :] - sheet_rc[1]) * px) <= sheet_rc[2]
        if bg.sum() < 10 or not np.isfinite(vals[disc]).all():
            out[k, j] = np.nan
            continue
        x = np.column_stack([np.ones(int(bg.sum())), dx[bg], dy[bg]])
        beta, *_ = np.linalg.lstsq(x, vals[bg], rcond=None)
        xd = np.array([1.0, dx[disc].mean(), dy[disc].mean()])
        var_bg = float(xd @ np.linalg.solve(x.T @ x, xd))
        n_d = int(disc.sum())
        se = sigma * np.sqrt(1.0 / n_d + var_bg)
        delta = float(vals[disc].mean()) - float(xd @ beta)
        if delta_out is not None:
            delta_out[k, j] = delta
        out[k, j] = delta / se
    return out


#: FWHM of the point-spread function assumed for the matched template, in pixels: the main
#: lobe of the sinc of an unfiltered Fourier reconstruction (1.207 pixels).
PSF_FWHM_PIXELS = 1.21
#: the sheet's rotationally symmetric structure (the Gibbs ringing of its dark rim) is
#: removed beyond this radius (mm from the sheet's centre): the outer ring of discs (38 mm)
#: lies 6 mm inside the rim, where that ringing is as strong as the 1.4 % discs; inside it
#: the discs of the 12.5 and 25 mm rings cover too much of each circle for a median.
RIM_PROFILE_FROM_MM = 30.0
#: radial bin of that profile (mm): a quarter of the ringing's period at 1 mm pixels.
RIM_PROFILE_BIN_MM = 0.25


def rim_corrected(acr: AcrAxial, n: int, centres: np.ndarray,
                  sheet: tuple[float, float, float], image: np.ndarray | None = None
                  ) -> np.ndarray:
    """Slice ``n`` with the sheet's rotationally symmetric structure beyond
    ``RIM_PROFILE_FROM_MM`` removed: the median over angle of the pixels at each radius
    (``RIM_PROFILE_BIN_MM`` bins, every disc and a 2 mm margin excluded; the discs of the 38
    mm ring cover
    about a third of that circle), minus its level at 30–34 mm, is subtracted. A disc's
    local plane background cannot follow the ringing of the rim (a radial oscillation of
    about two pixels' period, decaying inwards), which on an unfiltered reconstruction
    reaches the outer ring's discs at their own contrast (Siemens Aera T1 of the shared data,
    slice 8: the removed profile swings from −2.7σ to +5.8σ between 40 and 42 mm; the
    outer-ring discs of spokes 7–8 read matched z −0.4 and −0.8 before, 1.6 and 2.9 after)."""
    full = np.array(acr.image(n) if image is None else image, dtype=float)
    py, px = acr.pixel_mm
    sr, sc = acr.to_pixel(n, np.array(sheet[0]), np.array(sheet[1]))
    rim = sheet[2] if np.isfinite(sheet[2]) else LCD_SHEET_RADIUS_MM
    edges = np.arange(RIM_PROFILE_FROM_MM, rim + 3.0, RIM_PROFILE_BIN_MM)
    # only pixels within the last bin edge are read or changed: work on that crop (the
    # same pixels, the same arithmetic; a 512 matrix is 30x larger than the sheet)
    reach_r, reach_c = edges[-1] / py + 2.0, edges[-1] / px + 2.0
    r_lo, r_hi = (max(0, int(np.floor(float(sr) - reach_r))),
                  min(full.shape[0], int(np.ceil(float(sr) + reach_r)) + 1))
    c_lo, c_hi = (max(0, int(np.floor(float(sc) - reach_c))),
                  min(full.shape[1], int(np.ceil(float(sc) + reach_c)) + 1))
    if r_lo >= r_hi or c_lo >= c_hi:
        return full
    img = full[r_lo:r_hi, c_lo:c_hi]  # a view: the correction below writes into ``full``
    rr_, cc_ = np.mgrid[r_lo:r_hi, c_lo:c_hi]
    radius = np.hypot((rr_ - float(sr)) * py, (cc_ - float(sc)) * px)
    rows, cols = acr.to_pixel(n, centres.real, centres.imag)
    free = np.isfinite(img)
    for k, j in np.ndindex(centres.shape):
        free &= np.hypot((rr_ - rows[k, j]) * py,
                         (cc_ - cols[k, j]) * px) > DIAMETERS_MM[k] / 2 + 2.0
    b = np.digitize(radius, edges) - 1  # bin index; −1 inside 30 mm
    profile = np.full(edges.size, np.nan)
    # the pixels of each bin at once (a stable sort by bin) instead of a mask per bin
    keep = free & (b >= 0) & (b < edges.size - 1)
    bins, vals = b[keep], img[keep]
    order = np.argsort(bins, kind="stable")
    bins, vals = bins[order], vals[order]
    starts = np.searchsorted(bins, np.arange(edges.size))
    for i in range(edges.size - 1):
        if starts[i + 1] - starts[i] >= 20:
            profile[i] = float(np.median(vals[starts[i]: starts[i + 1]]))
    level = float(np.nanmedian(profile[: round(4.0 / RIM_PROFILE_BIN_MM)]))
    if not np.isfinite(level):
        return full
    use = (b >= 0) & (b < edges.size) & np.isfinite(profile[np.clip(b, 0, edges.size - 1)])
    img[use] -= profile[b[use]] - level
    return full


def disc_matched(acr: AcrAxial, n: int, centres: np.ndarray, sigma: float,
                 sheet: tuple[float, float, float], image: np.ndarray,
                 contrast_out: np.ndarray | None = None) -> np.ndarray:
    """Non-prewhitening matched-filter statistic of every disc at ``centres`` on ``image``
    (slice ``n``'s pixels, e.g. :func:`rim_corrected`): the template w is the disc as
    imaged, a uniform disc blurred by a Gaussian of FWHM ``PSF_FWHM_PIXELS`` (radially,
    ½(1 + erf((r_disc − r)/(√2 s)))), weights below 0.02 dropped; the background is the
    same least-squares plane as :func:`disc_z` (pixels outside every disc's edge + gap,
    which also clears the template's support, out to 6 mm, inside the sheet):

        z = (Σ w x − aᵀβ) / (σ √(Σ w² + aᵀ (XᵀX)⁻¹ a)),   a = Σ w (1, dx, dy),

    exact for white noise of SD σ (standard normal where there is no disc), and the
    ideal observer's d' for that disc when the template is right. Against the disc-mean
    statistic it uses the disc's blurred edge, and a sub-pixel misplacement costs less.
    ``contrast_out`` receives the disc contrast the fit implies, (Σ w x − aᵀβ)/Σ w²
    (signal units)."""
    py, px = acr.pixel_mm
    gap = max(BACKGROUND_GAP_MM, 2.0 * max(py, px))
    s = PSF_FWHM_PIXELS * max(py, px) / 2.3548
    rows, cols = acr.to_pixel(n, centres.real, centres.imag)
    radii = np.broadcast_to(np.asarray(DIAMETERS_MM)[: centres.shape[0], None] / 2,
                            centres.shape)
    reach = float(radii.max()) + BACKGROUND_REACH_MM
    h_r, h_c = int(np.ceil(reach / py)) + 1, int(np.ceil(reach / px)) + 1
    radius = sheet[2] if np.isfinite(sheet[2]) else LCD_SHEET_RADIUS_MM
    sr, sc = acr.to_pixel(n, np.array(sheet[0]), np.array(sheet[1]))
    out = np.full(centres.shape, np.nan)
    frame = _Frame(image, (py, px), s, gap, rows, cols, radii,
                   (float(sr), float(sc), radius))
    for k, j in np.ndindex(centres.shape):
        got = frame.matched(float(rows[k, j]), float(cols[k, j]), float(radii[k, j]),
                            h_r, h_c)
        if got is None:
            continue
        stat, var, energy = got
        if contrast_out is not None:
            contrast_out[k, j] = stat / energy
        out[k, j] = stat / (sigma * np.sqrt(var))
    return out


@dataclass(frozen=True)
class _Frame:
    """What the matched statistic of one disc needs from its slice (:func:`disc_matched`,
    :func:`disc_free_z`): the image, pixel size (mm), PSF sigma (mm), the background gap
    (mm), every disc's pixel place and radius (excluded from backgrounds) and the sheet
    (centre row, column in pixels; radius in mm)."""

    image: np.ndarray
    pixel_mm: tuple[float, float]
    s: float
    gap: float
    rows: np.ndarray
    cols: np.ndarray
    radii: np.ndarray
    sheet: tuple[float, float, float]

    def matched(self, r0: float, c0: float, rad: float, h_r: int, h_c: int
                ) -> tuple[float, float, float] | None:
        """(Σ w x − aᵀβ, Σ w² + aᵀ(XᵀX)⁻¹a, Σ w²) of a disc of radius ``rad`` (mm) at pixel
        (``r0``, ``c0``) within ``h_r`` x ``h_c`` pixels of it, or None where the template or
        its background (at least 10 pixels) does not fit."""
        py, px = self.pixel_mm
        image = self.image
        ir, ic = round(r0), round(c0)
        rr = np.arange(max(ir - h_r, 0), min(ir + h_r + 1, image.shape[0]))
        cc = np.arange(max(ic - h_c, 0), min(ic + h_c + 1, image.shape[1]))
        if rr.size == 0 or cc.size == 0:
            return None
        shape = (rr.size, cc.size)
        dy = np.broadcast_to((rr[:, None] - r0) * py, shape)
        dx = np.broadcast_to((cc[None, :] - c0) * px, shape)
        dist = np.hypot(dy, dx)
        vals = image[np.ix_(rr, cc)]
        w = 0.5 * (1.0 + erf((rad - dist) / (np.sqrt(2.0) * self.s)))
        sup = (w > 0.02) & np.isfinite(vals)
        near_any = _near_any(rr, cc, self.rows, self.cols, self.radii, self.gap, (py, px))
        sr, sc, radius = self.sheet
        bg = (~near_any & ~sup & (dist <= rad + BACKGROUND_REACH_MM) & np.isfinite(vals)
              & (np.hypot((rr[:, None] - sr) * py, (cc[None, :] - sc) * px)
                 <= radius - self.gap))
        if bg.sum() < 10 or not sup.any():
            return None
        x = np.column_stack([np.ones(int(bg.sum())), dx[bg], dy[bg]])
        beta, *_ = np.linalg.lstsq(x, vals[bg], rcond=None)
        ws = w[sup]
        a = np.array([ws.sum(), (ws * dx[sup]).sum(), (ws * dy[sup]).sum()])
        stat = float(ws @ vals[sup] - a @ beta)
        var = float(ws @ ws + a @ np.linalg.solve(x.T @ x, a))
        return stat, var, float(ws @ ws)


def disc_free_z(acr: AcrAxial, n: int, centres: np.ndarray, sigma: float,
                sheet: tuple[float, float, float], image: np.ndarray, diameter: float,
                step_mm: float = 1.0) -> np.ndarray:
    """The empirical null of :func:`disc_matched` on slice ``n``: the same statistic (the
    same template of ``diameter`` mm, the same plane background with every disc of
    ``centres`` excluded, the same σ) at disc-free places of the same image, on a
    ``step_mm`` grid: places whose template stays inside the sheet (``gap`` and 1 mm
    inside its rim) and clears every disc by 2 mm.

    For white noise it is standard normal (the white-noise model); where the noise is
    correlated (filtered or interpolated reconstructions) its spread shows by how much one
    disc's z scatters more than that model states, and the fraction of places reading at
    least a disc's z says how often noise alone looks like that disc on this image. Used to
    check the model on real scans (tests/validation/test_mr_acr_real.py, docs/mr-acr.md);
    not part of the judged count."""
    py, px = acr.pixel_mm
    gap = max(BACKGROUND_GAP_MM, 2.0 * max(py, px))
    s = PSF_FWHM_PIXELS * max(py, px) / 2.3548
    rad = diameter / 2
    radius = sheet[2] if np.isfinite(sheet[2]) else LCD_SHEET_RADIUS_MM
    sr, sc = acr.to_pixel(n, np.array(sheet[0]), np.array(sheet[1]))
    rows, cols = acr.to_pixel(n, centres.real, centres.imag)
    radii = np.broadcast_to(np.asarray(DIAMETERS_MM)[: centres.shape[0], None] / 2,
                            centres.shape)
    grid = np.arange(-radius, radius + 1e-9, step_mm)
    places = (complex(sheet[0], sheet[1]) + grid[None, :] + 1j * grid[:, None]).ravel()
    places = places[np.abs(places - complex(sheet[0], sheet[1])) <= radius - gap - rad - 1.0]
    clear = (np.abs(places[:, None] - centres.ravel()[None, :])
             > radii.ravel()[None, :] + rad + 2.0).all(axis=1)
    places = places[clear]
    p_rows, p_cols = acr.to_pixel(n, places.real, places.imag)
    h_r = int(np.ceil((rad + BACKGROUND_REACH_MM) / py)) + 1
    h_c = int(np.ceil((rad + BACKGROUND_REACH_MM) / px)) + 1
    out = np.full(places.size, np.nan)
    frame = _Frame(image, (py, px), s, gap, rows, cols, radii,
                   (float(sr), float(sc), radius))
    for i in range(places.size):
        got = frame.matched(float(p_rows[i]), float(p_cols[i]), rad, h_r, h_c)
        if got is not None:
            out[i] = got[0] / (sigma * np.sqrt(got[1]))
    return out[np.isfinite(out)]


def disc_stats(acr: AcrAxial, n: int, cu: float, cv: float, angles0: np.ndarray,
               sense: float, sigma: float, spokes: int = N_SPOKES) -> np.ndarray:
    """t statistic per (angle, spoke, ring) for spoke patterns rotated by ``angles0`` (deg)."""
    angles0 = np.atleast_1d(np.asarray(angles0, dtype=float))
    centres = np.stack([complex(cu, cv) + model_positions(a, sense, spokes) for a in angles0])
    return disc_t(acr, n, centres, sigma)


def refine(acr: AcrAxial, n: int, centres: np.ndarray, spokes: int = 4) -> np.ndarray:
    """Refit the pattern as an affine map (shift, rotation, scale, anisotropic scale and
    shear) of the model to the signal-weighted centroids of the discs of spokes 1–``spokes``."""
    image = acr.image(n)
    obs, mod = [], []
    for k in range(spokes):
        d = DIAMETERS_MM[k]
        win = d / 2 + 1.5
        ax = np.arange(-win, win + 1e-9, 0.1)
        uu, vv = np.meshgrid(ax, ax)
        inside = uu ** 2 + vv ** 2 <= (d / 2 + 1.0) ** 2
        ring = (uu ** 2 + vv ** 2 > (d / 2 + 1.0) ** 2)
        for j in range(len(RING_RADII_MM)):
            c = centres[k, j]
            vals = acr.sample(n, c.real + uu, c.imag + vv, image)
            w = np.where(inside, np.nan_to_num(vals) - np.nanmedian(vals[ring]), 0.0)
            w = np.clip(w, 0.0, None)
            if w.sum() <= 0:
                continue
            total = w.sum()
            obs.append(complex(c.real + (w * uu).sum() / total, c.imag + (w * vv).sum() / total))
            mod.append(c)
    if len(obs) < 6:
        return centres
    zo, zm = np.array(obs), np.array(mod)
    # z -> a + b z + c z̄ is the general affine map of the plane: shift, rotation, scale and
    # the anisotropic scale/shear a gradient-calibration error gives (c = 0: similarity)
    m = np.column_stack([np.ones_like(zm), zm, np.conj(zm)])
    (a, b, c), *_ = np.linalg.lstsq(m, zo, rcond=None)
    if abs(abs(b) - 1.0) > 0.05 or abs(c) > 0.05 or abs(a) > 3.0:
        return centres  # not a plausible correction: keep the model
    return a + b * centres + c * np.conj(centres)


def pattern_maps(acr: AcrAxial, n: int, image: np.ndarray,
                 sheet: tuple[float, float, float]) -> list[np.ndarray]:
    """For each disc diameter, the map over pixel positions of the matched statistic a
    disc of that diameter centred there would give, in signal units: Σ w x minus Σ w times
    the mean of the background pixels (from ``max(BACKGROUND_GAP_MM, 2 pixels)`` outside
    the disc's edge out to ``BACKGROUND_REACH_MM`` beyond it, inside the sheet), with the
    template w of :func:`disc_matched`. Only the pattern fit uses it: a constant background
    in place of the plane (the plane's slopes are orthogonal to a centred round template),
    and other discs are not excluded from the background (the whole pattern moves together,
    so they bias every trial place alike)."""
    from scanbench.analysis.convolve import fftconvolve  # scipy.signal's, on numpy.fft

    py, px = acr.pixel_mm
    gap = max(BACKGROUND_GAP_MM, 2.0 * max(py, px))
    s = PSF_FWHM_PIXELS * max(py, px) / 2.3548
    radius = sheet[2] if np.isfinite(sheet[2]) else LCD_SHEET_RADIUS_MM
    sr, sc = acr.to_pixel(n, np.array(sheet[0]), np.array(sheet[1]))
    # only the sheet and the reach of its outer discs' templates matter: convolve that crop
    # (a fifth of a 512 matrix) and return full-size maps, NaN elsewhere
    reach = radius + DIAMETERS_MM[0] / 2 + BACKGROUND_REACH_MM + 2.0
    r_lo, r_hi = (max(0, int(np.floor(float(sr) - reach / py))),
                  min(image.shape[0], int(np.ceil(float(sr) + reach / py)) + 1))
    c_lo, c_hi = (max(0, int(np.floor(float(sc) - reach / px))),
                  min(image.shape[1], int(np.ceil(float(sc) + reach / px)) + 1))
    crop = np.asarray(image, dtype=float)[r_lo:r_hi, c_lo:c_hi]
    rr_, cc_ = np.mgrid[r_lo:r_hi, c_lo:c_hi]
    inside = ((np.hypot((rr_ - float(sr)) * py, (cc_ - float(sc)) * px) <= radius - gap)
              & np.isfinite(crop))
    img = np.where(inside, crop, 0.0)
    maps = []
    for d in DIAMETERS_MM:
        rad = d / 2
        h_r = int(np.ceil((rad + BACKGROUND_REACH_MM) / py))
        h_c = int(np.ceil((rad + BACKGROUND_REACH_MM) / px))
        ky, kx = np.mgrid[-h_r: h_r + 1, -h_c: h_c + 1]
        dist = np.hypot(ky * py, kx * px)
        w = 0.5 * (1.0 + erf((rad - dist) / (np.sqrt(2.0) * s)))
        w[w <= 0.02] = 0.0
        bg = ((dist >= rad + gap) & (dist <= rad + BACKGROUND_REACH_MM)).astype(float)
        # correlation = convolution with the flipped kernel (both are symmetric)
        # the template reads the image itself (as disc_matched does); only the background is
        # kept inside the sheet
        signal = fftconvolve(np.nan_to_num(crop), w, mode="same", backend="numpy")
        bg_sum = fftconvolve(img, bg, mode="same", backend="numpy")
        bg_n = fftconvolve(inside.astype(float), bg, mode="same", backend="numpy")
        full = np.full(image.shape, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            full[r_lo:r_hi, c_lo:c_hi] = signal - w.sum() * bg_sum / np.where(bg_n > 5, bg_n,
                                                                             np.nan)
        maps.append(full)
    return maps


def pattern_centres(centre: complex, angle: float, sense: float, radii: np.ndarray,
                    aniso: complex = 0j) -> np.ndarray:
    """Disc centres (spoke, ring) of a pattern about ``centre`` rotated by ``angle`` (deg),
    with ring radii ``radii`` (mm) and the anisotropic part ``aniso`` of an affine map
    (p → p + aniso·p̄: the unequal scale or shear a gradient-calibration error gives)."""
    k = np.arange(N_SPOKES)[:, None]
    p = np.asarray(radii, dtype=float)[None, :] * np.exp(1j * np.radians(angle + sense * 36.0 * k))
    return centre + p + aniso * np.conj(p)


def _next_layer(layer: np.ndarray, n_layers: int) -> np.ndarray:
    """The neighbouring layer ``map_coordinates(order=1)`` reads, at zero weight, for an
    exact integer layer index: the next one, or the one before for the last layer."""
    out: np.ndarray = np.where(layer + 1 < n_layers, layer + 1, np.maximum(layer - 1, 0))
    return out


def _bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray,
              layer: np.ndarray | None = None) -> np.ndarray:
    """``scipy.ndimage.map_coordinates(image, [rows, cols], order=1, mode="constant",
    cval=nan)`` (with ``layer``: of a stack of images, at the exact integer index ``layer``
    along the first axis), computed in numpy: the same four-neighbour weights, so the same
    values up to rounding in the last bit (tests/unit/analysis/mr/test_acr_low_contrast.py).
    It is the reference of :class:`_PatternScorer`, which reads 30 points per trial place
    of the pattern fit in about half the time of ``map_coordinates`` plus
    :meth:`AcrAxial.to_pixel` (30 against 60 µs on the benchmark machine); large point
    sets go through :func:`scanbench.analysis.mr.ndi.map_coordinates_linear` (SciPy's
    ``map_coordinates`` bit for bit, in numpy). A point whose neighbours leave the image,
    or touch a non-finite value (which ``map_coordinates`` spreads even at zero weight,
    also from the next layer of a stack), is handed to ``map_coordinates_linear``."""
    rows, cols = np.asarray(rows, dtype=float), np.asarray(cols, dtype=float)
    h, w = image.shape[-2:]
    r0, c0 = np.floor(rows), np.floor(cols)
    ok = (r0 >= 0) & (r0 <= h - 2) & (c0 >= 0) & (c0 <= w - 2)
    ri = np.where(ok, r0, 0).astype(np.intp)
    ci = np.where(ok, c0, 0).astype(np.intp)
    tr, tc = rows - r0, cols - c0
    if layer is None:
        v00, v01 = image[ri, ci], image[ri, ci + 1]
        v10, v11 = image[ri + 1, ci], image[ri + 1, ci + 1]
    else:
        li = np.asarray(layer, dtype=np.intp)
        v00, v01 = image[li, ri, ci], image[li, ri, ci + 1]
        v10, v11 = image[li, ri + 1, ci], image[li, ri + 1, ci + 1]
        # map_coordinates also reads the next layer at zero weight (a NaN there spreads;
        # the last layer's neighbour is the one before it)
        nxt = _next_layer(li, image.shape[0])
        ok &= (np.isfinite(image[nxt, ri, ci]) & np.isfinite(image[nxt, ri, ci + 1])
               & np.isfinite(image[nxt, ri + 1, ci]) & np.isfinite(image[nxt, ri + 1, ci + 1]))
    out = ((1.0 - tr) * ((1.0 - tc) * v00 + tc * v01) + tr * ((1.0 - tc) * v10 + tc * v11))
    ok &= np.isfinite(out)
    if not ok.all():
        bad = ~ok
        coords = [rows[bad], cols[bad]] if layer is None else [
            np.broadcast_to(np.asarray(layer, dtype=float), rows.shape)[bad], rows[bad],
            cols[bad]]
        out = np.array(out, dtype=float)
        out[bad] = map_coordinates_linear(image, coords)
    return np.asarray(out, dtype=float)


def _pattern_score(acr: AcrAxial, n: int, maps: list[np.ndarray] | np.ndarray,
                   centres: np.ndarray) -> float:
    rows, cols = acr.to_pixel(n, centres.real, centres.imag)
    stack = maps if isinstance(maps, np.ndarray) else np.stack(maps)
    # one interpolation over the stack of maps: the spoke index is an exact integer coordinate
    k = np.broadcast_to(np.arange(centres.shape[0])[:, None], centres.shape)
    v = _bilinear(stack, rows.ravel(), cols.ravel(), k.ravel())
    return float(np.sum(np.nan_to_num(v)))


class _MaxEvaluations(Exception):
    """The evaluation budget of :func:`nelder_mead` is spent."""


def nelder_mead(func: Any, x0: np.ndarray, initial_simplex: np.ndarray | None = None,
                xatol: float = 1e-4, fatol: float = 1e-4, maxfev: int | None = None
                ) -> np.ndarray:
    """The minimiser of ``func`` by the Nelder-Mead simplex method (Nelder and Mead, Computer
    Journal 7:308-313, 1965), step for step SciPy 1.17's
    ``scipy.optimize.minimize(method="Nelder-Mead")`` without bounds or adaptive parameters:
    the same initial simplex (5 % of each non-zero coordinate, 0.00025 for a zero one, or
    ``initial_simplex``), the same reflection, expansion, contraction and shrink
    coefficients (1, 2, 0.5, 0.5), the same stopping rule (simplex within ``xatol`` and its
    values within ``fatol``) and evaluation budget (``maxfev``; default 200 per
    parameter), so the same evaluations in the same order and the same result
    (tests/unit/analysis/mr/test_acr_low_contrast.py). Why not SciPy's: importing
    ``scipy.optimize`` takes about 0.3 s, a sixth of a whole ACR MRI run, for this loop
    (issue 15)."""
    x0 = np.atleast_1d(np.asarray(x0, dtype=float))
    n_par = x0.size
    if initial_simplex is None:
        sim = np.empty((n_par + 1, n_par), dtype=x0.dtype)
        sim[0] = x0
        for k in range(n_par):
            y = np.array(x0, copy=True)
            y[k] = (1 + 0.05) * y[k] if y[k] != 0 else 0.00025
            sim[k + 1] = y
    else:
        sim = np.asarray(np.atleast_2d(initial_simplex).copy(), dtype=float)
    budget = n_par * 200 if maxfev is None else maxfev
    calls = [0]

    def f(x: np.ndarray) -> float:
        if calls[0] >= budget:
            raise _MaxEvaluations
        calls[0] += 1
        return float(func(np.copy(x)))

    fsim = np.full((n_par + 1,), np.inf, dtype=float)
    try:
        for k in range(n_par + 1):
            fsim[k] = f(sim[k])
    except _MaxEvaluations:
        pass
    finally:
        ind = np.argsort(fsim)
        sim, fsim = np.take(sim, ind, 0), np.take(fsim, ind, 0)
    ind = np.argsort(fsim)
    fsim, sim = np.take(fsim, ind, 0), np.take(sim, ind, 0)
    rho, chi, psi, sigma = 1, 2, 0.5, 0.5
    while calls[0] < budget:
        try:
            if (np.max(np.ravel(np.abs(sim[1:] - sim[0]))) <= xatol
                    and np.max(np.abs(fsim[0] - fsim[1:])) <= fatol):
                break
            xbar = np.add.reduce(sim[:-1], 0) / n_par
            xr = (1 + rho) * xbar - rho * sim[-1]
            fxr = f(xr)
            shrink = False
            if fxr < fsim[0]:
                xe = (1 + rho * chi) * xbar - rho * chi * sim[-1]
                fxe = f(xe)
                if fxe < fxr:
                    sim[-1], fsim[-1] = xe, fxe
                else:
                    sim[-1], fsim[-1] = xr, fxr
            elif fxr < fsim[-2]:
                sim[-1], fsim[-1] = xr, fxr
            elif fxr < fsim[-1]:  # outside contraction
                xc = (1 + psi * rho) * xbar - psi * rho * sim[-1]
                fxc = f(xc)
                if fxc <= fxr:
                    sim[-1], fsim[-1] = xc, fxc
                else:
                    shrink = True
            else:  # inside contraction
                xcc = (1 - psi) * xbar + psi * sim[-1]
                fxcc = f(xcc)
                if fxcc < fsim[-1]:
                    sim[-1], fsim[-1] = xcc, fxcc
                else:
                    shrink = True
            if shrink:
                for j in range(1, n_par + 1):
                    sim[j] = sim[0] + sigma * (sim[j] - sim[0])
                    fsim[j] = f(sim[j])
        except _MaxEvaluations:
            pass
        ind = np.argsort(fsim)
        sim, fsim = np.take(sim, ind, 0), np.take(fsim, ind, 0)
    result: np.ndarray = sim[0]
    return result


class _PatternScorer:
    """:func:`_pattern_score` of one slice's stack of maps, for the thousands of trial places
    of the pattern fit: the same pixel positions (:meth:`AcrAxial.to_pixel`'s arithmetic) and
    the same bilinear values (:func:`_bilinear`), with the slice's geometry and the maps'
    finiteness worked out once instead of at every trial place (about 30 µs a place against
    60 µs; some 2,200 places per series)."""

    def __init__(self, acr: AcrAxial, n: int, stack: np.ndarray) -> None:
        self.acr, self.n, self.stack = acr, n, stack
        self.cy, self.cx = acr.centre(n)
        t = np.radians(acr.rotation_deg)
        self.cos, self.sin = np.cos(t), np.sin(t)
        self.py, self.px = acr.pixel_mm
        k_n, h, w = stack.shape
        self.flat = stack.reshape(-1)
        fin = np.isfinite(stack)
        fin &= fin[_next_layer(np.arange(k_n), k_n)]  # the map read at weight 0
        # a point is read by its own formula where its four neighbours (in its map and the
        # next) are finite; elsewhere _bilinear decides, as map_coordinates does
        self.good = fin[:, :-1, :-1] & fin[:, 1:, :-1] & fin[:, :-1, 1:] & fin[:, 1:, 1:]
        self.shape = (k_n, h, w)

    def __call__(self, centres: np.ndarray) -> float:
        u, v = centres.real, centres.imag
        x = u * self.cos - v * self.sin
        y = u * self.sin + v * self.cos
        rows, cols = (self.cy + y / self.py).ravel(), (self.cx + x / self.px).ravel()
        _, h, w = self.shape
        k = np.repeat(np.arange(centres.shape[0]), centres.shape[1])
        r0, c0 = np.floor(rows), np.floor(cols)
        if (r0.min() >= 0 and r0.max() <= h - 2 and c0.min() >= 0 and c0.max() <= w - 2):
            ri, ci = r0.astype(np.intp), c0.astype(np.intp)
            if self.good[k, ri, ci].all():
                i00 = (k * h + ri) * w + ci
                v00, v01 = self.flat[i00], self.flat[i00 + 1]
                v10, v11 = self.flat[i00 + w], self.flat[i00 + w + 1]
                tr, tc = rows - r0, cols - c0
                val = ((1.0 - tr) * ((1.0 - tc) * v00 + tc * v01)
                       + tr * ((1.0 - tc) * v10 + tc * v11))
                return float(np.sum(val))
        return float(np.sum(np.nan_to_num(_bilinear(self.stack, rows, cols, k))))


def fit_pattern(acr: AcrAxial, fits: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Refit the disc pattern of slices 8–11 jointly (maximum likelihood for a pattern of
    discs of one contrast per slice in white noise: the sum over all 30 discs of the matched
    statistic Σ w x − background, :func:`pattern_maps`; discs weigh with their template's
    energy, so the large discs place the pattern and the small ones hardly pull it).

    Per slice: the centre (2 parameters) and the rotation (1) — the four sheets are rotated
    about 9° from one another and the phantom's axis may tilt. Shared by the four slices
    (the sheets are the same drawing in the same magnet): the three ring radii and the
    anisotropic part of the affine map (the median of the per-slice :func:`refine`
    results). ``fits[n]`` holds ``centres`` (the starting pattern), ``angle``, ``sense`` and
    ``maps``; each gains ``fitted`` (the disc centres) and ``score_before``/``score_after``.

    Why: each slice fitted on its own to the centroids of spokes 1–4 misplaces the small
    discs on the far side of the sheet (the spokes used lie on one side, so centre and
    rotation trade off; a ringing rim shifts the centroids of the outer ring). Real data,
    Siemens Aera T2 of the shared data, slice 9: spoke 7's 38 mm disc read z 0.2 at the old
    place between its neighbours at 5.2 and 6.4; its z peaks 1.7 mm inwards."""
    slices = sorted(fits)
    start: dict[int, tuple[complex, float, float, complex]] = {}
    for n in slices:
        f = fits[n]
        m = model_positions(f["angle"], f["sense"]).ravel()
        a_m = np.column_stack([np.ones_like(m), m, np.conj(m)])
        (a, b, c), *_ = np.linalg.lstsq(a_m, f["centres"].ravel(), rcond=None)
        start[n] = (complex(a), f["angle"] + float(np.degrees(np.angle(b))), float(abs(b)),
                    complex(c) / complex(np.conj(b)))  # a + b m + c m̄ = a + p + (c / b̄) p̄
        f["maps"] = np.stack(f["maps"])  # once, not at every trial place
        f["scorer"] = _PatternScorer(acr, n, f["maps"])
        f["score_before"] = f["scorer"](f["centres"])
    radii = np.asarray(RING_RADII_MM) * float(np.median([start[n][2] for n in slices]))
    aniso = complex(np.median([start[n][3].real for n in slices]),
                    np.median([start[n][3].imag for n in slices]))
    place = {n: (start[n][0], start[n][1]) for n in slices}

    def slice_fit(n: int) -> None:
        f, (c0, a0) = fits[n], place[n]

        def cost(q: np.ndarray) -> float:
            return -f["scorer"](pattern_centres(
                complex(q[0], q[1]), float(q[2]), f["sense"], radii, aniso))

        x0 = np.array([c0.real, c0.imag, a0])
        simplex = x0 + np.array([[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 1.0]])
        best = nelder_mead(cost, x0, initial_simplex=simplex, xatol=0.02, fatol=1e-3,
                           maxfev=400)
        place[n] = (complex(best[0], best[1]), float(best[2]))

    def radii_cost(q: np.ndarray) -> float:
        return -sum(fits[n]["scorer"](pattern_centres(
            place[n][0], place[n][1], fits[n]["sense"], q, aniso)) for n in slices)

    for _ in range(2):
        for n in slices:
            slice_fit(n)
        best = nelder_mead(radii_cost, radii, xatol=0.02, fatol=1e-3, maxfev=300)
        # a ring radius more than 5 % from the drawing's is not the pattern: keep the scale
        if np.all(np.abs(best / np.asarray(RING_RADII_MM) - 1.0) <= 0.05):
            radii = best
    for n in slices:
        f = fits[n]
        f["fitted"] = pattern_centres(place[n][0], place[n][1], f["sense"], radii, aniso)
        f["score_after"] = f["scorer"](f["fitted"])
        del f["scorer"]
    return {"ring_radii_mm": radii, "aniso": aniso}


def spoke_pattern(acr: AcrAxial, n: int, cu: float, cv: float, sigma: float,
                  senses: tuple[float, ...] = (1.0, -1.0)) -> tuple[float, float]:
    """Rotation (deg) and sense (+1 clockwise on screen, −1 counter-clockwise) of the
    spokes: the one maximising the summed t of spokes 1–3."""
    best = (-np.inf, 0.0, 1.0)
    for sense in senses:
        angles = np.arange(0.0, 360.0, 3.0)
        s = disc_stats(acr, n, cu, cv, angles, sense, sigma, spokes=3).sum(axis=(1, 2))
        i = int(np.argmax(s))
        if s[i] > best[0]:
            best = (float(s[i]), float(angles[i]), sense)
    _, coarse, sense = best
    fine = np.arange(coarse - 3.0, coarse + 3.0001, 0.25)
    s = disc_stats(acr, n, cu, cv, fine, sense, sigma, spokes=3).sum(axis=(1, 2))
    return float(fine[int(np.argmax(s))]), sense


def count_spokes(detected: np.ndarray) -> int:
    """Complete spokes counted from spoke 1, stopping at the first incomplete one."""
    count = 0
    for row in detected:
        if not row.all():
            break
        count += 1
    return count


def _monotonicity_notes(counts: dict[int, int], z: dict[int, np.ndarray],
                        threshold: float) -> dict[int, str]:
    """Why a slice counts fewer spokes than a slice of lower contrast (the contrast rises
    from slice 8 to 11, so an observer's count should not fall): the disc that stopped the
    count, its z, and the same disc's z on the lower-contrast slice."""
    notes: dict[int, str] = {}
    for n in sorted(counts):
        lower = [m for m in counts if m < n and counts[m] > counts[n]]
        if not lower or counts[n] >= N_SPOKES:
            continue
        m = max(lower, key=lambda s: counts[s])
        k = counts[n]  # index of the first incomplete spoke
        j = int(np.nanargmin(z[n][k]))
        notes[n] = (
            f"fewer spokes than slice {m} ({counts[n]} against {counts[m]}) although its "
            f"contrast is higher: the count stopped at spoke {k + 1}, whose disc at "
            f"{RING_RADII_MM[j]:g} mm reads z = {z[n][k, j]:.1f} (threshold {threshold:.2f}) "
            f"where the same disc on slice {m} reads z = {z[m][k, j]:.1f}. " + (
                "Both lie within 1 of the threshold and noise alone moves z by a standard "
                "deviation of 1, so the disc falls either side of it by chance: a count "
                "decided at the threshold, not a misplaced pattern"
                if abs(z[n][k, j] - threshold) <= 1.0 and abs(z[m][k, j] - threshold) <= 1.0
                else "A disc that noise or an artefact hides on this slice")
            + "; the disc pattern is fitted jointly on slices 8-11 (its place is in the figure)")
    return notes


def measure(series: Series, result: Result) -> None:
    """Fit the disc pattern on slices 8-11, compute every disc's z and count spokes by the
    ACR rule, once with the human-observer threshold (``spokes_detected``) and once with
    the strict statistical threshold (``spokes_detected_strict``)."""
    acr = axial_geometry(series)
    ev: dict[int, Any] = {}
    senses: tuple[float, ...] = (1.0, -1.0)
    counts: dict[int, int] = {}
    strict: dict[int, int] = {}
    zs: dict[int, np.ndarray] = {}
    fits: dict[int, dict[str, Any]] = {}
    for n in sorted(LCD_SLICES, reverse=True):  # slice 11 (highest contrast) first
        cu, cv, rad = sheet_centre(acr, n)
        sigma = noise_sigma(acr, n, cu, cv)
        angle, sense = spoke_pattern(acr, n, cu, cv, sigma, senses)
        senses = (sense,)  # the direction sizes fall in is the phantom's, found on slice 11
        centres = refine(acr, n, complex(cu, cv) + model_positions(angle, sense))
        maps = pattern_maps(acr, n, rim_corrected(acr, n, centres, (cu, cv, rad)), (cu, cv, rad))
        fits[n] = {"sheet": (cu, cv, rad), "sigma": sigma, "angle": angle, "sense": sense,
                   "centres": centres, "maps": maps}
    joint = fit_pattern(acr, fits)
    for n in sorted(LCD_SLICES, reverse=True):
        f = fits[n]
        (cu, cv, rad), sigma, centres = f["sheet"], f["sigma"], f["fitted"]
        contrast = np.full(centres.shape, np.nan)
        corrected = rim_corrected(acr, n, centres, (cu, cv, rad))
        t = disc_matched(acr, n, centres, sigma, (cu, cv, rad), corrected, contrast)
        t_strict = disc_z(acr, n, centres, sigma, (cu, cv, rad))
        seen = t >= OBSERVER_Z_THRESHOLD
        detected = t_strict > Z_THRESHOLD
        counts[n] = count_spokes(seen)
        strict[n] = count_spokes(detected)
        zs[n] = t
        ev[n] = {"centre_uv": (cu, cv), "rim_radius": rad, "angle": f["angle"],
                 "sense": f["sense"], "centres": centres, "centres_single": f["centres"],
                 "pattern_score": (f["score_before"], f["score_after"]),
                 "ring_radii_mm": joint["ring_radii_mm"],
                 "sigma": sigma, "t": t, "t_strict": t_strict,
                 "cnr": contrast / sigma, "seen": seen, "detected": detected,
                 "image": acr.resample_later(n, 50.0, 0.25)}  # drawn by figures() only
    notes = _monotonicity_notes(counts, zs, OBSERVER_Z_THRESHOLD)
    for n in LCD_SLICES:
        m = result.add("spokes_detected", counts[n], "1", labels={"slice": n})
        m.note = notes.get(n)
    total = result.add("spokes_detected_total", sum(counts.values()), "1")
    total.note = (f"human-observer count, the one judged: a disc is seen when its "
                  f"matched-filter z is at least {OBSERVER_Z_THRESHOLD:.2f} (d' = "
                  f"{HUMAN_D_PRIME:g} at {100 * HUMAN_EFFICIENCY:.0f} % human efficiency); the "
                  f"strict statistical count (z above {Z_THRESHOLD:.2f}) is "
                  f"{sum(strict.values())}, reported as spokes_detected_strict_total")
    for n in LCD_SLICES:
        result.add("spokes_detected_strict", strict[n], "1", labels={"slice": n})
    strict_total = result.add("spokes_detected_strict_total", sum(strict.values()), "1")
    strict_total.note = (f"strict statistical count (z above {Z_THRESHOLD:.2f}: 5 % false "
                         f"positives over the 30 discs of a slice), not the judged count")
    result.evidence["slices"] = dict(sorted(ev.items()))
    result.data["low_contrast_discs"] = {
        "observer": (f"human observer: a disc is seen when its matched-filter z is at least "
                     f"{OBSERVER_Z_THRESHOLD:.2f} (d' = {HUMAN_D_PRIME:g} at a human "
                     f"efficiency of {100 * HUMAN_EFFICIENCY:.0f} %); judged as spokes_detected"),
        "strict": (f"statistical: z above {Z_THRESHOLD:.2f} (5 % false positives over the "
                   f"30 discs of a slice); reported as spokes_detected_strict, not judged"),
        "observer_z_threshold": OBSERVER_Z_THRESHOLD,
        "strict_z_threshold": Z_THRESHOLD,
        "slices": {str(n): {"sigma": e["sigma"],
                            "z": np.round(e["t"], 2).tolist(),
                            "z_strict": np.round(e["t_strict"], 2).tolist(),
                            "cnr": np.round(e["cnr"], 3).tolist(),
                            "seen": e["seen"].tolist()} for n, e in sorted(ev.items())},
    }


@register
class AcrLowContrast(AcrAxialTest):
    """Low-contrast object detectability on slices 8–11."""

    id: ClassVar[str] = "mr.acr.low_contrast"
    standard: ClassVar[str] = (
        "ACR Large and Medium Phantom Test Guidance (2022): low-contrast object detectability (see"
        " docs/standards/acr-mri.md#low-contrast-object-detectability)")
    title: ClassVar[str] = "ACR MRI low-contrast detectability (slices 8-11)"

    measure = staticmethod(measure)

    def figures(self, result: Result) -> list[Any]:
        from scanbench.report.figures import Window, image_figure
        from scanbench.report.numbers import format_number

        figs = []
        for n, ev in result.evidence.get("slices", {}).items():
            img = np.asarray(ev["image"], dtype=float)
            # The disc area (resampled on a 0.25 mm grid, ±50 mm about the centre), in a
            # window of the sheet's own signal range (inside 34 mm of the centre, clear of
            # the dark ring around the sheet) so the faint discs stay visible.
            ax = np.arange(img.shape[0]) * 0.25 - 50.0
            sheet = img[np.hypot(*np.meshgrid(ax, ax)) < 34.0]
            lo, hi = (float(v) for v in np.percentile(sheet[np.isfinite(sheet)], (0.5, 99.5)))
            spokes = result.get("spokes_detected", slice=n).value
            strict = result.get("spokes_detected_strict", slice=n).value
            fig = image_figure(
                img, (0.25, 0.25),
                f"slice {n}: {format_number(spokes)} spokes (disc seen: z\u00a0≥\u00a0"
                f"{format_number(OBSERVER_Z_THRESHOLD, digits=3)}, green; strict z\u00a0>\u00a0"
                f"{format_number(Z_THRESHOLD, digits=3)}: {format_number(strict)})",
                unit="signal", origin_mm=(-50.0, -50.0), full_resolution_link=False,
                window=Window((lo + hi) / 2, max(hi - lo, 1e-6), "sheet"),
                x_title="x (mm from the disc centre)", y_title="y (mm from the disc centre)")
            for k in range(N_SPOKES):
                for j in range(len(RING_RADII_MM)):
                    seen = bool(ev["seen"][k, j])
                    # the spoke that stopped the count drawn thicker: the reason is on it
                    stop = k == int(spokes) and not seen
                    r = DIAMETERS_MM[k] / 2
                    x, y = ev["centres"][k, j].real, ev["centres"][k, j].imag
                    colour = "#3cb44b" if seen else "#e6194b"
                    fig.add_shape(type="circle", x0=x - r, x1=x + r, y0=y - r, y1=y + r,
                                  line={"color": colour, "width": 3 if stop else 1})
                    z = float(ev["t"][k, j])
                    # each disc's statistic beside it, outwards from the centre (the inner
                    # rings are crowded), so a physicist sees why a spoke stopped
                    cu, cv = ev["centre_uv"]
                    ang = np.angle(complex(x - cu, y - cv))
                    off = r + 1.6
                    fig.add_annotation(
                        x=x + off * np.cos(ang), y=y + off * np.sin(ang),
                        text=format_number(z, decimals=1) if np.isfinite(z) else "–",
                        showarrow=False, font={"size": 9, "color": colour},
                        bgcolor="rgba(255,255,255,0.6)", borderpad=0,
                        hovertext=(f"spoke {k + 1}, {RING_RADII_MM[j]:g} mm ring, "
                                   f"{DIAMETERS_MM[k]:.2f} mm disc: z {z:.2f}, "
                                   f"contrast-to-noise {float(ev['cnr'][k, j]):.3f}"))
            figs.append(fig)
        return figs
