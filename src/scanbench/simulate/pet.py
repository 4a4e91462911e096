"""The virtual PET scanner: phantom geometry in, a PET series and its ground truth out.

What it models
--------------
**Object.** Activity concentration (Bq/mL) from ``scanbench.phantoms``: the
NEMA/IEC body phantom (background, hot or cold spheres behind 1 mm cold glass
walls, the cold lung insert with its wall), NEMA NU 2 point sources (cubes of
``source_extent_mm``) and a uniform cylinder. Nothing else has activity.

**Partial volume.** Each voxel holds the mean of the object over the voxel
(integration, not point sampling). Regions are separable where the geometry
is: the body outline and the lung insert are 2-D (x, y) and integrated by an
8 × 8 sub-grid only in pixels the outline crosses; the body ends are 1-D (z)
and integrated exactly; each sphere surface (inner surface and glass wall) is
integrated on an 8 × 8 × 8 sub-grid only in voxels within half a voxel
diagonal of the surface. Point sources are integrated in closed form (see
below).

**Resolution.** A Gaussian PSF whose FWHM at the centre is
``ScannerModel.fwhm_mm`` = (radial, tangential, axial) and grows with the
distance r from the scanner axis through parallax (the unknown depth of
interaction of oblique lines of response):

    p(r)        = radial_growth_mm · r / sqrt(R² − r²)        (R = ring radius)
    FWHM_rad(r) = sqrt(FWHM_rad(0)² + p²)
    FWHM_tan(r) = sqrt(FWHM_tan(0)² + (tangential_growth_fraction · p)²)
    FWHM_ax(r)  = sqrt(FWHM_ax(0)² + (axial_growth_fraction · p)²)

r / sqrt(R² − r²) is tan of the angle at which a line through the point at r
meets the ring, so p is the projected depth blur (the classic parallax model,
e.g. Cherry, Sorenson & Phelps, Physics in Nuclear Medicine, ch. 18; Moses,
NIM A 2011). The defaults (2.9 mm at the centre, radial growth 5.5 mm) give
radial 3.2 / 4.3 mm and tangential 2.9 / 3.1 mm at 10 / 20 cm, like current
digital SiPM systems (uMI550: 2.98 / 2.91 / 2.97 mm at 1 cm, STANDARDS.md A.1).

For point sources the PSF is applied exactly: anisotropic, oriented along the
radial and tangential directions at the source, convolved analytically with
the source cube and the voxel aperture. For extended phantoms the spatially
varying PSF is approximated by blurring the whole volume with an isotropic
transverse Gaussian (variance = mean of the radial and tangential variances)
at radii 0, 75, 150, ... mm and interpolating linearly in r between these
bands (scipy.ndimage.gaussian_filter on the voxel-integrated object).

**Noise.** Poisson-scaled, with the correlated texture of an iterative
reconstruction. Counts: a concentration c (Bq/mL at scan start) in a volume V
for an acquisition of T seconds gives

    N = c · V · η(z) · T_dec,   T_dec = (1 − exp(−λT)) / λ,
    η(z) = sensitivity_cps_per_kbq / 1000 · noise_count_fraction · s_ax(z),

with s_ax(z) = max(1 − |z| / (AFOV / 2), 0.05) the triangular axial
sensitivity of a 3-D acquisition and ``noise_count_fraction`` (dimensionless)
the share of the detected counts that are noise-equivalent after attenuation,
scatter, randoms and tomographic noise amplification. The relative variance
of the mean over V is 1/N, i.e. var = c / (V η T_dec): variance proportional
to the local mean, the known behaviour of OSEM images (Barrett, Wilson & Tsui,
Phys Med Biol 1994). It is drawn as white Gaussian noise of variance
q / v_voxel with q = c_blurred / (η T_dec) and convolved with a Gaussian
noise-correlation kernel of ``noise_correlation_fwhm_mm`` (normalised to unit
sum, so the variance of a large ROI's mean is independent of the voxel size).
A post-filter (``post_filter_fwhm_mm``) smooths signal and noise alike.
Attenuation correction makes the noise larger in the middle of a wide body
than near its edge: the variance is further scaled per transverse pixel by
:func:`attenuation_noise_gain` (the mean over directions of L·exp(μL) for the
chords L through the pixel, μ = ``attenuation_mu_per_mm``, water at 511 keV
by default), normalised to a mean of 1 over the body; for a 200 mm cylinder
the centre's variance is 1.87 times that 10 mm inside the edge.

Calibration (defaults, ScannerModel(), NEMA IQ at 5.3 kBq/mL background, 4:1,
600 s, 2 mm voxels, scanbench's 60 background ROIs, mean of 3 seeds):
background variability about 3.2 % for the 37 mm ROIs and 9.3 % for the
10 mm ROIs; noise scales as 1 / sqrt(duration · activity · sensitivity).

**Decay.** F-18, half-life 6586.2 s. Concentrations are given at the scan
start. The stored voxels are decay-corrected to the reference named by
``decay_correction``: "START" (the series date/time = scan start; the frame
average is corrected to the start with the decay factor λT / (1 − e^(−λT))),
"ADMIN" (the radiopharmaceutical start date/time: start values × e^(λ Δt)),
or "NONE" (the frame-average concentration, start values × (1 − e^(−λT)) /
(λT)). The header's Radionuclide Total Dose is the whole phantom activity at
the radiopharmaceutical start date/time, so decaying it to the reference and
dividing by the volume gives the true concentration.

**Calibration bias.** ``ScannerModel.calibration_bias_percent`` scales every
voxel by (1 + bias/100): a scanner whose activity calibration is off, for the
EARL calibration QC to find. The true values in the ground truth never
include it; ``calibration_factor`` says what it was.

Ground truth (JSON-serialisable dicts returned by render_* and written as
``ground_truth.json`` by simulate_*)
-----------------------------------------------------------------
Common keys:
    kind ("nema_iq" | "point_sources" | "uniform_cylinder"), scanner (all
    ScannerModel fields), voxel_mm, slice_mm, matrix, n_slices, shape_zyx,
    first_slice_z_mm, decay_correction, decay_reference_datetime (ISO or
    null for NONE), scan_start_datetime, injection_datetime, duration_s,
    half_life_s, injected_activity_bq (at injection_datetime),
    decay_factor_to_reference (voxels = concentration at start × this,
    before calibration bias), calibration_factor, noise (enabled, seed,
    noise_count_fraction, noise_correlation_fwhm_mm, post_filter_fwhm_mm),
    series_instance_uid.
IQ (render_iq):
    activity_ratio, background_bq_ml and sphere_bq_ml (true, at the decay
    reference), background_bq_ml_at_start, cold_spheres_mm,
    phantom_centre_lps_mm (origin of the phantom frame: centre of the sphere
    ring on the sphere plane), rotation_deg (about the scanner z axis,
    from +x towards +y), sphere_plane_z_mm, sphere_plane_slice_index,
    sphere_plane_offset_from_slice_centre_mm, lung_centre_lps_mm (on the
    sphere plane), spheres (list: diameter_mm, inner_radius_mm, wall_mm,
    centre_lps_mm, hot, concentration_bq_ml, slice_index,
    roi_mean_noiseless_bq_ml, percent_contrast_noiseless,
    recovery_coefficient_noiseless, recovery_coefficient_max_noiseless),
    percent_contrast_noiseless and recovery_coefficient_noiseless ({diameter
    as "10", "13", ...: value}), background_reference_bq_ml (the C_B used:
    the mean of the noiseless image over the NU 2 background zone),
    scatter_residual_percent, background_far_roi_noiseless_bq_ml
    (a 37 mm ROI on the noiseless image far from edges, as a check),
    lung_residual_percent_noiseless, total_activity_bq (whole phantom, at
    the reference, true), total_activity_in_fov_bq (the part inside the
    imaged slices), phantom_volume_ml (fillable background volume),
    patient_weight_kg (water mass of the fill).
    Percent contrast (noiseless) is NEMA NU 2-2018 7.4 measured on the
    noiseless image with exact ROIs: a circle of the sphere's inner diameter
    centred on the true sphere centre, on the slice whose centre is nearest
    the sphere centre's z, by scanbench.analysis.roi.circle_mean;
    Q_H = 100 (C_H/C_B − 1)/(a_H/a_B − 1), Q_C = 100 (1 − C_C/C_B). C_B is
    the mean of the noiseless image over the zone where NEMA's background
    ROIs may lie (the five NU 2 slices, ≥ 15 mm from the body edge, the lung
    wall and every sphere's glass): without a scatter residual the image
    there equals the fill × calibration factor to < 0.01 %
    (background_far_roi_noiseless_bq_ml shows it); with one, it is the
    background the ROIs see, so the truth never depends on where ROIs are put.
Point (render_point):
    source_extent_mm, activity_bq_per_source (at the reference), sources
    (list: position_lps_mm, radius_from_axis_mm, slice_index, radial_unit_xy,
    fwhm_mm and fwtm_mm {radial, tangential, axial}: the widths of the
    continuous profile the image samples, i.e. PSF ⊗ source cube ⊗ voxel
    aperture along each direction through its peak, computed numerically;
    psf_fwhm_mm and psf_fwtm_mm: the Gaussian PSF's own widths (including a
    post-filter)).
Uniform (render_uniform):
    diameter_mm, length_mm, centre_lps_mm, volume_ml, activity_bq and
    calibration_datetime (= injected activity and time in the header),
    concentration_bq_ml (true, at the decay reference),
    concentration_bq_ml_at_start, patient_weight_kg, expected_suv (true SUV
    of the fill: weight / (volume × 1 g/mL)), expected_image_suv (with the
    calibration bias), expected_image_bq_ml.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import generate_uid
from scipy import ndimage
from scipy.special import ndtr

from scanbench.analysis.roi import circle_mean, circle_weights
from scanbench.phantoms import nema_iq
from scanbench.phantoms.cylinder import UniformCylinder
from scanbench.phantoms.point_source import PointSource, nema_positions
from scanbench.simulate.dicom_writer import write_series
from scanbench.types import DeviceIdentity, PetFacts, Series, SeriesFacts

__all__ = [
    "DECAY_CORRECTIONS",
    "F18_HALF_LIFE_S",
    "SCANNER_MODELS",
    "ScannerModel",
    "render_iq",
    "render_point",
    "render_uniform",
    "simulate_iq",
    "simulate_point",
    "simulate_uniform",
    "write_series",
]

F18_HALF_LIFE_S = 6586.2  # s, DDEP / NNDC
F18_LAMBDA_PER_S = math.log(2.0) / F18_HALF_LIFE_S
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
FWTM_PER_FWHM = math.sqrt(math.log(10.0) / math.log(2.0))  # Gaussian FWTM / FWHM
DECAY_CORRECTIONS = ("START", "ADMIN", "NONE")
DEFAULT_SCAN_START = dt.datetime(2026, 3, 4, 10, 30, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
AXIAL_SENSITIVITY_FLOOR = 0.05  # the triangle never reaches 0 inside the image
_EDGE_SUBSAMPLE = 8  # sub-grid per axis in voxels an object boundary crosses
_PSF_BAND_MM = 75.0  # radial spacing of the PSF bands for extended phantoms
# Width of the scatter-correction residual: scatter is spread over tens of cm; what a
# correction leaves is as broad [U: a model choice, not a measured figure].
SCATTER_RESIDUAL_FWHM_MM = 80.0


@dataclass(frozen=True)
class ScannerModel:
    """A configurable virtual PET scanner: identity, resolution, sensitivity and noise.

    ``fwhm_mm`` is (radial, tangential, axial) at the centre of the field of
    view; it grows with radius through parallax (module docstring).
    ``noise_count_fraction`` is calibrated so that the NEMA IQ background
    variability is a few % (37 mm) and about 8 % (10 mm) at the defaults.
    """

    manufacturer: str = "scanbench"
    model: str = "Virtual PET"
    serial: str = "VPET-0001"
    station: str = "VPET1"
    software_versions: str = "scanbench-sim 0.1"
    fwhm_mm: tuple[float, float, float] = (2.9, 2.9, 2.9)
    radial_growth_mm: float = 5.5
    tangential_growth_fraction: float = 0.35
    axial_growth_fraction: float = 0.0
    sensitivity_cps_per_kbq: float = 10.0
    axial_fov_mm: float = 300.0
    ring_diameter_mm: float = 800.0
    noise_count_fraction: float = 0.0043
    noise_correlation_fwhm_mm: float = 5.0
    attenuation_mu_per_mm: float = 0.0096  # water at 511 keV; 0: noise ignores attenuation
    calibration_bias_percent: float = 0.0
    reconstruction_method: str = "OSEM 3i10s PSF TOF"

    def __post_init__(self) -> None:
        if len(self.fwhm_mm) != 3 or min(self.fwhm_mm) <= 0:
            raise ValueError(f"fwhm_mm must be three positive numbers, got {self.fwhm_mm}")
        positive = {"sensitivity_cps_per_kbq": self.sensitivity_cps_per_kbq,
                    "axial_fov_mm": self.axial_fov_mm, "ring_diameter_mm": self.ring_diameter_mm,
                    "noise_count_fraction": self.noise_count_fraction}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        non_negative = {"radial_growth_mm": self.radial_growth_mm,
                        "tangential_growth_fraction": self.tangential_growth_fraction,
                        "axial_growth_fraction": self.axial_growth_fraction,
                        "noise_correlation_fwhm_mm": self.noise_correlation_fwhm_mm,
                        "attenuation_mu_per_mm": self.attenuation_mu_per_mm}
        for name, value in non_negative.items():
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not self.calibration_bias_percent > -100:
            raise ValueError("calibration_bias_percent must be > -100")

    @property
    def device(self) -> DeviceIdentity:
        return DeviceIdentity(self.manufacturer, self.model, self.serial, self.station,
                              self.software_versions)

    @property
    def calibration_factor(self) -> float:
        return 1.0 + self.calibration_bias_percent / 100.0

    def fwhm_at(self, radius_mm: float) -> tuple[float, float, float]:
        """PSF FWHM (radial, tangential, axial) in mm at ``radius_mm`` from the axis."""
        ring_radius_mm = self.ring_diameter_mm / 2.0
        r = abs(float(radius_mm))
        if r >= 0.95 * ring_radius_mm:
            raise ValueError(f"radius {r:.1f} mm is outside the scanner's field of view")
        parallax_mm = self.radial_growth_mm * r / math.sqrt(ring_radius_mm**2 - r**2)
        f_rad, f_tan, f_ax = self.fwhm_mm
        return (math.hypot(f_rad, parallax_mm),
                math.hypot(f_tan, self.tangential_growth_fraction * parallax_mm),
                math.hypot(f_ax, self.axial_growth_fraction * parallax_mm))

    def axial_sensitivity(self, z_mm: np.ndarray) -> np.ndarray:
        """Relative sensitivity (1 at the axial centre) of a 3-D acquisition: a triangle."""
        half = self.axial_fov_mm / 2.0
        return np.maximum(1.0 - np.abs(np.asarray(z_mm, dtype=float)) / half,
                          AXIAL_SENSITIVITY_FLOOR)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


SCANNER_MODELS: dict[str, ScannerModel] = {
    "virtual-pet": ScannerModel(),
    "digital-long-afov": ScannerModel(
        model="Virtual PET LAFOV", serial="VPET-LAFOV-0001", station="VPETL1",
        fwhm_mm=(3.3, 3.4, 3.8), sensitivity_cps_per_kbq=80.0, axial_fov_mm=1060.0,
        ring_diameter_mm=820.0, radial_growth_mm=6.0),
    "analog-pmt": ScannerModel(
        model="Virtual PET PMT", serial="VPET-PMT-0001", station="VPETP1",
        fwhm_mm=(4.5, 4.5, 4.8), radial_growth_mm=8.0, sensitivity_cps_per_kbq=7.0,
        axial_fov_mm=157.0, ring_diameter_mm=880.0, noise_correlation_fwhm_mm=6.0,
        reconstruction_method="OSEM 2i16s"),
}


# ---------------------------------------------------------------- grid and times


@dataclass(frozen=True)
class _Grid:
    """A scanner-fixed voxel grid: transverse centred on the axis, slices on a lattice."""

    shape: tuple[int, int, int]  # (nz, ny, nx)
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm
    first_centre_mm: tuple[float, float, float]  # LPS (x, y, z) of voxel (0, 0, 0)

    @property
    def x_mm(self) -> np.ndarray:
        return self.first_centre_mm[0] + np.arange(self.shape[2]) * self.spacing[2]

    @property
    def y_mm(self) -> np.ndarray:
        return self.first_centre_mm[1] + np.arange(self.shape[1]) * self.spacing[1]

    @property
    def z_mm(self) -> np.ndarray:
        return self.first_centre_mm[2] + np.arange(self.shape[0]) * self.spacing[0]

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def affine(self) -> np.ndarray:
        dz, dy, dx = self.spacing
        a = np.zeros((4, 4))
        a[0, 2] = dx
        a[1, 1] = dy
        a[2, 0] = dz
        a[:3, 3] = self.first_centre_mm
        a[3, 3] = 1.0
        return a


def _make_grid(voxel_mm: float, slice_mm: float, matrix: int, z_lo_mm: float, z_hi_mm: float,
               slice_offset_mm: float) -> _Grid:
    """Slice centres on the lattice ``slice_offset_mm + m · slice_mm`` covering [z_lo, z_hi]."""
    m_lo = math.ceil((z_lo_mm - slice_offset_mm) / slice_mm - 1e-9)
    m_hi = math.floor((z_hi_mm - slice_offset_mm) / slice_mm + 1e-9)
    if m_hi < m_lo:
        raise ValueError("the requested axial range holds no slice")
    first_xy = -(matrix - 1) / 2.0 * voxel_mm
    return _Grid((m_hi - m_lo + 1, matrix, matrix), (slice_mm, voxel_mm, voxel_mm),
                 (first_xy, first_xy, slice_offset_mm + m_lo * slice_mm))


def _check_common(voxel_mm: float, slice_mm: float, duration_s: float, decay_correction: str,
                  post_filter_fwhm_mm: float, matrix: int | None) -> None:
    if not 0.2 <= voxel_mm <= 10.0:
        raise ValueError(f"voxel_mm must be between 0.2 and 10 mm, got {voxel_mm}")
    if not 0.2 <= slice_mm <= 10.0:
        raise ValueError(f"slice_mm must be between 0.2 and 10 mm, got {slice_mm}")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if decay_correction not in DECAY_CORRECTIONS:
        raise ValueError(f"decay_correction must be one of {', '.join(DECAY_CORRECTIONS)}, "
                         f"got {decay_correction!r}")
    if not post_filter_fwhm_mm >= 0:
        raise ValueError(f"post_filter_fwhm_mm must be >= 0, got {post_filter_fwhm_mm}")
    if matrix is not None and not 16 <= matrix <= 1024:
        raise ValueError(f"matrix must be between 16 and 1024, got {matrix}")


def _even_matrix(fov_mm: float, voxel_mm: float) -> int:
    n = math.ceil(fov_mm / voxel_mm)
    return n + (n % 2)


def _decay_factor_to_reference(decay_correction: str, duration_s: float,
                               injection_to_start_s: float) -> float:
    """Voxel value / concentration at scan start, for the chosen reference (module docstring)."""
    lam_t = F18_LAMBDA_PER_S * duration_s
    frame_average = -math.expm1(-lam_t) / lam_t  # mean activity over the frame / start activity
    if decay_correction == "START":
        return 1.0
    if decay_correction == "ADMIN":
        return math.exp(F18_LAMBDA_PER_S * injection_to_start_s)
    return frame_average


def _decayed_seconds(duration_s: float) -> float:
    """∫ exp(−λt) dt over the frame: the count-weighted duration, s."""
    return -math.expm1(-F18_LAMBDA_PER_S * duration_s) / F18_LAMBDA_PER_S


# ---------------------------------------------------------------- voxel integration


def _fraction_z(z_mm: np.ndarray, slice_mm: float, lo_mm: float, hi_mm: float) -> np.ndarray:
    """Exact fraction of each slice [z − s/2, z + s/2] inside [lo, hi]."""
    a = np.maximum(z_mm - slice_mm / 2, lo_mm)
    b = np.minimum(z_mm + slice_mm / 2, hi_mm)
    return np.clip(b - a, 0.0, None) / slice_mm


def _fraction_xy(x_mm: np.ndarray, y_mm: np.ndarray, inside: Any, near_edge: np.ndarray,
                 voxel_mm: float) -> np.ndarray:
    """Mean of the indicator ``inside(x, y)`` over each pixel, (ny, nx).

    Pixels flagged ``near_edge`` are integrated on an 8 × 8 sub-grid; the others
    take the value at their centre (the boundary does not cross them).
    """
    yy, xx = np.meshgrid(y_mm, x_mm, indexing="ij")
    frac = inside(xx, yy).astype(np.float64)
    jj, ii = np.nonzero(near_edge)
    if jj.size:
        n = _EDGE_SUBSAMPLE
        offs = ((np.arange(n) + 0.5) / n - 0.5) * voxel_mm
        sub_y = (y_mm[jj][:, None, None] + offs[None, :, None]) + 0 * offs[None, None, :]
        sub_x = (x_mm[ii][:, None, None] + offs[None, None, :]) + 0 * offs[None, :, None]
        frac[jj, ii] = inside(sub_x, sub_y).mean(axis=(1, 2))
    return frac


def _edge_pixels(mask: np.ndarray) -> np.ndarray:
    """Pixels within one pixel of a change of ``mask`` (the boundary may cross them)."""
    structure = np.ones((3, 3), dtype=bool)
    return (ndimage.binary_dilation(mask, structure, iterations=2)
            & ~ndimage.binary_erosion(mask, structure, iterations=2, border_value=1))


def _ball_fraction(centre_lps: np.ndarray, radius_mm: float, grid: _Grid,
                   ) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Fraction of each voxel inside a ball, on the ball's bounding box in ``grid``.

    Voxels whose centre is within half a voxel diagonal of the surface are
    integrated on an 8 × 8 × 8 sub-grid; the others are fully in or out.
    """
    dz, dy, dx = grid.spacing
    cx, cy, cz = (float(v) for v in centre_lps)
    x, y, z = grid.x_mm, grid.y_mm, grid.z_mm

    def window(axis_mm: np.ndarray, c: float, step: float) -> slice:
        lo = int(np.searchsorted(axis_mm, c - radius_mm - step))
        hi = int(np.searchsorted(axis_mm, c + radius_mm + step, side="right"))
        return slice(lo, hi)

    box = (window(z, cz, dz), window(y, cy, dy), window(x, cx, dx))
    zb, yb, xb = z[box[0]] - cz, y[box[1]] - cy, x[box[2]] - cx
    dist = np.sqrt(zb[:, None, None] ** 2 + yb[None, :, None] ** 2 + xb[None, None, :] ** 2)
    half_diag = 0.5 * math.sqrt(dx * dx + dy * dy + dz * dz)
    frac = (dist <= radius_mm).astype(np.float64)
    kk, jj, ii = np.nonzero(np.abs(dist - radius_mm) < half_diag)
    if kk.size:
        n = _EDGE_SUBSAMPLE
        u = (np.arange(n) + 0.5) / n - 0.5
        pz = zb[kk][:, None] + u[None, :] * dz  # (m, n)
        py = yb[jj][:, None] + u[None, :] * dy
        px = xb[ii][:, None] + u[None, :] * dx
        r2 = (pz[:, :, None, None] ** 2 + py[:, None, :, None] ** 2
              + px[:, None, None, :] ** 2)
        frac[kk, jj, ii] = (r2 <= radius_mm**2).mean(axis=(1, 2, 3))
    return box, frac


# ---------------------------------------------------------------- resolution and noise


def _sigma_voxels(sigma_mm: tuple[float, float, float], spacing: tuple[float, float, float],
                  ) -> tuple[float, float, float]:
    return tuple(s / d for s, d in zip(sigma_mm, spacing, strict=True))  # type: ignore[return-value]


def _blur_extended(obj: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray,
                   spacing: tuple[float, float, float], scanner: ScannerModel,
                   post_filter_fwhm_mm: float) -> np.ndarray:
    """Spatially varying PSF (+ post-filter) by radial bands interpolated linearly in r."""
    r_mm = np.hypot(y_mm[:, None], x_mm[None, :])
    r_max = float(r_mm.max())
    n_bands = max(2, math.ceil(r_max / _PSF_BAND_MM) + 1)
    radii = np.arange(n_bands) * _PSF_BAND_MM
    radii = np.minimum(radii, 0.94 * scanner.ring_diameter_mm / 2)
    post_sigma_mm = post_filter_fwhm_mm / FWHM_PER_SIGMA
    out = np.zeros_like(obj)
    for k, band_r in enumerate(radii):
        lo = radii[k - 1] if k > 0 else band_r - _PSF_BAND_MM
        hi = radii[k + 1] if k + 1 < len(radii) else band_r + 1e9
        rising = np.clip((r_mm - lo) / max(band_r - lo, 1e-9), 0.0, 1.0)
        falling = np.clip((hi - r_mm) / max(hi - band_r, 1e-9), 0.0, 1.0)
        weight = np.where(r_mm <= band_r, rising, falling)
        if not np.any(weight > 0):
            continue
        f_rad, f_tan, f_ax = scanner.fwhm_at(float(band_r))
        sigma_xy = math.sqrt((f_rad**2 + f_tan**2) / 2.0) / FWHM_PER_SIGMA
        sigma_mm = (math.hypot(f_ax / FWHM_PER_SIGMA, post_sigma_mm),
                    math.hypot(sigma_xy, post_sigma_mm), math.hypot(sigma_xy, post_sigma_mm))
        blurred = ndimage.gaussian_filter(obj, _sigma_voxels(sigma_mm, spacing), mode="constant")
        out += blurred * weight[None, :, :].astype(obj.dtype)
    return out


def attenuation_noise_gain(body_yx: np.ndarray, pixel_mm: float, mu_per_mm: float,
                           n_angles: int = 36) -> np.ndarray:
    """Relative noise variance of an attenuation-corrected image, per pixel of a slice.

    A line of response through an attenuating body of chord length L (the whole
    chord, wherever the pixel lies on it) is corrected by ACF = exp(μL); its
    counts are proportional to the activity on it (∝ L in a uniform body), so
    the corrected value's variance is ∝ L·exp(μL). Back-projection makes a
    pixel's variance the mean of that over the directions through it
    (Barrett, Wilson & Tsui, Phys Med Biol 1994; Cherry, Sorenson & Phelps,
    ch. 18): larger in the middle of a wide body than near its edge, where
    some lines are short. Normalised to a mean of 1 over ``body_yx`` so that a
    calibrated noise level keeps its meaning; 1 everywhere when μ is 0.
    """
    gain = np.ones(body_yx.shape, dtype=np.float64)
    if mu_per_mm <= 0 or not body_yx.any():
        return gain
    acc = np.zeros(body_yx.shape, dtype=np.float64)
    mask = body_yx.astype(np.float32)
    for angle in np.arange(n_angles) * 180.0 / n_angles:
        turned = ndimage.rotate(mask, angle, reshape=True, order=1, mode="constant")
        chord_mm = turned.sum(axis=0, keepdims=True) * pixel_mm  # one chord per column
        term = np.broadcast_to(chord_mm * np.exp(mu_per_mm * chord_mm), turned.shape)
        back = ndimage.rotate(np.ascontiguousarray(term), -angle, reshape=True, order=1,
                              mode="nearest")
        # crop the back-rotated frame to the original grid, centred
        oy = (back.shape[0] - body_yx.shape[0]) // 2
        ox = (back.shape[1] - body_yx.shape[1]) // 2
        acc += back[oy:oy + body_yx.shape[0], ox:ox + body_yx.shape[1]]
    return acc / float(acc[body_yx].mean())


def _noise(mean_start_bq_ml: np.ndarray, z_mm: np.ndarray, spacing: tuple[float, float, float],
           scanner: ScannerModel, duration_s: float, post_filter_fwhm_mm: float,
           rng: np.random.Generator, gain_yx: np.ndarray | None = None) -> np.ndarray:
    """One noise realisation (Bq/mL at scan start) for the noiseless image (module docstring).

    ``gain_yx`` scales the variance per transverse pixel (attenuation correction,
    :func:`attenuation_noise_gain`); None: 1.
    """
    eta_per_bq_s = (scanner.sensitivity_cps_per_kbq / 1000.0 * scanner.noise_count_fraction
                    * scanner.axial_sensitivity(z_mm))  # (nz,)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    q = np.clip(mean_start_bq_ml, 0.0, None) / (
        eta_per_bq_s[:, None, None] * _decayed_seconds(duration_s))
    if gain_yx is not None:
        q = q * gain_yx[None, :, :]
    white = rng.standard_normal(mean_start_bq_ml.shape, dtype=np.float32)
    white *= np.sqrt(q / voxel_ml).astype(np.float32)
    sigma_mm = math.hypot(scanner.noise_correlation_fwhm_mm, post_filter_fwhm_mm) / FWHM_PER_SIGMA
    if sigma_mm <= 0:
        return white
    return ndimage.gaussian_filter(white, _sigma_voxels((sigma_mm,) * 3, spacing),
                                   mode="constant")


def _bbox(mask: np.ndarray, margin: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    idx = [np.nonzero(np.any(mask, axis=tuple(a for a in range(3) if a != ax)))[0]
           for ax in range(3)]
    return tuple(slice(max(int(i[0]) - m, 0), min(int(i[-1]) + m + 1, n))  # type: ignore[return-value]
                 for i, m, n in zip(idx, margin, mask.shape, strict=True))


def _margin_voxels(scanner: ScannerModel, spacing: tuple[float, float, float], r_max_mm: float,
                   post_filter_fwhm_mm: float) -> tuple[int, int, int]:
    f = max(scanner.fwhm_at(min(r_max_mm, 0.9 * scanner.ring_diameter_mm / 2)))
    total_fwhm = math.sqrt(f**2 + scanner.noise_correlation_fwhm_mm**2 + post_filter_fwhm_mm**2)
    reach_mm = 2.5 * total_fwhm + 2.0
    return tuple(math.ceil(reach_mm / d) + 1 for d in spacing)  # type: ignore[return-value]


# ---------------------------------------------------------------- series assembly


def _series(voxels: np.ndarray, grid: _Grid, scanner: ScannerModel, *, description: str,
            decay_correction: str, scan_start: dt.datetime, duration_s: float,
            injection_datetime: dt.datetime, injected_activity_bq: float,
            patient_weight_kg: float | None, series_number: int) -> Series:
    corrected: tuple[str, ...] = ("NORM", "DTIM", "ATTN", "SCAT", "RAN")
    if decay_correction != "NONE":
        corrected = (*corrected, "DECY")
    pet = PetFacts(units="BQML", decay_correction=decay_correction, corrected_image=corrected,
                   series_datetime=scan_start, acquisition_start=scan_start,
                   frame_duration_s=float(duration_s), radiopharmaceutical="Fluorodeoxyglucose",
                   radionuclide="^18^Fluorine", injected_activity_bq=float(injected_activity_bq),
                   injection_datetime=injection_datetime, half_life_s=F18_HALF_LIFE_S,
                   patient_weight_kg=patient_weight_kg)
    facts = SeriesFacts(modality="PT", device=scanner.device,
                        study_instance_uid=generate_uid(), series_instance_uid=generate_uid(),
                        frame_of_reference_uid=generate_uid(), series_description=description,
                        series_number=series_number, acquired_at=scan_start,
                        naive_times=scan_start.tzinfo is None, pet=pet)
    return Series(voxels=voxels.astype(np.float32, copy=False), spacing=grid.spacing,
                  affine=grid.affine, facts=facts,
                  sop_instance_uids=[generate_uid() for _ in range(grid.shape[0])])


def _common_truth(kind: str, scanner: ScannerModel, grid: _Grid, *, voxel_mm: float,
                  slice_mm: float, decay_correction: str, scan_start: dt.datetime,
                  injection_datetime: dt.datetime, duration_s: float,
                  injected_activity_bq: float, decay_factor: float, noise: bool, seed: int,
                  post_filter_fwhm_mm: float, series: Series) -> dict[str, Any]:
    reference = {"START": scan_start, "ADMIN": injection_datetime, "NONE": None}[decay_correction]
    return {
        "kind": kind,
        "scanner": scanner.to_dict(),
        "voxel_mm": voxel_mm,
        "slice_mm": slice_mm,
        "matrix": grid.shape[2],
        "n_slices": grid.shape[0],
        "shape_zyx": list(grid.shape),
        "first_slice_z_mm": float(grid.z_mm[0]),
        "decay_correction": decay_correction,
        "decay_reference_datetime": reference.isoformat() if reference else None,
        "scan_start_datetime": scan_start.isoformat(),
        "injection_datetime": injection_datetime.isoformat(),
        "duration_s": duration_s,
        "half_life_s": F18_HALF_LIFE_S,
        "injected_activity_bq": injected_activity_bq,
        "decay_factor_to_reference": decay_factor,
        "calibration_factor": scanner.calibration_factor,
        "noise": {"enabled": noise, "seed": seed,
                  "noise_count_fraction": scanner.noise_count_fraction,
                  "noise_correlation_fwhm_mm": scanner.noise_correlation_fwhm_mm,
                  "post_filter_fwhm_mm": post_filter_fwhm_mm},
        "series_instance_uid": series.facts.series_instance_uid,
    }


def _xyz(v: Sequence[float], name: str) -> tuple[float, float, float]:
    if len(v) != 3 or not all(math.isfinite(float(c)) for c in v):
        raise ValueError(f"{name} must be three finite numbers (x, y, z) in mm, got {v!r}")
    return float(v[0]), float(v[1]), float(v[2])


# ---------------------------------------------------------------- NEMA IQ


def _body_area_mm2() -> float:
    """Interior cross-section of the IEC body outline (nema_iq), mm²."""
    r = nema_iq.BODY_CORNER_RADIUS_MM
    c = nema_iq.BODY_HALF_WIDTH_MM - r
    return math.pi * nema_iq.BODY_HALF_WIDTH_MM**2 / 2 + 2 * c * r + math.pi * r**2 / 2


def render_iq(
    *,
    scanner: ScannerModel = ScannerModel(),
    voxel_mm: float = 2.0,
    slice_mm: float | None = None,
    matrix: int | None = None,
    activity_ratio: float = 4.0,
    background_bq_ml: float = 5300.0,
    cold_spheres: Sequence[float] = (),
    shift_mm: Sequence[float] = (0.0, 0.0, 0.0),
    rotation_deg: float = 0.0,
    duration_s: float = 600.0,
    noise: bool = True,
    post_filter_fwhm_mm: float = 0.0,
    seed: int = 0,
    decay_correction: str = "START",
    scan_start: dt.datetime = DEFAULT_SCAN_START,
    injection_to_scan_s: float = 1800.0,
    slice_offset_mm: float | None = None,
    scatter_residual_percent: float = 0.0,
) -> tuple[Series, dict[str, Any]]:
    """Image the NEMA/IEC body phantom (NEMA NU 2-2018 section 7) on ``scanner``.

    ``background_bq_ml`` is the background concentration at the scan start
    (NU 2-2018: 5.3 kBq/mL); hot spheres hold ``activity_ratio`` × that; the
    diameters in ``cold_spheres`` (mm, from nema_iq.SPHERE_DIAMETERS_MM) hold
    none. ``shift_mm`` is the LPS position of the phantom frame's origin
    (centre of the sphere ring on the sphere plane); ``rotation_deg`` turns the
    phantom about the scanner z axis (from +x towards +y). The slice lattice is
    fixed to the scanner: slice centres at ``slice_offset_mm + m · slice_mm``
    (default offset 0.3 × slice, so a sphere plane at z = 0 is not on a slice
    centre), over the whole axial FOV. ``scatter_residual_percent`` adds what
    an imperfect scatter correction leaves: that percentage of the activity
    blurred over ``SCATTER_RESIDUAL_FWHM_MM``, a slowly varying component that
    shows in the cold lung insert as NEMA's lung residual. Returns the Series
    (unquantised float32 Bq/mL at the decay reference) and the ground truth
    (module docstring).
    """
    slice_mm = voxel_mm if slice_mm is None else float(slice_mm)
    _check_common(voxel_mm, slice_mm, duration_s, decay_correction, post_filter_fwhm_mm, matrix)
    if not activity_ratio > 0:
        raise ValueError(f"activity_ratio must be > 0, got {activity_ratio}")
    if not background_bq_ml > 0:
        raise ValueError(f"background_bq_ml must be > 0, got {background_bq_ml}")
    cold = tuple(float(d) for d in cold_spheres)
    for d in cold:
        if d not in nema_iq.SPHERE_DIAMETERS_MM:
            raise ValueError(f"cold sphere {d:g} mm is not one of the phantom's spheres "
                             f"{', '.join(f'{s:g}' for s in nema_iq.SPHERE_DIAMETERS_MM)} mm")
    if not injection_to_scan_s >= 0:
        raise ValueError("injection_to_scan_s must be >= 0")
    if not 0.0 <= scatter_residual_percent < 50.0:
        raise ValueError("scatter_residual_percent must be in [0, 50), got "
                         f"{scatter_residual_percent}")
    shift = np.array(_xyz(shift_mm, "shift_mm"))
    theta = math.radians(rotation_deg)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    outline_reach_mm = (float(np.hypot(*shift[:2])) + nema_iq.BODY_HALF_WIDTH_MM
                        + nema_iq.BODY_ARC_CENTRE_Y_MM + 10.0)
    if outline_reach_mm > 0.9 * scanner.ring_diameter_mm / 2:
        raise ValueError(f"shift_mm {tuple(shift)} puts the phantom outside the scanner's bore")
    z_lo_ph, z_hi_ph = nema_iq.BODY_Z_RANGE_MM
    half_afov = scanner.axial_fov_mm / 2
    # The body may stick out of a short axial FOV (as on real scanners); the spheres
    # and the NU 2 background slices (±20 mm) must be inside it.
    if abs(shift[2]) + 40.0 > half_afov:
        raise ValueError(f"shift_mm z = {shift[2]:g} mm puts the sphere plane ±40 mm outside "
                         f"the axial FOV of ±{half_afov:g} mm")
    if matrix is None:
        matrix = _even_matrix(max(600.0, 2 * outline_reach_mm), voxel_mm)
    offset = 0.3 * slice_mm if slice_offset_mm is None else float(slice_offset_mm)
    grid = _make_grid(voxel_mm, slice_mm, matrix, -half_afov + slice_mm / 2,
                      half_afov - slice_mm / 2, offset)
    x, y, z = grid.x_mm, grid.y_mm, grid.z_mm
    if abs(x[0]) < outline_reach_mm - 10.0:
        raise ValueError(f"matrix {matrix} × {voxel_mm} mm does not cover the phantom")

    def to_phantom(xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, v = xx - shift[0], yy - shift[1]
        return rot[0, 0] * u + rot[1, 0] * v, rot[0, 1] * u + rot[1, 1] * v

    lung_outer_r = nema_iq.LUNG_INSERT_OUTER_DIAMETER_MM / 2

    def background_xy(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        px, py = to_phantom(xx, yy)
        return nema_iq.inside_body_xy(px, py) & (px * px + py * py > lung_outer_r**2)

    yy, xx = np.meshgrid(y, x, indexing="ij")
    px, py = to_phantom(xx, yy)
    near = _edge_pixels(nema_iq.inside_body_xy(px, py))
    near |= np.abs(np.hypot(px, py) - lung_outer_r) < voxel_mm
    f_xy = _fraction_xy(x, y, background_xy, near, voxel_mm)
    f_z = _fraction_z(z, slice_mm, shift[2] + z_lo_ph, shift[2] + z_hi_ph)

    margin = _margin_voxels(scanner, grid.spacing, outline_reach_mm, post_filter_fwhm_mm)
    box = _bbox((f_z[:, None, None] > 0) & (f_xy[None] > 0), margin)
    shape_zyx = (box[0].stop - box[0].start, box[1].stop - box[1].start,
                 box[2].stop - box[2].start)
    sub = _Grid(shape_zyx, grid.spacing, (x[box[2].start], y[box[1].start], z[box[0].start]))
    obj = (background_bq_ml * f_z[box[0], None, None] * f_xy[None, box[1], box[2]])

    sphere_bq_ml = activity_ratio * background_bq_ml
    spheres_lps = []
    wall_mm = nema_iq.SPHERE_WALL_MM
    for sphere in nema_iq.spheres():
        sx, sy, sz = sphere.centre_mm
        centre = np.array([*(rot @ np.array([sx, sy]) + shift[:2]), sz + shift[2]])
        hot = sphere.diameter_mm not in cold
        spheres_lps.append((sphere, centre, hot))
        b_out, f_out = _ball_fraction(centre, sphere.radius_mm + wall_mm, sub)
        obj[b_out] -= background_bq_ml * f_out
        if hot:
            b_in, f_in = _ball_fraction(centre, sphere.radius_mm, sub)
            obj[b_in] += sphere_bq_ml * f_in
    obj = obj.astype(np.float32)
    in_fov_start_bq = float(obj.sum(dtype=np.float64)) * grid.voxel_ml
    blurred = _blur_extended(obj, sub.x_mm, sub.y_mm, grid.spacing, scanner, post_filter_fwhm_mm)
    if scatter_residual_percent > 0:
        # The residual leaves the box as a faint tail; outside the phantom a scatter
        # correction fitted to the tails takes it to zero, so it is cut there.
        blurred += np.float32(scatter_residual_percent / 100.0) * ndimage.gaussian_filter(
            obj, _sigma_voxels((SCATTER_RESIDUAL_FWHM_MM / FWHM_PER_SIGMA,) * 3, grid.spacing),
            mode="constant", cval=0.0)

    rng = np.random.default_rng(seed)
    decay_factor = _decay_factor_to_reference(decay_correction, duration_s, injection_to_scan_s)
    scale = decay_factor * scanner.calibration_factor
    gain = (attenuation_noise_gain(f_xy[box[1], box[2]] > 0.5, voxel_mm,
                                   scanner.attenuation_mu_per_mm) if noise else None)
    image_start = blurred + (_noise(blurred, sub.z_mm, grid.spacing, scanner, duration_s,
                                    post_filter_fwhm_mm, rng, gain) if noise else 0.0)
    voxels = np.zeros(grid.shape, dtype=np.float32)
    voxels[box] = image_start * np.float32(scale)
    noiseless = np.zeros(grid.shape, dtype=np.float32)
    noiseless[box] = blurred * np.float32(scale)

    # Volumes and the header's total activity at injection.
    length_mm = z_hi_ph - z_lo_ph
    sphere_outer_ml = sum(4 / 3 * math.pi * (s.radius_mm + wall_mm) ** 3 for s in nema_iq.spheres())
    background_ml = ((_body_area_mm2() - math.pi * lung_outer_r**2) * length_mm) / 1000 \
        - sphere_outer_ml / 1000
    hot_ml = sum(s.volume_ml for s, _, hot in spheres_lps if hot)
    total_start_bq = background_bq_ml * background_ml + sphere_bq_ml * hot_ml
    injected_bq = total_start_bq * math.exp(F18_LAMBDA_PER_S * injection_to_scan_s)
    injection_dt = scan_start - dt.timedelta(seconds=injection_to_scan_s)
    weight_kg = round((background_ml + sum(s.volume_ml for s in nema_iq.spheres())) / 1000, 3)
    series = _series(voxels, grid, scanner, description="NEMA IQ phantom (simulated)",
                     decay_correction=decay_correction, scan_start=scan_start,
                     duration_s=duration_s, injection_datetime=injection_dt,
                     injected_activity_bq=injected_bq, patient_weight_kg=weight_kg,
                     series_number=3)

    # Ground truth on the noiseless image, NU 2-2018 7.4 ROIs.
    _dz, dy, dx = grid.spacing
    c_b_true = background_bq_ml * decay_factor
    plane_z = float(shift[2])
    k_plane = int(np.argmin(np.abs(z - plane_z)))
    c_b_ref = _background_zone_mean(noiseless, px, py, z, plane_z, spheres_lps)

    def frac_index(xyz: np.ndarray) -> tuple[float, float]:
        return (float((xyz[1] - y[0]) / dy), float((xyz[0] - x[0]) / dx))

    spheres_truth = []
    pc: dict[str, float] = {}
    rc: dict[str, float] = {}
    for sphere, centre, hot in spheres_lps:
        k = int(np.argmin(np.abs(z - centre[2])))
        c_roi = circle_mean(noiseless[k], frac_index(centre), sphere.radius_mm, (dy, dx))
        true_c = sphere_bq_ml * decay_factor if hot else 0.0
        if hot:
            q = 100.0 * (c_roi / c_b_ref - 1.0) / (activity_ratio - 1.0) \
                if activity_ratio != 1.0 else float("nan")
        else:
            q = 100.0 * (1.0 - c_roi / c_b_ref)
        w = circle_weights(noiseless[k].shape, frac_index(centre), sphere.radius_mm, (dy, dx))
        rc_mean = c_roi / (true_c * scanner.calibration_factor) if hot else None
        rc_max = (float(noiseless[k][w > 0].max()) / (true_c * scanner.calibration_factor)
                  if hot else None)
        key = f"{sphere.diameter_mm:g}"
        pc[key] = q
        if rc_mean is not None:
            rc[key] = rc_mean
        spheres_truth.append({
            "diameter_mm": sphere.diameter_mm, "inner_radius_mm": sphere.radius_mm,
            "wall_mm": wall_mm, "centre_lps_mm": [float(v) for v in centre], "hot": hot,
            "concentration_bq_ml": true_c, "slice_index": k,
            "roi_mean_noiseless_bq_ml": c_roi, "percent_contrast_noiseless": q,
            "recovery_coefficient_noiseless": rc_mean,
            "recovery_coefficient_max_noiseless": rc_max,
        })
    lung_centre = np.array([shift[0], shift[1], plane_z])
    lung_mean = circle_mean(noiseless[k_plane], frac_index(lung_centre),
                            nema_iq.LUNG_ROI_DIAMETER_MM / 2, (dy, dx))
    far = np.array([*(rot @ np.array([0.0, -85.0]) + shift[:2]), plane_z])
    far_mean = circle_mean(noiseless[k_plane], frac_index(far), 18.5, (dy, dx))

    truth = _common_truth("nema_iq", scanner, grid, voxel_mm=voxel_mm, slice_mm=slice_mm,
                          decay_correction=decay_correction, scan_start=scan_start,
                          injection_datetime=injection_dt, duration_s=duration_s,
                          injected_activity_bq=injected_bq, decay_factor=decay_factor,
                          noise=noise, seed=seed, post_filter_fwhm_mm=post_filter_fwhm_mm,
                          series=series)
    truth.update({
        "activity_ratio": activity_ratio,
        "background_bq_ml": c_b_true,
        "sphere_bq_ml": sphere_bq_ml * decay_factor,
        "background_bq_ml_at_start": background_bq_ml,
        "cold_spheres_mm": list(cold),
        "phantom_centre_lps_mm": [float(v) for v in shift],
        "rotation_deg": rotation_deg,
        "sphere_plane_z_mm": plane_z,
        "sphere_plane_slice_index": k_plane,
        "sphere_plane_offset_from_slice_centre_mm": float(plane_z - z[k_plane]),
        "lung_centre_lps_mm": [float(v) for v in lung_centre],
        "spheres": spheres_truth,
        "percent_contrast_noiseless": pc,
        "recovery_coefficient_noiseless": rc,
        "background_reference_bq_ml": c_b_ref,
        "scatter_residual_percent": scatter_residual_percent,
        "background_far_roi_noiseless_bq_ml": far_mean,
        "lung_residual_percent_noiseless": 100.0 * lung_mean / c_b_ref,
        "total_activity_bq": total_start_bq * decay_factor,
        "total_activity_in_fov_bq": in_fov_start_bq * decay_factor,
        "phantom_volume_ml": background_ml,
        "patient_weight_kg": weight_kg,
    })
    return series, truth


def _background_zone_mean(noiseless: np.ndarray, px: np.ndarray, py: np.ndarray,
                          z_mm: np.ndarray, plane_z: float,
                          spheres_lps: list[tuple[nema_iq.Sphere, np.ndarray, bool]]) -> float:
    """Mean of the noiseless image where NU 2-2018 7.4 background ROIs may lie.

    The zone: on the slices nearest the sphere plane and ±10, ±20 mm, inside
    the body at least 15 mm from its edge, from the lung insert's outer wall
    and (in 3-D) from every sphere's outer glass surface. ``px``, ``py`` are
    each pixel's phantom-frame coordinates. With no scatter residual the image
    there equals the fill to < 0.01 %; with one, this is the background the
    NEMA ROIs see, which the true fill no longer is.
    """
    margin = nema_iq.BACKGROUND_EDGE_MARGIN_MM
    in_xy = (nema_iq.inside_body_xy(px, py)
             & (nema_iq.distance_to_body_edge_xy(px, py) >= margin)
             & (np.hypot(px, py) >= nema_iq.LUNG_INSERT_OUTER_DIAMETER_MM / 2 + margin))
    total, count = 0.0, 0
    for off in nema_iq.BACKGROUND_SLICE_OFFSETS_MM:
        k = int(np.argmin(np.abs(z_mm - (plane_z + off))))
        zone = in_xy.copy()
        for sphere, centre, _hot in spheres_lps:
            reach = sphere.radius_mm + nema_iq.SPHERE_WALL_MM + margin
            dz = float(z_mm[k] - centre[2])
            if abs(dz) < reach:
                sx, sy, _ = sphere.centre_mm
                zone &= np.hypot(px - sx, py - sy) >= math.sqrt(reach**2 - dz**2)
        total += float(noiseless[k][zone].sum(dtype=np.float64))
        count += int(zone.sum())
    return total / count


# ---------------------------------------------------------------- point sources


def _box_gauss_fraction(lo_mm: np.ndarray, hi_mm: np.ndarray, centre_mm: float,
                        extent_mm: float, sigma_mm: float) -> np.ndarray:
    """Exact fraction of a 1-D box source (width ``extent_mm``) ⊗ Gaussian in [lo, hi]."""

    def psi(u: np.ndarray) -> np.ndarray:  # second antiderivative of the Gaussian density
        t = u / sigma_mm
        return u * ndtr(t) + sigma_mm * np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)

    a, b, e = lo_mm - centre_mm, hi_mm - centre_mm, extent_mm / 2
    if extent_mm <= 0:
        return ndtr(b / sigma_mm) - ndtr(a / sigma_mm)
    return (psi(b + e) - psi(a + e) - psi(b - e) + psi(a - e)) / extent_mm


def _trapezoid_nodes(voxel_mm: float, extent_mm: float, n: int = 48,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (sum 1) of box(voxel) ⊗ box(extent): the density of
    (point in voxel − point in source), for midpoint quadrature."""
    half = (voxel_mm + extent_mm) / 2
    u = (np.arange(n) + 0.5) / n * 2 * half - half
    a, b = voxel_mm / 2, extent_mm / 2
    dens = np.clip(np.minimum(a + b - np.abs(u), 2 * min(a, b)), 0.0, None)
    if extent_mm <= 0:
        u, dens = (np.arange(n) + 0.5) / n * voxel_mm - voxel_mm / 2, np.ones(n)
    return u, dens / dens.sum()


def _gauss2(dx: np.ndarray, dy: np.ndarray, cov_inv: np.ndarray, norm: float) -> np.ndarray:
    q = cov_inv[0, 0] * dx * dx + 2 * cov_inv[0, 1] * dx * dy + cov_inv[1, 1] * dy * dy
    return norm * np.exp(-0.5 * q)


def _xy_covariance(radial_unit: np.ndarray, sigma_rad: float, sigma_tan: float) -> np.ndarray:
    tangential_unit = np.array([-radial_unit[1], radial_unit[0]])
    return (sigma_rad**2 * np.outer(radial_unit, radial_unit)
            + sigma_tan**2 * np.outer(tangential_unit, tangential_unit))


def _profile_width(t_mm: np.ndarray, profile: np.ndarray, level: float) -> float:
    """Full width at ``level`` × peak of a single-peaked profile (linear interpolation)."""
    peak = int(np.argmax(profile))
    target = level * profile[peak]
    right = peak + int(np.argmax(profile[peak:] < target))
    left = peak - int(np.argmax(profile[peak::-1] < target))

    def cross(i_in: int, i_out: int) -> float:
        f_in, f_out = profile[i_in], profile[i_out]
        return float(t_mm[i_in] + (target - f_in) / (f_out - f_in) * (t_mm[i_out] - t_mm[i_in]))

    return cross(right - 1, right) - cross(left + 1, left)


def _true_point_widths(radial_unit: np.ndarray, sigmas_mm: tuple[float, float, float],
                       voxel_mm: float, slice_mm: float, extent_mm: float,
                       ) -> dict[str, dict[str, float]]:
    """FWHM/FWTM of PSF ⊗ source cube ⊗ voxel box along radial, tangential, axial."""
    s_rad, s_tan, s_ax = sigmas_mm
    cov = _xy_covariance(radial_unit, s_rad, s_tan)
    cov_inv = np.linalg.inv(cov)
    nodes, weights = _trapezoid_nodes(voxel_mm, extent_mm, n=40)
    wx = weights[:, None] * weights[None, :]
    ux, uy = nodes[None, :] + 0 * nodes[:, None], nodes[:, None] + 0 * nodes[None, :]
    reach = 4.0 * max(s_rad, s_tan) + voxel_mm + extent_mm
    t = np.linspace(-reach, reach, 1201)
    out: dict[str, dict[str, float]] = {"fwhm_mm": {}, "fwtm_mm": {}}
    tangential_unit = np.array([-radial_unit[1], radial_unit[0]])
    for name, unit in (("radial", radial_unit), ("tangential", tangential_unit)):
        px, py = t * unit[0], t * unit[1]
        prof = (_gauss2(px[:, None, None] - ux[None], py[:, None, None] - uy[None], cov_inv, 1.0)
                * wx[None]).sum(axis=(1, 2))
        out["fwhm_mm"][name] = _profile_width(t, prof, 0.5)
        out["fwtm_mm"][name] = _profile_width(t, prof, 0.1)
    reach_z = 4.0 * s_ax + slice_mm + extent_mm
    tz = np.linspace(-reach_z, reach_z, 4001)
    prof_z = _box_gauss_fraction(tz - slice_mm / 2, tz + slice_mm / 2, 0.0, extent_mm, s_ax)
    out["fwhm_mm"]["axial"] = _profile_width(tz, prof_z, 0.5)
    out["fwtm_mm"]["axial"] = _profile_width(tz, prof_z, 0.1)
    return out


def render_point(
    *,
    scanner: ScannerModel = ScannerModel(),
    positions_mm: Sequence[Sequence[float]] | None = None,
    source_extent_mm: float = 1.0,
    activity_bq: float = 1.0e6,
    voxel_mm: float = 1.0,
    slice_mm: float | None = None,
    matrix: int | None = None,
    duration_s: float = 120.0,
    noise: bool = True,
    post_filter_fwhm_mm: float = 0.0,
    seed: int = 0,
    decay_correction: str = "START",
    scan_start: dt.datetime = DEFAULT_SCAN_START,
    injection_to_scan_s: float = 1800.0,
    slice_offset_mm: float | None = None,
    axial_margin_mm: float = 25.0,
) -> tuple[Series, dict[str, Any]]:
    """Image point sources (NEMA NU 2-2018 section 3) on ``scanner``.

    ``positions_mm`` are LPS (x, y, z) mm with the scanner axis at x = y = 0
    (default: phantoms.point_source.nema_positions for the scanner's axial FOV:
    1, 10, 20 cm above the axis at the axial centre and 3/8 AFOV from it).
    Each source is a cube of ``source_extent_mm`` holding ``activity_bq`` at
    the scan start. The image is exact: each voxel holds the voxel-mean of the
    anisotropic Gaussian PSF at the source's radius ⊗ the cube (closed form
    axially, 64 × 64-node quadrature transversally). Slices cover the sources
    ± ``axial_margin_mm``; the transverse matrix covers the farthest source
    + 30 mm unless given. Noise (the module's model) is low at the defaults.
    """
    slice_mm = voxel_mm if slice_mm is None else float(slice_mm)
    _check_common(voxel_mm, slice_mm, duration_s, decay_correction, post_filter_fwhm_mm, matrix)
    if not activity_bq > 0:
        raise ValueError(f"activity_bq must be > 0, got {activity_bq}")
    if not 0 <= source_extent_mm <= 10:
        raise ValueError(f"source_extent_mm must be between 0 and 10 mm, got {source_extent_mm}")
    if positions_mm is None:
        sources = nema_positions(scanner.axial_fov_mm)
    else:
        sources = [PointSource(_xyz(p, "position"), source_extent_mm) for p in positions_mm]
    if not sources:
        raise ValueError("positions_mm is empty")
    centres = np.array([s.centre_mm for s in sources], dtype=float)
    r_max = float(np.hypot(centres[:, 0], centres[:, 1]).max())
    for s in sources:
        scanner.fwhm_at(s.radius_from_axis_mm)  # raises outside the FOV
        if abs(s.centre_mm[2]) > scanner.axial_fov_mm / 2:
            raise ValueError(f"source at z = {s.centre_mm[2]:g} mm is outside the axial FOV")
    if matrix is None:
        matrix = _even_matrix(2 * (float(np.abs(centres[:, :2]).max()) + 30.0), voxel_mm)
    offset = 0.3 * slice_mm if slice_offset_mm is None else float(slice_offset_mm)
    grid = _make_grid(voxel_mm, slice_mm, matrix, centres[:, 2].min() - axial_margin_mm,
                      centres[:, 2].max() + axial_margin_mm, offset)
    x, y, z = grid.x_mm, grid.y_mm, grid.z_mm
    if np.abs(centres[:, :2]).max() > abs(x[0]) - 10.0:
        raise ValueError(f"matrix {matrix} × {voxel_mm} mm does not cover the sources")

    post_sigma = post_filter_fwhm_mm / FWHM_PER_SIGMA
    noiseless_start = np.zeros(grid.shape, dtype=np.float32)
    sources_truth = []
    nodes, weights = _trapezoid_nodes(voxel_mm, source_extent_mm)
    for s in sources:
        cx, cy, cz = s.centre_mm
        radius = s.radius_from_axis_mm
        radial_unit = np.array([cx, cy]) / radius if radius > 1e-9 else np.array([0.0, -1.0])
        f_rad, f_tan, f_ax = scanner.fwhm_at(radius)
        sig = (math.hypot(f_rad / FWHM_PER_SIGMA, post_sigma),
               math.hypot(f_tan / FWHM_PER_SIGMA, post_sigma),
               math.hypot(f_ax / FWHM_PER_SIGMA, post_sigma))
        reach = 5.0 * max(sig) + voxel_mm + source_extent_mm
        ii = np.nonzero(np.abs(x - cx) <= reach)[0]
        jj = np.nonzero(np.abs(y - cy) <= reach)[0]
        kk = np.nonzero(np.abs(z - cz) <= 5.0 * sig[2] + slice_mm + source_extent_mm)[0]
        frac_z = _box_gauss_fraction(z[kk] - slice_mm / 2, z[kk] + slice_mm / 2, cz,
                                     source_extent_mm, sig[2])
        cov = _xy_covariance(radial_unit, sig[0], sig[1])
        cov_inv = np.linalg.inv(cov)
        norm = 1.0 / (2 * math.pi * math.sqrt(np.linalg.det(cov)))
        ddx = (x[ii] - cx)[None, :, None, None] - nodes[None, None, None, :]
        ddy = (y[jj] - cy)[:, None, None, None] - nodes[None, None, :, None]
        dens = (_gauss2(ddx, ddy, cov_inv, norm)
                * (weights[:, None] * weights[None, :])[None, None]).sum(axis=(2, 3))
        frac_xy = dens * voxel_mm * voxel_mm  # fraction of the activity in each pixel
        noiseless_start[np.ix_(kk, jj, ii)] += (
            activity_bq * frac_z[:, None, None] * frac_xy[None] / grid.voxel_ml
        ).astype(np.float32)
        widths = _true_point_widths(radial_unit, sig, voxel_mm, slice_mm, source_extent_mm)
        psf_fwhm = {"radial": sig[0] * FWHM_PER_SIGMA, "tangential": sig[1] * FWHM_PER_SIGMA,
                    "axial": sig[2] * FWHM_PER_SIGMA}
        sources_truth.append({
            "position_lps_mm": [cx, cy, cz],
            "radius_from_axis_mm": radius,
            "slice_index": int(np.argmin(np.abs(z - cz))),
            "radial_unit_xy": [float(v) for v in radial_unit],
            "fwhm_mm": widths["fwhm_mm"],
            "fwtm_mm": widths["fwtm_mm"],
            "psf_fwhm_mm": psf_fwhm,
            "psf_fwtm_mm": {k: v * FWTM_PER_FWHM for k, v in psf_fwhm.items()},
        })

    decay_factor = _decay_factor_to_reference(decay_correction, duration_s, injection_to_scan_s)
    scale = np.float32(decay_factor * scanner.calibration_factor)
    image = noiseless_start.copy()
    if noise:
        rng = np.random.default_rng(seed)
        margin = _margin_voxels(scanner, grid.spacing, r_max, post_filter_fwhm_mm)
        box = _bbox(noiseless_start > 0, margin)
        image[box] += _noise(noiseless_start[box], z[box[0]], grid.spacing, scanner,
                             duration_s, post_filter_fwhm_mm, rng)
    image *= scale
    total_start_bq = activity_bq * len(sources)
    injected_bq = total_start_bq * math.exp(F18_LAMBDA_PER_S * injection_to_scan_s)
    injection_dt = scan_start - dt.timedelta(seconds=injection_to_scan_s)
    series = _series(image, grid, scanner, description="Point sources (simulated)",
                     decay_correction=decay_correction, scan_start=scan_start,
                     duration_s=duration_s, injection_datetime=injection_dt,
                     injected_activity_bq=injected_bq, patient_weight_kg=None, series_number=2)
    truth = _common_truth("point_sources", scanner, grid, voxel_mm=voxel_mm, slice_mm=slice_mm,
                          decay_correction=decay_correction, scan_start=scan_start,
                          injection_datetime=injection_dt, duration_s=duration_s,
                          injected_activity_bq=injected_bq, decay_factor=decay_factor,
                          noise=noise, seed=seed, post_filter_fwhm_mm=post_filter_fwhm_mm,
                          series=series)
    truth.update({
        "source_extent_mm": source_extent_mm,
        "activity_bq_per_source": activity_bq * decay_factor,
        "activity_bq_per_source_at_start": activity_bq,
        "total_activity_bq": total_start_bq * decay_factor,
        "sources": sources_truth,
    })
    return series, truth


# ---------------------------------------------------------------- uniform cylinder


def render_uniform(
    *,
    scanner: ScannerModel = ScannerModel(),
    diameter_mm: float = 200.0,
    length_mm: float = 200.0,
    centre_mm: Sequence[float] = (0.0, 0.0, 0.0),
    activity_bq: float = 70.0e6,
    scan_start: dt.datetime = DEFAULT_SCAN_START,
    calibration_to_scan_s: float = 3600.0,
    patient_weight_kg: float | None = None,
    voxel_mm: float = 4.0,
    slice_mm: float | None = None,
    matrix: int | None = None,
    duration_s: float = 300.0,
    noise: bool = True,
    post_filter_fwhm_mm: float = 0.0,
    seed: int = 0,
    decay_correction: str = "START",
    slice_offset_mm: float | None = None,
) -> tuple[Series, dict[str, Any]]:
    """Image a uniform cylinder (EARL / daily calibration QC, STANDARDS.md A.9).

    ``activity_bq`` is the whole activity put in the cylinder, measured at the
    calibration time ``scan_start − calibration_to_scan_s``; the header gives
    both as Radionuclide Total Dose and Radiopharmaceutical Start DateTime.
    ``patient_weight_kg`` defaults to the water mass of the fill (volume × 1
    g/mL), so the true SUV is 1.0.
    """
    slice_mm = voxel_mm if slice_mm is None else float(slice_mm)
    _check_common(voxel_mm, slice_mm, duration_s, decay_correction, post_filter_fwhm_mm, matrix)
    if not diameter_mm > 0 or not length_mm > 0:
        raise ValueError("diameter_mm and length_mm must be > 0")
    if not activity_bq > 0:
        raise ValueError(f"activity_bq must be > 0, got {activity_bq}")
    if not calibration_to_scan_s >= 0:
        raise ValueError("calibration_to_scan_s must be >= 0")
    if patient_weight_kg is not None and not patient_weight_kg > 0:
        raise ValueError("patient_weight_kg must be > 0")
    cyl = UniformCylinder(float(diameter_mm), float(length_mm), _xyz(centre_mm, "centre_mm"))
    cx, cy, cz = cyl.centre_mm
    reach = math.hypot(cx, cy) + diameter_mm / 2
    if reach > 0.9 * scanner.ring_diameter_mm / 2:
        raise ValueError("the cylinder does not fit in the scanner's bore")
    half_afov = scanner.axial_fov_mm / 2
    if matrix is None:
        matrix = _even_matrix(max(600.0, 2 * reach + 20.0), voxel_mm)
    offset = 0.3 * slice_mm if slice_offset_mm is None else float(slice_offset_mm)
    grid = _make_grid(voxel_mm, slice_mm, matrix, -half_afov + slice_mm / 2,
                      half_afov - slice_mm / 2, offset)
    x, y, z = grid.x_mm, grid.y_mm, grid.z_mm
    if abs(x[0]) < reach:
        raise ValueError(f"matrix {matrix} × {voxel_mm} mm does not cover the cylinder")
    radius = diameter_mm / 2

    def inside(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2

    near = np.abs(np.hypot(x[None, :] - cx, y[:, None] - cy) - radius) < voxel_mm
    f_xy = _fraction_xy(x, y, inside, near, voxel_mm)
    f_z = _fraction_z(z, slice_mm, cz - length_mm / 2, cz + length_mm / 2)
    volume_ml = cyl.volume_ml
    c_start = activity_bq * math.exp(-F18_LAMBDA_PER_S * calibration_to_scan_s) / volume_ml
    margin = _margin_voxels(scanner, grid.spacing, reach, post_filter_fwhm_mm)
    box = _bbox((f_z[:, None, None] > 0) & (f_xy[None] > 0), margin)
    obj = (c_start * f_z[box[0], None, None] * f_xy[None, box[1], box[2]]).astype(np.float32)
    blurred = _blur_extended(obj, x[box[2]], y[box[1]], grid.spacing, scanner,
                             post_filter_fwhm_mm)
    if noise:
        gain = attenuation_noise_gain(f_xy[box[1], box[2]] > 0.5, voxel_mm,
                                      scanner.attenuation_mu_per_mm)
        blurred = blurred + _noise(blurred, z[box[0]], grid.spacing, scanner, duration_s,
                                   post_filter_fwhm_mm, np.random.default_rng(seed), gain)
    decay_factor = _decay_factor_to_reference(decay_correction, duration_s, calibration_to_scan_s)
    voxels = np.zeros(grid.shape, dtype=np.float32)
    voxels[box] = blurred * np.float32(decay_factor * scanner.calibration_factor)
    weight_kg = round(volume_ml / 1000.0, 4) if patient_weight_kg is None else patient_weight_kg
    calibration_dt = scan_start - dt.timedelta(seconds=calibration_to_scan_s)
    series = _series(voxels, grid, scanner, description="Uniform cylinder (simulated)",
                     decay_correction=decay_correction, scan_start=scan_start,
                     duration_s=duration_s, injection_datetime=calibration_dt,
                     injected_activity_bq=activity_bq, patient_weight_kg=weight_kg,
                     series_number=4)
    truth = _common_truth("uniform_cylinder", scanner, grid, voxel_mm=voxel_mm,
                          slice_mm=slice_mm, decay_correction=decay_correction,
                          scan_start=scan_start, injection_datetime=calibration_dt,
                          duration_s=duration_s, injected_activity_bq=activity_bq,
                          decay_factor=decay_factor, noise=noise, seed=seed,
                          post_filter_fwhm_mm=post_filter_fwhm_mm, series=series)
    suv = weight_kg * 1000.0 / volume_ml  # true SUV: C / (A / W) with C = A / V
    truth.update({
        "diameter_mm": diameter_mm,
        "length_mm": length_mm,
        "centre_lps_mm": list(cyl.centre_mm),
        "volume_ml": volume_ml,
        "activity_bq": activity_bq,
        "calibration_datetime": calibration_dt.isoformat(),
        "concentration_bq_ml": c_start * decay_factor,
        "concentration_bq_ml_at_start": c_start,
        "patient_weight_kg": weight_kg,
        "expected_suv": suv,
        "expected_image_suv": suv * scanner.calibration_factor,
        "expected_image_bq_ml": c_start * decay_factor * scanner.calibration_factor,
        "total_activity_bq": c_start * volume_ml * decay_factor,
    })
    return series, truth


# ---------------------------------------------------------------- render + write


def _simulate(render: Any, out_dir: Path, render_kwargs: dict[str, Any],
              write_kwargs: dict[str, Any]) -> dict[str, Any]:
    series, truth = render(**render_kwargs)
    scanner = render_kwargs.get("scanner", ScannerModel())
    write_kwargs.setdefault("reconstruction_method", scanner.reconstruction_method)
    files = write_series(series, Path(out_dir), **write_kwargs)
    truth["files"] = len(files)
    (Path(out_dir) / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n",
                                                   encoding="utf-8")
    return truth


_WRITE_KEYS = ("file_names", "transfer_syntax", "reconstruction_method", "patient_name",
               "patient_id")


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    write = {k: kwargs.pop(k) for k in _WRITE_KEYS if k in kwargs}
    return kwargs, write


def simulate_iq(out_dir: Path, **kwargs: Any) -> dict[str, Any]:
    """render_iq(**kwargs), write the DICOM series and ``out_dir/ground_truth.json``.

    Keywords of write_series (file_names, transfer_syntax, ...) are passed to it.
    Returns the ground truth (with ``files``: the number of files written).
    """
    render_kwargs, write_kwargs = _split(dict(kwargs))
    return _simulate(render_iq, out_dir, render_kwargs, write_kwargs)


def simulate_point(out_dir: Path, **kwargs: Any) -> dict[str, Any]:
    """render_point(**kwargs) written as DICOM + ground_truth.json (as simulate_iq)."""
    render_kwargs, write_kwargs = _split(dict(kwargs))
    return _simulate(render_point, out_dir, render_kwargs, write_kwargs)


def simulate_uniform(out_dir: Path, **kwargs: Any) -> dict[str, Any]:
    """render_uniform(**kwargs) written as DICOM + ground_truth.json (as simulate_iq)."""
    render_kwargs, write_kwargs = _split(dict(kwargs))
    return _simulate(render_uniform, out_dir, render_kwargs, write_kwargs)
