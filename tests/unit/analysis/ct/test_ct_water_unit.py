"""ct.water: which series it takes, what it refuses, and what the result carries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scanbench.analysis.ct.water import WaterPhantomQc
from scanbench.analysis.registry import all_analyses, choose
from scanbench.errors import AnalysisError
from scanbench.simulate.ct import CtScannerModel, render_edge, render_water, render_wire
from scanbench.simulate.ct_dicom import write_ct_localizer

MODEL = CtScannerModel(noise_hu=5.0)


def _series(render, **kw):
    vol, truth = render(MODEL, **kw)
    return vol.to_series(MODEL), truth


@pytest.fixture(scope="module")
def water():
    return _series(render_water, pixel_mm=0.8, n_slices=3, seed=1)


def test_detection_tells_water_from_wire_and_edge(water):
    wire, _ = _series(render_wire, pixel_mm=0.4, n_slices=2)
    edge, _ = _series(render_edge, pixel_mm=0.8, n_slices=2)
    assert choose(water[0])[0].id == "ct.water"
    assert choose(wire)[0].id == "ct.mtf"
    assert choose(edge)[0].id == "ct.mtf"
    analyses = all_analyses()
    assert analyses["ct.water"].detect(edge) < 0.2
    assert analyses["ct.water"].detect(wire) < 0.5
    # NPS runs on the same phantom, on request only
    assert analyses["ct.nps"].detect(water[0]) < analyses["ct.water"].detect(water[0])


def test_result_shape_and_json(water):
    r = WaterPhantomQc().run(water[0])
    names = {(m.name, m.labels.get("slice")) for m in r.measurements}
    for name in ("ct_number_water_hu", "noise_hu", "uniformity_max_deviation_hu"):
        assert {(name, 1), (name, 2), (name, 3), (name, "all")} <= names
    devs = [m for m in r.measurements if m.name == "uniformity_deviation_hu"
            and m.labels["slice"] == "all"]
    assert sorted(m.labels["position"] for m in devs) == [
        "12 o'clock", "3 o'clock", "6 o'clock", "9 o'clock"]
    assert all(m.unit == "HU" for m in r.measurements)
    assert r.get("ct_number_water_hu", slice="all").uncertainty > 0
    json.dumps(r.to_dict())
    figs = WaterPhantomQc().figures(r)
    assert len(figs) == 2


def test_not_a_water_phantom_is_refused():
    edge, _ = _series(render_edge, pixel_mm=0.8, n_slices=1, insert_hu=950.0)
    with pytest.raises(AnalysisError, match="not uniform"):
        WaterPhantomQc().run(edge)


def test_air_only_series_is_refused():
    s, _ = _series(render_water, pixel_mm=1.0, n_slices=2, shift_mm=(0.0, 0.0, 500.0))
    with pytest.raises(AnalysisError, match="no slice shows a water phantom"):
        WaterPhantomQc().run(s)


def test_partial_phantom_skips_slices_beyond_its_end():
    # the 200 mm long phantom ends 10 mm past the middle of the 5 slices 10 mm apart
    vol, _ = render_water(MODEL, pixel_mm=1.0, n_slices=5, slice_thickness_mm=10.0,
                          shift_mm=(0.0, 0.0, 110.0), noise=False)
    r = WaterPhantomQc().run(vol.to_series(MODEL))
    assert any("without the phantom skipped" in w for w in r.warnings)
    assert r.parameters["slices_analysed"] < 5


def test_reconstruction_circle_cutting_the_phantom_is_refused():
    s, _ = _series(render_water, pixel_mm=1.0, n_slices=1, diameter_mm=200.0,
                   reconstruction_diameter_mm=180.0)
    with pytest.raises(AnalysisError, match="cut by the reconstruction circle"):
        WaterPhantomQc().run(s)


def test_localiser_is_refused(tmp_path):
    from scanbench.dicom.read import read

    write_ct_localizer(np.zeros((100, 200)), 1.0, tmp_path, model=MODEL)
    s = read([tmp_path]).series[0]
    with pytest.raises(AnalysisError, match="localiser"):
        WaterPhantomQc().run(s)
    assert WaterPhantomQc().detect(s) == 0.0


@pytest.mark.parametrize("kind,kw", [("acr", {}), ("acr", {"modules": [3]}),
                                     ("catphan", {})])
def test_phantoms_with_inserts_are_not_water_or_mtf_scans(kind, kw):
    """ACR 464 and CatPhan series (part B's phantoms) are left to their own analyses: the
    water check scores them below the automatic-choice threshold, and ct.mtf at zero
    (ACR module 3's distance BBs and module 1's alignment BBs are not a wire)."""
    from scanbench.simulate.ct_phantoms import render_acr464, render_catphan

    render = render_acr464 if kind == "acr" else render_catphan
    vol, _ = render(MODEL, pixel_mm=1.5, **kw)
    s = vol.to_series(MODEL)
    analyses = all_analyses()
    assert analyses["ct.water"].detect(s) < 0.5
    assert analyses["ct.mtf"].detect(s) == 0.0


def test_a_couch_touching_the_phantom_does_not_move_the_rois():
    """A 4 mm, +300 HU couch top under the phantom, touching it: the section is still the
    cylinder (opened with a 3 mm disc) and the 6 o'clock ROI reads the truth."""
    from scanbench.phantoms.ct_water import WaterCylinder
    from scanbench.simulate.ct import acquire, water_truth

    ph = WaterCylinder()

    def with_couch(x, y, z):
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        couch = (y >= 100.0) & (y <= 104.0) & (np.abs(x) < 200.0)
        return np.where(couch, 300.0, ph.hu_at(x, y, z))

    m = CtScannerModel(cupping_hu=4.0)
    vol = acquire(with_couch, m, fov_mm=300, matrix=400, z_mm=[0.0], slice_thickness_mm=5,
                  noise=False, cupping_radius_mm=100.0, reconstruction_diameter_mm=500)
    s = vol.to_series(m)
    r = WaterPhantomQc().run(s)
    truth = water_truth(m, ph, 0.0)
    assert r.parameters["phantom_diameter_mm"] == pytest.approx(200.0, abs=1.0)
    assert r.get("uniformity_deviation_hu", slice="all", position="6 o'clock").value == (
        pytest.approx(truth["uniformity_deviation_hu"]["6 o'clock"], abs=0.1))
    assert WaterPhantomQc().detect(s) > 0.5


def test_noise_free_air_is_not_padding():
    """Issue 11: air that is exactly −1000 HU (noise-free, the reconstruction circle wider
    than the image) is air, not the padding outside a reconstruction circle; the
    1 mm pixels put that constant air within two pixels of the phantom, which used to be
    refused as "cut by the reconstruction circle"."""
    from scanbench.analysis.ct.common import reconstruction_mask

    vol, truth = render_water(MODEL, pixel_mm=1.0, n_slices=2, noise=False,
                              reconstruction_diameter_mm=900.0)
    s = vol.to_series(MODEL)
    assert float(s.voxels[0, 0, 0]) == -1000.0
    assert reconstruction_mask(s.voxels[0]).all()
    assert choose(s)[0].id == "ct.water"
    r = WaterPhantomQc().run(s)
    assert abs(r.get("ct_number_water_hu", slice="all").value
               - truth["expected"]["ct_number_water_hu"]) < 0.5
    # real padding below air is still padding
    img = np.array(s.voxels[0])
    img[np.hypot(*np.mgrid[-1:1:img.shape[0] * 1j, -1:1:img.shape[1] * 1j]) > 1.0] = -3024.0
    assert not reconstruction_mask(img).all()
