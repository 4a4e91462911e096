"""The NEMA NU 2-2018 section 3 spatial-resolution summary table: its layout (the
standard's rows and columns) and its values against the virtual scanner's ground truth."""

from __future__ import annotations

import re

import numpy as np
import pytest

from scanbench.analysis.pet.spatial_resolution import SpatialResolution
from scanbench.report.html import render_html
from scanbench.report.tables import nema_resolution_table, summary_tables
from scanbench.simulate.pet import ScannerModel, render_point
from scanbench.types import DeviceIdentity, Result

# Sources 1, 10 and 20 cm above the axis at two axial positions (kept 40 mm apart so the
# image stays small; NU 2 puts the second at 3/8 of the axial field of view).
POSITIONS = [(0.0, -10.0 * cm, z) for z in (0.0, 40.0) for cm in (1, 10, 20)]


@pytest.fixture(scope="module")
def measured() -> tuple[Result, dict]:
    series, truth = render_point(scanner=ScannerModel(fwhm_mm=(2.9, 2.9, 2.9)), voxel_mm=1.0,
                                 positions_mm=POSITIONS, noise=True, axial_margin_mm=15.0,
                                 seed=3)
    return SpatialResolution().run(series), truth


def test_layout_is_the_standards(measured: tuple[Result, dict]) -> None:
    table = nema_resolution_table(measured[0])
    assert table is not None and "NEMA NU 2-2018 section 3" in table.clause
    top, sub = ([c.text for c in row] for row in table.head)
    assert top == ["radial distance from the axis", "FWHM (mm)", "FWTM (mm)",
                   "axial positions (mm)"]
    assert [c.colspan for c in table.head[0]] == [1, 3, 3, 1]
    assert sub[1:7] == ["radial", "tangential", "axial"] * 2
    assert [row[0].text for row in table.body] == ["1 cm", "10 cm", "20 cm"]
    assert all(row[7].text == "0, 40" for row in table.body)  # both axial positions
    assert all(re.fullmatch(r"\d+\.\d\d", c.text) for row in table.body for c in row[1:7])


def test_values_are_the_mean_over_axial_positions_and_match_the_truth(
        measured: tuple[Result, dict]) -> None:
    result, truth = measured
    table = nema_resolution_table(result)
    assert table is not None
    for row, cm in zip(table.body, (1, 10, 20), strict=True):
        at = [s for s in truth["sources"] if round(s["radius_from_axis_mm"] / 10) == cm]
        assert len(at) == 2
        for i, (kind, direction) in enumerate(
                [(k, d) for k in ("fwhm_mm", "fwtm_mm")
                 for d in ("radial", "tangential", "axial")], start=1):
            shown = float(row[i].text)
            # the cell is the mean of the two per-source measurements ...
            ms = [m.value for m in result.measurements if m.name == kind
                  and m.labels["position_cm"] == cm and m.labels["direction"] == direction]
            assert len(ms) == 2 and shown == pytest.approx(np.mean(ms), abs=0.005)
            # ... and agrees with the simulated PSF within the method's tolerance
            # (tests/validation/test_resolution_simulated.py)
            true = float(np.mean([s[kind][direction] for s in at]))
            tol = max(0.15, 0.04 * true) if kind == "fwhm_mm" else max(0.3, 0.08 * true)
            assert abs(shown - true) <= tol, (cm, kind, direction, shown, true)


def test_table_in_the_html_and_only_for_resolution(measured: tuple[Result, dict]) -> None:
    html = render_html([measured[0]], figures=None)
    assert "Spatial resolution summary" in html and 'colspan="3">FWHM (mm)' in html
    other = Result(analysis="pet.calibration_uniformity", standard="x",
                   series_instance_uid=None, device=DeviceIdentity(), acquired_at=None)
    assert summary_tables(other) == []
    assert nema_resolution_table(other) is None
