"""The fill ratio estimated from the image, against the virtual scanner's ground truth.

NEMA NU 2-2018 section 7.4.1's hot-sphere contrast divides by ``a_H / a_B - 1``, the
fill ratio, which the image does not carry in its header. Issue 11: a missing ratio
was silently taken as 4. scanbench now estimates it by fitting the largest spheres'
profiles (:func:`scanbench.analysis.pet.image_quality.estimate_activity_ratio`); this
checks the estimate against the truth the simulator wrote (``ground-truth.json``'s
``activity_ratio``), over the ratios 4, 8 and 10, voxel sizes 2, 3 and 4 mm, noisy
images, a post-filter, a coarser scanner and the old cold-sphere fill.
"""

from __future__ import annotations

from typing import Any

import pytest

from scanbench.analysis.pet.image_quality import SPHERES_MM, ImageQuality
from scanbench.simulate.pet import ScannerModel, render_iq

CASES: dict[str, dict[str, Any]] = {
    **{f"ratio{r:g}_vox{v:g}": {"activity_ratio": r, "voxel_mm": v}
       for r in (4.0, 8.0, 10.0) for v in (2.0, 3.0, 4.0)},
    "ratio8_postfilter6": {"activity_ratio": 8.0, "voxel_mm": 4.0, "post_filter_fwhm_mm": 6.0},
    "ratio4_fwhm6": {"activity_ratio": 4.0, "voxel_mm": 4.0,
                     "scanner": ScannerModel(fwhm_mm=(6.0, 6.0, 6.5))},
    "ratio10_cold28_37": {"activity_ratio": 10.0, "voxel_mm": 3.0, "cold_spheres": (28.0, 37.0)},
    "ratio10_short_scan": {"activity_ratio": 10.0, "voxel_mm": 2.0, "duration_s": 60.0},
    # the demo's two IQ scans: a 3 % scatter-correction residual; EARL1-harmonised 10:1
    "ratio4_scatter3": {"activity_ratio": 4.0, "scatter_residual_percent": 3.0,
                        "shift_mm": (12.0, -8.0, 5.0), "rotation_deg": 7.0},
    "ratio10_earl1": {"activity_ratio": 10.0, "background_bq_ml": 2000.0, "voxel_mm": 4.0,
                      "post_filter_fwhm_mm": 7.0},
}


@pytest.mark.parametrize("case", list(CASES))
def test_estimate_against_truth(case: str) -> None:
    kw = CASES[case]
    series, truth = render_iq(seed=2, **kw)
    cold = ",".join(str(int(d)) for d in kw.get("cold_spheres", ()))
    r = ImageQuality().run(series, **({"cold_spheres": cold} if cold else {}))
    est = r.get("activity_ratio_estimated")
    assert est.uncertainty is not None and 0.0 < est.uncertainty < 0.12 * truth["activity_ratio"]
    # within two standard uncertainties of the truth (one in 20 would miss by chance)
    assert abs(est.value - truth["activity_ratio"]) <= 2.0 * est.uncertainty, \
        (est.value, est.uncertainty)
    hot = [d for d in SPHERES_MM if float(d) not in kw.get("cold_spheres", ())]
    for d in hot:
        m = r.get("percent_contrast", sphere_mm=d)
        assert m.status == "not_judged" and m.value < 100.0 + 3.0 * (m.uncertainty or 0.0)


@pytest.mark.parametrize("ratio", [4.0, 8.0, 10.0])
def test_true_ratio_accepted_lower_refused(ratio: float) -> None:
    """The true ratio given is kept and judged as before; half the true ratio given puts
    the 37 mm contrast far above 100 % and is refused, naming both ratios."""
    series, _ = render_iq(voxel_mm=3.0, activity_ratio=ratio, seed=4)
    ok = ImageQuality().run(series, activity_ratio=ratio)
    assert ok.parameters["activity_ratio_source"] == "given"
    assert ok.get("percent_contrast", sphere_mm=37).status == "info"
    assert not any("contradicts" in w for w in ok.warnings)
    low = ratio / 2.0 if ratio > 4.0 else 2.0
    bad = ImageQuality().run(series, activity_ratio=low)
    assert bad.get("percent_contrast", sphere_mm=37).status == "refused"
    assert any(f"activity_ratio={low:g} contradicts the image" in w and "estimates" in w
               for w in bad.warnings)
