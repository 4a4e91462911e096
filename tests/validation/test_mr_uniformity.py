"""NEMA MS 3 uniformity and the ghosting ratio against the virtual scanner's truth,
and on the real MagNET flood-field and ghosting images.

Truth (simulate.mr.simulate_uniform): the same definitions applied to the noise-free
image with the ROIs where the phantom really is. The measured values differ from it
only by noise (the 3 × 3 filter leaves σ/3 on max and min: at SNR 100 about 0.3
PIU points each way) and by finding the phantom from the image. The issue's
tolerances: PIU within 1 point, ghosting within 0.3 points. For ghosting the truth
to match is the ACR ratio on the Rician expectation of the noisy image
(``percent_signal_ghosting_expected``): noise compresses a ghost comparable with σ in
any magnitude image, and the ACR ratio measures that image.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scanbench import api
from scanbench.simulate.mr import Imperfections, MrProtocol, MrScanner, simulate_uniform

PROTOCOL = MrProtocol(name="Flood", tr_ms=1000.0, te_ms=30.0)


def _one(out: Path, **kw):
    truth = simulate_uniform(out, repeats=1, protocol=PROTOCOL, **kw)
    (r,) = api.analyze(out)
    assert r.analysis == "mr.nema_ms3.uniformity"
    return r, truth


@pytest.mark.slow
@pytest.mark.parametrize(("field", "b1"), [(1.5, 0.0), (1.5, 1.0), (3.0, 1.0), (7.0, 0.5)])
def test_uniformity_follows_the_b1_field(tmp_path: Path, field: float, b1: float) -> None:
    r, truth = _one(tmp_path, scanner=MrScanner(field_strength_t=field),
                    imperfections=Imperfections(b1_scale=b1, snr=150.0), seed=int(10 * field))
    piu = r.get("percent_integral_uniformity").value
    assert piu == pytest.approx(truth["percent_uniformity"], abs=1.0)
    assert r.parameters["field_strength_t"] == field
    if field == 7.0:  # the centre brightening of a short RF wavelength
        assert truth["percent_uniformity"] < 90


@pytest.mark.slow
@pytest.mark.parametrize("ghost", [0.0, 1.0, 3.0])
def test_ghosting_follows_the_phase_errors(tmp_path: Path, ghost: float) -> None:
    r, truth = _one(tmp_path, imperfections=Imperfections(ghost_fraction=ghost / 100, snr=80.0),
                    seed=int(ghost * 10) + 1)
    psg = r.get("percent_signal_ghosting").value
    # the ACR ratio reads, on average, its value on the Rician expectation of the image
    assert psg == pytest.approx(truth["percent_signal_ghosting_expected"], abs=0.3)
    if ghost:
        assert truth["percent_signal_ghosting"] > 0.5 * ghost  # the image holds the ghost
        # the mean-square form recovers the ghost the noise compresses
        assert r.parameters["percent_signal_ghosting_mean_square"] == pytest.approx(
            truth["percent_signal_ghosting_mean_square"], abs=0.3)


def test_phase_direction_along_rows_moves_the_ghost_to_the_sides(tmp_path: Path) -> None:
    simulate_uniform(tmp_path, repeats=1, seed=3,  # SNR 300: plain means show the ghost
                     protocol=MrProtocol(name="Flood ROW", phase_direction="ROW"),
                     imperfections=Imperfections(ghost_fraction=0.02, snr=300.0))
    (r,) = api.analyze(tmp_path)
    p = r.parameters
    assert p["phase_encoding_direction"] == "ROW"
    assert p["background_mean_left"] > 3 * p["background_mean_top"]


# ---------------------------------------------------------------- real data (hazen MagNET)


def test_magnet_flood_fields(shared_data: Path) -> None:
    """hazen scores these with the IPEM Report 112 fractional uniformity (the fraction
    of a central profile within ±10 % of its median), a different quantity: for
    axial_oil.IMA it reports 1.0 (horizontal) and 0.98 (vertical), i.e. nearly every
    point within ±10 %. NEMA's PIU is then bounded below by 100 (1 − 0.2/2.0) ≈ 90 % on
    those profiles; scanbench finds 94.4 % over the whole 75 % ROI. The Siemens
    coronal/sagittal flood fields without prescan normalisation have strong coil
    shading; their low PIU (< 60 %) is what the images show (centre ~ 2× the edge)."""
    folder = shared_data / "mr" / "magnet" / "uniformity"
    results = {r.source.rsplit("'", 2)[-2]: r for r in api.analyze(folder)  # type: ignore[union-attr]
               if r.analysis == "mr.nema_ms3.uniformity"}
    oil = results["Uniformity_tra_oil_prescanNorm"]
    assert 90.0 <= oil.get("percent_integral_uniformity").value <= 97.0
    assert oil.get("percent_signal_ghosting").value < 0.3
    for name in ("uniformity_cor", "uniformity_sag"):
        assert results[name].get("percent_integral_uniformity").value < 60.0


def test_magnet_ghosting_images(shared_data: Path) -> None:
    """hazen's MagNET ghosting (test_ghosting.py) reports 0.787 % for IM_0001.dcm (the
    sagittal bottle), from one 10 × 10-pixel ROI placed in the phase-encode band next to
    the phantom, minus the noise. scanbench's ghosting ratio averages two 10 cm² ellipses
    per axis (the ACR geometry), over ghost-free as well as ghost-filled background, so it
    can only be lower than a ROI placed on the ghost; 0.3-1.0 × hazen's value is what the
    two definitions allow on the same image."""
    folder = shared_data / "mr" / "magnet" / "ghosting" / "GHOSTING"
    results = [r for r in api.analyze(folder) if "SAG" in (r.source or "")]
    (sag,) = results
    psg = sag.get("percent_signal_ghosting").value
    assert 0.3 * 0.787 <= psg <= 0.787
