"""Work an ACR MRI run no longer does twice, or at all when no figure is drawn (issue 15):
the low-contrast figure's resampled slices are made only when a figure reads them (then the
same values as ``AcrAxial.resample``), and the end-slice outline found while ordering the
slices is kept."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scanbench.analysis.mr import acr_low_contrast
from scanbench.analysis.mr.acr_locate import LazyResample, axial_geometry

PHILIPS = Path(__file__).resolve().parents[5] / "shared/data/mr/acr/PhilipsAchieva"


@pytest.mark.skipif(not PHILIPS.is_dir(), reason="needs ../shared/data (real ACR MRI series)")
def test_low_contrast_evidence_resamples_on_demand_as_before() -> None:
    from scanbench.dicom import read_one

    series = read_one(PHILIPS)
    acr = axial_geometry(series)
    analysis = acr_low_contrast.AcrLowContrast()
    result = analysis.run(series)
    slices = result.evidence["slices"]
    assert sorted(slices) == [8, 9, 10, 11]
    for n, ev in slices.items():
        assert isinstance(ev["image"], LazyResample)
        want = acr.resample(n, 50.0, 0.25)[0]
        assert np.array_equal(np.asarray(ev["image"], dtype=float), want, equal_nan=True)
        # what crosses a process boundary (the parallel pool) is the slice, not the grid
        back = pickle.loads(pickle.dumps(ev["image"]))
        assert np.array_equal(np.asarray(back), want, equal_nan=True)
    assert len(analysis.figures(result)) == 4


@pytest.mark.skipif(not PHILIPS.is_dir(), reason="needs ../shared/data (real ACR MRI series)")
def test_geometry_keeps_the_end_slice_outline_it_measured() -> None:
    """Finding the slice order measures both end slices' outlines; ACR slice 11's is kept
    (every test asks for it) and is the outline its own pixels give."""
    from scanbench.analysis.mr.acr_locate import outline
    from scanbench.dicom import read_one

    acr = axial_geometry(read_one(PHILIPS))
    assert sorted(acr.outlines) == [1, 11]
    kept, again = acr.outlines[11], outline(acr.image(11), acr.pixel_mm)
    assert kept.centre == again.centre and kept.conic == again.conic
    assert np.array_equal(kept.edge_mm, again.edge_mm, equal_nan=True)


@pytest.mark.skipif(not PHILIPS.is_dir(), reason="needs ../shared/data (real ACR MRI series)")
def test_low_contrast_on_its_own_thread_gives_the_same_results_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With two cores the low-contrast test runs on a second thread: the same results, in
    the same order, as one test after the other; its failure is a failure of that test,
    and a defect in it is raised to the caller, as without the thread."""
    from scanbench.analysis.mr import acr_suite
    from scanbench.dicom import read_one
    from scanbench.errors import AnalysisError

    def run(cores: int) -> list[Any]:
        monkeypatch.setattr(acr_suite, "_cores", lambda: cores)
        series = read_one(PHILIPS)  # a fresh series: nothing memoised
        return acr_suite.AcrSuite().run_group((series,))

    alone, threaded = run(1), run(2)
    assert [r.analysis for r in threaded] == [c.id for c, _ in acr_suite.TESTS]
    assert [r.to_dict()["measurements"] for r in threaded] == [
        r.to_dict()["measurements"] for r in alone]

    def refuse(series: object, result: object) -> None:
        raise AnalysisError("no sheet")

    def defect(series: object, result: object) -> None:
        raise ZeroDivisionError("defect")

    tests = list(acr_suite.TESTS)
    for measure in (refuse, defect):
        tests[-1] = (acr_low_contrast.AcrLowContrast, measure)
        monkeypatch.setattr(acr_suite, "TESTS", tuple(tests))
        if measure is refuse:
            out = run(2)
            assert isinstance(out[-1], AnalysisError)
            assert out[-1].message == "mr.acr.low_contrast: no sheet"
            assert [r.analysis for r in out[:-1]] == [c.id for c, _ in acr_suite.TESTS[:-1]]
        else:
            with pytest.raises(ZeroDivisionError):
                run(2)
