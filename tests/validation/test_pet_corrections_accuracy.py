"""Accuracy of count-loss and randoms corrections against the virtual scanner's truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanbench.api import analyze_paths
from scanbench.simulate.pet_raw import simulate_corrections_accuracy


@pytest.mark.parametrize("noise,max_error", [(0.0, 2.5), (0.15, 1.0)])
def test_max_rate_error_up_to_peak_necr(tmp_path: Path, noise: float, max_error: float) -> None:
    truth = simulate_corrections_accuracy(tmp_path, frames=8, gap_s=3000.0, noise_percent=noise,
                                          max_error_percent=max_error, seed=4)
    rep = analyze_paths([tmp_path], params={"peak_necr_kbq_ml": truth["peak_necr_kbq_ml"]})
    assert not rep.failures, rep.failures
    [r] = rep.results
    assert r.analysis == "pet.nema_nu2_2018.corrections_accuracy"
    measured = r.get("max_rate_error_percent").value
    # the NEMA figure is a maximum over slices: slice noise (noise % each, and in the
    # low-activity reference) can only be bounded, not removed
    tol = 1e-3 if noise == 0 else 4.0 * noise * (1 + 1 / 3) ** 0.5
    assert measured == pytest.approx(truth["max_rate_error_percent"], abs=tol)
    for j, f in enumerate(truth["frames"], start=1):
        m = r.get("rate_error_percent", frame=j)
        assert m.value == pytest.approx(f["max_abs_nema_error_percent"], abs=tol)
        assert m.labels["activity_kbq_ml"] == pytest.approx(f["activity_kbq_ml"], rel=0.01)


def test_without_peak_necr_every_frame_counts_with_a_warning(tmp_path: Path) -> None:
    simulate_corrections_accuracy(tmp_path, frames=6, noise_percent=0.0, seed=1)
    [r] = analyze_paths([tmp_path]).results
    assert any("peak_necr_kbq_ml not given" in w for w in r.warnings)
    # no silent defaults (issue 11): where the phantom facts came from is recorded
    assert r.parameters["volume_ml_source"].startswith("the NEMA NU 2-2018 scatter phantom")
    assert r.parameters["phantom_centre_mm_source"].startswith("the scanner axis")
