"""ct.dose_verification end to end: a virtual scanner whose console CTDIvol is off by a
known factor, pencil-chamber readings made from its true CTDI, the DICOM written and read,
the deviation recovered.

The true dose: CTDIw_true = ctdiw_per_100mas × mAs/100 (the model's dose output);
chamber CTDI100 values with a body-phantom centre:periphery ratio of 1:2 and a
head-phantom ratio of 1:1.1 (typical shapes; any ratio whose weighted sum is
CTDIw gives the same answer, which the test also checks). The console shows
the model's CTDIvol × (1 + error). The analysis must return CTDIvol_measured =
CTDIw_true / pitch exactly (to float precision) and the error.
"""

from __future__ import annotations

import dataclasses

import pytest

from scanbench.analysis.ct.dose_verification import CtdiVerification
from scanbench.dicom.read import read
from scanbench.simulate.ct import CtScannerModel, render_water
from scanbench.simulate.ct_dicom import write_ct_series


@pytest.mark.parametrize("phantom_cm,ratio,pitch,error", [
    (32, 0.5, 1.0, 0.0), (32, 0.5, 1.375, 0.12), (16, 1.0 / 1.1, 0.6, -0.08),
])
def test_console_error_is_recovered(tmp_path, phantom_cm, ratio, pitch, error):
    true_model = CtScannerModel(pitch=pitch, ctdi_phantom_cm=phantom_cm,
                                ctdiw_per_100mas_mgy=7.5 if phantom_cm == 32 else 15.0,
                                tube_current_ma=300, rotation_time_s=0.5)
    ctdiw_true = true_model.ctdiw_per_100mas_mgy * true_model.exposure_mas / 100
    console = dataclasses.replace(true_model, ctdiw_per_100mas_mgy=true_model.ctdiw_per_100mas_mgy
                                  * (1 + error))
    vol, _ = render_water(console, pixel_mm=2.0, n_slices=1)
    write_ct_series(vol, tmp_path, model=console)
    series = read([tmp_path]).series[0]
    # periphery p and centre ratio*p with p/... : CTDIw = ratio*p/3 + 2p/3
    p = ctdiw_true / (ratio / 3 + 2 / 3)
    holes = f"{p * 1.04},{p * 0.96},{p * 1.02},{p * 0.98}"
    r = CtdiVerification().run(series, centre_mgy=ratio * p, periphery_mgy=holes)
    assert r.get("ctdiw_mgy").value == pytest.approx(ctdiw_true, rel=1e-9)
    assert r.get("ctdivol_measured_mgy").value == pytest.approx(ctdiw_true / pitch, rel=1e-9)
    assert r.get("ctdivol_displayed_mgy").value == pytest.approx(console.ctdivol_mgy, rel=1e-6)
    assert r.get("ctdivol_deviation_percent").value == pytest.approx(100 * error, abs=1e-4)
    assert r.get("ctdivol_measured_mgy").labels == {"phantom_cm": phantom_cm}
    assert r.parameters["pitch_source"] == "Spiral Pitch Factor (0018,9311)"


def test_measurement_at_another_mas_is_scaled(tmp_path):
    model = CtScannerModel(tube_current_ma=200, rotation_time_s=1.0)  # 200 mAs, 15 mGy
    vol, _ = render_water(model, pixel_mm=2.0, n_slices=1)
    write_ct_series(vol, tmp_path, model=model)
    series = read([tmp_path]).series[0]
    # measured at 100 mAs: CTDIw 7.5 mGy there, 15 mGy at the series 200 mAs
    r = CtdiVerification().run(series, centre_mgy=7.5, periphery_mgy=7.5,
                               measured_mas=100)
    assert r.get("ctdivol_deviation_percent").value == pytest.approx(0.0, abs=1e-9)
    assert any("measured_mas" in w for w in r.warnings)
