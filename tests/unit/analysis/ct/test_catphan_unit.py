"""ct.catphan building blocks on quick local renders (the virtual scanner is in validation)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from tests.unit.analysis.ct.ctphantom_render import render

from scanbench.analysis.ct.catphan import Catphan, _ring_blobs, locate
from scanbench.errors import AnalysisError
from scanbench.phantoms import catphan as cp


@pytest.mark.parametrize(("rotation", "mirror"), [(180.0, False), (37.0, True)])
def test_sensitometry_any_rotation_and_mirror(rotation: float, mirror: bool) -> None:
    s = render(cp.hu_map("504"), [-2.5, 0.0, 2.5], pixel_mm=0.5, fov_mm=230.0,
               rotation_deg=rotation, mirror=mirror, sigma_mm=0.4, slice_thickness_mm=2.5)
    r = Catphan().run(s)
    for ins in cp.CTP404_INSERTS[:-1]:
        got = r.get("ct_number_hu", material=ins.material.name).value
        assert abs(got - ins.material.hu) < 0.5, ins.material.name
    assert r.parameters["mirrored"] is mirror
    assert r.get("hu_electron_density_r_squared").value > 0.98


def test_ctp732_bone_inserts_tell_a_604() -> None:
    s = render(cp.hu_map("604"), [-2.5, 0.0, 2.5], pixel_mm=0.6, rotation_deg=-4.0)
    r = Catphan().run(s)
    assert r.parameters["sensitometry_module"] == "CTP732"
    assert abs(r.get("ct_number_hu", material="bone_50").value - 725.0) < 0.5


@pytest.mark.parametrize("model", ["503", "504", "600", "604"])
def test_model_told_from_the_module_offsets(model: str) -> None:
    ws = [m.w_mm for m in cp.MODELS[model].modules]
    w = np.arange(min(ws) - 5.0, max(ws) + 6.0, 5.0)
    s = render(cp.hu_map(model), list(w), pixel_mm=1.2, table_mm=-412.0)
    lay = locate(s)
    assert lay.model == model
    kinds = {m.kind for m in cp.MODELS[model].modules} - {"low_contrast"}
    assert kinds <= set(lay.present)


def test_insert_ring_centre_when_the_housing_is_cut() -> None:
    s = render(cp.hu_map("504"), [0.0], pixel_mm=0.3, fov_mm=150.0, shift_mm=(4.0, -3.0))
    centre = _ring_blobs(s.voxels[0], (0.3, 0.3))
    assert centre is not None
    n = s.voxels.shape[1]
    expect = ((n - 1) / 2 - 3.0 / 0.3, (n - 1) / 2 + 4.0 / 0.3)
    assert abs(centre[0] - expect[0]) < 1.0 and abs(centre[1] - expect[1]) < 1.0


def test_line_pair_groups_fit_on_the_ring_without_overlap() -> None:
    pats = cp.line_pair_patterns()
    arcs = [(p.angle_deg - np.degrees(p.length_mm / 2 / cp.LINE_PAIR_RING_MM),
             p.angle_deg + np.degrees(p.length_mm / 2 / cp.LINE_PAIR_RING_MM)) for p in pats]
    for (_a0, a1), (b0, _b1) in itertools.pairwise(arcs):
        assert a1 < b0
    assert arcs[-1][1] - arcs[0][0] < 360.0


def test_not_a_catphan() -> None:
    def blob(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.where((u / 100) ** 2 + (v / 60) ** 2 <= 1.0, 30.0, -1000.0)

    s = render(blob, [0.0, 5.0])
    assert Catphan().detect(s) < 0.5
    with pytest.raises(AnalysisError, match="not a CatPhan"):
        Catphan().run(s)


def test_figures_for_the_report() -> None:
    s = render(cp.hu_map("504"), [-2.5, 0.0, 2.5], pixel_mm=0.6, noise_hu=3.0,
               slice_thickness_mm=2.5)
    figs = Catphan().figures(Catphan().run(s))
    titles = [f.layout.title.text for f in figs]
    assert any("Sensitometry" in t for t in titles)
    assert any("electron density" in t for t in titles)
    assert any("Teflon edge" in t for t in titles)
