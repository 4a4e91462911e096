"""Virtual PET/CT patients: an FDG PET series and its low-dose CT on one frame of reference,
with a liver of known SUV and known noise (ground truth for
:mod:`scanbench.quality.pet_liver`).

Anatomy (patient LPS coordinates in mm: +x patient left, +y posterior, +z superior;
z = 0 near the top of the right hemidiaphragm). The body is an elliptic cylinder
(LAT × AP) of soft tissue under a subcutaneous fat layer; two lungs (ellipsoids,
z ≈ −20 to +260 mm, the mediastinum between them); a liver of two ellipsoids, the right
lobe (centre x = −0.2 LAT, z = −70 mm, semi-axes 0.22 LAT × 0.33 AP × 80 mm, top at the
dome) and a smaller anterior left lobe crossing the midline; a vertebral column
posteriorly; the descending aorta (radius 12 mm) left-anterior of the spine from the top
of the field down to z = −250 mm; two kidneys (z ≈ −210 mm); the bladder (z ≈ −390 mm);
optional spherical lesions. Each tissue has an SUV (body weight) and a CT number:

=============  =====  ======
tissue          SUV     HU
=============  =====  ======
soft tissue     0.8      40
fat             0.4    −100
lung            0.35   −850
liver          2.2*      60
blood (aorta)  1.7*      45
spine (marrow)  1.5     500
kidney          3.5      30
bladder        20.0      10
lesion         8.0*      45
=============  =====  ======

(* options). Values are typical unenhanced CT numbers and typical FDG uptake at 60 min
(liver SUV 2–2.5 and blood pool 1.5–2 in the EARL and PERCIST literature).

PET image. The object (SUV per voxel, each voxel the mean of 2 × 2 × 2 sub-samples) is
turned into activity concentration at the scan start, C = SUV · A_scan / W (A_scan the
injected activity decayed over the uptake time, W the weight in g), blurred by an
isotropic Gaussian of ``fwhm_mm`` (the reconstructed resolution), and given noise:

    σ(r)   = COV_liver · sqrt(C_liver · C(r))                (variance ∝ local mean,
                                                             Poisson-like, as OSEM images)
    COV_liver = 0.10 · sqrt( (2.2 · 2.5 MBq/kg · 120 s) / (SUV_liver · a_scan · t_bed) )
               · exp(μ (D − 300 mm) / 2) · (6 mm / fwhm)^{3/2}

- counts in a voxel ∝ C_liver · t_bed: the relative noise ∝ 1 / sqrt(activity per kg at
  the scan start a_scan × time per bed × liver uptake);
- exp(μ D / 2), μ = 0.0096 /mm (water at 511 keV), D = sqrt(LAT · AP): the fraction of
  pairs escaping the body falls as exp(−μ D), attenuation correction scales the
  variance up by its inverse (a heavier patient is noisier at the same MBq/kg);
- (6 mm / fwhm)^{3/2}: 3-D white noise smoothed by a Gaussian of FWHM f has a variance
  ∝ f^−3;
- reference: COV 10 % at liver SUV 2.2, 2.5 MBq/kg at the scan start (3.7 MBq/kg
  injected, 60 min uptake), 120 s per bed, D = 300 mm, 6 mm resolution — a typical EARL
  whole-body FDG image. A model, not one scanner's measured curve.

The noise is drawn as white Gaussian noise of amplitude σ(r), convolved with the same
Gaussian as the signal (``fwhm_mm``) and rescaled by 1/sqrt(Σk²), so its voxel SD is σ(r)
exactly in a region of uniform uptake; its correlation is the kernel's autocorrelation.
Not modelled: the spatial variation of attenuation within a slice, the axial
sensitivity profile of overlapping beds, scatter and randoms, the heart.

Ground truth (``ground_truth.json``): the liver's true SUV (the object's value, which the
blur leaves unchanged more than 2.5 FWHM inside the liver: the VOI-safe region), the
voxel noise COV, and — because a 3 cm sphere holds only some tens of independent noise
samples — the expected COV measured in a 3 cm sphere (E[s²] = σ² (1 − ρ̄) N/(N − 1), ρ̄
the mean correlation between its voxels), the standard error of the sphere's mean and
the SD of its COV, computed from the noise kernel on the image grid. The CT has FBP noise
of ``ct_noise_hu`` (texture as :func:`scanbench.simulate.ct_patient.fbp_noise`).
Decay correction START; headers as :func:`scanbench.simulate.dicom_writer.write_series`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from scanbench.simulate.ct_patient import fbp_noise
from scanbench.simulate.pet import (
    DEFAULT_SCAN_START,
    F18_HALF_LIFE_S,
    FWHM_PER_SIGMA,
    ScannerModel,
)
from scanbench.types import CtFacts, DeviceIdentity, PetFacts, Series, SeriesFacts

MU_511_PER_MM = 0.0096
COV_REF = 0.10
SUV_REF, A_SCAN_REF_MBQ_KG, T_REF_S, D_REF_MM, FWHM_REF_MM = 2.2, 2.5, 120.0, 300.0, 6.0
VOI_RADIUS_MM = 15.0
STUDY_DESCRIPTION = "PET/CT whole body FDG (simulated patient)"
#: Small grids (keyword arguments of :class:`PetPatient`) for patients in bulk (the
#: demos' reader-study cases and clinical exams), about a second a patient: PET 6 mm
#: voxels, CT 4 mm pixels and 8 mm slices, the field from the upper pelvis
#: (z = -180 mm) to the lung bases (z = +60 mm): the liver (z = -150 to +10 mm) whole.
SMALL_GRID: dict[str, float] = {"voxel_mm": 6.0, "ct_pixel_mm": 4.0, "ct_slice_mm": 8.0,
                                "z_min_mm": -180.0, "z_max_mm": 60.0}

# label -> (name, SUV, HU); SUV of liver, blood and lesions come from the patient
TISSUES: dict[int, tuple[str, float, float]] = {
    0: ("air", 0.0, -1000.0), 1: ("fat", 0.4, -100.0), 2: ("soft tissue", 0.8, 40.0),
    3: ("lung", 0.35, -850.0), 4: ("liver", 2.2, 60.0), 5: ("blood", 1.7, 45.0),
    6: ("spine", 1.5, 500.0), 7: ("kidney", 3.5, 30.0), 8: ("bladder", 20.0, 10.0),
    9: ("lesion", 8.0, 45.0),
}


@dataclass(frozen=True)
class Lesion:
    """A spherical lesion: centre (LPS, mm), diameter (mm) and SUV."""

    x: float
    y: float
    z: float
    diameter_mm: float = 20.0
    suv: float = 8.0


@dataclass(frozen=True)
class PetPatient:
    """One virtual FDG PET/CT patient and its acquisition (module docstring)."""

    lat_mm: float = 340.0
    ap_mm: float = 250.0
    fat_mm: float = 15.0
    weight_kg: float = 75.0
    injected_mbq: float = 280.0
    uptake_min: float = 60.0
    bed_s: float = 120.0
    liver_suv: float = 2.2
    blood_suv: float = 1.7
    fwhm_mm: float = 6.0
    voxel_mm: float = 4.0
    z_min_mm: float = -420.0  # inferior end of the field
    z_max_mm: float = 260.0  # superior end of the field
    ct_pixel_mm: float = 0.9765625
    ct_slice_mm: float = 3.0
    ct_noise_hu: float = 15.0
    axial_fov_mm: float = 300.0  # of one bed (for the number of beds)
    bed_overlap: float = 0.3
    lesions: tuple[Lesion, ...] = field(default_factory=tuple)
    noise: bool = True

    @property
    def fov_mm(self) -> float:
        return max(300.0, self.lat_mm + 80.0)

    def right_lobe(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Centre and semi-axes (mm) of the right-lobe ellipsoid."""
        return ((-0.2 * self.lat_mm, -0.05 * self.ap_mm, -70.0),
                (0.22 * self.lat_mm, 0.33 * self.ap_mm, 80.0))

    def left_lobe(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Centre and semi-axes (mm) of the left-lobe ellipsoid (anterior, across the midline)."""
        return ((0.05 * self.lat_mm, -0.22 * self.ap_mm, -45.0),
                (0.13 * self.lat_mm, 0.1 * self.ap_mm, 40.0))

    def spine(self) -> tuple[float, float, float]:
        """(x, y, radius) of the vertebral column, mm."""
        return 0.0, 0.3 * self.ap_mm, 0.05 * self.lat_mm

    def aorta(self) -> tuple[float, float, float]:
        """(x, y, radius) of the descending aorta, mm: left-anterior of the spine."""
        sx, sy, sr = self.spine()
        return sx + 25.0, sy - sr - 16.0, 12.0

    def diameter_mm(self) -> float:
        return math.sqrt(self.lat_mm * self.ap_mm)

    def activity_at_scan_bq(self) -> float:
        return self.injected_mbq * 1e6 * math.exp(
            -math.log(2.0) * self.uptake_min * 60.0 / F18_HALF_LIFE_S)

    def liver_cov(self) -> float:
        """Voxel noise COV in the liver (module docstring), a fraction."""
        a_scan = self.activity_at_scan_bq() / 1e6 / self.weight_kg
        return (COV_REF * math.sqrt(SUV_REF * A_SCAN_REF_MBQ_KG * T_REF_S
                                    / (self.liver_suv * a_scan * self.bed_s))
                * math.exp(MU_511_PER_MM * (self.diameter_mm() - D_REF_MM) / 2.0)
                * (FWHM_REF_MM / self.fwhm_mm) ** 1.5)

    def check(self) -> None:
        """Raise ValueError naming the first impossible value."""
        positive = {"lat_mm": self.lat_mm, "ap_mm": self.ap_mm, "weight_kg": self.weight_kg,
                    "injected_mbq": self.injected_mbq, "bed_s": self.bed_s,
                    "liver_suv": self.liver_suv, "blood_suv": self.blood_suv,
                    "fwhm_mm": self.fwhm_mm, "voxel_mm": self.voxel_mm,
                    "ct_pixel_mm": self.ct_pixel_mm, "ct_slice_mm": self.ct_slice_mm,
                    "axial_fov_mm": self.axial_fov_mm}
        for name, v in positive.items():
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v}")
        if not self.uptake_min >= 0 or not self.ct_noise_hu >= 0:
            raise ValueError("uptake_min and ct_noise_hu must be >= 0")
        if not self.z_max_mm - self.z_min_mm >= 4 * self.voxel_mm:
            raise ValueError("z_max_mm must lie at least 4 voxels above z_min_mm")
        if not 0 <= self.bed_overlap < 1:
            raise ValueError("bed_overlap must be in [0, 1)")
        if self.fat_mm < 0 or 2 * self.fat_mm >= min(self.lat_mm, self.ap_mm):
            raise ValueError("fat_mm must be >= 0 and thinner than half the body")


def right_lobe_lesion(p: PetPatient, diameter_mm: float = 20.0, suv: float = 8.0) -> Lesion:
    """A lesion at the centre of the right lobe (where a 3 cm VOI belongs)."""
    c, _ = p.right_lobe()
    return Lesion(c[0], c[1], c[2], diameter_mm, suv)


def labels_at(p: PetPatient, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Tissue label (``TISSUES`` keys) at points (mm, LPS), arrays broadcast together."""
    x, y, z = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float),
                                  np.asarray(z, float))
    a, b = p.lat_mm / 2, p.ap_mm / 2
    lab = np.zeros(x.shape, dtype=np.uint8)
    lab[(x / a) ** 2 + (y / b) ** 2 <= 1] = 1
    lab[(x / (a - p.fat_mm)) ** 2 + (y / (b - p.fat_mm)) ** 2 <= 1] = 2

    z_lo, z_hi = float(z.min()), float(z.max())

    def ell(c: tuple[float, float, float], s: tuple[float, float, float]) -> np.ndarray:
        if c[2] - s[2] > z_hi or c[2] + s[2] < z_lo:  # not on these slices: skip the work
            return np.zeros(x.shape, dtype=bool)
        return (((x - c[0]) / s[0]) ** 2 + ((y - c[1]) / s[1]) ** 2
                + ((z - c[2]) / s[2]) ** 2) <= 1

    for sign in (-1, 1):
        lung = ell((sign * 0.25 * p.lat_mm, -0.02 * p.ap_mm, 120.0),
                   (0.17 * p.lat_mm, 0.3 * p.ap_mm, 140.0))
        lab[lung & (np.abs(x) > 0.08 * p.lat_mm)] = 3
    sx, sy, sr = p.spine()
    lab[(x - sx) ** 2 + (y - sy) ** 2 <= sr ** 2] = 6
    ax, ay, ar = p.aorta()
    lab[((x - ax) ** 2 + (y - ay) ** 2 <= ar ** 2) & (z >= -250.0)] = 5
    for sign in (-1, 1):
        lab[ell((sign * 0.3 * a, 0.45 * b, -210.0), (25.0, 35.0, 55.0))] = 7
    lab[ell((0.0, -0.2 * b, -390.0), (45.0, 40.0, 35.0))] = 8
    lab[ell(*p.right_lobe()) | ell(*p.left_lobe())] = 4
    for les in p.lesions:
        r = les.diameter_mm / 2
        if les.z - r <= z_hi and les.z + r >= z_lo:
            lab[(x - les.x) ** 2 + (y - les.y) ** 2 + (z - les.z) ** 2 <= r * r] = 9
    return lab


def _suv_of(p: PetPatient) -> np.ndarray:
    lut = np.array([TISSUES[k][1] for k in sorted(TISSUES)], dtype=np.float64)
    lut[4], lut[5] = p.liver_suv, p.blood_suv
    return lut


def _lesion_suv_volume(p: PetPatient, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                       lab: np.ndarray) -> np.ndarray:
    """SUV per sample, lesions with their own SUV."""
    suv = _suv_of(p)[lab]
    for les in p.lesions:
        r = les.diameter_mm / 2
        suv[(x - les.x) ** 2 + (y - les.y) ** 2 + (z - les.z) ** 2 <= r * r] = les.suv
    return suv


def _axis(n: int, step: float, start: float) -> np.ndarray:
    return start + step * np.arange(n)


def pet_grid(p: PetPatient) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates (x, y, z) in mm of the PET grid (z ascending)."""
    n = int(math.ceil(p.fov_mm / p.voxel_mm / 2) * 2)
    xy = _axis(n, p.voxel_mm, -(n - 1) * p.voxel_mm / 2)
    nz = round((p.z_max_mm - p.z_min_mm) / p.voxel_mm)
    z = _axis(nz, p.voxel_mm, p.z_min_mm + p.voxel_mm / 2)
    return xy, xy.copy(), z


def _noise_kernel_sigma_vox(p: PetPatient) -> float:
    return p.fwhm_mm / FWHM_PER_SIGMA / p.voxel_mm


def _kernel_sum_sq(sigma_vox: float) -> float:
    n = 2 * math.ceil(4 * sigma_vox) + 7
    delta = np.zeros((n, n, n))
    delta[n // 2, n // 2, n // 2] = 1.0
    k = ndimage.gaussian_filter(delta, sigma_vox, mode="constant")
    return float((k ** 2).sum())


def sphere_noise_statistics(p: PetPatient) -> dict[str, float]:
    """Expected noise statistics of a 3 cm sphere VOI in uniform liver (module docstring):
    the expected measured COV (fraction), the relative SE of its mean, the SD of its COV."""
    s = _noise_kernel_sigma_vox(p)
    r_vox = VOI_RADIUS_MM / p.voxel_mm
    h = math.ceil(r_vox) + 1
    g = np.arange(-h, h + 1)
    kk, jj, ii = np.meshgrid(g, g, g, indexing="ij")
    mask = (kk ** 2 + jj ** 2 + ii ** 2) <= r_vox ** 2
    n = int(mask.sum())
    pad = math.ceil(5 * s) + 2
    m = np.pad(mask.astype(np.float64), pad)
    # correlation ρ = k ⋆ k / Σk²: filtering twice by the kernel
    ss = _kernel_sum_sq(s)
    rho_m = ndimage.gaussian_filter(ndimage.gaussian_filter(m, s, mode="constant"), s,
                                    mode="constant") / ss
    sum_rho = float((rho_m * m).sum())
    # ρ² kernel: build ρ explicitly, square, convolve
    w = math.ceil(5 * s) + 1
    delta = np.zeros((2 * w + 1,) * 3)
    delta[w, w, w] = 1.0
    rho = ndimage.gaussian_filter(ndimage.gaussian_filter(delta, s, mode="constant"), s,
                                  mode="constant") / ss
    sum_rho2 = float((ndimage.convolve(m, rho ** 2, mode="constant") * m).sum())
    cov = p.liver_cov()
    rho_bar = sum_rho / n ** 2
    expected_var = (1.0 - rho_bar) * n / (n - 1)
    return {"voxels": float(n), "effective_samples": n ** 2 / sum_rho,
            "expected_cov": cov * math.sqrt(expected_var),
            "mean_relative_se": cov * math.sqrt(rho_bar),
            "cov_relative_sd": math.sqrt(sum_rho2 / 2.0) / n}


def render_pet(p: PetPatient, seed: int = 0) -> np.ndarray:
    """PET voxels (z, y, x), Bq/mL at the scan start (START decay correction)."""
    x, y, z = pet_grid(p)
    v = p.voxel_mm
    off = (-v / 4, v / 4)
    suv = np.zeros((z.size, y.size, x.size), dtype=np.float64)
    xx, yy = np.meshgrid(x, y)
    for dz in off:  # 2 × 2 × 2 sub-samples per voxel
        for dy in off:
            for dx in off:
                for k, zk in enumerate(z):
                    xs, ys, zs = xx + dx, yy + dy, np.full(xx.shape, zk + dz)
                    lab = labels_at(p, xs, ys, zs)
                    suv[k] += _lesion_suv_volume(p, xs, ys, zs, lab)
    suv /= 8.0
    scale = p.activity_at_scan_bq() / (p.weight_kg * 1000.0)  # Bq/mL per SUV unit
    conc = suv * scale
    s = _noise_kernel_sigma_vox(p)
    blurred = ndimage.gaussian_filter(conc, s, mode="constant")
    if p.noise:
        c_liver = p.liver_suv * scale
        amp = p.liver_cov() * np.sqrt(np.clip(blurred, 0.0, None) * c_liver)
        white = np.random.default_rng(seed).standard_normal(blurred.shape) * amp
        blurred = blurred + ndimage.gaussian_filter(white, s, mode="constant") / math.sqrt(
            _kernel_sum_sq(s))
    return blurred.astype(np.float32)


def render_ct(p: PetPatient, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      np.ndarray]:
    """CT voxels (z, y, x) in HU and the CT grid's x, y, z axes (mm)."""
    n = int(math.ceil(p.fov_mm / p.ct_pixel_mm / 2) * 2)
    xy = _axis(n, p.ct_pixel_mm, -(n - 1) * p.ct_pixel_mm / 2)
    nz = max(1, round((p.z_max_mm - p.z_min_mm) / p.ct_slice_mm))
    z = _axis(nz, p.ct_slice_mm, p.z_min_mm + p.ct_slice_mm / 2)
    lut = np.array([TISSUES[k][2] for k in sorted(TISSUES)], dtype=np.float32)
    rng = np.random.default_rng(seed + 1)
    half = p.ct_pixel_mm / 4
    xx, yy = np.meshgrid(xy, xy)
    vol = np.empty((nz, n, n), dtype=np.float32)
    for k, zk in enumerate(z):
        acc = np.zeros((n, n), dtype=np.float32)
        for dy in (-half, half):
            for dx in (-half, half):
                acc += lut[labels_at(p, xx + dx, yy + dy, np.full(xx.shape, zk))]
        vol[k] = acc / 4.0
        if p.ct_noise_hu > 0:
            vol[k] += p.ct_noise_hu * fbp_noise(rng, (n, n), p.ct_pixel_mm, 0.45).astype(
                np.float32)
    return vol, xy, xy.copy(), z


def _facts(p: PetPatient, scanner: ScannerModel, study: str, frame: str, series_uid: str,
           scan_start: dt.datetime) -> SeriesFacts:
    pet = PetFacts(units="BQML", decay_correction="START",
                   corrected_image=("NORM", "DTIM", "ATTN", "SCAT", "RAN", "DECY"),
                   series_datetime=scan_start, acquisition_start=scan_start,
                   frame_duration_s=float(p.bed_s), radiopharmaceutical="Fluorodeoxyglucose",
                   radionuclide="^18^Fluorine", injected_activity_bq=p.injected_mbq * 1e6,
                   injection_datetime=scan_start - dt.timedelta(minutes=p.uptake_min),
                   half_life_s=F18_HALF_LIFE_S, patient_weight_kg=p.weight_kg)
    return SeriesFacts(modality="PT", device=scanner.device, study_instance_uid=study,
                       series_instance_uid=series_uid, frame_of_reference_uid=frame,
                       series_description="WB FDG AC (virtual patient)", series_number=3,
                       acquired_at=scan_start, naive_times=scan_start.tzinfo is None, pet=pet)


def pet_ct_series(p: PetPatient, seed: int = 0,
                  scan_start: dt.datetime = DEFAULT_SCAN_START) -> tuple[Series, Series,
                                                                          dict[str, Any]]:
    """The PET and CT series in memory (one study, one frame of reference) and the truth."""
    from pydicom.uid import generate_uid

    p.check()
    scanner = ScannerModel()
    study, frame = generate_uid(), generate_uid()
    x, y, z = pet_grid(p)
    v = p.voxel_mm
    pet_affine = np.array([[0.0, 0.0, v, x[0]], [0.0, v, 0.0, y[0]], [v, 0.0, 0.0, z[0]],
                          [0.0, 0.0, 0.0, 1.0]])
    pet = Series(voxels=render_pet(p, seed), spacing=(v, v, v), affine=pet_affine,
                 facts=_facts(p, scanner, study, frame, generate_uid(), scan_start),
                 sop_instance_uids=[generate_uid() for _ in range(z.size)])
    ct_vol, cx, cy, cz = render_ct(p, seed)
    px, sz = p.ct_pixel_mm, p.ct_slice_mm
    ct_affine = np.array([[0.0, 0.0, px, cx[0]], [0.0, px, 0.0, cy[0]], [sz, 0.0, 0.0, cz[0]],
                         [0.0, 0.0, 0.0, 1.0]])
    ct_start = scan_start - dt.timedelta(minutes=3)
    ct = Series(voxels=ct_vol, spacing=(sz, px, px), affine=ct_affine, facts=SeriesFacts(
        modality="CT", device=DeviceIdentity(scanner.manufacturer, scanner.model,
                                             scanner.serial, scanner.station),
        study_instance_uid=study, series_instance_uid=generate_uid(),
        frame_of_reference_uid=frame, series_description="CT for AC (virtual patient)",
        series_number=2, acquired_at=ct_start, naive_times=ct_start.tzinfo is None,
        ct=CtFacts(kvp=120.0, kernel="STANDARD", slice_thickness_mm=sz, ctdivol_mgy=2.5,
                   ctdi_phantom_cm=32, reconstruction_diameter_mm=px * cx.size)),
        sop_instance_uids=[generate_uid() for _ in range(cz.size)])
    return pet, ct, truth(p, seed, pet, scan_start)


def beds(p: PetPatient) -> int:
    """Number of bed positions covering the field with the stated overlap."""
    length = p.z_max_mm - p.z_min_mm
    step = p.axial_fov_mm * (1 - p.bed_overlap)
    return max(1, math.ceil((length - p.axial_fov_mm) / step) + 1)


def truth(p: PetPatient, seed: int, pet: Series, scan_start: dt.datetime) -> dict[str, Any]:
    """Ground truth (module docstring) of this patient."""
    stats = sphere_noise_statistics(p)
    c, s = p.right_lobe()
    liver_z = (c[2] - s[2], c[2] + s[2])
    cut = p.z_min_mm > liver_z[0] or p.z_max_mm < liver_z[1]
    return {
        "generator": "scanbench simulate pet-patient",
        "seed": seed,
        "patient": {k: v for k, v in asdict(p).items() if k != "lesions"},
        "lesions": [asdict(les) for les in p.lesions],
        "scan_start_datetime": scan_start.isoformat(),
        "injection_datetime": (scan_start - dt.timedelta(minutes=p.uptake_min)).isoformat(),
        "decay_correction": "START",
        "half_life_s": F18_HALF_LIFE_S,
        "injected_activity_bq": p.injected_mbq * 1e6,
        "injected_activity_per_kg_mbq_kg": p.injected_mbq / p.weight_kg,
        "activity_at_scan_bq": p.activity_at_scan_bq(),
        "uptake_time_min": p.uptake_min,
        "acquisition_time_per_bed_s": p.bed_s,
        "beds": beds(p),
        "patient_weight_kg": p.weight_kg,
        "suv_scale_bq_ml_per_suv": p.activity_at_scan_bq() / (p.weight_kg * 1000.0),
        "liver_suv_mean": p.liver_suv,
        "liver_cov_percent": 100.0 * p.liver_cov() if p.noise else 0.0,
        "liver_cov_3cm_expected_percent": 100.0 * stats["expected_cov"] if p.noise else 0.0,
        "liver_mean_3cm_relative_se_percent":
            100.0 * stats["mean_relative_se"] if p.noise else 0.0,
        "liver_cov_3cm_relative_sd_percent": 100.0 * stats["cov_relative_sd"],
        "voi_3cm_voxels": stats["voxels"],
        "voi_3cm_effective_samples": stats["effective_samples"],
        "blood_pool_suv_mean": p.blood_suv,
        "aorta_xy_radius_mm": list(p.aorta()),
        "liver": {"right_lobe_centre_mm": list(c), "right_lobe_semi_axes_mm": list(s),
                  "left_lobe_centre_mm": list(p.left_lobe()[0]),
                  "left_lobe_semi_axes_mm": list(p.left_lobe()[1])},
        "liver_cut_by_field": cut,
        "voi_safe_region": "centres of 3 cm spheres wholly inside the liver ellipsoids, "
                           "at least 2.5 FWHM from their surface and from any lesion; "
                           "scanbench.simulate.pet_patient.labels_at tells the tissue at "
                           "any point",
        "noise_model": {"cov_ref": COV_REF, "suv_ref": SUV_REF,
                        "activity_at_scan_ref_mbq_kg": A_SCAN_REF_MBQ_KG,
                        "bed_time_ref_s": T_REF_S, "diameter_ref_mm": D_REF_MM,
                        "fwhm_ref_mm": FWHM_REF_MM, "mu_per_mm": MU_511_PER_MM,
                        "diameter_mm": p.diameter_mm()},
        "pet_series_instance_uid": pet.facts.series_instance_uid,
        "frame_of_reference_uid": pet.facts.frame_of_reference_uid,
    }


def _write_ct(ct: Series, out: Path, patient_id: str) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian
    from pydicom.valuerep import format_number_as_ds

    out.mkdir(parents=True, exist_ok=True)

    def ds_(v: float) -> str:
        return str(format_number_as_ds(float(v)))

    f = ct.facts
    assert f.ct is not None and f.acquired_at is not None
    when = f.acquired_at
    dz, px, _ = ct.spacing
    for k in range(ct.shape[0]):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ct.sop_instance_uids[k]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = f.study_instance_uid, f.series_instance_uid
        ds.FrameOfReferenceUID = f.frame_of_reference_uid
        ds.Modality, ds.Manufacturer = "CT", f.device.manufacturer
        ds.ManufacturerModelName = f.device.model
        ds.PatientName, ds.PatientID = "SIM^VIRTUAL^PETCT", patient_id
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = when.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = when.strftime("%H%M%S")
        ds.SeriesNumber, ds.InstanceNumber = f.series_number, ct.shape[0] - k
        ds.SeriesDescription = f.series_description
        ds.StudyDescription = STUDY_DESCRIPTION
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP, ds.SliceThickness = ds_(f.ct.kvp or 120), ds_(dz)
        ds.ConvolutionKernel = f.ct.kernel
        ds.ReconstructionDiameter = ds_(f.ct.reconstruction_diameter_mm or 0)
        ds.CTDIvol = float(f.ct.ctdivol_mgy or 0)
        pos = ct.affine @ np.array([k, 0.0, 0.0, 1.0])
        ds.ImagePositionPatient = [ds_(v) for v in pos[:3]]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SliceLocation = ds_(pos[2])
        ds.PixelSpacing = [ds_(px), ds_(px)]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = ct.shape[1], ct.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
        ds.PixelData = np.clip(np.round(ct.voxels[k]), -32768, 32767).astype("<i2").tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        ds.preamble = b"\0" * 128
        ds.save_as(out / f"CT_{k + 1:04d}.dcm", enforce_file_format=True)


def write_pet_patient(out: Path, p: PetPatient, seed: int = 0) -> dict[str, Any]:
    """Write the PET (``out/PT``) and CT (``out/CT``) series as DICOM and
    ``out/ground_truth.json``; returns the ground truth."""
    from scanbench.simulate.dicom_writer import write_series

    pet, ct, t = pet_ct_series(p, seed)
    out.mkdir(parents=True, exist_ok=True)
    patient_id = f"VPET{seed:05d}"
    write_series(pet, out / "PT", reconstruction_method=ScannerModel().reconstruction_method,
                 patient_name="SIM^VIRTUAL^PETCT", patient_id=patient_id,
                 study_description=STUDY_DESCRIPTION)
    _write_ct(ct, out / "CT", patient_id)
    t["ct_series_instance_uid"] = ct.facts.series_instance_uid
    (out / "ground_truth.json").write_text(json.dumps(t, indent=1) + "\n", encoding="utf-8")
    return t
