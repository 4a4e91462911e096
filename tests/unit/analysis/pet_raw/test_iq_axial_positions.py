"""Long-AFOV image quality: several IEC phantoms along one scan, one set of measurements
each (STANDARDS.md A.8), identical to analysing each phantom's own scan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scanbench.analysis.registry import get
from scanbench.errors import AnalysisError
from scanbench.simulate.pet import render_iq


def _long_scan() -> tuple[object, list, list[float]]:
    parts = [render_iq(voxel_mm=4.0, seed=s)[0] for s in (1, 2)]
    a, b = parts
    gap = np.zeros((20, *a.voxels.shape[1:]), dtype=np.float32)
    voxels = np.concatenate([a.voxels, gap, b.voxels])
    long = dataclasses.replace(a, voxels=voxels, sop_instance_uids=[])
    nz = a.shape[0]
    z = long.index_to_patient(np.c_[np.arange(voxels.shape[0]), np.zeros(voxels.shape[0]),
                                    np.zeros(voxels.shape[0])])[:, 2]
    centres = [float(z[: nz].mean()), float(z[nz + 20:].mean())]
    return long, parts, centres


def test_each_position_equals_its_own_scan() -> None:
    iq = get("pet.nema_nu2_2018.image_quality")
    long, parts, centres = _long_scan()
    # a window of exactly each part's half-length, so each crop is that part's own scan
    # (the IQ analysis is not bit-for-bit invariant to extra empty slices at an end)
    r = iq.run(long, axial_positions_mm=",".join(f"{c:.1f}" for c in centres),
               axial_window_mm=146.5)
    assert r.parameters["axial_positions_mm"] == [round(c, 1) for c in centres]
    for part, c in zip(parts, centres, strict=True):
        alone = iq.run(part)
        for m in alone.measurements:
            got = r.get(m.name, axial_position_mm=round(c, 1), **m.labels)
            assert got.value == pytest.approx(m.value, rel=1e-9, abs=1e-9)
    assert len(r.measurements) == 2 * len(iq.run(parts[0]).measurements)
    assert len(iq.figures(r)) == 4


def test_a_position_outside_the_scan_is_named() -> None:
    iq = get("pet.nema_nu2_2018.image_quality")
    long, _, _ = _long_scan()
    with pytest.raises(AnalysisError, match="axial position 5000 mm"):
        iq.run(long, axial_positions_mm="5000")
