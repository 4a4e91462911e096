"""A programme's vendor claims (spec nema-nu2-2018) apply to the scanner they name.

The virtual scanner writes the identity of a uMI 550 with a PSF either sharper
or blurrier than the published 1 cm FWHM used as its claim (2.91 / 2.98 / 2.97
mm tangential / radial / axial, STANDARDS.md A.1): the claim must pass the
first and fail the second, and must not touch a scanner of another make.
The true widths (PSF ⊗ 1 mm source ⊗ 1 mm voxel) are 2.6 → 2.78 mm and 3.2 →
3.35 mm, well clear of the claims and of the NEMA method's ≈0.1 mm bias.
"""

from __future__ import annotations

import pytest

from scanbench.analysis.pet.spatial_resolution import SpatialResolution
from scanbench.evaluation import apply_spec
from scanbench.simulate.pet import ScannerModel, render_point
from scanbench.specs import load_spec

UMI550 = {"manufacturer": "UIH", "model": "uMI 550"}


def _fwhm_1cm(scanner: ScannerModel) -> dict[str, tuple[float, str]]:
    series, _ = render_point(scanner=scanner, positions_mm=[(0.0, -10.0, 0.0)], voxel_mm=1.0,
                             noise=False, axial_margin_mm=15.0)
    result = apply_spec(SpatialResolution().run(series), load_spec("nema-nu2-2018"))
    return {m.labels["direction"]: (m.value, m.status) for m in result.measurements
            if m.name == "fwhm_mm" and m.labels["position_cm"] == 1}


@pytest.mark.parametrize(("psf_mm", "status"), [(2.6, "pass"), (3.2, "fail")])
def test_claims_score_the_named_model(psf_mm: float, status: str) -> None:
    got = _fwhm_1cm(ScannerModel(fwhm_mm=(psf_mm,) * 3, **UMI550))
    assert set(got) == {"radial", "tangential", "axial"}
    for direction, (value, st) in got.items():
        assert st == status, (direction, value)


def test_claims_leave_other_makes_unscored() -> None:
    got = _fwhm_1cm(ScannerModel(fwhm_mm=(3.2,) * 3))  # the default virtual scanner
    assert {st for _, st in got.values()} == {"info"}
