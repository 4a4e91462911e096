"""The virtual CT scanner: its analytic physics (MTF, NPS, SSP, cupping, noise, dose)
holds in the images it makes, and its DICOM reads back as what it wrote."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest

from scanbench.analysis.ct.nps import nps_2d, radial_average
from scanbench.dicom.read import read
from scanbench.phantoms.ct_water import WaterCylinder
from scanbench.simulate.ct import (
    PADDING_HU,
    CtScannerModel,
    acquire,
    render_water,
)
from scanbench.simulate.ct_dicom import write_ct_localizer, write_ct_series


def test_model_relations():
    m = CtScannerModel(mtf50_lp_per_cm=5.0, tube_current_ma=250, rotation_time_s=0.8,
                       pitch=1.25, ctdiw_per_100mas_mgy=8.0, noise_hu=10.0,
                       reference_mas=160.0, reference_slice_mm=5.0)
    assert m.mtf(0.5) == pytest.approx(0.5, abs=1e-12)  # 5 lp/cm = 0.5 /mm
    assert m.mtf(m.mtf10_lp_per_cm / 10) == pytest.approx(0.1, abs=1e-12)
    assert m.exposure_mas == pytest.approx(200.0)
    assert m.ctdivol_mgy == pytest.approx(8.0 * 2.0 / 1.25)  # CTDIw / pitch
    # effective mAs 160 = reference: noise scales with 1/sqrt(slice thickness) only
    assert m.noise_sd_hu(5.0) == pytest.approx(10.0)
    assert m.noise_sd_hu(1.25) == pytest.approx(20.0)
    f = np.linspace(0.01, 2, 2000)
    assert f[np.argmax(m.nps_shape(f))] == pytest.approx(m.nps_peak_frequency_per_mm, abs=1e-3)
    with pytest.raises(ValueError, match="pitch"):
        CtScannerModel(pitch=0)


def test_noise_free_water_values_and_padding():
    m = CtScannerModel(cupping_hu=6.0, hu_offset=2.0)
    ph = WaterCylinder(diameter_mm=200.0)
    v = acquire(ph.hu_at, m, fov_mm=240.0, matrix=240, z_mm=[0.0], slice_thickness_mm=5.0,
                noise=False, cupping_radius_mm=100.0)
    img = v.noise_free[0]
    c = (240 - 1) / 2
    centre = img[int(c), int(c)]  # 0.5 mm from the axis
    assert centre == pytest.approx(2.0 - 6.0 * (1 - 0.5**2 / 100**2), abs=0.01)
    assert img[0, 0] == PADDING_HU and not v.inside_circle[0, 0]
    # air outside the phantom, inside the circle
    assert img[int(c), 5] == pytest.approx(-1000.0, abs=0.5)
    assert np.array_equal(v.voxels, v.noise_free)


def test_noise_sd_and_nps_match_the_model():
    """Pixel SD within 2 % of the model; the measured NPS (ICRU 87, many ROIs) follows the
    analytic ramp x MTF^2 shape within its sampling error."""
    m = CtScannerModel(noise_hu=10.0, mtf50_lp_per_cm=5.0)
    flat = lambda x, y, z: np.zeros(np.broadcast(x, y, z).shape)  # noqa: E731
    v = acquire(flat, m, fov_mm=256 * 0.5, matrix=256, z_mm=[0, 5, 10, 15],
                slice_thickness_mm=5.0, seed=7, supersample=1, reconstruction_diameter_mm=400)
    assert v.voxels.std() == pytest.approx(v.noise_sd_hu, rel=0.02)
    rois = v.voxels.reshape(4, 4, 64, 4, 64).transpose(0, 1, 3, 2, 4).reshape(-1, 64, 64)
    spec = nps_2d(rois, 0.5, detrend="mean")
    assert spec.noise_hu == pytest.approx(10.0, rel=0.03)
    f = np.fft.fftshift(np.fft.fftfreq(64, 0.5))
    fr = np.hypot(*np.meshgrid(f, f))
    full = np.fft.fftfreq(256, 0.5)
    norm = m.nps_shape(np.hypot(*np.meshgrid(full, full))).mean()
    truth = m.nps_shape(fr) / norm * 0.25 * 100.0
    ft, t1 = radial_average(truth, 0.5)
    mid = (ft > 0.1) & (ft < 0.6)
    assert np.allclose(spec.nps_1d[mid], t1[mid], rtol=0.15)


def test_slice_sensitivity_profile_fwhm():
    """A z-edge scanned at fine table steps: the derivative of the edge response is the
    SSP, whose FWHM is the model's (rect ⊗ Gaussian)."""
    m = CtScannerModel(ssp_blur_fwhm_mm=1.2)
    step = lambda x, y, z: np.where(np.asarray(z) < 0, 1000.0, 0.0) + 0 * x  # noqa: E731
    z = np.arange(-6.0, 6.0, 0.1)
    v = acquire(step, m, fov_mm=32, matrix=16, z_mm=z, slice_thickness_mm=3.0, noise=False,
                supersample=1, reconstruction_diameter_mm=100)
    esf = v.noise_free[:, 8, 8]
    ssp = -np.gradient(esf, 0.1)
    half = ssp.max() / 2
    above = np.flatnonzero(ssp >= half)
    fwhm = (above[-1] - above[0] + 1) * 0.1
    assert fwhm == pytest.approx(m.ssp_fwhm_mm(3.0), abs=0.15)
    assert 3.0 < m.ssp_fwhm_mm(3.0) < 3.0 + 1.2


@pytest.mark.parametrize("signed", [True, False])
def test_dicom_round_trip(tmp_path, signed):
    m = CtScannerModel(pitch=0.9, kernel="SIM-B30", ctdi_phantom_cm=32)
    vol, _truth = render_water(m, pixel_mm=1.0, n_slices=2, table_z_mm=-40.0, seed=3)
    write_ct_series(vol, tmp_path, model=m, signed=signed)
    res = read([tmp_path])
    assert not res.errors and len(res.series) == 1
    s = res.series[0]
    inside = vol.inside_circle
    expected = np.rint(vol.voxels)
    if not signed:
        expected = np.maximum(expected, -1024)
    assert np.array_equal(s.voxels[:, inside], expected[:, inside])
    assert np.all(s.voxels[:, ~inside] == (-3024 if signed else -1024))
    np.testing.assert_allclose(s.affine, vol.affine, atol=1e-6)
    ct = s.facts.ct
    assert ct is not None
    assert (ct.kvp, ct.pitch, ct.kernel, ct.ctdi_phantom_cm) == (120.0, 0.9, "SIM-B30", 32)
    assert ct.ctdivol_mgy == pytest.approx(m.ctdivol_mgy, rel=1e-6)
    assert ct.pixel_padding_value == (-2000 if signed else 0)
    assert s.facts.device.model == "Virtual CT"


def test_dciodvfy_finds_no_ct_iod_error(tmp_path):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed: scripts/test.sh installs dicom3tools as root")
    m = CtScannerModel()
    vol, _ = render_water(m, pixel_mm=1.5, n_slices=1)
    files = write_ct_series(vol, tmp_path / "axial", model=m)
    files.append(write_ct_localizer(np.zeros((64, 128)), 1.0, tmp_path / "scout", model=m))
    for f in files:
        out = subprocess.run(["dciodvfy", str(f)], capture_output=True, text=True, timeout=60)
        report = out.stdout + out.stderr
        assert report.startswith("CTImage"), report[:200]
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, f"{f.name}: {errors}"


def test_fbp_mode_reconstructs_water_with_the_requested_noise():
    m = CtScannerModel(noise_hu=8.0)
    vol, truth = render_water(m, pixel_mm=2.0, fov_mm=256, n_slices=1, mode="fbp", seed=2,
                              supersample=1)
    c = vol.shape[1] // 2
    core = vol.noise_free[0, c - 15:c + 15, c - 15:c + 15]
    assert abs(float(core.mean())) < 3.0  # water, up to FBP's own small bias
    noisy = vol.voxels[0, c - 15:c + 15, c - 15:c + 15]
    assert float((noisy - core).std()) == pytest.approx(8.0, rel=0.2)
    assert truth["mtf50_lp_per_cm"] is None and "expected" not in truth


def test_line_source_is_the_psf():
    """A wire line source images as strength × Gaussian PSF at the pixel centres."""
    m = CtScannerModel(mtf50_lp_per_cm=4.0)
    flat = lambda x, y, z: np.zeros(np.broadcast(x, y, z).shape)  # noqa: E731
    v = acquire(flat, m, fov_mm=20, matrix=40, z_mm=[0], slice_thickness_mm=2, noise=False,
                line_sources=[(0.25, 0.25, -50, 50, 100.0)], reconstruction_diameter_mm=100)
    s = m.psf_sigma_mm
    assert float(v.noise_free.sum()) * 0.25 == pytest.approx(100.0, rel=1e-3)
    assert float(v.noise_free.max()) == pytest.approx(100 / (2 * math.pi * s * s), rel=1e-6)
