"""ACR MRI suite against the virtual MRI scanner's ground truth.

The virtual scanner (``scanbench.simulate.mr``, issue 7 part A) renders the ACR
large phantom's axial slices through a k-space model (finite matrix and Gibbs
ringing, Rician noise, B1 shading growing with B0², ghosts from phase errors,
gradient-scale distortion, a blurred slice profile) and states the truth of every
ACR measurement from the known geometry or the noise-free image
(``acr_truth``). Each case renders one axial T1 series of 11 slices in memory
(no DICOM round trip: the reader is tested elsewhere, and rendering is the cost:
about 10 s a series on an idle core) and runs every ACR test on it through the
same code ``scanbench analyze`` uses.

Ghosting's truth is the ACR ratio on the noise-free image; in a magnitude image
a ghost of the order of the noise is compressed by the Rician floor (the truth's
own ROIs on the noisy 3 T image with SNR 40 and a 2 % ghost read 0.68 % instead
of 1.80 %), so the ghost case keeps the scanner's SNR and the low-SNR case has
no ghost.

The cases span the issue's sweep: noise (scanner default SNR ≈ 100, and SNR 40),
B1 (default, ×3 at 3 T), rotation ±5°, shift (±10 mm), matrix 256 and 512,
slice thickness 4–6 mm and slice offsets of ±2 mm, gradient-scale errors, a
Nyquist ghost. Tolerances are the issue's: lengths 0.5 mm, slice thickness
0.3 mm, slice position 0.5 mm, PIU 1 point, ghosting 0.3 points, the resolved
hole size exactly, low-contrast spokes within ±2 per slice (the truth's spoke
count uses the noise-free disc contrast, the measurement the noisy image, so a
disc near the detection threshold can fall either side; where an ideal observer
itself misses ±2 in 5 % of noise draws or more, a miss is an expected failure,
and every count must lie in the ideal observer's central 99 %).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from scanbench.analysis.mr import acr_low_contrast, acr_suite
from scanbench.phantoms import acr_mri
from scanbench.simulate import mr as sim
from scanbench.types import DeviceIdentity, MrFacts, Result, Series, SeriesFacts

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Case:
    name: str
    imp: sim.Imperfections
    field_t: float = 1.5
    matrix: int = 256
    seed: int = 1


CASES = (
    Case("rotated +5°, shifted, thick slice displaced, gradient error",
         sim.Imperfections(rotation_deg=5.0, shift_mm=(8.0, -6.0, 0.0), slice_offset_mm=1.5,
                           slice_thickness_mm=5.6, gradient_scale=(1.01, 0.995, 1.0))),
    Case("3 T, strong B1, rotated −5°, thin slice, Nyquist ghost",
         sim.Imperfections(rotation_deg=-5.0, shift_mm=(-10.0, 5.0, 0.0), b1_scale=3.0,
                           slice_offset_mm=-2.0, slice_thickness_mm=4.4, ghost_fraction=0.02),
         field_t=3.0, seed=2),
    Case("512 matrix, shifted, low SNR", sim.Imperfections(shift_mm=(5.0, 10.0, 0.0), snr=40.0),
         matrix=512, seed=3),
)


def render(case: Case, phantom_name: str = "large") -> tuple[Series, dict[str, Any]]:
    """One axial T1 series of the ACR phantom, as a scanbench Series, and its truth."""
    phantom = acr_mri.phantom(phantom_name)
    scanner = sim.MrScanner(field_strength_t=case.field_t)
    protocol = replace(sim.T1, matrix=case.matrix)
    rng = np.random.default_rng(case.seed)
    rendered, zs = sim.render_acr_series(phantom, protocol, scanner, case.imp, rng)
    truth = sim.acr_truth(phantom, protocol, case.imp, dict(zip(range(1, 12), rendered,
                                                                 strict=True)))
    voxels = np.stack([r.magnitude for r in rendered]).astype(np.float32)
    p = protocol.pixel_mm
    facts = SeriesFacts(
        modality="MR", device=DeviceIdentity("scanbench", "Virtual MR"),
        study_instance_uid="1.2.3", series_instance_uid=f"1.2.3.{case.seed}",
        series_description=case.name,
        mr=MrFacts(field_strength_t=case.field_t, repetition_time_ms=protocol.tr_ms,
                   echo_time_ms=protocol.te_ms,
                   acquisition_matrix=(0, protocol.matrix, protocol.matrix, 0)))
    series = Series(voxels=voxels, spacing=(zs[1] - zs[0], p, p),
                    affine=sim._axial_affine(protocol, zs), facts=facts)
    # the noise-free slices and the noise SD, for the low-contrast observer experiment
    truth["_noiseless"] = np.stack([r.noiseless for r in rendered])
    truth["_series"] = series
    return series, truth


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def measured(request: pytest.FixtureRequest) -> tuple[Case, dict[str, Result], dict[str, Any]]:
    case: Case = request.param
    series, truth = render(case)
    out = acr_suite.AcrSuite().run_group((series,))
    failures = [r for r in out if not isinstance(r, Result)]
    assert not failures, failures
    return case, {r.analysis: r for r in out if isinstance(r, Result)}, truth


def test_phantom_rotation_found(measured: tuple[Case, dict[str, Result], dict[str, Any]]
                                ) -> None:
    """The in-plane rotation places every ROI: found within 0.5°."""
    case, results, _ = measured
    found = results["mr.acr.uniformity"].parameters["phantom_rotation_deg"]
    assert abs((found - case.imp.rotation_deg + 180.0) % 360.0 - 180.0) < 0.5


def test_geometric_lengths_within_half_a_millimetre(
        measured: tuple[Case, dict[str, Result], dict[str, Any]]) -> None:
    _, results, truth = measured
    r = results["mr.acr.geometric_accuracy"]
    for sl, lengths in truth["length_mm"].items():
        for direction, true in lengths.items():
            got = r.get("length_mm", slice=int(sl), direction=direction).value
            assert abs(got - true) <= 0.5, (sl, direction, got, true)


def test_slice_thickness_within_0_3_mm(
        measured: tuple[Case, dict[str, Result], dict[str, Any]]) -> None:
    _, results, truth = measured
    got = results["mr.acr.slice_thickness"].get("slice_thickness_mm").value
    assert abs(got - truth["slice_thickness_mm"]) <= 0.3, (got, truth["slice_thickness_mm"])


def test_slice_position_within_half_a_millimetre(
        measured: tuple[Case, dict[str, Result], dict[str, Any]]) -> None:
    _, results, truth = measured
    r = results["mr.acr.slice_position"]
    for sl, true in truth["slice_position_error_mm"].items():
        got = r.get("slice_position_error_mm", slice=int(sl)).value
        # the simulator's sign: positive towards slice 11, where the LEFT bar is longer;
        # scanbench's (hazen's) bar difference is right minus left, so the sign flips
        assert abs(-got - true) <= 0.5, (sl, got, true)


def test_uniformity_within_one_point(
        measured: tuple[Case, dict[str, Result], dict[str, Any]]) -> None:
    _, results, truth = measured
    got = results["mr.acr.uniformity"].get("percent_integral_uniformity").value
    assert abs(got - truth["percent_integral_uniformity"]) <= 1.0


def test_ghosting_within_0_3_points(
        measured: tuple[Case, dict[str, Result], dict[str, Any]]) -> None:
    _, results, truth = measured
    got = results["mr.acr.ghosting"].get("percent_signal_ghosting").value
    assert abs(got - truth["percent_signal_ghosting"]) <= 0.3


def test_resolved_hole_exactly(
        measured: tuple[Case, dict[str, Result], dict[str, Any]]) -> None:
    _, results, truth = measured
    r = results["mr.acr.high_contrast_resolution"]
    for ours, theirs in (("left_right", "row"), ("top_bottom", "column")):
        true = truth["resolved_hole_mm"].get(theirs, truth["resolved_hole_mm"].get(ours))
        got = r.get("resolved_hole_mm", direction=ours).value
        if true is None:
            assert np.isnan(got), (ours, got)
        else:
            assert got == pytest.approx(true), (ours, got, true)


def ideal_observer_counts(z_truth: np.ndarray, draws: int = 20000, seed: int = 0,
                          threshold: float = acr_low_contrast.Z_THRESHOLD) -> np.ndarray:
    """Spoke counts of an observer experiment: the truth's own statistic at the discs' true
    places on a noisy image is the truth's noise-free z plus a unit normal deviate per
    disc (the noise is white and the discs do not share pixels); a disc is seen when that
    reaches ``threshold`` (the strict statistical one, or the human observer's
    d'/√efficiency); counted by the ACR rule from spoke 1 to the first incomplete spoke."""
    rng = np.random.default_rng(seed)
    z = z_truth[None] + rng.standard_normal((draws, *z_truth.shape))
    complete = np.all(z >= threshold, axis=2)
    counts: np.ndarray = np.where(complete.all(axis=1), z_truth.shape[0],
                                  np.argmin(complete, axis=1))
    return counts


def test_low_contrast_spokes_within_two_per_slice(
        measured: tuple[Case, dict[str, Result], dict[str, Any]]) -> None:
    """The issue's tolerance. The truth counts the spokes whose *noise-free* z clears the
    threshold; a count on a noisy image stops at the first disc that noise pushes below
    it, so near the threshold even an ideal observer falls short: on slice 8 of these
    cases (1.4 %) the ideal observer misses ±2 in 17 %, 10 % and 28 % of noise draws.
    Where the measurement misses ±2 on a slice where the ideal observer misses it in at
    least 5 % of draws, the case is an expected failure (the next test checks the count
    against the ideal observer's distribution instead); anywhere else it fails.
    Measured (this seed): 512 matrix, SNR 40, slice 8: 7 spokes (truth 7) with the joint
    pattern fit of slices 8-11; before it 3, one disc of spoke 4 (truth z 4.8) reading z
    2.9 at the per-slice fitted place and 3.0 at the true place;
    before the pixel-exact statistic (1–3 mm annulus of interpolated samples) its z
    ran 0.5–2.5 below the truth's on average per slice here, after it −0.5…+0.1."""
    _, results, truth = measured
    r = results["mr.acr.low_contrast"]
    expected_misses = []
    for sl, true in truth["spokes_detected"].items():
        got = r.get("spokes_detected_strict", slice=int(sl)).value
        if abs(got - true) <= 2:
            continue
        ideal = ideal_observer_counts(np.asarray(truth["lcd_disc_z"][sl]))
        p_ideal = float(np.mean(np.abs(ideal - true) > 2))
        assert p_ideal >= 0.05, (sl, got, true, p_ideal)
        expected_misses.append(f"slice {sl}: {got:.0f} vs truth {true} (an ideal observer "
                               f"misses ±2 there in {100 * p_ideal:.0f} % of noise draws)")
    if expected_misses:
        pytest.xfail("; ".join(expected_misses))


def test_low_contrast_spokes_consistent_with_ideal_observer(
        measured: tuple[Case, dict[str, Result], dict[str, Any]]) -> None:
    """Every slice's count lies in the central 99 % of the ideal observer's counts
    (``ideal_observer_counts``): what a detector with the truth's statistic at the true
    disc places would score at this noise."""
    _, results, truth = measured
    r = results["mr.acr.low_contrast"]
    for sl in truth["spokes_detected"]:
        got = r.get("spokes_detected_strict", slice=int(sl)).value
        ideal = ideal_observer_counts(np.asarray(truth["lcd_disc_z"][sl]))
        lo, hi = np.quantile(ideal, [0.005, 0.995])
        assert lo <= got <= hi, (sl, got, lo, hi)


def test_low_contrast_human_observer_count_matches_the_observer_experiment(
        measured: tuple[Case, dict[str, Result], dict[str, Any]]) -> None:
    """The judged count (``spokes_detected``) against a simulated observer experiment.
    Known disc contrasts and noise: the observer's statistic (the matched template on the
    rim-corrected pixels) applied to the *noise-free* slice at the fitted disc places,
    over the scanner's known noise SD, is each disc's expected d' for the ideal observer;
    a human observer of efficiency 50 % (Burgess et al., Science 1981) sees a disc when
    √0.5 · d' reaches 1, i.e. z ≥ 1.41. With unit normal noise per disc (white noise, the
    discs share no pixels), 20 000 draws give the expected score distribution per slice.
    Every slice's count lies in its central 99 %, and the total in the central 99 % of the
    totals."""
    from scanbench.analysis.mr.acr_locate import axial_geometry

    _, results, truth = measured
    r = results["mr.acr.low_contrast"]
    acr = axial_geometry(truth["_series"])
    sigma = float(truth["noise_sigma"])
    thr = acr_low_contrast.OBSERVER_Z_THRESHOLD
    totals = np.zeros(20000)
    for sl, ev in r.evidence["slices"].items():
        sheet = (ev["centre_uv"][0], ev["centre_uv"][1], ev["rim_radius"])
        noiseless = np.asarray(truth["_noiseless"][acr.order[sl - 1]], dtype=float)
        image = acr_low_contrast.rim_corrected(acr, sl, ev["centres"], sheet, noiseless)
        expected_z = acr_low_contrast.disc_matched(acr, sl, ev["centres"], sigma, sheet, image)
        expected = ideal_observer_counts(expected_z, threshold=thr, seed=sl)
        totals += expected
        got = r.get("spokes_detected", slice=sl).value
        lo, hi = np.quantile(expected, [0.005, 0.995])
        assert lo <= got <= hi, (sl, got, lo, hi)
    lo, hi = np.quantile(totals, [0.005, 0.995])
    assert lo <= r.get("spokes_detected_total").value <= hi, (lo, hi)


def test_the_medium_phantom_is_recognised_and_refused_once_with_the_reason() -> None:
    """The ACR medium phantom (165 mm) is not measured with the large phantom's geometry
    (its lengths would read 25 mm short, its discs and ROIs would be misplaced): the
    suite claims the series and gives one failure that names the phantom."""
    series, _ = render(Case("medium phantom", sim.Imperfections(rotation_deg=3.0)), "medium")
    suite = acr_suite.AcrSuite()
    groups = suite.group([series])
    assert groups == [(series,)]
    out = suite.run_group(groups[0])
    assert len(out) == 1 and not isinstance(out[0], Result), out
    assert "medium phantom" in out[0].message and "165 mm" in out[0].message
