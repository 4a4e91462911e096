"""Unit tests of the joint disc-pattern fit of the ACR low-contrast test
(``acr_low_contrast.fit_pattern``): slices 8-11 share the ring radii, each has its own
centre and rotation."""

from __future__ import annotations

from typing import Any

import numpy as np

from scanbench.analysis.mr import acr_low_contrast as lc
from scanbench.analysis.mr.acr_locate import AcrAxial
from scanbench.types import Series, SeriesFacts

N, PIX = 128, 1.0  # a 128 mm field at 1 mm pixels (a 256 matrix on a 25 cm field)
SHEET = (0.0, 0.0, 44.0)
#: the "true" pattern: ring radii 2-3 % off the drawing's 12.5/25/38 mm (the joint fit reads
#: 12.7-12.9, 25.6-25.8 and 37.9-38.5 mm on the real scans of the shared data), the sheet
#: centre off the phantom's, the four sheets rotated about 9 degrees from one another
TRUE_RADII = np.array([12.85, 25.65, 38.3])
TRUE_CENTRE = complex(0.6, -0.4)
TRUE_ANGLES = {8: 0.0, 9: 9.0, 10: 18.5, 11: 27.0}
CONTRAST = {8: 14.0, 9: 25.0, 10: 36.0, 11: 51.0}  # 1.4-5.1 % of 1000


class _Centred(AcrAxial):
    """Phantom centre at the middle of the image, no rotation (no outline search)."""

    def centre(self, n: int) -> tuple[float, float]:
        return ((N - 1) / 2, (N - 1) / 2)


def _discs(centres: np.ndarray, contrast: float) -> np.ndarray:
    """Discs at ``centres`` (mm about the image centre), area-weighted on the pixel grid
    (4 x 4 sub-samples per pixel) so that sub-pixel places are rendered."""
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    c = (N - 1) / 2
    rr, cc = np.mgrid[:N, :N]
    img = np.zeros((N, N))
    for k, ring in np.ndindex(centres.shape):
        z = centres[k, ring]
        for dy in sub:
            for dx in sub:
                d = np.hypot((rr + dy - c) * PIX - z.imag, (cc + dx - c) * PIX - z.real)
                img += (d <= lc.DIAMETERS_MM[k] / 2) * contrast / 16
    return img


def test_joint_fit_recovers_ring_radii_centre_and_rotation() -> None:
    """Discs drawn at radii 2-3 % off the drawing's, an off-centre sheet, white noise of SD
    10 (1.4-5.1 % contrast on a signal of 1000); the fit starts from the drawing's radii at
    the phantom centre, 1.5 degrees off. Every fitted disc lies within 0.3 mm of its true
    place (the start put the outer ring up to 1.7 mm off), and the ring radii within
    0.15 mm."""
    rng = np.random.default_rng(5)
    voxels = np.full((11, N, N), 1000.0, dtype=np.float32)
    truth = {}
    for n, a in TRUE_ANGLES.items():
        truth[n] = lc.pattern_centres(TRUE_CENTRE, a, 1.0, TRUE_RADII)
        voxels[n - 1] += (_discs(truth[n], CONTRAST[n])
                          + 10.0 * rng.standard_normal((N, N))).astype(np.float32)
    series = Series(voxels=voxels, spacing=(10.0, PIX, PIX), affine=np.eye(4),
                    facts=SeriesFacts(modality="MR"))
    acr = _Centred(series=series, order=tuple(range(11)), pixel_mm=(PIX, PIX),
                   rotation_deg=0.0)
    fits: dict[int, dict[str, Any]] = {}
    worst_start = 0.0
    for n, a in TRUE_ANGLES.items():
        start = lc.model_positions(a + 1.5, 1.0)
        worst_start = max(worst_start, float(np.abs(start - truth[n]).max()))
        fits[n] = {"centres": start, "angle": a + 1.5, "sense": 1.0,
                   "maps": lc.pattern_maps(acr, n, lc.rim_corrected(acr, n, start, SHEET),
                                           SHEET)}
    joint = lc.fit_pattern(acr, fits)
    assert worst_start > 1.5
    for n in TRUE_ANGLES:
        err = np.abs(fits[n]["fitted"] - truth[n])
        assert err.max() < 0.3, (n, err.max())
        assert fits[n]["score_after"] > fits[n]["score_before"]
    assert np.abs(joint["ring_radii_mm"] - TRUE_RADII).max() < 0.15, joint["ring_radii_mm"]


def test_a_count_that_falls_says_whether_it_was_decided_at_the_threshold() -> None:
    """Slice 9 counts fewer spokes than slice 8: the note names the disc that stopped the
    count and says whether both slices' z lie within 1 of the threshold (a count decided by
    chance) or not (noise or an artefact hides the disc)."""
    z8 = np.full((10, 3), 5.0)
    z9 = np.full((10, 3), 5.0)
    z9[4, 2] = 1.0  # spoke 5, 38 mm ring
    z8[4, 2] = 1.9
    counts = {8: 10, 9: 4, 10: 10, 11: 10}
    zs = {8: z8, 9: z9, 10: z8, 11: z8}
    note = lc._monotonicity_notes(counts, zs, lc.OBSERVER_Z_THRESHOLD)[9]
    assert "spoke 5" in note and "38 mm" in note and "by chance" in note
    z9[4, 2] = -2.0
    note = lc._monotonicity_notes(counts, zs, lc.OBSERVER_Z_THRESHOLD)[9]
    assert "artefact" in note and "by chance" not in note
    assert set(lc._monotonicity_notes(counts, zs, lc.OBSERVER_Z_THRESHOLD)) == {9}
