"""Unit tests of the human-observer statistic of the ACR low-contrast test
(``acr_low_contrast.disc_matched`` on ``rim_corrected`` pixels)."""

from __future__ import annotations

import numpy as np

from scanbench.analysis.mr import acr_low_contrast as lc
from scanbench.analysis.mr.acr_locate import AcrAxial
from scanbench.types import Series, SeriesFacts

N, PIX = 128, 1.0  # a 128 mm field at 1 mm pixels (a 256 matrix on a 25 cm field)
SHEET = (0.0, 0.0, 44.0)


class _Centred(AcrAxial):
    """Phantom centre at the middle of the image, no rotation (no outline search)."""

    def centre(self, n: int) -> tuple[float, float]:
        return ((N - 1) / 2, (N - 1) / 2)


def _acr(image: np.ndarray) -> AcrAxial:
    voxels = np.repeat(image[None].astype(np.float32), 11, axis=0)
    series = Series(voxels=voxels, spacing=(10.0, PIX, PIX), affine=np.eye(4),
                    facts=SeriesFacts(modality="MR"))
    return _Centred(series=series, order=tuple(range(11)), pixel_mm=(PIX, PIX),
                    rotation_deg=0.0)


def _radius_mm() -> np.ndarray:
    rr, cc = np.mgrid[:N, :N]
    return np.asarray(np.hypot(rr - (N - 1) / 2, cc - (N - 1) / 2) * PIX)


def _discs(contrast: float) -> np.ndarray:
    """The 30 discs of the ACR pattern (pixel centres inside each disc)."""
    c = (N - 1) / 2
    rr, cc = np.mgrid[:N, :N]
    img = np.zeros((N, N))
    for k, ring in np.ndindex(10, 3):
        z = lc.model_positions(0.0, 1.0)[k, ring]
        inside = np.hypot((rr - c) * PIX - z.imag, (cc - c) * PIX - z.real)
        img[inside <= lc.DIAMETERS_MM[k] / 2] = contrast
    return img


def _z(image: np.ndarray, sigma: float) -> np.ndarray:
    acr = _acr(image)
    centres = lc.model_positions(0.0, 1.0)
    return lc.disc_matched(acr, 8, centres, sigma, SHEET,
                           lc.rim_corrected(acr, 8, centres, SHEET))


def test_no_disc_gives_standard_normal_z() -> None:
    """White noise, no discs, rim profile removed: z over 30 discs × 40 images has mean 0
    and SD 1 (within 4 standard errors), so the observer's threshold 1.41 means what it
    says (a disc-free place reads 'seen' in 7.9 % of cases, a disc-free spoke in 0.05 %)."""
    rng = np.random.default_rng(11)
    zs = np.concatenate([_z(1000.0 + 10.0 * rng.standard_normal((N, N)), 10.0).ravel()
                         for _ in range(40)])
    assert abs(zs.mean()) < 4 / np.sqrt(zs.size)
    assert abs(zs.std() - 1.0) < 4 / np.sqrt(2 * zs.size)
    assert abs(np.mean(zs >= lc.OBSERVER_Z_THRESHOLD) - 0.079) < 0.02


def test_the_rims_ringing_no_longer_hides_the_outer_ring() -> None:
    """Noise-free discs at 1.4 % with a rotationally symmetric ringing of ±1.5 % of the
    signal (two-pixel period, decaying inwards from the rim at 44 mm, as an unfiltered
    reconstruction of the sheet's dark rim gives): on the raw pixels the outer ring's z
    moves by up to 16 % (spoke 10), disc by disc; with the rim profile removed every outer
    disc is within 8 % of its z without ringing (the inner rings' backgrounds reach past
    30 mm and move by less than that too)."""
    r = _radius_mm()
    discs = 1000.0 + _discs(14.0)
    ringing = 15.0 * np.cos(np.pi * (44.0 - r) / PIX) * np.exp(-(44.0 - r) / 8.0) * (r < 44)
    centres = lc.model_positions(0.0, 1.0)
    clean = _z(discs, 1.0)
    corrected = _z(discs + ringing, 1.0)
    acr = _acr(discs + ringing)
    raw = lc.disc_matched(acr, 8, centres, 1.0, SHEET, acr.image(8))
    assert np.abs(raw[:, 2] / clean[:, 2] - 1).max() > 0.1
    np.testing.assert_allclose(corrected, clean, rtol=0.08)
    # in numbers: raw outer ring up to 16 % off (spoke 10), corrected up to 7 % (spoke 9);
    # with 0.5 mm bins (half the ringing's period) the corrected spoke 10 was 32 % off


def test_a_blurred_small_disc_scores_higher_than_its_mean() -> None:
    """A disc imaged through the point-spread function spreads over its edge: the matched
    template collects that signal, the disc mean loses it. Spoke 10 (1.5 mm) at 1 mm
    pixels, blurred by a Gaussian of FWHM 1.21 pixels: the matched z is higher."""
    from scipy.ndimage import gaussian_filter

    fine = 16  # render the discs at 1/16 pixel and blur, then average down to pixels
    c = (N * fine - 1) / 2
    rr, cc = np.mgrid[: N * fine, : N * fine]
    img = np.zeros((N * fine, N * fine))
    for k, ring in np.ndindex(10, 3):
        z = lc.model_positions(0.0, 1.0)[k, ring]
        img[np.hypot((rr - c) * PIX / fine - z.imag, (cc - c) * PIX / fine - z.real)
            <= lc.DIAMETERS_MM[k] / 2] = 14.0
    img = gaussian_filter(img, lc.PSF_FWHM_PIXELS * fine / 2.3548)
    img = 1000.0 + img.reshape(N, fine, N, fine).mean(axis=(1, 3))
    centres = lc.model_positions(0.0, 1.0)
    matched = _z(img, 1.0)
    mean = lc.disc_z(_acr(img), 8, centres, 1.0, SHEET)
    assert np.all(matched[9] > 1.1 * mean[9])
