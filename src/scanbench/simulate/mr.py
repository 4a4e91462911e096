"""A virtual MRI scanner: the ACR phantom (and a uniform phantom) through a k-space model.

Per axial slice (``render_slice``):

1. **Object**: the phantom's analytic slice signal (``phantoms.acr_mri``: through-plane
   integration over the slice profile is exact, so slice thickness and slice position
   truth are analytic) on a grid ``supersample`` times finer than the image, with the
   phantom rotated and shifted, seen through the **geometric distortion** (gradient
   scale errors per axis and a cubic radial term) and multiplied by the **B1 field**
   (centre brightening that grows with B0², plus a left-right shading).
2. **Acquisition**: the fine image's Fourier transform is **truncated to the acquisition
   matrix** (no k-space filter: Gibbs ringing), each phase-encode line optionally gets
   a **phase error** (alternating ±a: a Nyquist N/2 ghost of relative amplitude
   sin a; random: smeared motion-like ghosts), then the inverse transform.
3. **Noise**: complex Gaussian noise of SD σ in each of ``channels`` receive channels,
   combined by root-sum-of-squares; the magnitude is Rician for one channel
   (non-central χ for several). σ follows the protocol: for a given scanner constant
   (``normalised_snr``), SNR = K · (B0 / 1.5 T) · V · √(N_pe · NSA / BW_pixel), V the
   voxel volume in mm³; parallel imaging multiplies σ by g · √R.

The ACR simulation writes an axial T1 and T2 series of 11 slices and a sagittal
localiser as MR Image Storage DICOM, and ``ground_truth.json`` with the truth of every
ACR measurement, each computed from the known geometry or from the noise-free image by
the definition the ACR guidance gives (never by running an analysis):

- ``length_mm``: analytic chord of the distorted phantom outline through its imaged
  centre (slices 1 and 5: horizontal, vertical, diagonal_down, diagonal_up; localiser:
  head_foot, along the phantom axis);
- ``slice_thickness_mm``: FWHM of the slice profile; ``slice_position_error_mm``: the
  slice-centre displacement along the phantom axis (positive towards slice 11; the left
  bar is then longer, bar difference = 2 × displacement);
- ``percent_integral_uniformity`` and ``percent_signal_ghosting``: the ACR definitions
  (200 cm² ROI, 1 cm² extremes; four 10 cm² 4:1 elliptical background ROIs) applied
  to the noise-free slice 7 with the ROIs at their known places;
  ``percent_signal_ghosting_expected``: the ACR ratio on the per-pixel Rician
  expectation of the noisy slice (``rician_mean``), i.e. what the plain-means ratio
  reads on average on the acquired image — noise compresses a ghost comparable with
  σ, so this, not the noise-free value, is what a measurement should match;
  ``percent_signal_ghosting_mean_square``: the mean-square form (``psg_truth``);
- ``resolved_hole_mm``: the hole-resolution rule (``hole_line_resolved``) applied to
  the noise-free slice 1, per direction ``left_right`` / ``top_bottom``;
- ``spokes_detected``: the disc-detection rule (``lcd_disc_detected``) with the
  noise-free disc contrast and the known σ (the strict statistical rule: compare it with
  ``mr.acr.low_contrast``'s ``spokes_detected_strict``; the judged human-observer count is
  checked against an observer experiment on the noise-free slices instead);
- ``snr``: mean noise-free signal in the central ROI of 75 % of the phantom area of
  slice 7, over σ.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from scipy import ndimage

from scanbench.phantoms import acr_mri
from scanbench.phantoms.acr_mri import AcrPhantom, SliceProfile
from scanbench.simulate.dicom_writer import _da, _ds, _resolve_syntax, _tm, _tz, save_pixels

GYROMAGNETIC_MHZ_PER_T = 42.577478  # ¹H
_EDGE_SUB = 4  # sub-samples per axis in fine pixels an edge crosses
FINE_MM = 0.25  # the object grid: Fourier components up to 4× the 1 mm image's Nyquist
DEFAULT_START = dt.datetime(2026, 3, 4, 9, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

# ---------------------------------------------------------------- stated truth rules

#: A line of four holes is resolved when the hole pitch (2 × hole diameter) is at least
#: two pixels (the sampling theorem: a finer pattern is outside the acquired k-space and
#: what shows is aliasing or ringing) and, on the noise-free profile through the hole
#: centres (linear interpolation, 0.05 mm steps), every dip between neighbouring holes
#: falls below the lower of the two hole peaks by at least this fraction of that peak's
#: height above the plastic. 0.265 is the dip of the Rayleigh criterion (two Airy
#: patterns at the Rayleigh distance dip to 73.5 % of their peak).
HOLE_DIP_FRACTION = 0.265

#: A low-contrast disc is detected when z = Δ / (σ √(1/n_disc + 1/n_bg)) reaches the
#: one-sided normal quantile at a family-wise false-alarm rate of 5 % over the 30 discs
#: of a slice (Bonferroni: α = 0.05 / 30): Δ the mean disc-minus-background signal, n
#: the numbers of pixels averaged, σ the image noise SD. This is the matched-filter
#: (Rose model) detectability of a uniform disc in white noise.
LCD_FAMILY_ALPHA = 0.05


def lcd_z_threshold(n_discs: int = acr_mri.LCD_SPOKES * len(acr_mri.LCD_RING_RADII_MM)) -> float:
    """The z a disc must reach to count as detected (≈ 2.94 for 30 discs)."""
    from scipy.stats import norm  # here: scipy.stats costs ~0.4 s to import (issue 15)

    return float(norm.isf(LCD_FAMILY_ALPHA / n_discs))


def lcd_disc_z(delta: float, sigma: float, n_disc: int, n_background: int) -> float:
    """Detectability z of one disc (see ``LCD_FAMILY_ALPHA``)."""
    if n_disc <= 0 or sigma <= 0:
        return math.inf if sigma <= 0 and delta > 0 else 0.0
    nb = max(n_background, 1)
    return float(delta / (sigma * math.sqrt(1.0 / n_disc + 1.0 / nb)))


def lcd_disc_detected(delta: float, sigma: float, n_disc: int, n_background: int) -> bool:
    return lcd_disc_z(delta, sigma, n_disc, n_background) >= lcd_z_threshold()


def count_spokes(detected: list[list[bool]]) -> int:
    """ACR counting: complete spokes (all three discs) from spoke 1 up to the first
    incomplete one."""
    n = 0
    for spoke in detected:
        if not all(spoke):
            break
        n += 1
    return n


def hole_line_resolved(profile: np.ndarray, hole_idx: list[int], floor: float = 0.0) -> bool:
    """The stated rule on one profile: ``hole_idx`` are the indices of the 4 hole centres."""
    for a, b in itertools.pairwise(hole_idx):
        pa, pb = (
            float(np.max(profile[max(a - 2, 0) : a + 3])),
            float(np.max(profile[b - 2 : b + 3])),
        )
        peak = min(pa, pb)
        dip = float(np.min(profile[a : b + 1]))
        if peak - floor <= 0 or (peak - dip) < HOLE_DIP_FRACTION * (peak - floor):
            return False
    return True


# ---------------------------------------------------------------- scanner and protocol


@dataclass(frozen=True)
class MrScanner:
    """Identity and intrinsic performance of a virtual MR scanner with its head coil."""

    manufacturer: str = "scanbench"
    model: str = "Virtual MR"
    serial: str = "VMR-0001"
    station: str = "VMR1"
    software_versions: str = "scanbench-sim 0.1"
    field_strength_t: float = 1.5
    receive_coil: str = "HEAD"
    channels: int = 1
    # SNR per mm³ per √(N_pe·NSA / BW) at 1.5 T; 15 gives SNR ≈ 100 for the ACR T1.
    normalised_snr: float = 15.0
    # B1: centre brightening amplitude = b1_coefficient × B0² (0.045 at 1.5 T, 0.18 at 3 T).
    b1_coefficient: float = 0.02
    b1_left_right: float = 0.01  # linear shading across ±100 mm

    def __post_init__(self) -> None:
        if not self.field_strength_t > 0:
            raise ValueError(f"field strength must be > 0 T, got {self.field_strength_t}")
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if not self.normalised_snr > 0:
            raise ValueError("normalised_snr must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MrProtocol:
    """One axial acquisition (defaults: the ACR T1 series [U], STANDARDS.md C.1)."""

    name: str = "ACR T1"
    sequence: str = "SE"
    tr_ms: float = 500.0
    te_ms: float = 20.0
    flip_angle_deg: float = 90.0
    fov_mm: float = 250.0
    matrix: int = 256
    slice_thickness_mm: float = 5.0
    slice_gap_mm: float = 5.0
    pixel_bandwidth_hz: float = 130.0
    averages: float = 1.0
    phase_direction: str = "COL"  # phase encoding along the columns (image vertical)
    parallel_factor: float = 1.0
    g_factor: float = 1.0
    signal: float = 2000.0  # stored value of the fill at B1 = 1

    def __post_init__(self) -> None:
        if self.matrix < 32 or self.matrix % 2:
            raise ValueError(f"matrix must be an even number >= 32, got {self.matrix}")
        if self.phase_direction not in ("ROW", "COL"):
            raise ValueError("phase_direction must be 'ROW' or 'COL'")
        for name in (
            "fov_mm",
            "slice_thickness_mm",
            "pixel_bandwidth_hz",
            "averages",
            "parallel_factor",
            "signal",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def pixel_mm(self) -> float:
        return self.fov_mm / self.matrix

    @property
    def voxel_mm3(self) -> float:
        return self.pixel_mm**2 * self.slice_thickness_mm

    @property
    def phase_encodes(self) -> int:
        return round(self.matrix / self.parallel_factor)


T1 = MrProtocol()
T2 = MrProtocol(name="ACR T2", tr_ms=2000.0, te_ms=80.0, signal=1400.0)


@dataclass(frozen=True)
class Imperfections:
    """What goes wrong, and by how much (all 0 / 1 = ideal)."""

    snr: float | None = None  # override: SNR of the fill at B1 = 1; None: from the scanner
    noise: bool = True
    b1_scale: float = 1.0  # multiplies the scanner's B1 inhomogeneity (0: uniform)
    ghost_fraction: float = 0.0  # Nyquist ghost amplitude, relative
    ghost_random_phase_deg: float = 0.0  # SD of random line-to-line phase errors
    gradient_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)  # x, y, z
    radial_distortion: float = 0.0  # relative displacement at r = 100 mm (cubic)
    slice_thickness_mm: float | None = None  # actual FWHM; None: the nominal
    slice_edge_sigma_mm: float = 0.3
    slice_offset_mm: float = 0.0  # every slice displaced along the phantom axis
    # None: slice 11 displaced like slice 1; else slice 11's own displacement, the slices
    # between displaced linearly (a slice-spacing error)
    slice_offset_11_mm: float | None = None

    def slice_offset(self, n: int) -> float:
        """Displacement (mm, towards slice 11) of ACR slice ``n``."""
        if self.slice_offset_11_mm is None:
            return self.slice_offset_mm
        return (
            self.slice_offset_mm + (self.slice_offset_11_mm - self.slice_offset_mm) * (n - 1) / 10
        )

    rotation_deg: float = 0.0  # phantom about the scanner axis (image: clockwise +)
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)  # phantom centre, LPS

    def __post_init__(self) -> None:
        if not 0 <= self.ghost_fraction < 1:
            raise ValueError(f"ghost_fraction must be in [0, 1), got {self.ghost_fraction}")
        if self.snr is not None and not self.snr > 0:
            raise ValueError(f"snr must be > 0, got {self.snr}")
        if min(self.gradient_scale) <= 0:
            raise ValueError("gradient_scale must be positive")
        if self.slice_thickness_mm is not None and not self.slice_thickness_mm > 0:
            raise ValueError("slice thickness must be > 0")


def noise_sigma(scanner: MrScanner, protocol: MrProtocol, imp: Imperfections) -> float:
    """Noise SD per channel (stored units) of one image."""
    if imp.snr is not None:
        snr = imp.snr
    else:
        snr = (
            scanner.normalised_snr
            * scanner.field_strength_t
            / 1.5
            * protocol.voxel_mm3
            * math.sqrt(protocol.matrix * protocol.averages / protocol.pixel_bandwidth_hz)
        )
    sigma = protocol.signal / snr
    if protocol.parallel_factor > 1:
        sigma *= protocol.g_factor * math.sqrt(protocol.parallel_factor)
    return sigma


def b1_map(x: np.ndarray, y: np.ndarray, scanner: MrScanner, imp: Imperfections) -> np.ndarray:
    """Relative B1 (transmit × receive) sensitivity at scanner x, y (mm)."""
    a = scanner.b1_coefficient * scanner.field_strength_t**2 * imp.b1_scale
    r2 = (x**2 + y**2) / 100.0**2
    return 1.0 + a * (1.0 - r2) + scanner.b1_left_right * imp.b1_scale * x / 100.0


def _undistort(u: np.ndarray, v: np.ndarray, imp: Imperfections) -> tuple[np.ndarray, np.ndarray]:
    """Scanner position imaged at (u, v): invert u = s·x·(1 + k r²/100²) by iteration."""
    sx, sy, _ = imp.gradient_scale
    k = imp.radial_distortion
    x, y = u / sx, v / sy
    if k:
        for _ in range(8):
            f = 1.0 + k * (x**2 + y**2) / 100.0**2
            x, y = u / (sx * f), v / (sy * f)
    return x, y


def _distort(x: np.ndarray, y: np.ndarray, imp: Imperfections) -> tuple[np.ndarray, np.ndarray]:
    sx, sy, _ = imp.gradient_scale
    f = 1.0 + imp.radial_distortion * (x**2 + y**2) / 100.0**2
    return sx * x * f, sy * y * f


def _to_phantom(x: np.ndarray, y: np.ndarray, imp: Imperfections) -> tuple[np.ndarray, np.ndarray]:
    """Phantom-frame coordinates of scanner points (LPS x, y)."""
    t = math.radians(imp.rotation_deg)
    dx, dy = x - imp.shift_mm[0], y - imp.shift_mm[1]
    c, s = math.cos(t), math.sin(t)
    return c * dx + s * dy, -s * dx + c * dy


def _to_scanner(
    px: np.ndarray, py: np.ndarray, imp: Imperfections
) -> tuple[np.ndarray, np.ndarray]:
    t = math.radians(imp.rotation_deg)
    c, s = math.cos(t), math.sin(t)
    return c * px - s * py + imp.shift_mm[0], s * px + c * py + imp.shift_mm[1]


def pixel_centres(protocol: MrProtocol) -> np.ndarray:
    """LPS coordinate of each pixel centre along one image axis (isocentre at the middle)."""
    return (np.arange(protocol.matrix) - protocol.matrix / 2 + 0.5) * protocol.pixel_mm


def image_to_pixel(
    u: np.ndarray, v: np.ndarray, protocol: MrProtocol
) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (row, column) index of scanner/image position (u = x, v = y) mm."""
    p = protocol.pixel_mm
    return v / p + protocol.matrix / 2 - 0.5, u / p + protocol.matrix / 2 - 0.5


def phantom_to_pixel(
    px: np.ndarray, py: np.ndarray, protocol: MrProtocol, imp: Imperfections
) -> tuple[np.ndarray, np.ndarray]:
    """Where a phantom-frame point appears in the image, as fractional (row, column)."""
    x, y = _to_scanner(np.asarray(px, float), np.asarray(py, float), imp)
    u, v = _distort(x, y, imp)
    return image_to_pixel(u, v, protocol)


@dataclass
class RenderedSlice:
    magnitude: np.ndarray  # noisy magnitude (stored units, float)
    noiseless: np.ndarray  # magnitude of the noise-free complex image
    sigma: float  # noise SD per channel


def render_slice(
    signal_fn: Any,
    protocol: MrProtocol,
    scanner: MrScanner,
    imp: Imperfections,
    rng: np.random.Generator,
    supersample: int | None = None,
    fine_mm: float = FINE_MM,
) -> RenderedSlice:
    """``signal_fn(px, py) -> relative signal`` in the phantom frame, through the k-space model."""
    obj = fine_object(signal_fn, protocol, imp, supersample, fine_mm)
    return acquire_object(obj, protocol, scanner, imp, rng)


def fine_object(
    signal_fn: Any,
    protocol: MrProtocol,
    imp: Imperfections,
    supersample: int | None = None,
    fine_mm: float = FINE_MM,
) -> np.ndarray:
    """Step 1 of the module docstring: the relative signal on the fine grid (the object
    before B1 and acquisition; no noise, no random numbers), so that acquisitions of
    the same object (ACR T1 and T2, the NEMA MS 1 pair) sample it once."""
    n = protocol.matrix
    s = supersample or max(1, math.ceil(protocol.pixel_mm / fine_mm))
    m = n * s
    # fine pixel j sits at coarse index j / s, so every s-th fine pixel is a coarse centre
    fine = (np.arange(m) / s - n / 2 + 0.5) * protocol.pixel_mm
    u, v = np.meshgrid(fine, fine)  # u = x (columns), v = y (rows)

    def sample(uu: np.ndarray, vv: np.ndarray) -> np.ndarray:
        x, y = _undistort(uu, vv, imp)
        px, py = _to_phantom(x, y, imp)
        return np.asarray(signal_fn(px, py), dtype=float)

    obj = sample(u, v)
    # Fine pixels an edge crosses: the mean over 4 × 4 sub-samples (the pixel's area), so
    # edges are placed to a small fraction of a fine pixel, not to half of one.
    edge = np.zeros(obj.shape, bool)
    for axis in (0, 1):
        d = np.abs(np.diff(obj, axis=axis)) > 1e-9
        if axis == 0:
            edge[:-1] |= d
            edge[1:] |= d
        else:
            edge[:, :-1] |= d
            edge[:, 1:] |= d
    if edge.any():
        h = protocol.pixel_mm / s
        offs = (np.arange(_EDGE_SUB) + 0.5) / _EDGE_SUB - 0.5
        ue, ve = u[edge], v[edge]
        acc = np.zeros(ue.shape)
        for du in offs:
            for dv in offs:
                acc += sample(ue + du * h, ve + dv * h)
        obj[edge] = acc / _EDGE_SUB**2
    return obj


def acquire_object(
    obj: np.ndarray,
    protocol: MrProtocol,
    scanner: MrScanner,
    imp: Imperfections,
    rng: np.random.Generator,
) -> RenderedSlice:
    """A fine object (:func:`fine_object`) under the scanner's B1, acquired (steps 2-3)."""
    n = protocol.matrix
    s = obj.shape[0] // n
    fine = (np.arange(obj.shape[0]) / s - n / 2 + 0.5) * protocol.pixel_mm
    u, v = np.meshgrid(fine, fine)
    x, y = _undistort(u, v, imp)
    return acquire(obj * b1_map(x, y, scanner, imp) * protocol.signal, protocol, scanner, imp, rng)


def acquire(
    obj: np.ndarray,
    protocol: MrProtocol,
    scanner: MrScanner,
    imp: Imperfections,
    rng: np.random.Generator,
) -> RenderedSlice:
    """Steps 2-3 of the module docstring on a fine object image (a multiple of the matrix)."""
    n = protocol.matrix
    m = obj.shape[0]
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj)))
    lo = m // 2 - n // 2
    k = k[lo : lo + n, lo : lo + n]
    axis = 0 if protocol.phase_direction == "COL" else 1  # ky along rows of k
    phase = np.zeros(n)
    if imp.ghost_fraction > 0:
        a = math.asin(imp.ghost_fraction)
        phase += a * (-1.0) ** np.arange(n)
    if imp.ghost_random_phase_deg > 0:
        phase += np.deg2rad(imp.ghost_random_phase_deg) * rng.standard_normal(n)
    if np.any(phase):
        mod = np.exp(1j * phase)
        k = k * (mod[:, None] if axis == 0 else mod[None, :])
    img = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k))) * (n * n) / (m * m)
    sigma = noise_sigma(scanner, protocol, imp)
    noiseless = np.abs(img)
    if not imp.noise:
        return RenderedSlice(noiseless.copy(), noiseless, sigma)
    ch = scanner.channels
    total = np.zeros((n, n))
    for _ in range(ch):
        noise = rng.normal(0.0, sigma, (n, n)) + 1j * rng.normal(0.0, sigma, (n, n))
        total += np.abs(img / math.sqrt(ch) + noise) ** 2
    return RenderedSlice(np.sqrt(total), noiseless, sigma)


# ---------------------------------------------------------------- truth helpers


def _disc_mask(
    shape: tuple[int, int], centre_rc: tuple[float, float], radius_px: float
) -> np.ndarray:
    r, c = np.ogrid[: shape[0], : shape[1]]
    return (r - centre_rc[0]) ** 2 + (c - centre_rc[1]) ** 2 <= radius_px**2


def _ellipse_mask(
    shape: tuple[int, int], centre_rc: tuple[float, float], a_col: float, b_row: float
) -> np.ndarray:
    r, c = np.ogrid[: shape[0], : shape[1]]
    return ((c - centre_rc[1]) / a_col) ** 2 + ((r - centre_rc[0]) / b_row) ** 2 <= 1.0


def piu_truth(
    image: np.ndarray,
    centre_rc: tuple[float, float],
    pixel_mm: float,
    large_cm2: float = 200.0,
    small_cm2: float = 1.0,
) -> float:
    """ACR PIU on an image: 1 cm² circular ROI means whose ROI lies inside the 200 cm² ROI."""
    r_large = math.sqrt(large_cm2 * 100 / math.pi) / pixel_mm
    r_small = math.sqrt(small_cm2 * 100 / math.pi) / pixel_mm
    k = _disc_mask(
        (2 * int(r_small) + 3, 2 * int(r_small) + 3), (int(r_small) + 1, int(r_small) + 1), r_small
    ).astype(float)
    means = ndimage.convolve(image, k / k.sum(), mode="constant")
    ok = _disc_mask(image.shape, centre_rc, r_large - r_small)
    hi, lo = float(means[ok].max()), float(means[ok].min())
    return 100.0 * (1.0 - (hi - lo) / (hi + lo))


def ghost_rois(
    shape: tuple[int, int],
    centre_rc: tuple[float, float],
    radius_px: float,
    pixel_mm: float,
    area_cm2: float = 10.0,
    aspect: float = 4.0,
) -> dict[str, np.ndarray]:
    """The four ACR background ROIs: 10 cm² ellipses (4:1) midway between the phantom edge
    and the image edge, long axis along the edge."""
    b = math.sqrt(area_cm2 * 100 / (math.pi * aspect)) / pixel_mm
    a = aspect * b
    rc, cc = centre_rc
    n_r, n_c = shape
    top = (rc - radius_px) / 2
    bottom = (rc + radius_px + n_r - 1) / 2
    left = (cc - radius_px) / 2
    right = (cc + radius_px + n_c - 1) / 2
    return {
        "top": _ellipse_mask(shape, (top, cc), a, b),
        "bottom": _ellipse_mask(shape, (bottom, cc), a, b),
        "left": _ellipse_mask(shape, (rc, left), b, a),
        "right": _ellipse_mask(shape, (rc, right), b, a),
    }


def psg_truth(
    image: np.ndarray,
    centre_rc: tuple[float, float],
    radius_px: float,
    pixel_mm: float,
    large_cm2: float = 200.0,
    mean_square: bool = False,
) -> float:
    """The ghosting ratio on ``image`` with the four ACR background ROIs at their known
    places: plain means as the ACR guidance writes it, or (``mean_square``) the
    mean-square form 100 √(|(T² + B²) − (L² + R²)| / 2) / S, in which ringing or noise
    floors common to the four ROIs cancel instead of compressing the ghost."""
    r_large = math.sqrt(large_cm2 * 100 / math.pi) / pixel_mm
    large = float(image[_disc_mask(image.shape, centre_rc, r_large)].mean())
    rois = ghost_rois(image.shape, centre_rc, radius_px, pixel_mm)
    if mean_square:
        ms = {k: float(np.mean(image[v] ** 2)) for k, v in rois.items()}
        e = (ms["top"] + ms["bottom"]) - (ms["left"] + ms["right"])
        return 100.0 * math.sqrt(abs(e) / 2.0) / large
    m = {k: float(image[v].mean()) for k, v in rois.items()}
    return 100.0 * abs(((m["top"] + m["bottom"]) - (m["left"] + m["right"])) / (2 * large))


def rician_mean(a: np.ndarray, sigma: float) -> np.ndarray:
    """E|A + n| for complex Gaussian noise of SD σ per channel (one channel):
    σ √(π/2) L½(−ν), ν = A²/2σ², with L½(−ν) = e^(−ν/2) [(1 + ν) I0(ν/2) + ν I1(ν/2)]."""
    from scipy.special import i0e, i1e

    a = np.asarray(a, dtype=float)
    if sigma <= 0:
        return np.abs(a)
    nu = a**2 / (2 * sigma**2)
    return np.asarray(sigma * math.sqrt(math.pi / 2) * ((1 + nu) * i0e(nu / 2) + nu * i1e(nu / 2)))


def _profile(
    image: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], step_px: float
) -> np.ndarray:
    length = math.hypot(p1[0] - p0[0], p1[1] - p0[1])
    t = np.linspace(0.0, 1.0, max(int(length / step_px) + 1, 2))
    rows = p0[0] + t * (p1[0] - p0[0])
    cols = p0[1] + t * (p1[1] - p0[1])
    return np.asarray(ndimage.map_coordinates(image, [rows, cols], order=1, mode="nearest"))


def resolved_holes_truth(
    image: np.ndarray, phantom: AcrPhantom, protocol: MrProtocol, imp: Imperfections
) -> dict[str, float | None]:
    """Smallest resolved hole size per direction by the stated rule: ``left_right`` (the
    upper-left arrays, holes read along rows) and ``top_bottom`` (lower-right, columns)."""
    names = {"row": "left_right", "column": "top_bottom"}
    out: dict[str, float | None] = {"left_right": None, "top_bottom": None}
    step_mm = 0.05
    step_px = step_mm / protocol.pixel_mm
    for arr in sorted(phantom.hole_arrays, key=lambda a: -a.hole_mm):
        scale = imp.gradient_scale[0 if arr.direction == "row" else 1]
        if 2 * arr.hole_mm * scale < 2 * protocol.pixel_mm:
            continue
        resolved_any = False
        for line in arr.rows:
            pts = np.array(line)
            rr, cc = phantom_to_pixel(pts[:, 0], pts[:, 1], protocol, imp)
            prof = _profile(
                image, (float(rr[0]), float(cc[0])), (float(rr[-1]), float(cc[-1])), step_px
            )
            idx = [round(i * (len(prof) - 1) / 3) for i in range(4)]
            if hole_line_resolved(prof, idx, floor=0.0):
                resolved_any = True
                break
        if resolved_any:
            out[names[arr.direction]] = arr.hole_mm
    return out


def lcd_truth(
    images: dict[int, np.ndarray],
    sigma: float,
    phantom: AcrPhantom,
    protocol: MrProtocol,
    imp: Imperfections,
) -> dict[str, Any]:
    """Spokes detected per LCD slice by the stated rule, from the noise-free images."""
    p = protocol.pixel_mm
    per_slice: dict[int, int] = {}
    z_values: dict[int, list[list[float]]] = {}
    for s, img in images.items():
        discs = [d for d in phantom.lcd_discs if d.slice_number == s]
        shape = (img.shape[0], img.shape[1])
        all_discs = np.zeros(shape, bool)
        for d in discs:
            rc = phantom_to_pixel(np.array(d.centre[0]), np.array(d.centre[1]), protocol, imp)
            all_discs |= _disc_mask(
                shape, (float(rc[0]), float(rc[1])), d.diameter_mm / 2 / p + 2.0
            )
        detected: list[list[bool]] = []
        zs: list[list[float]] = []
        for spoke in range(1, acr_mri.LCD_SPOKES + 1):
            row_det: list[bool] = []
            row_z: list[float] = []
            for d in (d for d in discs if d.spoke == spoke):
                rc = phantom_to_pixel(np.array(d.centre[0]), np.array(d.centre[1]), protocol, imp)
                centre = (float(rc[0]), float(rc[1]))
                rpx = d.diameter_mm / 2 / p
                disc = _disc_mask(shape, centre, rpx)
                ring = _disc_mask(shape, centre, rpx + 6.0 / p) & ~all_discs
                # keep the background inside the contrast sheet
                sheet_r = acr_mri.LCD_SHEET_RADIUS_MM * phantom.inplane_scale
                c0 = phantom_to_pixel(np.array(0.0), np.array(0.0), protocol, imp)
                ring &= _disc_mask(shape, (float(c0[0]), float(c0[1])), sheet_r / p - 2.0)
                n_d, n_b = int(disc.sum()), int(ring.sum())
                if n_d == 0:
                    disc = _disc_mask(shape, centre, 0.5)
                    n_d = int(disc.sum())
                delta = float(img[disc].mean() - img[ring].mean()) if n_d and n_b else 0.0
                z = lcd_disc_z(delta, sigma, n_d, n_b)
                row_z.append(round(z, 3))
                row_det.append(z >= lcd_z_threshold())
            detected.append(row_det)
            zs.append(row_z)
        per_slice[s] = count_spokes(detected)
        z_values[s] = zs
    return {"per_slice": per_slice, "total": int(sum(per_slice.values())), "z": z_values}


def lengths_truth(phantom: AcrPhantom, imp: Imperfections) -> dict[str, float]:
    """Chord lengths (mm) of the imaged outline through the imaged phantom centre."""
    t = np.linspace(0, 2 * np.pi, 7200, endpoint=False)
    r = phantom.radius_mm
    bx, by = _to_scanner(r * np.cos(t), r * np.sin(t), imp)
    u, v = _distort(bx, by, imp)
    cu, cv = _distort(*_to_scanner(np.array(0.0), np.array(0.0), imp), imp)
    ang = np.arctan2(v - cv, u - cu)
    rad = np.hypot(u - cu, v - cv)
    order = np.argsort(ang)
    ang, rad = ang[order], rad[order]

    def radius_at(a: float) -> float:
        a = (a + np.pi) % (2 * np.pi) - np.pi
        return float(np.interp(a, ang, rad, period=2 * np.pi))

    dirs = {
        "horizontal": 0.0,
        "vertical": np.pi / 2,
        "diagonal_down": np.pi / 4,
        "diagonal_up": -np.pi / 4,
    }
    return {k: radius_at(a) + radius_at(a + np.pi) for k, a in dirs.items()}


def snr_truth(
    noiseless: np.ndarray,
    sigma: float,
    centre_rc: tuple[float, float],
    radius_px: float,
    area_fraction: float = 0.75,
) -> float:
    roi = _disc_mask(noiseless.shape, centre_rc, radius_px * math.sqrt(area_fraction))
    return float(noiseless[roi].mean() / sigma)


# ---------------------------------------------------------------- series in memory


@dataclass
class MrImageSeries:
    """One simulated series before it is written: slices (z, y, x) in stored units."""

    description: str
    protocol: MrProtocol
    voxels: np.ndarray
    affine: np.ndarray  # (k, j, i, 1) -> LPS
    slice_thickness_mm: float
    spacing_between_slices_mm: float
    series_number: int
    orientation: str = "axial"
    extra: dict[str, Any] = field(default_factory=dict)


def _axial_affine(protocol: MrProtocol, z_positions: list[float]) -> np.ndarray:
    p = protocol.pixel_mm
    x0 = float(pixel_centres(protocol)[0])
    a = np.zeros((4, 4))
    a[0, 2] = p  # column -> +x
    a[1, 1] = p  # row -> +y
    dz = z_positions[1] - z_positions[0] if len(z_positions) > 1 else 1.0
    a[2, 0] = dz
    a[:3, 3] = (x0, x0, z_positions[0])
    a[3, 3] = 1.0
    return a


def _phantom_z_lps(z_phantom: float, imp: Imperfections) -> float:
    """LPS z of a phantom-frame z (slice 1 at z = shift_z, slice 11 100 mm superior)."""
    return z_phantom + imp.shift_mm[2]


def render_acr_series(
    phantom: AcrPhantom,
    protocol: MrProtocol,
    scanner: MrScanner,
    imp: Imperfections,
    rng: np.random.Generator,
    slices: tuple[int, ...] = tuple(range(1, 12)),
    fine_mm: float = FINE_MM,
    objects: dict[Any, np.ndarray] | None = None,
) -> tuple[list[RenderedSlice], list[float]]:
    """The ACR axial slices ``slices`` (1..11) as rendered images, and the nominal z of each
    (LPS). The prescribed slice n is centred on phantom z = slice_z(n); the actual
    slice centre is displaced by ``imp.slice_offset(n)``. ``objects``: a memo of fine
    objects shared by the series of one session (T1 and T2 image the same object when
    their slice profile and pixels agree: :func:`fine_object` is then computed once)."""
    thickness = imp.slice_thickness_mm or protocol.slice_thickness_mm
    profile = SliceProfile(thickness, imp.slice_edge_sigma_mm)
    out, zs = [], []
    for n in slices:
        zc = phantom.slice_z_mm(n) + imp.slice_offset(n)

        def fn(px: np.ndarray, py: np.ndarray, zc: float = zc) -> np.ndarray:
            return phantom.slice_signal(px, py, zc, profile)

        key = (id(phantom), profile, zc, protocol.matrix, protocol.pixel_mm, fine_mm, imp)
        obj = None if objects is None else objects.get(key)
        if obj is None:
            obj = fine_object(fn, protocol, imp, fine_mm=fine_mm)
            if objects is not None:
                objects[key] = obj
        out.append(acquire_object(obj, protocol, scanner, imp, rng))
        zs.append(_phantom_z_lps(phantom.slice_z_mm(n), imp))
    return out, zs


def render_localiser(
    phantom: AcrPhantom,
    protocol: MrProtocol,
    scanner: MrScanner,
    imp: Imperfections,
    rng: np.random.Generator,
    fine_mm: float = FINE_MM,
) -> tuple[RenderedSlice, np.ndarray]:
    """Sagittal localiser through the phantom centre: rows run superior → inferior, columns
    anterior → posterior. Returns the image and its affine (k, j, i) → LPS. The slice
    integrates 5 mm along x (5 samples); z distortion is the gradient scale only."""
    n = protocol.matrix
    p = protocol.pixel_mm
    s = max(1, math.ceil(p / fine_mm))
    m = n * s
    fine = (np.arange(m) / s - n / 2 + 0.5) * p
    zc_img = phantom.z_range_mm[0] + phantom.inner_length_mm / 2  # centre the FOV on the phantom
    sy, sz = imp.gradient_scale[1], imp.gradient_scale[2]
    cols_y, rows_z = np.meshgrid(fine, -fine)  # rows: superior (+z) at the top
    y = cols_y / sy
    z = rows_z / sz + zc_img  # phantom frame; the FOV is centred on the phantom's middle
    obj = np.zeros_like(y)
    x_c = imp.shift_mm[0]
    for dx in np.linspace(-2.0, 2.0, 5):
        px, py = _to_phantom(np.full_like(y, x_c + dx), y + imp.shift_mm[1], imp)
        obj += phantom.signal_at(px, py, z) / 5.0
    img = acquire(obj * protocol.signal, protocol, scanner, imp, rng)
    a = np.zeros((4, 4))
    y0 = float(pixel_centres(protocol)[0])
    a[1, 2] = p  # column -> +y (posterior)
    a[2, 1] = -p  # row -> -z (inferior)
    a[0, 0] = 1.0
    a[:3, 3] = (x_c, y0 + imp.shift_mm[1], zc_img + imp.shift_mm[2] - y0)
    a[3, 3] = 1.0
    return img, a


# ---------------------------------------------------------------- DICOM


def write_mr_series(
    series: MrImageSeries,
    out_dir: Path,
    scanner: MrScanner,
    *,
    study_uid: str,
    frame_uid: str,
    start: dt.datetime,
    file_names: str = "uid",
    transfer_syntax: str = "ExplicitVRLittleEndian",
    patient_name: str = "SCANBENCH^ACR",
    patient_id: str = "SB-ACR-MR",
    series_uid: str | None = None,
) -> list[Path]:
    """Write one series as classic MR Image Storage (PS3.3 A.4), one file per slice.

    Modules: Patient, General Study, General Series, Frame of Reference, General
    Equipment, General Image, Image Plane, Image Pixel, MR Image, SOP Common. Pixels are
    16-bit unsigned stored values (no rescale, as MR scanners write them).
    """
    if file_names not in ("uid", "shuffled"):
        raise ValueError(f"file_names must be 'uid' or 'shuffled', got {file_names!r}")
    syntax = _resolve_syntax(str(transfer_syntax))
    pr = series.protocol
    nz, ny, nx = series.voxels.shape
    out_dir.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    uids = [generate_uid() for _ in range(nz)]
    tz = _tz(start)
    # Shuffled names: several series may share one folder, so each series' names carry
    # a tag of its own (independent draws from one name range collided ~10 % of the time).
    digest = hashlib.sha1(series_uid.encode()).hexdigest()
    tag = digest[:6].upper()
    rng = np.random.default_rng(int(digest[6:14], 16))  # not hash(): that changes per process
    names = (
        [f"{u}.dcm" for u in uids]
        if file_names == "uid"
        else [f"IM{tag}{int(v):06d}" for v in rng.choice(np.arange(1, 100 * nz + 1), nz, False)]
    )
    a = series.affine
    row_dir = a[:3, 2] / np.linalg.norm(a[:3, 2])
    col_dir = a[:3, 1] / np.linalg.norm(a[:3, 1])
    coil = scanner.receive_coil
    if scanner.channels > 1 and "CH" not in coil.upper():
        coil = f"{coil} {scanner.channels}CH"
    n = pr.matrix
    freq_rows, freq_cols, ph_rows, ph_cols = (
        (n, 0, 0, n) if pr.phase_direction == "COL" else (0, n, n, 0)
    )
    paths = []
    for k in range(nz):
        stored = np.clip(np.rint(series.voxels[k]), 0, 65535).astype(np.uint16)
        ds = Dataset()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = UID(uids[k])
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = uids[k]
        when = start + dt.timedelta(minutes=series.series_number)
        ds.StudyDate, ds.StudyTime = _da(start), _tm(start)
        ds.SeriesDate, ds.SeriesTime = _da(when), _tm(when)
        ds.AcquisitionDate, ds.AcquisitionTime = _da(when), _tm(when)
        ds.ContentDate, ds.ContentTime = _da(when), _tm(when)
        if tz is not None:
            ds.TimezoneOffsetFromUTC = tz
        ds.AccessionNumber = ""
        ds.Modality = "MR"
        ds.Manufacturer = scanner.manufacturer
        ds.InstitutionName = "scanbench virtual site"
        ds.ReferringPhysicianName = ""
        ds.StationName = scanner.station
        ds.StudyDescription = "ACR MRI phantom (simulated)"
        ds.SeriesDescription = series.description
        ds.ManufacturerModelName = scanner.model
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.BodyPartExamined = "HEAD"
        ds.DeviceSerialNumber = scanner.serial
        ds.SoftwareVersions = scanner.software_versions
        ds.PatientPosition = "HFS"
        # MR Image module (C.8.3.1)
        ds.ScanningSequence = "SE" if pr.sequence == "SE" else "GR"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.SequenceName = f"{pr.sequence.lower()}2d1"
        ds.AngioFlag = "N"
        ds.SliceThickness = _ds(series.slice_thickness_mm)
        ds.RepetitionTime = _ds(pr.tr_ms)
        ds.EchoTime = _ds(pr.te_ms)
        ds.NumberOfAverages = _ds(pr.averages)
        ds.ImagingFrequency = _ds(round(GYROMAGNETIC_MHZ_PER_T * scanner.field_strength_t, 6))
        ds.ImagedNucleus = "1H"
        ds.EchoNumbers = "1"
        ds.MagneticFieldStrength = _ds(scanner.field_strength_t)
        ds.SpacingBetweenSlices = _ds(series.spacing_between_slices_mm)
        ds.NumberOfPhaseEncodingSteps = str(pr.phase_encodes)
        ds.EchoTrainLength = "1"
        ds.PercentSampling = "100"
        ds.PercentPhaseFieldOfView = "100"
        ds.PixelBandwidth = _ds(pr.pixel_bandwidth_hz)
        ds.ReceiveCoilName = coil
        ds.TransmitCoilName = "BODY"
        ds.AcquisitionMatrix = [freq_rows, freq_cols, ph_rows, ph_cols]
        ds.InPlanePhaseEncodingDirection = pr.phase_direction
        ds.FlipAngle = _ds(pr.flip_angle_deg)
        ds.VariableFlipAngleFlag = "N"
        ds.SAR = "0.5"
        ds.dBdt = "10"
        if pr.parallel_factor > 1:
            # Enhanced-MR attributes (C.8.13.5.11): classic images of real scanners carry
            # this in private tags; scanbench's header reader looks for these.
            ds.ParallelAcquisition = "YES"
            ds.ParallelAcquisitionTechnique = "SENSE"
            ds.ParallelReductionFactorInPlane = float(pr.parallel_factor)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = series.series_number
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        pos = a @ np.array([k, 0.0, 0.0, 1.0])
        ds.ImagePositionPatient = [_ds(v) for v in pos[:3]]
        ds.ImageOrientationPatient = [_ds(round(v, 6)) + "" for v in (*row_dir, *col_dir)]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        normal = np.cross(row_dir, col_dir)
        ds.SliceLocation = _ds(float(np.dot(pos[:3], normal)))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.PixelSpacing = [_ds(pr.pixel_mm), _ds(pr.pixel_mm)]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        path = out_dir / names[k]
        save_pixels(ds, stored, syntax, path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------- ACR simulation


def _centre_rc(protocol: MrProtocol, imp: Imperfections) -> tuple[float, float]:
    r, c = phantom_to_pixel(np.array(0.0), np.array(0.0), protocol, imp)
    return float(r), float(c)


def _radius_px(phantom: AcrPhantom, protocol: MrProtocol, imp: Imperfections) -> float:
    sx, sy, _ = imp.gradient_scale
    return phantom.radius_mm * math.sqrt(sx * sy) / protocol.pixel_mm


def acr_truth(
    phantom: AcrPhantom,
    protocol: MrProtocol,
    imp: Imperfections,
    slices: dict[int, RenderedSlice],
    channels: int = 1,
) -> dict[str, Any]:
    """Truth of every ACR measurement for one axial series (see module docstring)."""
    centre = _centre_rc(protocol, imp)
    radius = _radius_px(phantom, protocol, imp)
    lengths = lengths_truth(phantom, imp)
    thickness = imp.slice_thickness_mm or protocol.slice_thickness_mm
    truth: dict[str, Any] = {
        "length_mm": {"1": {k: lengths[k] for k in ("horizontal", "vertical")}, "5": lengths},
        "slice_thickness_mm": thickness,
        "slice_position_error_mm": {"1": imp.slice_offset(1), "11": imp.slice_offset(11)},
        "bar_length_difference_mm": {"1": 2 * imp.slice_offset(1), "11": 2 * imp.slice_offset(11)},
        "phantom_centre_rc": list(centre),
        "phantom_radius_px": radius,
    }
    sigma = slices[7].sigma if 7 in slices else next(iter(slices.values())).sigma
    truth["noise_sigma"] = sigma if imp.noise else 0.0
    if 7 in slices:
        s7 = slices[7].noiseless
        truth["percent_integral_uniformity"] = piu_truth(
            s7, centre, protocol.pixel_mm, phantom.piu_roi_area_cm2
        )
        if imp.noise and channels == 1:
            # what the ACR ratio (plain means) is expected to read on the noisy image: the
            # ROI means of the Rician expectation of every pixel
            truth["percent_signal_ghosting_expected"] = psg_truth(
                rician_mean(s7, sigma),
                centre,
                radius,
                protocol.pixel_mm,
                phantom.piu_roi_area_cm2,
            )
        truth["percent_signal_ghosting_mean_square"] = psg_truth(
            s7, centre, radius, protocol.pixel_mm, phantom.piu_roi_area_cm2, mean_square=True
        )
        truth["percent_signal_ghosting"] = psg_truth(
            s7, centre, radius, protocol.pixel_mm, phantom.piu_roi_area_cm2
        )
        truth["snr"] = snr_truth(s7, sigma, centre, radius)
    if 1 in slices:
        truth["resolved_hole_mm"] = resolved_holes_truth(
            slices[1].noiseless, phantom, protocol, imp
        )
    lcd = {s: slices[s].noiseless for s in acr_mri.LCD_SLICES if s in slices}
    if lcd:
        res = lcd_truth(lcd, sigma if imp.noise else 1e-9, phantom, protocol, imp)
        truth["spokes_detected"] = {str(k): v for k, v in res["per_slice"].items()}
        truth["spokes_detected_total"] = res["total"]
        truth["lcd_disc_z"] = {str(k): v for k, v in res["z"].items()}
        truth["lcd_z_threshold"] = lcd_z_threshold()
    return truth


def simulate_acr(
    out_dir: Path,
    *,
    phantom: str = "large",
    scanner: MrScanner = MrScanner(),
    t1: MrProtocol = T1,
    t2: MrProtocol = T2,
    imperfections: Imperfections = Imperfections(),
    matrix: int | None = None,
    localiser: bool = True,
    seed: int = 0,
    fine_mm: float = FINE_MM,
    file_names: str = "uid",
    transfer_syntax: str = "ExplicitVRLittleEndian",
    start: dt.datetime = DEFAULT_START,
) -> dict[str, Any]:
    """Write the ACR T1 and T2 axial series (11 slices) and a sagittal localiser to
    ``out_dir`` (sub-folders T1, T2, LOCALISER unless ``file_names='shuffled'``, which
    writes every file into ``out_dir`` itself) and ``ground_truth.json``. Returns the truth."""
    ph = acr_mri.phantom(phantom)
    if matrix is not None:
        t1 = dataclasses.replace(t1, matrix=matrix)
        t2 = dataclasses.replace(t2, matrix=matrix)
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    study_uid, frame_uid = generate_uid(), generate_uid()
    flat = file_names == "shuffled"
    truth: dict[str, Any] = {
        "kind": "mr-acr",
        "phantom": ph.name,
        "scanner": scanner.to_dict(),
        "field_strength_t": scanner.field_strength_t,
        "imperfections": _jsonable(dataclasses.asdict(imperfections)),
        "seed": seed,
        "series": {},
        "rules": {
            "hole_dip_fraction": HOLE_DIP_FRACTION,
            "lcd_family_alpha": LCD_FAMILY_ALPHA,
            "lcd_z_threshold": lcd_z_threshold(),
        },
    }
    files = 0
    objects: dict[Any, np.ndarray] = {}  # the T1 and T2 series image the same object
    for number, (label, pr) in enumerate((("T1", t1), ("T2", t2)), start=2):
        rendered, zs = render_acr_series(ph, pr, scanner, imperfections, rng, fine_mm=fine_mm,
                                         objects=objects)
        voxels = np.stack([r.magnitude for r in rendered])
        series = MrImageSeries(
            f"{pr.name} axial (simulated)",
            pr,
            voxels,
            _axial_affine(pr, zs),
            pr.slice_thickness_mm,
            pr.slice_thickness_mm + pr.slice_gap_mm,
            number,
        )
        uid = generate_uid()
        paths = write_mr_series(
            series,
            out_dir if flat else out_dir / label,
            scanner,
            study_uid=study_uid,
            frame_uid=frame_uid,
            start=start,
            file_names=file_names,
            transfer_syntax=transfer_syntax,
            series_uid=uid,
        )
        files += len(paths)
        t = acr_truth(
            ph,
            pr,
            imperfections,
            dict(zip(range(1, 12), rendered, strict=True)),
            channels=scanner.channels,
        )
        t.update(
            series_instance_uid=uid,
            protocol=dataclasses.asdict(pr),
            pixel_mm=pr.pixel_mm,
            slice_z_lps_mm=zs,
        )
        truth["series"][label] = t
    if localiser:
        loc_pr = dataclasses.replace(
            t1, name="Localiser", tr_ms=200.0, te_ms=10.0, sequence="GR", flip_angle_deg=30.0
        )
        img, aff = render_localiser(ph, loc_pr, scanner, imperfections, rng, fine_mm=fine_mm)
        series = MrImageSeries(
            "Sagittal localiser (simulated)",
            loc_pr,
            img.magnitude[None],
            aff,
            5.0,
            5.0,
            1,
            orientation="sagittal",
        )
        uid = generate_uid()
        paths = write_mr_series(
            series,
            out_dir if flat else out_dir / "LOCALISER",
            scanner,
            study_uid=study_uid,
            frame_uid=frame_uid,
            start=start,
            file_names=file_names,
            transfer_syntax=transfer_syntax,
            series_uid=uid,
        )
        files += len(paths)
        sz = imperfections.gradient_scale[2]
        truth["series"]["LOCALISER"] = {
            "series_instance_uid": uid,
            "length_mm": {"localiser": {"head_foot": ph.inner_length_mm * sz}},
            "pixel_mm": loc_pr.pixel_mm,
        }
    truth["files"] = files
    (out_dir / "ground_truth.json").write_text(
        json.dumps(_jsonable(truth), indent=2) + "\n", encoding="utf-8"
    )
    return truth


# ---------------------------------------------------------------- uniform phantom


def simulate_uniform(
    out_dir: Path,
    *,
    scanner: MrScanner = MrScanner(),
    protocol: MrProtocol = MrProtocol(name="SNR uniform", tr_ms=1000.0, te_ms=30.0),
    imperfections: Imperfections = Imperfections(),
    diameter_mm: float = 190.0,
    repeats: int = 2,
    seed: int = 0,
    file_names: str = "uid",
    transfer_syntax: str = "ExplicitVRLittleEndian",
    start: dt.datetime = DEFAULT_START,
) -> dict[str, Any]:
    """A uniform cylinder (one axial slice), acquired ``repeats`` times with independent
    noise (the NEMA MS 1 two-acquisition pair when 2), plus ``ground_truth.json``:
    ``snr`` (central 75 % ROI), ``percent_uniformity`` (NEMA MS 3: 3×3 low-pass, 75 %
    ROI, 100·(1 − (max − min)/(max + min))) and ``percent_signal_ghosting`` (the ACR
    ratio, ``psg_truth``) of the noise-free image; ``percent_signal_ghosting_expected``
    is that ratio on the Rician expectation of the noisy image (what a perfect
    measurement reads on average: noise compresses ghosts comparable with σ)."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    if not 20 <= diameter_mm < protocol.fov_mm:
        raise ValueError(f"diameter must be between 20 mm and the FOV ({protocol.fov_mm} mm)")
    radius = diameter_mm / 2
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    study_uid, frame_uid = generate_uid(), generate_uid()

    def fn(px: np.ndarray, py: np.ndarray) -> np.ndarray:
        return (px**2 + py**2 < radius**2).astype(float)

    truth: dict[str, Any] = {
        "kind": "mr-uniform",
        "scanner": scanner.to_dict(),
        "field_strength_t": scanner.field_strength_t,
        "diameter_mm": diameter_mm,
        "seed": seed,
        "imperfections": _jsonable(dataclasses.asdict(imperfections)),
        "protocol": dataclasses.asdict(protocol),
        "series": [],
    }
    noiseless = None
    files = 0
    obj = fine_object(fn, protocol, imperfections)  # one object, acquired ``repeats`` times
    for i in range(repeats):
        r = acquire_object(obj, protocol, scanner, imperfections, rng)
        noiseless = r.noiseless
        series = MrImageSeries(
            f"{protocol.name} (simulated)",
            protocol,
            r.magnitude[None],
            _axial_affine(protocol, [imperfections.shift_mm[2]]),
            protocol.slice_thickness_mm,
            protocol.slice_thickness_mm,
            10 + i,
        )
        uid = generate_uid()
        paths = write_mr_series(
            series,
            out_dir if file_names == "shuffled" else out_dir / f"ACQ{i + 1}",
            scanner,
            study_uid=study_uid,
            frame_uid=frame_uid,
            start=start,
            file_names=file_names,
            transfer_syntax=transfer_syntax,
            series_uid=uid,
        )
        files += len(paths)
        truth["series"].append(uid)
        sigma = r.sigma
    assert noiseless is not None
    centre = _centre_rc(protocol, imperfections)
    sx, sy, _ = imperfections.gradient_scale
    rad_px = radius * math.sqrt(sx * sy) / protocol.pixel_mm
    roi = _disc_mask(noiseless.shape, centre, rad_px * math.sqrt(0.75))
    smooth = ndimage.uniform_filter(noiseless, 3)
    hi, lo = float(smooth[roi].max()), float(smooth[roi].min())
    area_cm2 = 0.75 * math.pi * (rad_px * protocol.pixel_mm) ** 2 / 100
    truth.update(
        noise_sigma=sigma if imperfections.noise else 0.0,
        snr=snr_truth(noiseless, sigma, centre, rad_px),
        percent_uniformity=100.0 * (1 - (hi - lo) / (hi + lo)),
        percent_signal_ghosting=psg_truth(
            noiseless, centre, rad_px, protocol.pixel_mm, min(200.0, area_cm2)
        ),
        percent_signal_ghosting_mean_square=psg_truth(
            noiseless, centre, rad_px, protocol.pixel_mm, min(200.0, area_cm2), mean_square=True
        ),
        percent_signal_ghosting_expected=(
            psg_truth(
                rician_mean(noiseless, sigma),
                centre,
                rad_px,
                protocol.pixel_mm,
                min(200.0, area_cm2),
            )
            if imperfections.noise and scanner.channels == 1
            else None
        ),
        phantom_centre_rc=list(centre),
        phantom_radius_px=rad_px,
        files=files,
    )
    (out_dir / "ground_truth.json").write_text(
        json.dumps(_jsonable(truth), indent=2) + "\n", encoding="utf-8"
    )
    return truth


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
