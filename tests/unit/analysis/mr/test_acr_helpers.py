"""Unit tests of the ACR MRI helpers: protocol matching, orientation, outline, rules."""

from __future__ import annotations

import numpy as np
import pytest

from scanbench.analysis.mr import acr_ghosting, acr_low_contrast, acr_resolution
from scanbench.analysis.mr.acr_locate import (
    _rounded,
    acr_sequence,
    orientation,
    outline,
    protocol_matches,
)
from scanbench.analysis.mr.acr_slice_thickness import streak_length
from scanbench.types import MrFacts, Series, SeriesFacts


def _series(affine: np.ndarray, nz: int = 3, tr: float | None = None,
            te: float | None = None) -> Series:
    return Series(voxels=np.zeros((nz, 8, 8), np.float32), spacing=(5.0, 1.0, 1.0),
                  affine=affine, facts=SeriesFacts(
                      modality="MR", mr=MrFacts(repetition_time_ms=tr, echo_time_ms=te)))


def test_rounding_tolerant_protocol_numbers() -> None:
    assert _rounded(499.999786376953) == 500.0
    assert _rounded(2.99997) == 3.0
    assert _rounded(2.89362) == 2.894  # a 2.89 T magnet stays 2.89 T
    assert protocol_matches(499.9995, 500.0) and not protocol_matches(480.0, 500.0)
    eye = np.eye(4)
    assert acr_sequence(_series(eye, tr=499.999786, te=20.0)) == "T1"
    assert acr_sequence(_series(eye, tr=2000.0, te=80.0)) == "T2"
    assert acr_sequence(_series(eye, tr=1000.0, te=30.0)) == "site"


@pytest.mark.parametrize(("normal", "name"), [((0, 0, 10), "axial"), ((10, 0, 0), "sagittal"),
                                              ((0, 10, 0), "coronal"), ((7, 0, 7), "oblique")])
def test_orientation_from_the_slice_normal(normal: tuple[float, float, float],
                                           name: str) -> None:
    a = np.eye(4)
    a[:3, 0] = normal
    # in-plane axes perpendicular to the normal
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    u = np.cross(n, [0, 0, 1] if abs(n[2]) < 0.9 else [1, 0, 0])
    u /= np.linalg.norm(u)
    a[:3, 2], a[:3, 1] = u, np.cross(n, u)
    assert orientation(_series(a)) == name


def test_outline_of_a_blurred_disc_finds_its_diameter_and_centre() -> None:
    from scipy import ndimage

    px = 0.5
    rr, cc = np.mgrid[0:512, 0:512]
    centre = (250.3, 261.7)
    disc = (np.hypot((rr - centre[0]) * px, (cc - centre[1]) * px) <= 95.0).astype(float)
    img = 1000.0 * ndimage.gaussian_filter(disc, 2.0)
    o = outline(img, (px, px))
    assert o.centre == pytest.approx(centre, abs=0.1)
    for angle in (0.0, 45.0, 90.0, 135.0):
        assert o.diameter_mm(angle) == pytest.approx(190.0, abs=0.2)


def test_outline_refuses_an_object_of_the_wrong_size() -> None:
    rr, cc = np.mgrid[0:256, 0:256]
    img = (np.hypot(rr - 128, cc - 128) <= 40).astype(float) * 1000.0  # 80 mm across
    with pytest.raises(Exception, match="not the 190 mm"):
        outline(img, (1.0, 1.0))


def test_streak_length_at_half_maximum() -> None:
    u = np.arange(-80.0, 80.0, 0.1)
    prof = np.clip(25.0 - np.abs(u), 0.0, 5.0) * 20.0 + 10.0  # plateau ±20 mm, ramps to ±25
    length, left, right, *_ = streak_length(prof, u)
    assert length == pytest.approx(45.0, abs=0.3)
    assert (left, right) == pytest.approx((-22.5, 22.5), abs=0.2)


def test_hole_row_rule_needs_a_significant_and_visible_dip() -> None:
    x = np.arange(-2.0, 8.0, 0.05)
    centres = np.arange(4) * 2.0
    holes = sum(np.exp(-0.5 * ((x - c) / 0.45) ** 2) for c in centres)
    ok, peaks, dips = acr_resolution._line_resolved(100 * holes, x, centres, 2.0, sigma=1.0,
                                                   background=0.0)
    assert ok and min(peaks) - max(dips) > 10
    blurred = sum(np.exp(-0.5 * ((x - c) / 1.2) ** 2) for c in centres)
    assert not acr_resolution._line_resolved(100 * blurred, x, centres, 2.0, 1.0, 0.0)[0]
    # a visible dip lost in noise does not count
    assert not acr_resolution._line_resolved(100 * holes, x, centres, 2.0, 40.0, 0.0)[0]


def test_spokes_are_counted_up_to_the_first_incomplete_one() -> None:
    det = np.ones((10, 3), bool)
    det[4, 1] = False
    det[7] = True
    assert acr_low_contrast.count_spokes(det) == 4


def test_the_disc_rule_is_the_one_the_virtual_scanner_states() -> None:
    from scanbench.simulate.mr import lcd_z_threshold

    z = acr_low_contrast.Z_THRESHOLD
    assert z == pytest.approx(lcd_z_threshold())
    assert z == pytest.approx(2.935, abs=0.001)


def test_ghost_ellipse_has_its_area() -> None:
    semi_minor = np.sqrt(1000.0 / (np.pi * 4.0))
    w = acr_ghosting.ellipse_weights((200, 200), (100.0, 100.0), 4 * semi_minor, semi_minor,
                                     (0.5, 0.5))
    assert w.sum() * 0.25 == pytest.approx(1000.0, rel=0.01)  # 10 cm²
