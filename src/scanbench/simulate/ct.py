"""A virtual CT scanner: a phantom's analytic HU map in, a CT volume with known physics out.

Two ways of forming the image (``acquire(mode=...)``):

``"image"`` (default) — every property is analytic, so every measurement has an
exact ground truth:

- **Sampling.** The phantom's HU map ``hu_at(x, y, z)`` (phantom frame, mm) is
  evaluated on a fine in-plane grid (``supersample`` × the pixel grid, odd, so
  the middle sub-sample of each pixel is its centre).
- **Slice sensitivity profile (SSP).** Along z the fine images are averaged with
  the weights of a rectangle of the nominal slice thickness convolved with a
  Gaussian of FWHM ``ssp_blur_fwhm_mm`` (the reconstructed SSP of a multi-slice
  scanner is close to that shape); :meth:`CtScannerModel.ssp_fwhm_mm` gives its
  FWHM.
- **In-plane resolution.** A Gaussian point-spread function of standard
  deviation σ, from the model's MTF50: MTF(f) = exp(−2π²σ²f²), so MTF50 =
  √(ln 2 / 2π²)/σ and MTF10 = √(ln 10 / 2π²)/σ. The blurred fine image is
  *point-sampled* at the pixel centres, as a reconstruction computes values at
  pixel centres, so the image's MTF is the model's MTF (no pixel-box sinc).
- **Cupping and calibration.** Where the (blurred) object is material (above
  −500 HU), the value gets ``hu_offset`` and, if a ``cupping_radius_mm`` is
  given, −``cupping_hu`` · (1 − r²/R²) at distance r < R from the phantom axis:
  the centre of a water cylinder reads ``cupping_hu`` lower than its edge, as
  beam hardening does.
- **Noise** with a CT-like noise power spectrum: white Gaussian noise filtered,
  on the pixel grid's DFT, by √S(f) with S(f) = |f| · MTF(f)² (the ramp filter
  of filtered back-projection times the apodisation, which for this scanner is
  its MTF), normalised so the pixel standard deviation is exactly
  :meth:`CtScannerModel.noise_sd_hu` in expectation. The 2-D NPS is then
  NPS(f) = σ_n² · Δx² · S(f) / mean(S) (HU² mm²), whose radial profile peaks at
  f = 1 / (2√2 π σ). Noise is independent between slices (no z correlation)
  and stationary over the field (a simplification: real CT noise is larger in
  the middle of a large object).
- **Reconstruction circle.** Pixels outside the reconstruction diameter carry
  :data:`PADDING_HU` (written as Pixel Padding Value).

``"fbp"`` — the phantom, blurred by the model's PSF, is projected with
scikit-image's ``radon`` (parallel beam), Gaussian noise is added to the
sinogram (scaled so the image noise is about ``noise_sd_hu``) and the slice is
reconstructed by ``iradon`` with a Hann-apodised ramp filter: realistic streaks
and noise texture, but MTF and NPS are then only those the projector and filter
give (no analytic truth beyond the noise-free reconstruction, which is kept).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydicom.uid import generate_uid
from scipy import ndimage

from scanbench.types import CtFacts, DeviceIdentity, Series, SeriesFacts

HuMap = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

PADDING_HU = -3024.0  # stored −2000 with intercept −1024, as many CT scanners pad
MATERIAL_THRESHOLD_HU = -500.0
_GAUSS_MTF50 = math.sqrt(math.log(2.0) / (2.0 * math.pi**2))  # f50 · σ
_GAUSS_MTF10 = math.sqrt(math.log(10.0) / (2.0 * math.pi**2))  # f10 · σ
_SIGMA_PER_FWHM = 1.0 / math.sqrt(8.0 * math.log(2.0))


@dataclass(frozen=True)
class CtScannerModel:
    """A configurable virtual CT scanner: identity, technique, resolution, noise, artefacts.

    ``noise_hu`` is the pixel standard deviation in water at ``reference_mas``
    (effective mAs, mA × rotation time / pitch) and ``reference_slice_mm``;
    noise scales as 1/√(effective mAs × slice thickness). The console CTDIvol is
    ``ctdiw_per_100mas_mgy`` × (mA × rotation time / 100) / pitch, for the
    ``ctdi_phantom_cm`` (16 head, 32 body) phantom.
    """

    manufacturer: str = "scanbench"
    model: str = "Virtual CT"
    serial: str = "VCT-0001"
    station: str = "VCT1"
    software_versions: str = "scanbench-sim 0.1"
    mtf50_lp_per_cm: float = 4.5
    noise_hu: float = 6.0
    reference_mas: float = 200.0
    reference_slice_mm: float = 5.0
    cupping_hu: float = 0.0
    hu_offset: float = 0.0
    ssp_blur_fwhm_mm: float = 1.0
    kvp: float = 120.0
    tube_current_ma: float = 200.0
    rotation_time_s: float = 1.0
    pitch: float = 1.0
    total_collimation_mm: float = 40.0
    single_collimation_mm: float = 0.625
    kernel: str = "SIM-STANDARD"
    ctdiw_per_100mas_mgy: float = 7.5
    ctdi_phantom_cm: int = 32
    exposure_modulation: str = "NONE"
    scan_options: str = "HELICAL"

    def __post_init__(self) -> None:
        positive = {"mtf50_lp_per_cm": self.mtf50_lp_per_cm, "reference_mas": self.reference_mas,
                    "reference_slice_mm": self.reference_slice_mm, "kvp": self.kvp,
                    "tube_current_ma": self.tube_current_ma,
                    "rotation_time_s": self.rotation_time_s, "pitch": self.pitch,
                    "ctdiw_per_100mas_mgy": self.ctdiw_per_100mas_mgy}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        for name, value in {"noise_hu": self.noise_hu, "cupping_hu": self.cupping_hu,
                            "ssp_blur_fwhm_mm": self.ssp_blur_fwhm_mm}.items():
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.ctdi_phantom_cm not in (16, 32):
            raise ValueError(f"ctdi_phantom_cm must be 16 or 32, got {self.ctdi_phantom_cm}")

    @property
    def device(self) -> DeviceIdentity:
        return DeviceIdentity(self.manufacturer, self.model, self.serial, self.station,
                              self.software_versions)

    @property
    def psf_sigma_mm(self) -> float:
        """Standard deviation of the Gaussian in-plane PSF."""
        return _GAUSS_MTF50 / (self.mtf50_lp_per_cm / 10.0)

    @property
    def mtf10_lp_per_cm(self) -> float:
        return 10.0 * _GAUSS_MTF10 / self.psf_sigma_mm

    def mtf(self, f_per_mm: np.ndarray | float) -> np.ndarray:
        """The in-plane MTF at spatial frequencies in 1/mm."""
        f = np.asarray(f_per_mm, dtype=float)
        return np.exp(-2.0 * math.pi**2 * self.psf_sigma_mm**2 * f**2)

    def nps_shape(self, f_per_mm: np.ndarray | float) -> np.ndarray:
        """Unnormalised NPS shape S(f) = |f| · MTF(f)² (ramp × apodisation)."""
        f = np.abs(np.asarray(f_per_mm, dtype=float))
        return f * self.mtf(f) ** 2

    @property
    def nps_peak_frequency_per_mm(self) -> float:
        """Where the radial NPS S(f) peaks: 1 / (2√2 π σ)."""
        return 1.0 / (2.0 * math.sqrt(2.0) * math.pi * self.psf_sigma_mm)

    @property
    def exposure_mas(self) -> float:
        """mAs per rotation (DICOM Exposure (0018,1152))."""
        return self.tube_current_ma * self.rotation_time_s

    @property
    def effective_mas(self) -> float:
        return self.exposure_mas / self.pitch

    @property
    def ctdivol_mgy(self) -> float:
        """Console CTDIvol = CTDIw / pitch (IEC 60601-2-44; STANDARDS.md B.2)."""
        return self.ctdiw_per_100mas_mgy * self.exposure_mas / 100.0 / self.pitch

    def noise_sd_hu(self, slice_thickness_mm: float) -> float:
        """Pixel SD in water for this technique and slice thickness."""
        return self.noise_hu * math.sqrt(self.reference_mas / self.effective_mas
                                         * self.reference_slice_mm / slice_thickness_mm)

    def ssp_weights(self, slice_thickness_mm: float, step_mm: float
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(offsets mm, weights summing to 1) sampling the slice sensitivity profile."""
        t = float(slice_thickness_mm)
        s = self.ssp_blur_fwhm_mm * _SIGMA_PER_FWHM
        half = t / 2.0 + 3.0 * s
        n = max(1, math.ceil(2 * half / step_mm))
        offs = (np.arange(n) + 0.5) / n * 2 * half - half
        if s == 0:
            w = (np.abs(offs) <= t / 2).astype(float)
            if not w.any():
                w[np.argmin(np.abs(offs))] = 1.0
        else:
            from scipy.special import erf

            k = math.sqrt(2.0) * s
            w = 0.5 * (erf((offs + t / 2) / k) - erf((offs - t / 2) / k))
        return offs, w / w.sum()

    def ssp_fwhm_mm(self, slice_thickness_mm: float) -> float:
        """FWHM of the slice sensitivity profile (rect ⊗ Gaussian), numerically."""
        t = float(slice_thickness_mm)
        s = self.ssp_blur_fwhm_mm * _SIGMA_PER_FWHM
        if s == 0:
            return t
        from scipy.special import erf

        z = np.linspace(0.0, t / 2 + 5 * s, 20001)
        k = math.sqrt(2.0) * s
        p = 0.5 * (erf((z + t / 2) / k) - erf((z - t / 2) / k))
        half = p[0] / 2.0
        i = int(np.argmax(p < half))
        z0, z1, p0, p1 = z[i - 1], z[i], p[i - 1], p[i]
        return float(2.0 * (z0 + (p0 - half) / (p0 - p1) * (z1 - z0)))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(psf_sigma_mm=self.psf_sigma_mm, mtf10_lp_per_cm=self.mtf10_lp_per_cm,
                 ctdivol_mgy=self.ctdivol_mgy, exposure_mas=self.exposure_mas,
                 effective_mas=self.effective_mas,
                 nps_peak_frequency_per_mm=self.nps_peak_frequency_per_mm)
        return d


CT_SCANNER_MODELS: dict[str, CtScannerModel] = {
    "virtual-ct": CtScannerModel(),
    "virtual-ct-sharp": CtScannerModel(model="Virtual CT", kernel="SIM-SHARP",
                                       mtf50_lp_per_cm=7.5, noise_hu=14.0),
    "virtual-ct-smooth": CtScannerModel(model="Virtual CT", kernel="SIM-SMOOTH",
                                        mtf50_lp_per_cm=3.0, noise_hu=4.0),
}


@dataclass
class CtVolume:
    """What :func:`acquire` makes: HU voxels ``(z, y, x)`` float32 and what is known of them.

    ``voxels`` includes noise; ``noise_free`` is the same image without noise
    (both carry :data:`PADDING_HU` outside the reconstruction circle,
    ``inside_circle``). ``affine`` maps ``(k, j, i, 1)`` to patient LPS mm as in
    :class:`scanbench.types.Series`; ``z_mm`` are the slice positions.
    """

    voxels: np.ndarray
    noise_free: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    z_mm: np.ndarray
    pixel_mm: float
    slice_thickness_mm: float
    inside_circle: np.ndarray
    noise_sd_hu: float
    mode: str
    reconstruction_diameter_mm: float
    truth: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        z, y, x = self.voxels.shape
        return int(z), int(y), int(x)

    def pixel_centres_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Scanner-frame x (columns) and y (rows) of the pixel centres, mm."""
        n = self.voxels.shape[2]
        c = (np.arange(n) - (n - 1) / 2.0) * self.pixel_mm
        return c, c.copy()

    def nps_2d_truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fx, fy, NPS) of the image noise on this grid's DFT (HU² mm², unshifted)."""
        n = self.voxels.shape[2]
        f = np.fft.fftfreq(n, d=self.pixel_mm)
        fx, fy = np.meshgrid(f, f)
        return fx, fy, self.truth["_nps_2d"]

    def to_series(self, model: CtScannerModel, *, description: str = "CT (simulated)",
                  acquired_at: dt.datetime | None = None, series_number: int = 2,
                  device: DeviceIdentity | None = None) -> Series:
        """The volume as a CT :class:`Series` with the model's header facts."""
        when = acquired_at or dt.datetime(2026, 3, 4, 8, 0, 0,
                                          tzinfo=dt.timezone(dt.timedelta(hours=1)))
        ct = CtFacts(kvp=model.kvp, tube_current_ma=model.tube_current_ma,
                     exposure_time_s=model.rotation_time_s, exposure_mas=model.exposure_mas,
                     rotation_time_s=model.rotation_time_s, pitch=model.pitch,
                     total_collimation_mm=model.total_collimation_mm,
                     single_collimation_mm=model.single_collimation_mm, kernel=model.kernel,
                     reconstruction_diameter_mm=self.reconstruction_diameter_mm,
                     slice_thickness_mm=self.slice_thickness_mm, ctdivol_mgy=model.ctdivol_mgy,
                     ctdi_phantom_cm=model.ctdi_phantom_cm,
                     exposure_modulation=model.exposure_modulation,
                     pixel_padding_value=PADDING_HU + 1024.0, scan_options=model.scan_options)
        facts = SeriesFacts(modality="CT", device=device or model.device,
                            study_instance_uid=generate_uid(),
                            series_instance_uid=generate_uid(),
                            frame_of_reference_uid=generate_uid(), series_description=description,
                            series_number=series_number, acquired_at=when,
                            naive_times=when.tzinfo is None, ct=ct)
        return Series(voxels=self.voxels.astype(np.float32, copy=False), spacing=self.spacing,
                      affine=self.affine.copy(), facts=facts,
                      sop_instance_uids=[generate_uid() for _ in range(self.shape[0])])


def _phantom_frame(x: np.ndarray, y: np.ndarray, z: np.ndarray, rotation_deg: float,
                   shift_mm: tuple[float, float, float]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scanner-frame points to the phantom frame: undo the shift, then the rotation."""
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    xs, ys, zs = x - shift_mm[0], y - shift_mm[1], z - shift_mm[2]
    return c * xs + s * ys, -s * xs + c * ys, zs


def _render_plane(hu_at: HuMap, pxy: tuple[np.ndarray, np.ndarray], z_nodes: np.ndarray,
                  weights: np.ndarray, z_phantom: float) -> np.ndarray:
    """SSP-weighted mean of the HU map over the z nodes of one slice, on an in-plane grid.

    ``pxy`` are the phantom-frame x, y of the grid (the rotation is about z, so
    they are the same for every slice); ``z_phantom`` is the slice centre in the
    phantom frame. Nodes whose coarse (every 4th sample) rendering equals the
    previous node's reuse it: most phantoms are piecewise constant along z.
    """
    px, py = pxy
    cx, cy = px[::4, ::4], py[::4, ::4]
    out = np.zeros(px.shape)
    prev_key: bytes | None = None
    prev: np.ndarray | None = None
    w_sum = 0.0
    for off, w in zip(z_nodes, weights, strict=True):
        zc = np.asarray(z_phantom + off, dtype=float)
        key = np.asarray(hu_at(cx, cy, np.broadcast_to(zc, cx.shape)), dtype=float).tobytes()
        if prev is None or key != prev_key:
            if prev is not None:
                out += w_sum * prev
            prev = np.broadcast_to(
                np.asarray(hu_at(px, py, np.broadcast_to(zc, px.shape)), dtype=float), px.shape)
            prev_key, w_sum = key, 0.0
        w_sum += float(w)
    if prev is not None:
        out += w_sum * prev
    return out


def _lines(sources: Sequence[tuple[float, float, float, float, float]], xx: np.ndarray,
           yy: np.ndarray, z_nodes: np.ndarray, weights: np.ndarray, z_phantom: float,
           sigma: float, rotation_deg: float, shift: tuple[float, float, float]) -> np.ndarray:
    """Image of thin line sources: strength × Gaussian PSF × SSP fraction inside their z span."""
    out = np.zeros(xx.shape)
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    for x, y, z_lo, z_hi, strength in sources:
        zn = z_phantom + z_nodes
        frac = float(weights[(zn >= z_lo) & (zn <= z_hi)].sum())
        if frac == 0:
            continue
        sx, sy = c * x - s * y + shift[0], s * x + c * y + shift[1]
        r2 = (xx - sx) ** 2 + (yy - sy) ** 2
        out += frac * strength / (2 * math.pi * sigma**2) * np.exp(-r2 / (2 * sigma**2))
    return out


def _noise_filter(n: int, pixel_mm: float, model: CtScannerModel) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """(√S/mean S, NPS/σ² in mm²) on the n×n DFT grid of pixel size ``pixel_mm``."""
    f = np.fft.fftfreq(n, d=pixel_mm)
    fr = np.hypot(*np.meshgrid(f, f))
    s = model.nps_shape(fr)
    s = s / s.mean()
    return np.sqrt(s), s * pixel_mm**2


def acquire(hu_at: HuMap, model: CtScannerModel, *, fov_mm: float, matrix: int,
            z_mm: Sequence[float], slice_thickness_mm: float,
            mode: Literal["image", "fbp"] = "image", supersample: int = 5,
            seed: int | None = None, rotation_deg: float = 0.0,
            shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0), noise: bool = True,
            cupping_radius_mm: float | None = None,
            reconstruction_diameter_mm: float | None = None,
            fbp_angles: int | None = None,
            line_sources: Sequence[tuple[float, float, float, float, float]] = ()
            ) -> CtVolume:
    """Scan the phantom ``hu_at`` (phantom frame, mm) with ``model``: see the module docstring.

    The image grid is ``matrix`` × ``matrix`` pixels of ``fov_mm / matrix``
    centred on the scanner axis; slices are at the scanner-frame ``z_mm``. The
    phantom is placed at ``shift_mm`` (scanner x, y, z of its origin) and turned
    by ``rotation_deg`` about z. ``cupping_radius_mm`` (the object's radius)
    switches on the model's cupping. ``reconstruction_diameter_mm`` defaults to
    ``fov_mm`` (the inscribed circle).
    """
    if mode not in ("image", "fbp"):
        raise ValueError(f"mode must be 'image' or 'fbp', got {mode!r}")
    if not (fov_mm > 0 and matrix >= 16 and slice_thickness_mm > 0):
        raise ValueError("fov_mm and slice_thickness_mm must be positive and matrix >= 16")
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    ss = supersample if supersample % 2 == 1 else supersample + 1
    z = np.asarray(list(z_mm), dtype=float)
    if z.ndim != 1 or z.size == 0 or np.any(np.diff(z) <= 0):
        raise ValueError("z_mm must be a non-empty increasing sequence of slice positions")
    px = fov_mm / matrix
    recon_d = fov_mm if reconstruction_diameter_mm is None else float(reconstruction_diameter_mm)
    rng = np.random.default_rng(seed)
    shift = (float(shift_mm[0]), float(shift_mm[1]), float(shift_mm[2]))

    centres = (np.arange(matrix) - (matrix - 1) / 2.0) * px
    fine = (np.arange(matrix * ss) - (matrix * ss - 1) / 2.0) * (px / ss)
    xx, yy = np.meshgrid(centres, centres)
    inside = np.hypot(xx, yy) <= recon_d / 2.0
    offs, weights = model.ssp_weights(slice_thickness_mm, step_mm=0.25)
    sigma = model.psf_sigma_mm
    sd = model.noise_sd_hu(slice_thickness_mm) if noise else 0.0
    amp, nps_unit = _noise_filter(matrix, px, model)

    # Cupping and offset, analytic in the phantom frame (at the pixel centres).
    ppx, ppy, _ = _phantom_frame(xx, yy, np.zeros_like(xx), rotation_deg, shift)
    correction = np.full(xx.shape, model.hu_offset)
    if cupping_radius_mm is not None and model.cupping_hu > 0:
        r2 = (ppx**2 + ppy**2) / cupping_radius_mm**2
        correction -= model.cupping_hu * np.clip(1.0 - r2, 0.0, None)

    fxx, fyy = np.meshgrid(fine, fine)
    fine_pxy = _phantom_frame(fxx, fyy, np.zeros(1), rotation_deg, shift)[:2]
    del fxx, fyy
    clean = np.empty((z.size, matrix, matrix), dtype=np.float64)
    noisy = np.empty_like(clean)
    fbp_gain = None
    for k, zk in enumerate(z):
        if mode == "image":
            plane = _render_plane(hu_at, fine_pxy, offs, weights, zk - shift[2])
            blurred = ndimage.gaussian_filter(plane, sigma / (px / ss), mode="nearest",
                                              truncate=5.0)
            img = blurred[ss // 2::ss, ss // 2::ss]
            img = img + _lines(line_sources, xx, yy, offs, weights, zk - shift[2], sigma,
                               rotation_deg, shift)
            material = img > MATERIAL_THRESHOLD_HU
            img = np.where(material, img + correction, img)
            clean[k] = img
            if sd > 0:
                white = rng.standard_normal((matrix, matrix))
                noise_img = np.fft.ifft2(np.fft.fft2(white) * amp).real * sd
                noisy[k] = img + noise_img
            else:
                noisy[k] = img
        else:
            plane = _render_plane(hu_at, fine_pxy, offs, weights, zk - shift[2])
            # Box-average to the pixel grid (the detector aperture), blur by the PSF.
            plane = plane.reshape(matrix, ss, matrix, ss).mean(axis=(1, 3))
            plane = ndimage.gaussian_filter(plane, sigma / px, mode="nearest")
            material = plane > MATERIAL_THRESHOLD_HU
            plane = np.where(material, plane + correction, plane)
            rec_clean, rec_noisy, fbp_gain = _fbp(plane, px, sd, rng, fbp_angles, fbp_gain)
            clean[k], noisy[k] = rec_clean, rec_noisy
    clean[:, ~inside] = PADDING_HU
    noisy[:, ~inside] = PADDING_HU

    dz = float(np.median(np.diff(z))) if z.size > 1 else float(slice_thickness_mm)
    affine = np.zeros((4, 4))
    affine[0, 2] = px
    affine[1, 1] = px
    affine[2, 0] = dz
    affine[:3, 3] = (centres[0], centres[0], z[0])
    affine[3, 3] = 1.0
    mtf_f = np.linspace(0.0, 2.0, 401)
    truth: dict[str, Any] = {
        "mode": mode,
        "pixel_mm": px,
        "matrix": matrix,
        "fov_mm": fov_mm,
        "reconstruction_diameter_mm": recon_d,
        "slice_thickness_mm": float(slice_thickness_mm),
        "ssp_fwhm_mm": model.ssp_fwhm_mm(slice_thickness_mm),
        "z_mm": z.tolist(),
        "rotation_deg": rotation_deg,
        "shift_mm": list(shift),
        "noise_sd_hu": sd,
        "seed": seed,
        "psf_sigma_mm": sigma,
        "mtf50_lp_per_cm": model.mtf50_lp_per_cm if mode == "image" else None,
        "mtf10_lp_per_cm": model.mtf10_lp_per_cm if mode == "image" else None,
        "nps_peak_frequency_per_mm": model.nps_peak_frequency_per_mm if mode == "image"
        else None,
        "cupping_hu": model.cupping_hu if cupping_radius_mm is not None else 0.0,
        "cupping_radius_mm": cupping_radius_mm,
        "hu_offset": model.hu_offset,
        "_mtf_frequency_per_mm": mtf_f,
        "_mtf": model.mtf(mtf_f),
        "_nps_2d": nps_unit * sd**2 if mode == "image" else None,
    }
    return CtVolume(voxels=noisy.astype(np.float32), noise_free=clean.astype(np.float32),
                    spacing=(dz, px, px), affine=affine, z_mm=z, pixel_mm=px,
                    slice_thickness_mm=float(slice_thickness_mm), inside_circle=inside,
                    noise_sd_hu=sd, mode=mode, reconstruction_diameter_mm=recon_d,
                    truth=truth)


def _fbp(plane: np.ndarray, px: float, sd: float, rng: np.random.Generator,
         n_angles: int | None, gain: float | None
         ) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Project and reconstruct one slice (skimage radon / iradon, Hann-apodised ramp).

    Attenuation is proportional to HU + 1000, so the projections of (HU + 1000)
    are reconstructed and 1000 subtracted. ``gain`` is the image SD that unit
    sinogram noise gives (measured once, on the first call).
    """
    from skimage.transform import iradon, radon

    n = plane.shape[0]
    angles = np.linspace(0.0, 180.0, n_angles or max(180, n), endpoint=False)
    mu = plane + 1000.0
    sino = radon(mu, theta=angles, circle=True)
    rec = iradon(sino, theta=angles, filter_name="hann", circle=True, output_size=n) - 1000.0
    if sd <= 0:
        return rec, rec.copy(), gain
    if gain is None:
        probe = iradon(rng.standard_normal(sino.shape), theta=angles, filter_name="hann",
                       circle=True, output_size=n)
        c = n // 2
        q = max(4, n // 8)
        gain = float(probe[c - q:c + q, c - q:c + q].std())
    noisy_sino = sino + rng.standard_normal(sino.shape) * (sd / gain)
    rec_noisy = iradon(noisy_sino, theta=angles, filter_name="hann", circle=True,
                       output_size=n) - 1000.0
    return rec, rec_noisy, gain


def truth_jsonable(truth: dict[str, Any]) -> dict[str, Any]:
    """The ground truth without its private arrays (keys starting with ``_``)."""
    return {k: v for k, v in truth.items() if not k.startswith("_")}


def mtf_crossing(f: np.ndarray, mtf: np.ndarray, level: float) -> float:
    """First frequency where a falling MTF reaches ``level`` (linear interpolation)."""
    below = np.flatnonzero(mtf < level)
    if below.size == 0 or below[0] == 0:
        return float("nan")
    i = int(below[0])
    f0, f1, m0, m1 = f[i - 1], f[i], mtf[i - 1], mtf[i]
    return float(f0 + (m0 - level) / (m0 - m1) * (f1 - f0))




# ---------------------------------------------------------------- ready-made scans


def _grid(pixel_mm: float, fov_mm: float) -> tuple[int, float]:
    matrix = round(fov_mm / pixel_mm)
    matrix += matrix % 2
    return matrix, matrix * pixel_mm


def _slices(n_slices: int, spacing_mm: float, table_z_mm: float) -> list[float]:
    if n_slices < 1:
        raise ValueError(f"n_slices must be >= 1, got {n_slices}")
    return [table_z_mm + k * spacing_mm for k in range(n_slices)]


def water_truth(model: CtScannerModel, phantom: Any, noise_sd_hu: float | None,
                edge_distance_mm: float = 10.0) -> dict[str, Any]:
    """What ct.water should report for a water cylinder scanned by ``model`` (image mode).

    With the analysis' ROI convention (ROI diameter 10 % of the water's
    diameter, at least 10 mm; peripheral ROIs with their outer edge
    ``edge_distance_mm`` inside the water), the cupping −c·(1 − r²/R²) (R the
    outer radius) averages over a disc of radius a at distance d to
    −c·(1 − (d² + a²/2)/R²): the centre ROI reads hu_offset − c·(1 − a²/2R²)
    and each peripheral ROI c·d²/R² above it.
    """
    r_in = phantom.inner_radius_mm
    a = max(10.0, 0.1 * 2 * r_in) / 2
    d = r_in - edge_distance_mm - a
    c, big_r = model.cupping_hu, phantom.radius_mm
    centre = phantom.water_hu + model.hu_offset - c * (1 - a * a / (2 * big_r**2))
    dev = c * d * d / big_r**2
    return {"ct_number_water_hu": centre, "noise_hu": noise_sd_hu,
            "uniformity_deviation_hu": {p: dev for p in ("12 o'clock", "3 o'clock",
                                                         "6 o'clock", "9 o'clock")},
            "uniformity_max_deviation_hu": abs(dev), "roi_diameter_mm": 2 * a,
            "peripheral_roi_distance_mm": d}


def render_water(model: CtScannerModel | None = None, *, diameter_mm: float = 200.0,
                 wall_mm: float = 4.0, pixel_mm: float = 0.49, fov_mm: float | None = None,
                 n_slices: int = 5, slice_thickness_mm: float = 5.0,
                 slice_spacing_mm: float | None = None, table_z_mm: float = 0.0,
                 shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 rotation_deg: float = 0.0, noise: bool = True, seed: int | None = 0,
                 mode: Literal["image", "fbp"] = "image", supersample: int = 3,
                 reconstruction_diameter_mm: float | None = None
                 ) -> tuple[CtVolume, dict[str, Any]]:
    """A daily-QC water phantom scan and its ground truth (``water_truth``)."""
    from scanbench.phantoms.ct_water import WaterCylinder

    model = model or CtScannerModel()
    phantom = WaterCylinder(diameter_mm=diameter_mm, wall_mm=wall_mm,
                            length_mm=max(200.0, 2 * n_slices * slice_thickness_mm + 40))
    matrix, fov = _grid(pixel_mm, fov_mm or max(diameter_mm + 60.0, 250.0))
    z = _slices(n_slices, slice_spacing_mm or slice_thickness_mm, table_z_mm)
    shift = (shift_mm[0], shift_mm[1], shift_mm[2] + table_z_mm
             + 0.5 * (n_slices - 1) * (slice_spacing_mm or slice_thickness_mm))
    vol = acquire(phantom.hu_at, model, fov_mm=fov, matrix=matrix, z_mm=z,
                  slice_thickness_mm=slice_thickness_mm, mode=mode, supersample=supersample,
                  seed=seed, rotation_deg=rotation_deg, shift_mm=shift, noise=noise,
                  cupping_radius_mm=phantom.radius_mm,
                  reconstruction_diameter_mm=reconstruction_diameter_mm)
    truth = {"kind": "ct-water", "phantom": dataclasses.asdict(phantom),
             "scanner": model.to_dict(), **truth_jsonable(vol.truth)}
    if mode == "image":
        truth["expected"] = water_truth(model, phantom, vol.noise_sd_hu if noise else 0.0)
    return vol, truth


def render_wire(model: CtScannerModel | None = None, *, wire_diameter_mm: float = 0.1,
                position_mm: tuple[float, float] = (0.0, 0.0), tilt_deg: float = 0.0,
                pixel_mm: float = 0.3, fov_mm: float | None = None, n_slices: int = 3,
                slice_thickness_mm: float = 2.0, table_z_mm: float = 0.0,
                shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
                rotation_deg: float = 0.0, noise: bool = True, seed: int | None = 0,
                mode: Literal["image", "fbp"] = "image"
                ) -> tuple[CtVolume, dict[str, Any]]:
    """A thin wire in a water cylinder, along z or tilted by ``tilt_deg`` in the x–z plane
    (a slanted wire samples the PSF at a different sub-pixel offset in every slice)."""
    from scanbench.phantoms.ct_inserts import WireInsert

    model = model or CtScannerModel()
    wire = WireInsert(wire_diameter_mm=wire_diameter_mm, position_mm=position_mm)
    matrix, fov = _grid(pixel_mm, fov_mm or 80.0)
    z = _slices(n_slices, slice_thickness_mm, table_z_mm)
    z_mid = table_z_mm + 0.5 * (n_slices - 1) * slice_thickness_mm
    shift = (shift_mm[0], shift_mm[1], shift_mm[2] + z_mid)
    (x0, y0, _lo, _hi, strength), = wire.line_sources()
    span = 0.5 * n_slices * slice_thickness_mm + 3 * slice_thickness_mm + 5.0
    if tilt_deg == 0.0:
        lines = [(x0, y0, -span, span, strength)]
    else:
        step = 0.05
        zs = np.arange(-span, span, step) + step / 2
        slope = math.tan(math.radians(tilt_deg))
        # Each short segment of a slanted wire carries strength × length along z / step:
        # the in-plane line density of the slanted wire is strength / cos(tilt).
        lines = [(x0 + slope * zc, y0, zc - step / 2, zc + step / 2,
                  strength / math.cos(math.radians(tilt_deg))) for zc in zs]
    vol = acquire(wire.hu_at, model, fov_mm=fov, matrix=matrix, z_mm=z,
                  slice_thickness_mm=slice_thickness_mm, mode=mode, supersample=3, seed=seed,
                  rotation_deg=rotation_deg, shift_mm=shift, noise=noise, line_sources=lines)
    truth = {"kind": "ct-wire", "phantom": dataclasses.asdict(wire), "tilt_deg": tilt_deg,
             "scanner": model.to_dict(), **truth_jsonable(vol.truth)}
    if mode == "image":
        truth["expected"] = {"mtf50_lp_per_cm": model.mtf50_lp_per_cm,
                             "mtf10_lp_per_cm": model.mtf10_lp_per_cm}
    return vol, truth


def render_edge(model: CtScannerModel | None = None, *, insert_diameter_mm: float = 25.0,
                insert_hu: float = 950.0, position_mm: tuple[float, float] = (0.0, 0.0),
                pixel_mm: float = 0.49, fov_mm: float | None = None, n_slices: int = 3,
                slice_thickness_mm: float = 5.0, table_z_mm: float = 0.0,
                shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
                rotation_deg: float = 0.0, noise: bool = True, seed: int | None = 0,
                mode: Literal["image", "fbp"] = "image", host_diameter_mm: float = 160.0
                ) -> tuple[CtVolume, dict[str, Any]]:
    """A circular-edge insert (teflon-like by default) in a water cylinder."""
    from scanbench.phantoms.ct_inserts import EdgeInsert

    model = model or CtScannerModel()
    edge = EdgeInsert(insert_diameter_mm=insert_diameter_mm, insert_hu=insert_hu,
                      position_mm=position_mm, host_diameter_mm=host_diameter_mm)
    matrix, fov = _grid(pixel_mm, fov_mm or host_diameter_mm + 50.0)
    z = _slices(n_slices, slice_thickness_mm, table_z_mm)
    shift = (shift_mm[0], shift_mm[1],
             shift_mm[2] + table_z_mm + 0.5 * (n_slices - 1) * slice_thickness_mm)
    vol = acquire(edge.hu_at, model, fov_mm=fov, matrix=matrix, z_mm=z,
                  slice_thickness_mm=slice_thickness_mm, mode=mode, supersample=5, seed=seed,
                  rotation_deg=rotation_deg, shift_mm=shift, noise=noise)
    truth = {"kind": "ct-edge", "phantom": dataclasses.asdict(edge),
             "scanner": model.to_dict(), **truth_jsonable(vol.truth)}
    if mode == "image":
        truth["expected"] = {"mtf50_lp_per_cm": model.mtf50_lp_per_cm,
                             "mtf10_lp_per_cm": model.mtf10_lp_per_cm,
                             "contrast_hu": insert_hu - edge.host_hu}
    return vol, truth


def write_ct_series(volume: CtVolume, out_dir: Any, *, model: CtScannerModel,
                    **kwargs: Any) -> list[Any]:
    """Write ``volume`` as CT DICOM: :func:`scanbench.simulate.ct_dicom.write_ct_series`."""
    from scanbench.simulate.ct_dicom import write_ct_series as _write

    return _write(volume, out_dir, model=model, **kwargs)


__all__ = ["CT_SCANNER_MODELS", "PADDING_HU", "CtScannerModel", "CtVolume", "acquire",
           "mtf_crossing", "render_edge", "render_water", "render_wire", "truth_jsonable",
           "water_truth", "write_ct_series"]
