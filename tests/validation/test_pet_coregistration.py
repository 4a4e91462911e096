"""PET/CT co-registration against the virtual scanners' truth (issue 6: within 0.2 mm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scanbench.api import analyze_paths
from scanbench.simulate.pet_raw import simulate_coregistration


@pytest.mark.parametrize("offset,sag,seed", [((0.6, -0.4, 0.5), 2.0, 1),
                                             ((-1.5, 0.0, 2.0), 0.0, 2)])
def test_coregistration_within_0_2_mm(tmp_path: Path, offset: tuple[float, float, float],
                                      sag: float, seed: int) -> None:
    truth = simulate_coregistration(tmp_path, offset_mm=offset, sag_mm_per_m=sag, seed=seed)
    rep = analyze_paths([tmp_path])
    assert not rep.failures, rep.failures
    [r] = [r for r in rep.results if r.analysis == "pet.nema_nu2_2018.coregistration"]
    pet = np.array(truth["pet_markers_mm"])
    found = [m for m in r.measurements if m.name == "coregistration_error_mm"]
    assert len(found) == len(pet)
    for m in found:
        p = np.array([m.labels["x_mm"], m.labels["y_mm"], m.labels["z_mm"]])
        j = int(np.argmin(np.linalg.norm(pet - p, axis=1)))
        assert m.value == pytest.approx(truth["error_mm"][j], abs=0.2)
    assert r.get("max_coregistration_error_mm").value == pytest.approx(truth["max_error_mm"],
                                                                       abs=0.2)


def test_pet_alone_is_not_grabbed(tmp_path: Path) -> None:
    """Without its CT the PET marker series is analysed as point sources, as before."""
    simulate_coregistration(tmp_path, seed=3)
    rep = analyze_paths([tmp_path / "pet"])
    assert [r.analysis for r in rep.results] == ["pet.nema_nu2_2018.spatial_resolution"]
