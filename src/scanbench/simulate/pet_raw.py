"""Virtual PET scanner, raw mode: NEMA NU 2-2018 sensitivity, count-rate and TOF acquisitions
written as scanbench raw data (sinograms / list mode, docs/pet-raw-data.md) with ground truth.

Model (vectorised numpy; what is approximated is said here):

* **Geometry.** A cylinder of ``rings`` rings of ``crystals_per_ring`` crystals on
  ``ring_diameter_mm``, ring pitch ``ring_pitch_mm``; LORs accepted up to the
  maximum ring difference (MRD). The geometric acceptance of a point is computed
  exactly for the continuous cylinder: for every LOR azimuth the transverse
  chord through the point gives distances d1, d2 to the detector, and the range of
  polar angles whose two ends both land inside the axial FOV and within the MRD
  is integrated over the isotropic emission (crystal gaps and depth of
  interaction are ignored). Detection efficiency per photon (crystal and energy
  window) is one number, ``photon_efficiency``; F-18 emits a positron in 96.73 %
  of decays.
* **Sinograms.** The sources are line sources parallel to the axis, so the
  sinograms are analytic projections (no photon tracking): per view, the
  trues lie on the sinusoid ``s = x0 cos(phi) + y0 sin(phi)`` with a Gaussian
  radial response of ``fwhm_mm`` integrated over each bin; each view carries
  the acceptance and the attenuation of its own LOR direction (sleeve walls or
  polyethylene chord, times 1/cos of the polar angle). Counts are assigned to
  the SSRB plane of the emission point (the LOR midpoint differs by under a
  ring pitch for the positions simulated).
* **Scatter** is added as a smooth distribution per view (a Gaussian of
  ``scatter_sigma_mm`` around the source projection, times the count in that
  view) scaled so that the scatter fraction equals the model's
  ``scatter_fraction`` over the whole sinogram: scatter is a model input, not
  transported.
* **Randoms** come from the singles: ``R = 2 tau S^2 f_pairs / 2`` with the
  coincidence window ``2 tau`` and the fraction of detector pairs in
  coincidence ``f_pairs``; spread uniformly over the sinogram's bins and over the
  planes by the number of ring pairs that reach each plane. The delayed-window
  sinogram is an independent Poisson draw of the same expectation.
* **Dead time.** A single system dead time on the singles, paralysable
  (live fraction ``exp(-tau_d S)``) or non-paralysable (``1 / (1 + tau_d S)``);
  a coincidence needs both photons live (``live^2``).
* **Lu-176.** LYSO's intrinsic activity adds singles (in the randoms and the
  dead time) and true-like intrinsic coincidences spread over the sinogram.
* **Frames** of the decaying source are integrated over 5 sub-intervals each
  (the dead time is nonlinear in the rate).
* **List mode** (TOF): events from the same rates, detector pairs from
  sampled emissions (exact cylinder intersections snapped to crystals), arrival
  time difference ``t_a - t_b = (d_a - d_b) / c`` plus a Gaussian of the
  system's TOF FWHM; scattered photons are deflected at a random depth in
  the phantom and travel their longer path; randoms pair two independent
  singles with a time difference uniform over the coincidence window.

Ground truth: ``sensitivity_cps_per_kbq`` (attenuation-free, whole line
activity), the per-frame true/scatter/random/intrinsic rates inside the NEMA
120 mm mask, scatter fraction and NECR from them, the peak NECR and its
activity, and the TOF FWHM per activity.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import erf

from scanbench.rawdata import SPEED_OF_LIGHT_MM_PER_PS, Events, ScannerGeometry, SinogramLayout
from scanbench.rawdata.hdf5 import write_hdf5
from scanbench.types import DeviceIdentity

F18_HALF_LIFE_S = 6586.2
F18_POSITRON_FRACTION = 0.9673
MU_AL_PER_MM = 0.0224  # aluminium at 511 keV (0.0829 cm2/g x 2.70 g/cm3)
MU_PE_PER_MM = 0.0096  # polyethylene at 511 keV (0.0995 cm2/g x 0.96 g/cm3)
NEMA_SLEEVE_WALL_MM = 1.25  # STANDARDS.md A.2 [U]: ID/OD pairs give 1.25 mm walls
NEMA_MASK_MM = 120.0
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
DEFAULT_START = dt.datetime(2026, 3, 4, 9, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
_SUBSTEPS = 5
_GL_NODES = 12


@dataclass(frozen=True)
class RawScannerModel:
    """A virtual cylindrical PET scanner for raw-data acquisitions."""

    manufacturer: str = "scanbench"
    model: str = "Virtual PET"
    serial: str = "VPET-0001"
    rings: int = 96
    crystals_per_ring: int = 760
    ring_diameter_mm: float = 820.0
    ring_pitch_mm: float = 2.75  # 264 mm AFOV
    max_ring_difference: int = 95
    n_bins: int = 300
    bin_size_mm: float = 2.0
    n_views: int = 190
    plane_mash: int = 1  # SSRB planes summed into one (axial compression for long AFOV)
    fwhm_mm: float = 4.0
    photon_efficiency: float = 0.55
    tof_fwhm_ps: float = 214.0
    tof_degradation_ps_per_mcps: float = 0.5  # TOF FWHM growth with the singles rate
    coincidence_window_ps: float = 4200.0
    energy_window_kev: tuple[float, float] = (435.0, 585.0)
    dead_time_ns: float = 5.0  # effective system dead time on the singles, per 100 rings
    dead_time_model: str = "paralysable"
    singles_per_decay: float = 0.30  # singles per decay in the FOV, 20 cm phantom
    pair_fraction: float = 0.30  # fraction of singles pairs that fall on accepted LORs
    scatter_fraction: float = 0.36
    scatter_sigma_mm: float = 75.0
    lu_singles_cps_per_ring: float = 3000.0
    lu_coincidences_cps_per_ring: float = 30.0

    def __post_init__(self) -> None:
        if self.dead_time_model not in ("paralysable", "nonparalysable"):
            raise ValueError("dead_time_model must be 'paralysable' or 'nonparalysable'")
        if not 0 < self.max_ring_difference < self.rings:
            raise ValueError(f"max_ring_difference must be 1..{self.rings - 1}")
        if not 0 <= self.scatter_fraction < 1:
            raise ValueError("scatter_fraction must be in [0, 1)")
        if self.n_bins * self.bin_size_mm > self.ring_diameter_mm:
            raise ValueError("the sinogram is wider than the ring")

    @property
    def geometry(self) -> ScannerGeometry:
        return ScannerGeometry(
            rings=self.rings, crystals_per_ring=self.crystals_per_ring,
            ring_diameter_mm=self.ring_diameter_mm, ring_pitch_mm=self.ring_pitch_mm,
            max_ring_difference=self.max_ring_difference, span=1, tof_bins=0,
            coincidence_window_ps=self.coincidence_window_ps,
            energy_window_kev=self.energy_window_kev)

    @property
    def axial_fov_mm(self) -> float:
        return self.rings * self.ring_pitch_mm

    @property
    def device(self) -> DeviceIdentity:
        return DeviceIdentity(self.manufacturer, self.model, self.serial, "VPETRAW",
                              "scanbench-sim 0.1")

    def layout(self) -> SinogramLayout:
        n_ssrb = 2 * self.rings - 1
        n = n_ssrb // self.plane_mash
        dz = self.ring_pitch_mm / 2.0 * self.plane_mash
        return SinogramLayout(n_bins=self.n_bins, n_views=self.n_views,
                              bin_size_mm=self.bin_size_mm,
                              plane_z_mm=(np.arange(n) - (n - 1) / 2.0) * dz)

    @property
    def _scale(self) -> float:
        return self.rings / 100.0

    def live_fraction(self, singles_cps: np.ndarray | float) -> np.ndarray:
        tau = self.dead_time_ns * 1e-9 / self._scale  # more rings, more electronics
        s = np.asarray(singles_cps, dtype=float)
        if self.dead_time_model == "paralysable":
            return np.exp(-tau * s)
        return 1.0 / (1.0 + tau * s)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


RAW_SCANNER_MODELS: dict[str, RawScannerModel] = {
    "virtual-pet": RawScannerModel(),
    # A 106 cm system (like the Biograph Vision Quadra's MRD 85 mode).
    "long-afov-106": RawScannerModel(
        model="Virtual PET LAFOV", serial="VPET-LAFOV-0001", rings=320,
        crystals_per_ring=760, ring_diameter_mm=820.0, ring_pitch_mm=3.3125,
        max_ring_difference=85, n_views=190, plane_mash=4, tof_fwhm_ps=228.0,
        fwhm_mm=4.2),
    # A 2 m total-body system with full acceptance in 8 mm planes.
    "total-body-200": RawScannerModel(
        model="Virtual PET TB", serial="VPET-TB-0001", rings=672, crystals_per_ring=840,
        ring_diameter_mm=786.0, ring_pitch_mm=2.976, max_ring_difference=671, n_views=140,
        n_bins=240, bin_size_mm=2.5, plane_mash=5, tof_fwhm_ps=430.0, fwhm_mm=4.5,
        photon_efficiency=0.47, dead_time_ns=10.0),
    "analog-pmt": RawScannerModel(
        model="Virtual PET PMT", serial="VPET-PMT-0001", rings=24, crystals_per_ring=624,
        ring_diameter_mm=842.0, ring_pitch_mm=6.54, max_ring_difference=23, n_views=156,
        tof_fwhm_ps=550.0, photon_efficiency=0.75, dead_time_ns=3.5, fwhm_mm=5.5,
        singles_per_decay=0.35),
}


# ---------------------------------------------------------------- geometry


def acceptance(model: RawScannerModel, x0: float, y0: float, z_mm: np.ndarray,
               alpha: np.ndarray, mu_path_mm: np.ndarray | float = 0.0) -> np.ndarray:
    """Fraction of back-to-back photon pairs from ``(x0, y0, z)`` detected geometrically,
    per LOR azimuth ``alpha`` (radians, direction of the LOR in the transverse plane),
    weighted by the attenuation ``exp(-mu_path / cos(theta))`` along the polar angle.

    Returns ``(len(z), len(alpha))``: the fraction of the hemisphere of pair directions
    at that azimuth (so the mean over ``alpha`` in [0, pi) is the point's acceptance).
    ``mu_path_mm`` is ``mu * path`` at normal incidence, per azimuth (broadcast).
    """
    z = np.asarray(z_mm, dtype=float)[:, None]
    a = np.asarray(alpha, dtype=float)[None, :]
    ux, uy = np.cos(a), np.sin(a)
    r = model.ring_diameter_mm / 2.0
    pu = x0 * ux + y0 * uy
    disc = np.sqrt(np.maximum(pu**2 - (x0**2 + y0**2) + r * r, 0.0))
    d1, d2 = -pu + disc, pu + disc  # distances along +u and -u
    half = model.axial_fov_mm / 2.0
    m = model.max_ring_difference * model.ring_pitch_mm / (d1 + d2)
    w_hi = np.minimum(np.minimum((half - z) / d1, (z + half) / d2), m)
    w_lo = np.maximum(np.maximum(-(half + z) / d1, -(half - z) / d2), -m)
    s_hi = w_hi / np.sqrt(1 + w_hi**2)
    s_lo = w_lo / np.sqrt(1 + w_lo**2)
    ok = s_hi > s_lo
    mu = np.broadcast_to(np.asarray(mu_path_mm, dtype=float), a.shape)
    if not np.any(mu > 0):
        return np.where(ok, (s_hi - s_lo) / 2.0, 0.0)
    # integrate exp(-mu/cos) over sin(theta) in [s_lo, s_hi] (Gauss-Legendre)
    xg, wg = np.polynomial.legendre.leggauss(_GL_NODES)
    mid, hw = (s_hi + s_lo) / 2.0, (s_hi - s_lo) / 2.0
    total = np.zeros(np.broadcast(z, a).shape)
    for xi, wi in zip(xg, wg, strict=True):
        s = mid + hw * xi
        cos = np.sqrt(np.maximum(1 - s * s, 1e-12))
        total += wi * np.exp(-mu / cos)
    return np.where(ok, total * hw / 2.0, 0.0)


def _plane_edges(layout: SinogramLayout) -> np.ndarray:
    dz = float(layout.plane_z_mm[1] - layout.plane_z_mm[0]) if layout.n_planes > 1 else 1.0
    return np.concatenate([layout.plane_z_mm - dz / 2, [layout.plane_z_mm[-1] + dz / 2]])


def _line_view_weights(model: RawScannerModel, layout: SinogramLayout, x0: float, y0: float,
                       z_lo: float, z_hi: float, mu_path: np.ndarray | float,
                       samples_per_plane: int = 3) -> np.ndarray:
    """Coincidences per decay of a uniform line source from z_lo to z_hi, per plane and view:
    (planes, views), summing to the detected fraction of the line's decays."""
    edges = _plane_edges(layout)
    phi = layout.view_phi()
    alpha = phi + np.pi / 2.0
    out = np.zeros((layout.n_planes, layout.n_views))
    frac = (np.arange(samples_per_plane) + 0.5) / samples_per_plane
    for k in range(samples_per_plane):
        zc = edges[:-1] + frac[k] * (edges[1:] - edges[:-1])
        inside = (zc >= z_lo) & (zc <= z_hi)
        if not inside.any():
            continue
        acc = acceptance(model, x0, y0, zc[inside], alpha, mu_path)
        out[inside] += acc / layout.n_views * (edges[1:] - edges[:-1])[inside, None] \
            / samples_per_plane
    eff = model.photon_efficiency ** 2 * F18_POSITRON_FRACTION
    return out * eff / (z_hi - z_lo)


def _radial_profile(layout: SinogramLayout, centre: np.ndarray, sigma: float) -> np.ndarray:
    """(views, bins) Gaussian of ``sigma`` around ``centre`` (per view), integrated per bin."""
    s = layout.bin_s_mm()
    h = layout.bin_size_mm / 2.0
    c = centre[:, None]
    return 0.5 * (erf((s + h - c) / (math.sqrt(2) * sigma))
                  - erf((s - h - c) / (math.sqrt(2) * sigma)))


def _ring_pair_plane_weights(model: RawScannerModel, layout: SinogramLayout) -> np.ndarray:
    """Fraction of accepted ring pairs whose SSRB plane falls in each plane (randoms, Lu)."""
    r = np.arange(model.rings)
    ra, rb = np.meshgrid(r, r, indexing="ij")
    ok = np.abs(ra - rb) <= model.max_ring_difference
    plane = (ra + rb)[ok] // model.plane_mash
    w = np.bincount(np.minimum(plane, layout.n_planes - 1), minlength=layout.n_planes)
    return w / w.sum()


# ---------------------------------------------------------------- acquisitions


@dataclass
class _Rates:
    """Per-frame expected counts (planes, views, bins) per component and singles."""

    trues: np.ndarray
    scatter: np.ndarray
    randoms: np.ndarray
    intrinsic: np.ndarray
    singles_cps: float
    live: float


def _rate_factors(model: RawScannerModel, singles_per_bq: float, activity_bq: np.ndarray
                  ) -> tuple[float, float, float, float, float]:
    """Mean over the sub-intervals of: coincidence-live x activity (Bq), randoms (cps),
    live intrinsic coincidences (cps), live singles (cps), live fraction."""
    lu_s = model.lu_singles_cps_per_ring * model.rings
    lu_c = model.lu_coincidences_cps_per_ring * model.rings
    window_s = model.coincidence_window_ps * 1e-12
    a = np.asarray(activity_bq, dtype=float)
    singles = a * singles_per_bq + lu_s
    live = model.live_fraction(singles)
    coinc = live * live
    return (float(np.mean(coinc * a)),
            float(np.mean(window_s * (singles * live) ** 2 * model.pair_fraction / 2.0)),
            float(np.mean(coinc * lu_c)), float(np.mean(singles * live)), float(np.mean(live)))


def _frame_expectation(model: RawScannerModel, layout: SinogramLayout, trues_per_bq: np.ndarray,
                       scatter_per_bq: np.ndarray, singles_per_bq: float,
                       activity_bq: np.ndarray, duration_s: float) -> _Rates:
    """Expected counts of one frame, integrating the decay over sub-intervals."""
    plane_w = _ring_pair_plane_weights(model, layout)
    flat = np.ones((layout.n_views, layout.n_bins)) / (layout.n_views * layout.n_bins)
    spread = plane_w[:, None, None] * flat[None]
    ta, rr, ii, singles, live = _rate_factors(model, singles_per_bq, activity_bq)
    return _Rates(trues=trues_per_bq * ta * duration_s, scatter=scatter_per_bq * ta * duration_s,
                  randoms=spread * rr * duration_s, intrinsic=spread * ii * duration_s,
                  singles_cps=singles, live=live)


def _necr_peak_kbq_ml(model: RawScannerModel, layout: SinogramLayout, trues_pb: np.ndarray,
                      scatter_pb: np.ndarray, singles_per_bq: float, volume_ml: float) -> float:
    """Activity concentration of the model's NECR peak (inside the NEMA mask), 0.1 kBq/mL."""
    mask = _mask(layout)
    t1 = float(trues_pb[..., mask].sum())
    s1 = float(scatter_pb[..., mask].sum())
    frac = float(mask.sum()) / layout.n_bins
    grid = np.arange(0.5, 120.0, 0.1)
    necr = []
    for c in grid:
        ta, rr, ii, _, _ = _rate_factors(model, singles_per_bq,
                                         np.array([c * 1000.0 * volume_ml]))
        t, sc = t1 * ta, s1 * ta
        necr.append(t * t / (t + sc + (rr + ii) * frac))
    return float(grid[int(np.argmax(necr))])


def _mask(layout: SinogramLayout, mask_mm: float = NEMA_MASK_MM) -> np.ndarray:
    return np.abs(layout.bin_s_mm()) <= mask_mm


def _sub_activities(a0: float, start_s: float, duration_s: float) -> np.ndarray:
    lam = math.log(2.0) / F18_HALF_LIFE_S
    t = start_s + (np.arange(_SUBSTEPS) + 0.5) * duration_s / _SUBSTEPS
    return a0 * np.exp(-lam * t)


def _poisson(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    return rng.poisson(np.maximum(lam, 0.0)).astype(np.uint32)


def simulate_sensitivity(
    out_path: Path,
    *,
    scanner: RawScannerModel | None = None,
    activity_mbq: float = 5.0,
    line_length_mm: float = 700.0,
    radii_mm: tuple[float, ...] = (0.0, 100.0),
    sleeves: tuple[int, ...] = (5, 4, 3, 2, 1),
    frame_s: float = 60.0,
    background_s: float = 300.0,
    seed: int = 0,
) -> dict[str, Any]:
    """NEMA NU 2-2018 section 5 acquisition: a line source in 1..5 aluminium sleeves,
    at each radius, one frame per sleeve count, plus a background (no source) frame for
    the intrinsic rate. Writes ``out_path`` (HDF5) and ``<stem>_truth.json``."""
    model = scanner or RAW_SCANNER_MODELS["virtual-pet"]
    layout = model.layout()
    rng = np.random.default_rng(seed)
    sigma = model.fwhm_mm / FWHM_PER_SIGMA
    half_line = line_length_mm / 2.0
    frames: list[dict[str, Any]] = []
    t = 0.0
    a0 = activity_mbq * 1e6
    truth_sens: dict[str, float] = {}
    # background first: the intrinsic (Lu-176) rate without source
    zero = np.zeros((layout.n_planes, layout.n_views, layout.n_bins))
    bg = _frame_expectation(model, layout, zero, zero, 0.0, np.zeros(_SUBSTEPS), background_s)
    frames.append({"start_s": t, "duration_s": background_s, "singles_cps": bg.singles_cps,
                   "dead_time_fraction": 1 - bg.live ** 2, "attrs": {"role": "background"},
                   "prompts": _poisson(rng, bg.intrinsic + bg.randoms),
                   "delayed": _poisson(rng, bg.randoms)})
    t += background_s
    phi = layout.view_phi()
    for radius in radii_mm:
        x0, y0 = 0.0, float(radius)  # NEMA: the 10 cm position is displaced vertically
        free = _line_view_weights(model, layout, x0, y0, -half_line, half_line, 0.0)
        truth_sens[f"{radius:g}"] = float(free.sum()) * 1000.0  # cps per kBq
        centre = x0 * np.cos(phi) + y0 * np.sin(phi)
        prof = _radial_profile(layout, centre, sigma)
        for n in sleeves:
            mu_path = 2.0 * MU_AL_PER_MM * n * NEMA_SLEEVE_WALL_MM
            w = _line_view_weights(model, layout, x0, y0, -half_line, half_line, mu_path)
            trues = w[:, :, None] * prof[None]
            acts = _sub_activities(a0, t, frame_s)
            # a thin line in air: far fewer singles per decay than in the 20 cm phantom
            singles_per_bq = 0.5 * model.singles_per_decay \
                * min(1.0, model.axial_fov_mm / line_length_mm)
            rates = _frame_expectation(model, layout, trues, zero, singles_per_bq, acts, frame_s)
            frames.append({"start_s": t, "duration_s": frame_s, "singles_cps": rates.singles_cps,
                           "dead_time_fraction": 1 - rates.live ** 2,
                           "attrs": {"role": "source", "sleeves": n,
                                     "sleeve_wall_mm": NEMA_SLEEVE_WALL_MM,
                                     "source_x_mm": x0, "source_y_mm": y0},
                           "prompts": _poisson(rng, rates.trues + rates.randoms + rates.intrinsic),
                           "delayed": _poisson(rng, rates.randoms)})
            t += frame_s
    phantom = {"name": "NEMA NU 2 sensitivity line source with aluminium sleeves",
               "activity_bq": a0, "activity_time_s": 0.0, "line_length_mm": line_length_mm}
    write_hdf5(out_path, model.geometry, frames, layout=layout, device=model.device,
               acquired_at=DEFAULT_START, purpose="sensitivity", phantom=phantom,
               half_life_s=F18_HALF_LIFE_S)
    truth = {"kind": "sensitivity", "scanner": model.to_dict(),
             "sensitivity_cps_per_kbq": truth_sens,
             "sensitivity_mean_cps_per_kbq": float(np.mean(list(truth_sens.values()))),
             "line_length_mm": line_length_mm, "activity_bq": a0,
             "approximations": "analytic line-source projections; sleeve scatter not modelled"}
    _write_truth(out_path, truth)
    return truth


def _scatter_phantom_components(model: RawScannerModel, layout: SinogramLayout,
                                phantom_length_mm: float, offset_mm: float,
                                diameter_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Trues and scatter per Bq of the phantom's line source, (planes, views, bins)."""
    x0, y0 = 0.0, offset_mm  # line source nearest the table (posterior, +y in LPS)
    phi = layout.view_phi()
    centre = x0 * np.cos(phi) + y0 * np.sin(phi)
    rp = diameter_mm / 2.0
    chord = 2.0 * np.sqrt(np.maximum(rp * rp - centre**2, 0.0))
    half = phantom_length_mm / 2.0
    w = _line_view_weights(model, layout, x0, y0, -half, half, (MU_PE_PER_MM * chord)[None, :])
    prof = _radial_profile(layout, centre, model.fwhm_mm / FWHM_PER_SIGMA)
    trues = w[:, :, None] * prof[None]
    s = layout.bin_s_mm()
    sc_prof = np.exp(-0.5 * ((s[None, :] - centre[:, None]) / model.scatter_sigma_mm) ** 2)
    sc_prof /= sc_prof.sum(axis=1, keepdims=True)
    sf = model.scatter_fraction
    scatter = w[:, :, None] * sc_prof[None] * sf / (1.0 - sf)
    return trues, scatter


def simulate_count_rate(
    out_path: Path,
    *,
    scanner: RawScannerModel | None = None,
    start_activity_mbq: float = 1100.0,
    frames: int = 24,
    frame_s: float = 300.0,
    gap_s: float = 1200.0,
    phantom_length_mm: float = 700.0,
    phantom_diameter_mm: float = 203.0,
    line_offset_mm: float = 45.0,
    background_s: float = 1800.0,
    seed: int = 0,
    compression: int | None = 1,
) -> dict[str, Any]:
    """NEMA NU 2-2018 section 4 acquisition: the 20 cm scatter phantom (length
    ``phantom_length_mm``: 700 mm standard, 1400-1750 mm in long-AFOV practice), its
    line source at 45 mm, frames as the source decays. Writes HDF5 + truth JSON."""
    model = scanner or RAW_SCANNER_MODELS["virtual-pet"]
    layout = model.layout()
    rng = np.random.default_rng(seed)
    trues_pb, scatter_pb = _scatter_phantom_components(
        model, layout, phantom_length_mm, line_offset_mm, phantom_diameter_mm)
    in_fov = min(1.0, model.axial_fov_mm / phantom_length_mm)
    singles_per_bq = model.singles_per_decay * in_fov
    volume_ml = math.pi * (phantom_diameter_mm / 2.0) ** 2 * phantom_length_mm / 1000.0
    mask = _mask(layout)
    a0 = start_activity_mbq * 1e6
    truth_frames: list[dict[str, Any]] = []
    lam = math.log(2.0) / F18_HALF_LIFE_S

    def frames_written() -> Iterator[dict[str, Any]]:
        """One frame at a time, so that a 30-frame 2 m study is never in memory at once."""
        t = 0.0
        for _ in range(frames):
            acts = _sub_activities(a0, t, frame_s)
            r = _frame_expectation(model, layout, trues_pb, scatter_pb, singles_per_bq, acts,
                                   frame_s)
            x = lam * frame_s
            a_mean = a0 * math.exp(-lam * t) * (1 - math.exp(-x)) / x
            rates = {k: float(getattr(r, k)[..., mask].sum() / frame_s)
                     for k in ("trues", "scatter", "randoms", "intrinsic")}
            total = sum(rates.values())
            truth_frames.append({
                "start_s": t, "activity_bq": a_mean,
                "activity_concentration_kbq_ml": a_mean / volume_ml / 1000.0,
                **{f"{k}_kcps": v / 1000.0 for k, v in rates.items()},
                "total_kcps": total / 1000.0,
                "scatter_fraction_percent":
                    100.0 * rates["scatter"] / (rates["trues"] + rates["scatter"]),
                "necr_kcps": rates["trues"] ** 2 / total / 1000.0,
                "singles_cps": r.singles_cps, "live_fraction": r.live})
            prompts = _poisson(rng, r.trues + r.scatter + r.randoms + r.intrinsic)
            delayed = _poisson(rng, r.randoms)
            del r
            yield {"start_s": t, "duration_s": frame_s,
                   "singles_cps": truth_frames[-1]["singles_cps"],
                   "dead_time_fraction": 1 - truth_frames[-1]["live_fraction"] ** 2,
                   "attrs": {"role": "source"}, "prompts": prompts, "delayed": delayed}
            t += frame_s + gap_s
        # the source removed: a background frame for the intrinsic (Lu-176) rate
        zero = np.zeros_like(trues_pb)
        bg = _frame_expectation(model, layout, zero, zero, 0.0, np.zeros(_SUBSTEPS),
                                background_s)
        yield {"start_s": t, "duration_s": background_s, "singles_cps": bg.singles_cps,
               "dead_time_fraction": 1 - bg.live ** 2, "attrs": {"role": "background"},
               "prompts": _poisson(rng, bg.intrinsic + bg.randoms),
               "delayed": _poisson(rng, bg.randoms)}

    phantom = {"name": "NEMA NU 2 scatter phantom", "activity_bq": a0, "activity_time_s": 0.0,
               "length_mm": phantom_length_mm, "diameter_mm": phantom_diameter_mm,
               "line_length_mm": phantom_length_mm, "line_x_mm": 0.0,
               "line_y_mm": line_offset_mm, "volume_ml": volume_ml}
    write_hdf5(out_path, model.geometry, frames_written(), layout=layout, device=model.device,
               acquired_at=DEFAULT_START, purpose="count_rate", phantom=phantom,
               half_life_s=F18_HALF_LIFE_S, compression=compression)
    necr = np.array([f["necr_kcps"] for f in truth_frames])
    k = int(np.argmax(necr))
    truth = {"kind": "count_rate", "scanner": model.to_dict(), "frames": truth_frames,
             "peak_necr_kcps": float(necr[k]), "peak_necr_frame": k,
             "activity_at_peak_necr_kbq_ml":
                 truth_frames[k]["activity_concentration_kbq_ml"],
             "scatter_fraction_percent": truth_frames[-1]["scatter_fraction_percent"],
             "model_scatter_fraction_percent": 100.0 * model.scatter_fraction,
             "volume_ml": volume_ml, "phantom_length_mm": phantom_length_mm,
             "mask_mm": NEMA_MASK_MM,
             "approximations": "analytic projections; scatter is a model input spread as a "
                               "Gaussian per view; one system dead time"}
    _write_truth(out_path, truth)
    return truth


def tof_fwhm_at(model: RawScannerModel, singles_cps: float) -> float:
    """The simulated system's TOF FWHM (ps) at a singles rate."""
    return model.tof_fwhm_ps + model.tof_degradation_ps_per_mcps * singles_cps / 1e6


def simulate_tof(
    out_path: Path,
    *,
    scanner: RawScannerModel | None = None,
    activities_mbq: tuple[float, ...] = (30.0, 500.0),
    events_per_frame: int = 400_000,
    phantom_length_mm: float = 700.0,
    phantom_diameter_mm: float = 203.0,
    line_offset_mm: float = 45.0,
    seed: int = 0,
) -> dict[str, Any]:
    """List mode of the scatter phantom's line source at several activities (NEMA NU 2-2018
    TOF resolution). Each frame holds ``events_per_frame`` prompts in the proportions of
    trues, scatter and randoms of the count-rate model at that activity."""
    model = scanner or RAW_SCANNER_MODELS["virtual-pet"]
    geo = model.geometry
    rng = np.random.default_rng(seed)
    layout = model.layout()
    trues_pb, scatter_pb = _scatter_phantom_components(
        model, layout, phantom_length_mm, line_offset_mm, phantom_diameter_mm)
    singles_per_bq = model.singles_per_decay * min(1.0, model.axial_fov_mm / phantom_length_mm)
    frames: list[dict[str, Any]] = []
    truth_levels: list[dict[str, Any]] = []
    volume_ml = math.pi * (phantom_diameter_mm / 2.0) ** 2 * phantom_length_mm / 1000.0
    t = 0.0
    frame_s = 10.0
    for a_mbq in activities_mbq:
        a = a_mbq * 1e6
        r = _frame_expectation(model, layout, trues_pb, scatter_pb, singles_per_bq,
                               np.full(_SUBSTEPS, a), frame_s)
        n_t, n_s, n_r = (float(x.sum()) for x in (r.trues, r.scatter, r.randoms))
        tot = n_t + n_s + n_r
        counts = rng.multinomial(events_per_frame, [n_t / tot, n_s / tot, n_r / tot])
        fwhm = tof_fwhm_at(model, r.singles_cps)
        ev = _list_events(model, geo, rng, counts, fwhm, line_offset_mm, phantom_length_mm,
                          phantom_diameter_mm, frame_s)
        frames.append({"start_s": t, "duration_s": frame_s, "singles_cps": r.singles_cps,
                       "dead_time_fraction": 1 - r.live ** 2,
                       "attrs": {"role": "source", "activity_bq": a,
                                 "activity_concentration_kbq_ml": a / volume_ml / 1000.0},
                       "events": ev})
        truth_levels.append({"activity_bq": a, "activity_concentration_kbq_ml":
                             a / volume_ml / 1000.0, "tof_fwhm_ps": fwhm,
                             "singles_cps": r.singles_cps, "events": counts.tolist()})
        t += frame_s + 3600.0
    phantom = {"name": "NEMA NU 2 scatter phantom (TOF)", "length_mm": phantom_length_mm,
               "diameter_mm": phantom_diameter_mm, "line_x_mm": 0.0,
               "line_y_mm": line_offset_mm, "line_length_mm": phantom_length_mm,
               "volume_ml": volume_ml}
    write_hdf5(out_path, geo, frames, device=model.device, acquired_at=DEFAULT_START,
               purpose="tof", phantom=phantom, half_life_s=F18_HALF_LIFE_S)
    truth = {"kind": "tof", "scanner": model.to_dict(), "levels": truth_levels,
             "approximations": "detector hits snapped to crystal centres; no depth of "
                               "interaction; single-scatter deflection in the phantom"}
    _write_truth(out_path, truth)
    return truth


def _cylinder_hits(px: np.ndarray, py: np.ndarray, pz: np.ndarray, ux: np.ndarray,
                   uy: np.ndarray, uz: np.ndarray, r: float) -> tuple[np.ndarray, ...]:
    """Where rays from p along +u meet the cylinder of radius r: (x, y, z, distance)."""
    a = ux * ux + uy * uy
    b = px * ux + py * uy
    c = px * px + py * py - r * r
    tt = (-b + np.sqrt(np.maximum(b * b - a * c, 0.0))) / np.maximum(a, 1e-12)
    return px + tt * ux, py + tt * uy, pz + tt * uz, tt * np.sqrt(a + uz * uz)


def _snap(geo: ScannerGeometry, x: np.ndarray, y: np.ndarray, z: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = geo.crystals_per_ring
    ang = np.mod(np.arctan2(y, x), 2 * np.pi)
    crystal = np.minimum((ang / (2 * np.pi) * n).astype(np.int64), n - 1)
    ring = np.floor(z / geo.ring_pitch_mm + geo.rings / 2.0).astype(np.int64)
    ok = (ring >= 0) & (ring < geo.rings)
    return crystal, ring, ok


def _list_events(model: RawScannerModel, geo: ScannerGeometry, rng: np.random.Generator,
                 counts: np.ndarray, fwhm_ps: float, offset_mm: float, length_mm: float,
                 diameter_mm: float, frame_s: float) -> Events:
    r = geo.ring_diameter_mm / 2.0
    sigma = fwhm_ps / FWHM_PER_SIGMA
    parts: list[dict[str, np.ndarray]] = []
    for kind, n_want in (("true", int(counts[0])), ("scatter", int(counts[1]))):
        got: list[dict[str, np.ndarray]] = []
        have = 0
        while have < n_want:
            n = max(4 * (n_want - have), 1000)
            pz = rng.uniform(-length_mm / 2, length_mm / 2, n)
            px, py = np.zeros(n), np.full(n, offset_mm)
            alpha = rng.uniform(0, 2 * np.pi, n)
            sin_t = rng.uniform(-1, 1, n)
            cos_t = np.sqrt(1 - sin_t**2)
            ux, uy, uz = cos_t * np.cos(alpha), cos_t * np.sin(alpha), sin_t
            xa, ya, za, da = _cylinder_hits(px, py, pz, ux, uy, uz, r)
            if kind == "scatter":  # photon a deflected at a random depth inside the phantom
                rp = diameter_mm / 2.0
                _, _, _, d_exit = _cylinder_hits(px, py, pz, ux, uy, uz, rp)
                depth = rng.uniform(0, 1, n) * d_exit
                sx, sy, sz = px + depth * ux, py + depth * uy, pz + depth * uz
                a2 = rng.uniform(0, 2 * np.pi, n)
                s2 = rng.uniform(-0.5, 0.5, n)
                c2 = np.sqrt(1 - s2**2)
                vx, vy, vz = c2 * np.cos(a2), c2 * np.sin(a2), s2
                xa, ya, za, d2 = _cylinder_hits(sx, sy, sz, vx, vy, vz, r)
                da = depth + d2
            xb, yb, zb, db = _cylinder_hits(px, py, pz, -ux, -uy, -uz, r)
            ca, ra, oka = _snap(geo, xa, ya, za)
            cb, rb, okb = _snap(geo, xb, yb, zb)
            ok = oka & okb & (np.abs(ra - rb) <= geo.max_ring_difference)
            # hits timed at the crystal centres (the detector's timing reference)
            xa_c, ya_c = geo.crystal_xy_mm(ca)
            xb_c, yb_c = geo.crystal_xy_mm(cb)
            za_c, zb_c = geo.ring_z_mm(ra), geo.ring_z_mm(rb)
            if kind == "true":
                da = np.sqrt((xa_c - px) ** 2 + (ya_c - py) ** 2 + (za_c - pz) ** 2)
            else:
                da = depth + np.sqrt((xa_c - sx) ** 2 + (ya_c - sy) ** 2 + (za_c - sz) ** 2)
            db = np.sqrt((xb_c - px) ** 2 + (yb_c - py) ** 2 + (zb_c - pz) ** 2)
            dt_ps = (da - db) / SPEED_OF_LIGHT_MM_PER_PS + rng.normal(0, sigma, n)
            sel = np.flatnonzero(ok)[: n_want - have]
            got.append({"ra": ra[sel], "ca": ca[sel], "rb": rb[sel], "cb": cb[sel],
                        "tof": dt_ps[sel]})
            have += len(sel)
        parts.extend(got)
    n_r = int(counts[2])
    if n_r:
        ra = rng.integers(0, geo.rings, n_r)
        rb = np.clip(ra + rng.integers(-geo.max_ring_difference, geo.max_ring_difference + 1,
                                       n_r), 0, geo.rings - 1)
        ca = rng.integers(0, geo.crystals_per_ring, n_r)
        # the second crystal on the opposite side, within a transverse FOV of +-0.7 R
        half_span = int(geo.crystals_per_ring * 0.25)
        cb = np.mod(ca + geo.crystals_per_ring // 2
                    + rng.integers(-half_span, half_span + 1, n_r), geo.crystals_per_ring)
        w = (geo.coincidence_window_ps or 4000.0) / 2.0
        parts.append({"ra": ra, "ca": ca, "rb": rb, "cb": cb, "tof": rng.uniform(-w, w, n_r)})
    cat = {k: np.concatenate([p[k] for p in parts]) for k in ("ra", "ca", "rb", "cb", "tof")}
    order = rng.permutation(len(cat["tof"]))
    n_all = len(order)
    time_ms = np.sort(rng.uniform(0, frame_s * 1000.0, n_all))
    return Events(ring_a=cat["ra"][order].astype(np.int16),
                  crystal_a=cat["ca"][order].astype(np.int16),
                  ring_b=cat["rb"][order].astype(np.int16),
                  crystal_b=cat["cb"][order].astype(np.int16),
                  tof_ps=cat["tof"][order].astype(np.float32), time_ms=time_ms)


def _write_truth(out_path: Path, truth: dict[str, Any]) -> None:
    Path(out_path).with_name(Path(out_path).stem + "_truth.json").write_text(
        json.dumps(truth, indent=1, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


__all__ = [
    "RAW_SCANNER_MODELS",
    "RawScannerModel",
    "acceptance",
    "simulate_coregistration",
    "simulate_count_rate",
    "simulate_sensitivity",
    "simulate_tof",
    "tof_fwhm_at",
]


# ---------------------------------------------------------------- PET/CT co-registration

DEFAULT_MARKERS_MM: tuple[tuple[float, float, float], ...] = (
    (0.0, -100.0, -60.0), (100.0, 0.0, -60.0), (0.0, 0.0, 0.0), (-100.0, 0.0, 0.0),
    (0.0, 100.0, 0.0), (0.0, -100.0, 60.0), (100.0, 50.0, 60.0))


def simulate_coregistration(
    out_dir: Path,
    *,
    markers_mm: tuple[tuple[float, float, float], ...] = DEFAULT_MARKERS_MM,
    offset_mm: tuple[float, float, float] = (0.6, -0.4, 0.5),
    sag_mm_per_m: float = 2.0,
    marker_diameter_mm: float = 3.0,
    marker_activity_bq: float = 3.0e6,
    seed: int = 0,
) -> dict[str, Any]:
    """NEMA NU 2-2018 co-registration: point markers seen by PET (hot spots) and CT
    (dense beads) in one study and frame of reference. The CT shows each marker at its
    PET position + ``offset_mm`` + a table sag of ``sag_mm_per_m`` x z (posterior, +y),
    the misregistration to find. Writes ``out_dir/pet`` and ``out_dir/ct`` DICOM and
    ``out_dir/ground_truth.json``."""
    import pydicom
    from pydicom.uid import generate_uid

    from scanbench.simulate.ct import CT_SCANNER_MODELS, write_ct_series
    from scanbench.simulate.pet import SCANNER_MODELS, render_point, write_series

    out_dir = Path(out_dir)
    pet_pos = np.asarray(markers_mm, dtype=float)
    ct_pos = pet_pos + np.asarray(offset_mm, dtype=float)[None, :]
    ct_pos[:, 1] += sag_mm_per_m * pet_pos[:, 2] / 1000.0
    series, _ = render_point(scanner=SCANNER_MODELS["virtual-pet"],
                             positions_mm=[tuple(p) for p in pet_pos], voxel_mm=2.0,
                             source_extent_mm=marker_diameter_mm, activity_bq=marker_activity_bq,
                             seed=seed)
    write_series(series, out_dir / "pet")
    model = CT_SCANNER_MODELS[next(iter(CT_SCANNER_MODELS))]
    vol = _ct_markers(ct_pos, marker_diameter_mm, ct_sigma_mm=0.6, noise_hu=10.0, seed=seed)
    write_ct_series(vol, out_dir / "ct", model=model, description="CT co-registration markers")
    study, frame = generate_uid(), generate_uid()
    for f in sorted((out_dir / "pet").iterdir()) + sorted((out_dir / "ct").iterdir()):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = study
        ds.FrameOfReferenceUID = frame
        ds.save_as(f)
    truth = {"kind": "coregistration", "pet_markers_mm": pet_pos.tolist(),
             "ct_markers_mm": ct_pos.tolist(),
             "error_mm": np.linalg.norm(ct_pos - pet_pos, axis=1).tolist(),
             "max_error_mm": float(np.linalg.norm(ct_pos - pet_pos, axis=1).max()),
             "offset_mm": list(offset_mm), "sag_mm_per_m": sag_mm_per_m}
    (out_dir / "ground_truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def _ct_markers(ct_pos: np.ndarray, diameter_mm: float, *, ct_sigma_mm: float, noise_hu: float,
                seed: int, pixel_mm: float = 1.0, slice_mm: float = 1.0) -> Any:
    """A CT volume of dense beads in air, rendered in closed form: each bead is a Gaussian
    of the bead's own second moment (sphere variance r^2/5) combined with the CT blur,
    integrated over every voxel (erf products), holding the bead's 2500 HU x volume;
    white noise ``noise_hu``. Far faster than the general CT renderer for a long, sparse
    volume, and exact in its centroid."""
    from scipy.special import erf as _erf

    from scanbench.simulate.ct import PADDING_HU, CtVolume

    r = diameter_mm / 2.0
    sigma = math.sqrt(r * r / 5.0 + ct_sigma_mm**2)
    span = 2 * (float(np.abs(ct_pos[:, :2]).max()) + 25.0)
    n = math.ceil(span / pixel_mm)
    centres = (np.arange(n) - (n - 1) / 2.0) * pixel_mm
    z = np.arange(ct_pos[:, 2].min() - 15.0, ct_pos[:, 2].max() + 15.0 + 1e-6, slice_mm)
    vox = np.full((len(z), n, n), -1000.0)
    mass = 2500.0 * 4.0 / 3.0 * math.pi * r**3  # HU x mm^3 above air

    def box(c: np.ndarray, x0: float, h: float) -> np.ndarray:
        k = math.sqrt(2.0) * sigma
        return 0.5 * (_erf((c + h / 2 - x0) / k) - _erf((c - h / 2 - x0) / k)) / h

    for x0, y0, z0 in ct_pos:
        near = np.abs(z - z0) < 6 * sigma + slice_mm
        fz = box(z[near], z0, slice_mm)
        fy = box(centres, y0, pixel_mm)
        fx = box(centres, x0, pixel_mm)
        vox[near] += mass * fz[:, None, None] * fy[None, :, None] * fx[None, None, :]
    clean = vox.copy()
    rng = np.random.default_rng(seed)
    vox += rng.normal(0.0, noise_hu, vox.shape)
    affine = np.zeros((4, 4))
    affine[0, 2] = pixel_mm
    affine[1, 1] = pixel_mm
    affine[2, 0] = slice_mm
    affine[:3, 3] = (centres[0], centres[0], z[0])
    affine[3, 3] = 1.0
    inside = np.ones((n, n), dtype=bool)
    del PADDING_HU
    return CtVolume(voxels=vox.astype(np.float32), noise_free=clean.astype(np.float32),
                    spacing=(slice_mm, pixel_mm, pixel_mm), affine=affine, z_mm=z,
                    pixel_mm=pixel_mm, slice_thickness_mm=slice_mm, inside_circle=inside,
                    noise_sd_hu=noise_hu, mode="image", reconstruction_diameter_mm=span)


# ---------------------------------------------------------------- corrections accuracy


def simulate_corrections_accuracy(
    out_dir: Path,
    *,
    scanner: RawScannerModel | None = None,
    start_activity_mbq: float = 1100.0,
    frames: int = 10,
    frame_s: float = 300.0,
    gap_s: float = 2400.0,
    max_error_percent: float = 2.5,
    axial_gradient: float = 0.4,
    noise_percent: float = 0.15,
    peak_necr_kbq_ml: float | None = None,
    n_low: int = 3,
    voxel_mm: float = 4.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Reconstructed frames of the count-rate phantom (NEMA NU 2-2018 accuracy of
    corrections): one PET series per frame in one study, decay-corrected to each frame's
    start (DICOM START), voxels in Bq/mL. The line source's activity per slice carries a
    residual count-loss/randoms-correction error ``e_ij = max_error x (S_j / S_peak) x
    (1 + axial_gradient x z_i / (AFOV/2)) / (1 + axial_gradient)`` (S the singles rate of the
    count-rate model at that activity; largest, ``max_error_percent``, at the peak-NECR
    activity and the FOV end) and a slice-to-slice noise of ``noise_percent``.
    Ground truth: the error per frame and slice and its maximum up to peak NECR, both
    against the exact activity and as NEMA measures it (against the mean of the
    ``n_low`` lowest-activity frames, which carry a little of the error themselves)."""
    from pydicom.uid import generate_uid

    from scanbench.simulate.pet import write_series
    from scanbench.types import PetFacts, Series, SeriesFacts

    model = scanner or RAW_SCANNER_MODELS["virtual-pet"]
    layout = model.layout()
    rng = np.random.default_rng(seed)
    length, diameter, offset = 700.0, 203.0, 45.0
    volume_ml = math.pi * (diameter / 2.0) ** 2 * length / 1000.0
    trues_pb, scatter_pb = _scatter_phantom_components(model, layout, length, offset, diameter)
    singles_per_bq = model.singles_per_decay * min(1.0, model.axial_fov_mm / length)
    lam = math.log(2.0) / F18_HALF_LIFE_S
    a0 = start_activity_mbq * 1e6
    starts = [j * (frame_s + gap_s) for j in range(frames)]
    acts = [a0 * math.exp(-lam * t) for t in starts]
    singles = [a * singles_per_bq + model.lu_singles_cps_per_ring * model.rings for a in acts]
    if peak_necr_kbq_ml is None:  # the count-rate model's own peak
        peak_necr_kbq_ml = _necr_peak_kbq_ml(model, layout, trues_pb, scatter_pb,
                                             singles_per_bq, volume_ml)
    s_peak = peak_necr_kbq_ml * 1000.0 * volume_ml * singles_per_bq \
        + model.lu_singles_cps_per_ring * model.rings
    n = round(300.0 / voxel_mm) // 2 * 2
    nz = int(model.axial_fov_mm // voxel_mm)
    centres = (np.arange(n) - (n - 1) / 2.0) * voxel_mm
    z = (np.arange(nz) - (nz - 1) / 2.0) * voxel_mm
    sigma = model.fwhm_mm / FWHM_PER_SIGMA
    k = math.sqrt(2.0) * sigma
    fx = 0.5 * (erf((centres + voxel_mm / 2) / k) - erf((centres - voxel_mm / 2) / k))
    fy = 0.5 * (erf((centres + voxel_mm / 2 - offset) / k)
                - erf((centres - voxel_mm / 2 - offset) / k))
    plane = fy[:, None] * fx[None, :]  # fraction of the line's slice activity per voxel
    voxel_ml = voxel_mm**3 / 1000.0
    half = model.axial_fov_mm / 2.0
    study, frame_uid = generate_uid(), generate_uid()
    inj = DEFAULT_START - dt.timedelta(minutes=10)
    truth_frames: list[dict[str, Any]] = []
    errs: list[np.ndarray] = []
    out_dir = Path(out_dir)
    for j, (t, a) in enumerate(zip(starts, acts, strict=True)):
        x = lam * frame_s
        conc = a * (1 - math.exp(-x)) / x / volume_ml / 1000.0  # mean over the frame
        shape_z = (1 + axial_gradient * z / half) / (1 + axial_gradient)
        err = max_error_percent / 100.0 * singles[j] / s_peak * shape_z
        noise = rng.normal(0.0, noise_percent / 100.0, nz)
        per_slice_bq = a / length * voxel_mm * (1.0 + err) * (1.0 + noise)
        vox = per_slice_bq[:, None, None] * plane[None] / voxel_ml
        start = DEFAULT_START + dt.timedelta(seconds=t)
        pet = PetFacts(units="BQML", decay_correction="START",
                       corrected_image=("NORM", "DTIM", "ATTN", "SCAT", "RAN", "DECY"),
                       series_datetime=start, acquisition_start=start, frame_duration_s=frame_s,
                       radiopharmaceutical="Fluorodeoxyglucose", radionuclide="^18^Fluorine",
                       injected_activity_bq=a0 * math.exp(lam * 600.0), injection_datetime=inj,
                       half_life_s=F18_HALF_LIFE_S)
        facts = SeriesFacts(modality="PT", device=model.device, study_instance_uid=study,
                            series_instance_uid=generate_uid(), frame_of_reference_uid=frame_uid,
                            series_description=f"NEMA count-rate phantom frame {j + 1}",
                            series_number=100 + j, acquired_at=start, naive_times=False, pet=pet)
        affine = np.zeros((4, 4))
        affine[0, 2] = affine[1, 1] = voxel_mm
        affine[2, 0] = voxel_mm
        affine[:3, 3] = (centres[0], centres[0], z[0])
        affine[3, 3] = 1.0
        series = Series(voxels=vox.astype(np.float32), spacing=(voxel_mm, voxel_mm, voxel_mm),
                        affine=affine, facts=facts,
                        sop_instance_uids=[generate_uid() for _ in range(nz)])
        write_series(series, out_dir / f"frame{j + 1:02d}")
        errs.append(err)
        truth_frames.append({"start_s": t, "activity_kbq_ml": conc,
                             "max_abs_error_percent": float(np.max(np.abs(100 * err))),
                             "singles_cps": singles[j]})
    low = np.argsort(acts)[:n_low]
    ref = np.mean([1.0 + errs[i] for i in low], axis=0)
    for f, e in zip(truth_frames, errs, strict=True):
        f["max_abs_nema_error_percent"] = float(np.max(np.abs(100 * ((1 + e) / ref - 1))))
    upto = [f for f in truth_frames if f["activity_kbq_ml"] <= peak_necr_kbq_ml + 1e-9]
    truth = {"kind": "corrections_accuracy", "frames": truth_frames,
             "peak_necr_kbq_ml": peak_necr_kbq_ml, "volume_ml": volume_ml,
             "max_true_error_percent": max(f["max_abs_error_percent"] for f in upto),
             "max_rate_error_percent": max(f["max_abs_nema_error_percent"] for f in upto),
             "n_low": n_low, "noise_percent": noise_percent}
    (out_dir / "ground_truth.json").write_text(json.dumps(truth, indent=1))
    return truth
