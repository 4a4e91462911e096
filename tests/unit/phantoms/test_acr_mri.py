"""The ACR MRI phantom geometry: the analytic slice signal reproduces what the
guidance says each insert shows (STANDARDS.md C.1)."""

from __future__ import annotations

import numpy as np
import pytest

from scanbench.phantoms.acr_mri import (
    ACR_LARGE,
    ACR_MEDIUM,
    LCD_CONTRASTS,
    SliceProfile,
    lcd_spoke_diameters_mm,
    phantom,
)

STEP = 0.1


def _row(ph, y: float, z: float, profile, x_half: float = 100.0):
    x = np.arange(-x_half, x_half, STEP) + STEP / 2
    return x, ph.slice_signal(x, np.full_like(x, y), z, profile)


def _length_above_half(x: np.ndarray, v: np.ndarray) -> float:
    above = x[v > v.max() / 2]
    return float(above.max() - above.min() + STEP)


@pytest.mark.parametrize("ph", [ACR_LARGE, ACR_MEDIUM])
def test_interior_diameter_and_length(ph) -> None:
    x, v = _row(ph, 0.0, ph.slice_z_mm(7), SliceProfile(5.0))
    assert _length_above_half(x, v) == pytest.approx(ph.inner_diameter_mm, abs=2 * STEP)
    z = np.arange(-60, 160, STEP) + STEP / 2
    along = ph.signal_at(np.zeros_like(z), np.full_like(z, 80.0 * ph.inplane_scale), z)
    assert _length_above_half(z, along) == pytest.approx(ph.inner_length_mm, abs=2 * STEP)


@pytest.mark.parametrize("thickness", [3.0, 5.0, 7.0])
def test_ramps_show_ten_times_the_slice_thickness(thickness: float) -> None:
    upper, lower = ACR_LARGE.ramps  # type: ignore[misc]
    prof = SliceProfile(thickness, edge_sigma_mm=0.3)
    for ramp in (upper, lower):
        x, v = _row(ACR_LARGE, (ramp.y0 + ramp.y1) / 2, 0.0, prof, x_half=59.0)
        assert _length_above_half(x, v) == pytest.approx(10 * thickness, abs=0.2)
        # a 1 mm slot in a T mm slice: the ramp signal is about 1/T of the fill
        assert v.max() == pytest.approx(1.0 / thickness, rel=0.03)


def test_ramp_strips_move_apart_when_the_slice_is_displaced() -> None:
    upper, lower = ACR_LARGE.ramps  # type: ignore[misc]
    prof = SliceProfile(5.0)
    xu, vu = _row(ACR_LARGE, (upper.y0 + upper.y1) / 2, 1.0, prof, x_half=59.0)
    xl, vl = _row(ACR_LARGE, (lower.y0 + lower.y1) / 2, 1.0, prof, x_half=59.0)
    cu = np.sum(xu * vu) / np.sum(vu)
    cl = np.sum(xl * vl) / np.sum(vl)
    assert cu == pytest.approx(10.0, abs=0.1) and cl == pytest.approx(-10.0, abs=0.1)


@pytest.mark.parametrize("slice_number", [1, 11])
@pytest.mark.parametrize("shift", [-3.0, 0.0, 2.0])
def test_wedge_bars_differ_by_twice_the_slice_displacement(slice_number: int, shift: float) -> None:
    pair = next(w for w in ACR_LARGE.wedges if w.slice_number == slice_number)
    y = np.arange(-95, -40, STEP) + STEP / 2
    z = ACR_LARGE.slice_z_mm(slice_number) + shift
    lengths = []
    for bar in (pair.left, pair.right):
        xc = (bar.x0 + bar.x1) / 2
        v = ACR_LARGE.slice_signal(np.full_like(y, xc), y, z, SliceProfile(5.0, 0.3))
        dark = y[(v < 0.5) & (y > bar.y_start - 1)]
        lengths.append(dark.max() - bar.y_start + STEP / 2)
    assert lengths[0] - lengths[1] == pytest.approx(2 * shift, abs=0.25)


def test_low_contrast_discs_show_their_nominal_contrast() -> None:
    assert lcd_spoke_diameters_mm()[0] == 7.0 and lcd_spoke_diameters_mm()[-1] == 1.5
    assert len(ACR_LARGE.lcd_discs) == 4 * 10 * 3
    prof = SliceProfile(5.0, 0.3)
    for s, c in LCD_CONTRASTS.items():
        disc = next(
            d for d in ACR_LARGE.lcd_discs if d.slice_number == s and d.spoke == 1 and d.ring == 2
        )
        z = ACR_LARGE.slice_z_mm(s)
        inside = ACR_LARGE.slice_signal(np.array(disc.centre[0]), np.array(disc.centre[1]), z, prof)
        # background: half-way between ring 2 and ring 3 on the same spoke
        bx, by = np.array(disc.centre) * (31.0 / 25.0)
        bg = ACR_LARGE.slice_signal(np.array(bx), np.array(by), z, prof)
        assert (inside - bg) / inside == pytest.approx(c, rel=1e-6)


def test_hole_arrays_are_read_along_their_direction() -> None:
    arrays = ACR_LARGE.hole_arrays
    assert sorted({a.hole_mm for a in arrays}) == [0.9, 1.0, 1.1]
    for a in arrays:
        for line in a.rows:
            pts = np.array(line)
            axis = 0 if a.direction == "row" else 1
            assert np.ptp(pts[:, 1 - axis]) == 0  # a line is straight along its direction
            assert np.allclose(np.diff(pts[:, axis]), 2 * a.hole_mm)
        x, y = np.array(a.centres).T
        assert np.all(ACR_LARGE.signal_at(x, y, 0.0) == 1.0)  # holes are fill solution
        assert np.all(ACR_LARGE.signal_at(x + a.hole_mm, y, 0.0) == 0.0)  # between: plastic


def test_uniform_slice_is_uniform_and_unknown_phantom_is_refused() -> None:
    r = np.linspace(0, 90, 50)
    v = ACR_LARGE.slice_signal(r, np.zeros_like(r), ACR_LARGE.slice_z_mm(7), SliceProfile(5.0, 0.3))
    assert np.allclose(v, 1.0)
    with pytest.raises(ValueError, match="unknown ACR phantom"):
        phantom("small")
    with pytest.raises(ValueError, match=r"outside 1\.\.11"):
        ACR_LARGE.slice_z_mm(12)


def test_slice_signal_sums_each_feature_over_exactly_the_points_in_its_box() -> None:
    """slice_signal finds a feature's points by binary search in x order (for speed);
    the answer must be the plain sum over every feature of its weight at the points of
    its bounding box, as written out here."""
    from scanbench.phantoms.acr_mri import SliceProfile, phantom

    ph = phantom("large")
    rng = np.random.default_rng(3)
    x = rng.uniform(-100.0, 100.0, 20000)
    y = rng.uniform(-100.0, 100.0, 20000)
    x[:50] = 0.0  # ties in x (the ramps' crossing)
    # points exactly on each feature's box edges (the box is closed on every side)
    edges = [(bx, (by0 + by1) / 2) for f in ph.features
             for bx0, bx1, by0, by1 in [f.bbox()] if np.isfinite([bx0, bx1, by0, by1]).all()
             for bx in (bx0, bx1)]
    x = np.concatenate([x, [e[0] for e in edges]])
    y = np.concatenate([y, [e[1] for e in edges]])
    for zc in (0.0, 40.0, 80.0, 100.0):
        profile = SliceProfile(5.0, 0.3)
        inside = x**2 + y**2 < ph.radius_mm**2
        z0, z1 = ph.z_range_mm
        zs = np.full(x.shape, zc)
        want = np.where(inside, profile.cdf(z1 - zs) - profile.cdf(z0 - zs), 0.0)
        for f in ph.features:
            bx0, bx1, by0, by1 = f.bbox()
            box = (x >= bx0) & (x <= bx1) & (y >= by0) & (y <= by1) & inside
            want[box] += f.delta * f.weight(x[box], y[box], np.full(box.sum(), zc), profile)
        got = ph.slice_signal(x, y, zc, profile)
        np.testing.assert_allclose(got, np.clip(want, 0.0, None), rtol=0, atol=1e-12)
