"""The virtual MRI scanner: k-space model, noise statistics, DICOM and command line."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scanbench.dicom.read import read
from scanbench.phantoms.acr_mri import ACR_LARGE
from scanbench.simulate.cli import simulate_app as app
from scanbench.simulate.mr import (
    T1,
    Imperfections,
    MrProtocol,
    MrScanner,
    count_spokes,
    lengths_truth,
    noise_sigma,
    render_acr_series,
    render_slice,
    simulate_uniform,
)


def _uniform(radius: float):
    def fn(px: np.ndarray, py: np.ndarray) -> np.ndarray:
        return (px**2 + py**2 < radius**2).astype(float)

    return fn


def test_noise_free_rendering_reproduces_the_phantom_diameter() -> None:
    """At 512 the edge is sharp: the half-height width of a centre row is 190 mm."""
    pr = dataclasses.replace(T1, matrix=512)
    imp = Imperfections(noise=False, b1_scale=0.0)
    r = render_slice(_uniform(95.0), pr, MrScanner(), imp, np.random.default_rng(0))
    row = r.noiseless[256]
    assert r.noiseless[256, 256] == pytest.approx(pr.signal, rel=0.01)  # Gibbs < 1 % inside
    x = (np.arange(512) - 255.5) * pr.pixel_mm
    above = np.flatnonzero(row > pr.signal / 2)
    # sub-pixel edges by linear interpolation at the half level
    def edge(i0: int, i1: int) -> float:
        f = (pr.signal / 2 - row[i0]) / (row[i1] - row[i0])
        return float(x[i0] + f * (x[i1] - x[i0]))

    width = edge(above[-1], above[-1] + 1) - edge(above[0], above[0] - 1)
    assert width == pytest.approx(190.0, abs=0.1)


def test_ramps_in_the_noise_free_image_give_the_slice_thickness() -> None:
    """The ACR formula 0.2 · a·b/(a + b) on the two ramps' half-maximum lengths in the
    noise-free 512 image gives the slice profile's FWHM (the truth) within 0.1 mm."""
    pr = dataclasses.replace(T1, matrix=512)
    for thickness in (4.0, 6.0):
        imp = Imperfections(noise=False, slice_thickness_mm=thickness, b1_scale=0.0)
        (sl,), _ = render_acr_series(ACR_LARGE, pr, MrScanner(), imp, np.random.default_rng(0),
                                     slices=(1,))
        img = sl.noiseless
        lengths = []
        for ramp in ACR_LARGE.ramps:  # type: ignore[union-attr]
            yc = (ramp.y0 + ramp.y1) / 2
            row = round(yc / pr.pixel_mm + 255.5)
            prof = img[row - 1:row + 2].mean(axis=0)[143:369]  # inside the block, |x| < 55 mm
            p = prof - float(np.min(prof))
            above = np.flatnonzero(p > p.max() / 2)
            lengths.append((above[-1] - above[0] + 1) * pr.pixel_mm)
        a, b = lengths
        assert a == pytest.approx(10 * thickness, abs=1.0)
        assert b == pytest.approx(10 * thickness, abs=1.0)
        assert 0.2 * a * b / (a + b) == pytest.approx(thickness, abs=0.1)


def test_background_is_rician_and_snr_truth_is_signal_over_sigma() -> None:
    pr = T1
    imp = Imperfections(snr=50.0, b1_scale=0.0)
    r = render_slice(_uniform(95.0), pr, MrScanner(), imp, np.random.default_rng(3))
    sigma = r.sigma
    assert sigma == pytest.approx(pr.signal / 50.0)
    rr, cc = np.mgrid[:256, :256]
    far = np.hypot(rr - 127.5, cc - 127.5) * pr.pixel_mm > 115  # 20 mm beyond the edge
    bg = r.magnitude[far & (np.abs(cc - 127.5) * pr.pixel_mm > 100)]  # off the ghost band
    # Rayleigh: mean σ√(π/2), SD σ√((4 − π)/2)
    assert bg.mean() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.05)
    assert bg.std() == pytest.approx(sigma * math.sqrt((4 - math.pi) / 2), rel=0.08)
    inside = r.magnitude[118:138, 118:138]
    assert inside.std() == pytest.approx(sigma, rel=0.15)
    assert inside.mean() / sigma == pytest.approx(50.0, rel=0.02)


def test_multichannel_background_is_not_rayleigh() -> None:
    scanner = MrScanner(channels=4)
    r = render_slice(_uniform(95.0), T1, scanner, Imperfections(snr=50.0),
                     np.random.default_rng(1))
    bg = r.magnitude[:20, :20].ravel()
    # non-central χ with 8 degrees of freedom: mean/SD ≈ 3.9, Rayleigh 1.91
    assert bg.mean() / bg.std() > 3.0


def test_noise_follows_the_protocol() -> None:
    """σ ∝ √BW / (V √(N_pe NSA)): doubling NSA lowers σ by √2, halving BW too."""
    s = MrScanner()
    imp = Imperfections()
    base = noise_sigma(s, T1, imp)
    assert noise_sigma(s, dataclasses.replace(T1, averages=2.0), imp) == \
        pytest.approx(base / math.sqrt(2))
    assert noise_sigma(s, dataclasses.replace(T1, pixel_bandwidth_hz=65.0), imp) == \
        pytest.approx(base / math.sqrt(2))
    assert noise_sigma(MrScanner(field_strength_t=3.0), T1, imp) == pytest.approx(base / 2)
    assert noise_sigma(s, dataclasses.replace(T1, parallel_factor=2.0, g_factor=1.2), imp) == \
        pytest.approx(base * 1.2 * math.sqrt(2))


def test_nyquist_ghost_has_the_requested_amplitude() -> None:
    imp = Imperfections(noise=False, b1_scale=0.0, ghost_fraction=0.05)
    r = render_slice(_uniform(60.0), T1, MrScanner(), imp, np.random.default_rng(0))
    # the ghost of a centred disc sits half a FOV away along the columns (phase: COL)
    ghost = r.noiseless[0:10, 118:138].mean()
    assert ghost / T1.signal == pytest.approx(0.05, rel=0.05)
    assert r.noiseless[118:138, 0:10].mean() / T1.signal < 0.005  # nothing along the rows


def test_distortion_changes_the_true_lengths() -> None:
    imp = Imperfections(gradient_scale=(1.01, 0.99, 1.0))
    lengths = lengths_truth(ACR_LARGE, imp)
    assert lengths["horizontal"] == pytest.approx(191.9, abs=0.01)
    assert lengths["vertical"] == pytest.approx(188.1, abs=0.01)
    radial = lengths_truth(ACR_LARGE, Imperfections(radial_distortion=0.01))
    assert radial["horizontal"] == pytest.approx(190 * (1 + 0.01 * 0.95**2), abs=0.01)


def test_spoke_counting_stops_at_the_first_incomplete_spoke() -> None:
    assert count_spokes([[True] * 3, [True, False, True], [True] * 3]) == 1
    assert count_spokes([[True] * 3] * 10) == 10


def test_uniform_series_is_written_as_readable_mr_dicom(tmp_path: Path) -> None:
    truth = simulate_uniform(tmp_path, protocol=dataclasses.replace(
        MrProtocol(name="pair"), matrix=128), repeats=2, seed=4)
    assert json.loads((tmp_path / "ground_truth.json").read_text())["snr"] == truth["snr"]
    res = read([tmp_path])
    assert len(res.series) == 2 and not res.errors
    s = res.series[0]
    mr = s.facts.mr
    assert s.facts.modality == "MR" and mr is not None
    assert mr.field_strength_t == 1.5 and mr.pixel_bandwidth_hz == 130.0
    assert mr.acquisition_matrix == (128, 0, 0, 128) and mr.phase_encoding_direction == "COL"
    assert s.spacing[1] == pytest.approx(250 / 128)
    if shutil.which("dciodvfy"):
        out = subprocess.run(["dciodvfy", str(s.files[0])], capture_output=True, text=True)
        assert "Error" not in out.stderr + out.stdout


def test_cli_writes_and_refuses_bad_values(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["mr-uniform", "--out", str(tmp_path / "u"),
                             "--matrix", "64", "--repeats", "1"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "u" / "ground_truth.json").is_file()
    bad = runner.invoke(app, ["mr-uniform", "--out", str(tmp_path / "b"),
                              "--matrix", "63"])
    assert bad.exit_code == 2
    assert "matrix" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["mr-acr", "--out", str(tmp_path / "c"),
                              "--phantom", "small"])
    assert bad.exit_code == 2 and "large or medium" in bad.output


def test_acr_t1_and_t2_share_their_fine_objects_and_images_are_unchanged() -> None:
    """The T1 and T2 series of one session image the same object: with a memo the fine
    object of each slice is computed once (11 objects for 22 images), and the images are
    the same, to the bit, as without it (the memo holds no random numbers)."""
    from scanbench.phantoms.acr_mri import phantom
    from scanbench.simulate.mr import T1, T2, Imperfections, MrScanner, render_acr_series

    ph, imp, scanner = phantom("large"), Imperfections(rotation_deg=1.0), MrScanner()
    slices = (1, 8)

    def images(objects: dict[object, np.ndarray] | None) -> list[np.ndarray]:
        rng = np.random.default_rng(5)
        out = []
        for pr in (T1, T2):
            rendered, _ = render_acr_series(ph, pr, scanner, imp, rng, slices=slices,
                                            objects=objects)
            out += [r.magnitude for r in rendered]
        return out

    memo: dict[object, np.ndarray] = {}
    shared = images(memo)
    assert len(memo) == len(slices)
    for a, b in zip(images(None), shared, strict=True):
        assert np.array_equal(a, b)
