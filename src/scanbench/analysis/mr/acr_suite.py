"""The ACR large MRI phantom suite (``mr.acr``): every test, one result per test.

ACR Large and Medium Phantom Test Guidance (2022) [C] (STANDARDS.md C.1): the
seven quantitative tests on the axial T1 and T2 series (11 slices) and the
sagittal localiser. This is a multi-series analysis
(:class:`scanbench.analysis.base.GroupAnalysis`): ``scanbench analyze <folder>``
hands it every series read, and it groups, per study, the axial ACR series with
the localiser(s):

- each axial series gives one result per test: ``mr.acr.geometric_accuracy``
  (slices 1 and 5, plus the localiser's length when a localiser is in the
  group), ``mr.acr.high_contrast_resolution``, ``mr.acr.slice_thickness``,
  ``mr.acr.slice_position``, ``mr.acr.uniformity``, ``mr.acr.ghosting``,
  ``mr.acr.low_contrast``;
- without a localiser (how many sites export) every test runs and the
  localiser length is reported as not run, with the reason, in the geometric
  accuracy result's warnings and in its ``parameters["not_run"]``;
- a localiser with no axial series gives its length alone;
- a test that fails on a series is a named failure; the other tests still run;
- a series that looks like the ACR phantom but cannot be analysed (slices
  missing, sagittal or coronal multi-slice series) is claimed so that its
  failure says why, instead of "no analysis recognises this series".

Every result records ``field_strength_t`` (header, rounded as protocols state
it) and ``sequence`` (``T1``/``T2`` by rounding-tolerant matching of TR/TE to
the ACR protocol, else ``site``) in ``parameters``, which the specs' rule
conditions use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from scanbench.analysis.mr import (
    acr_geometry,
    acr_ghosting,
    acr_low_contrast,
    acr_resolution,
    acr_slice_position,
    acr_slice_thickness,
    acr_uniformity,
)
from scanbench.analysis.mr.acr_locate import (
    N_SLICES,
    _has_slab,
    acr_axial_confidence,
    axial_geometry,
    is_medium_phantom,
    localiser_confidence,
    new_result,
    orientation,
    outline,
)
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError, ScanbenchError
from scanbench.types import Result, Series

# (analysis class, measuring function) in the order of the guidance
TESTS: tuple[tuple[Any, Callable[[Series, Result], None]], ...] = (
    (acr_geometry.AcrGeometricAccuracy, acr_geometry.measure_axial),
    (acr_resolution.AcrResolution, acr_resolution.measure),
    (acr_slice_thickness.AcrSliceThickness, acr_slice_thickness.measure),
    (acr_slice_position.AcrSlicePosition, acr_slice_position.measure),
    (acr_uniformity.AcrUniformity, acr_uniformity.measure),
    (acr_ghosting.AcrGhosting, acr_ghosting.measure),
    (acr_low_contrast.AcrLowContrast, acr_low_contrast.measure),
)

def _run_test(cls: Any, measure: Callable[[Series, Result], None], s: Series,
              localiser: Series | None) -> Result | AnalysisError:
    """One ACR test on the axial series ``s`` (its geometry already found): its result, or
    the failure naming the test."""
    from scanbench.api import series_where

    test = cls()
    result = new_result(test, s)
    try:
        result.parameters["phantom_rotation_deg"] = round(axial_geometry(s).rotation_deg, 2)
        measure(s, result)
        if cls is acr_geometry.AcrGeometricAccuracy:
            if localiser is not None:
                acr_geometry.measure_localiser(localiser, result)
                result.parameters["localiser_series"] = localiser.uid
            else:
                result.warnings.append(NO_LOCALISER)
                result.parameters["not_run"] = {"length_mm{slice: localiser}": NO_LOCALISER}
    except ScanbenchError as exc:
        return AnalysisError(f"{test.id}: {exc.message}", where=exc.where or series_where(s))
    return result


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_tests(s: Series, localiser: Series | None) -> list[Result | AnalysisError]:
    """Every test of :data:`TESTS` on ``s``, in that order.

    With a second core, the low-contrast test (about half of the suite's time) runs on a
    thread of its own while this thread runs the other six: numpy releases the
    interpreter lock in its array loops, FFTs and sorts, so the two overlap (issue 15:
    use every core). Every test only reads the series and the phantom geometry found
    before (lazily filled caches are filled with the same values whichever thread fills
    them first), so the results are the same as one after the other; an unexpected
    exception in the thread is raised here, as it would be without it.
    """
    if _cores() < 2:
        return [_run_test(cls, measure, s, localiser) for cls, measure in TESTS]
    apart = next(i for i, (cls, _) in enumerate(TESTS) if cls is acr_low_contrast.AcrLowContrast)
    box: dict[str, Any] = {}

    def low_contrast() -> None:
        try:
            box["result"] = _run_test(*TESTS[apart], s, localiser)
        except BaseException as exc:  # re-raised in the calling thread
            box["error"] = exc

    worker = threading.Thread(target=low_contrast, name="scanbench-acr-low-contrast")
    worker.start()
    try:
        rest = [_run_test(cls, measure, s, localiser) if i != apart else None
                for i, (cls, measure) in enumerate(TESTS)]
    finally:
        worker.join()
    if "error" in box:
        raise box["error"]
    return [box["result"] if r is None else r for r in rest]


NO_LOCALISER = ("localiser length not measured: no sagittal or coronal ACR localiser was "
                "found with this axial series (export the localiser with it)")


def _looks_acr(series: Series) -> bool:
    """An MR series that shows the ACR phantom but is not a complete axial series:
    claimed so that its failure names the problem."""
    if series.facts.modality != "MR":
        return False
    orient = orientation(series)
    try:
        if orient == "axial" and series.shape[0] == N_SLICES:  # the medium phantom
            pixel = (float(series.spacing[1]), float(series.spacing[2]))
            img = series.voxels[0].astype(float)
            o = outline(img, pixel)
            if is_medium_phantom(o) and max(
                    _has_slab(img, o, pixel),
                    _has_slab(series.voxels[-1].astype(float), outline(
                        series.voxels[-1].astype(float), pixel), pixel)) >= 0.5:
                return True
        if orient == "axial" and series.shape[0] != N_SLICES:
            pixel = (float(series.spacing[1]), float(series.spacing[2]))
            for k in (0, series.shape[0] - 1):
                img = series.voxels[k].astype(float)
                if _has_slab(img, outline(img, pixel), pixel) >= 0.5:
                    return True
        if orient in ("sagittal", "coronal") and series.shape[0] > 3:
            from scanbench.analysis.mr.acr_locate import localiser_length

            localiser_length(series)
            return True
    except Exception:
        return False
    return False


@register
class AcrSuite:
    """All seven ACR tests on every axial ACR series, with the localiser."""

    id: ClassVar[str] = "mr.acr"
    modality: ClassVar[str] = "MR"
    standard: ClassVar[str] = (
        "ACR Large and Medium Phantom Test Guidance (2022) (see docs/standards/acr-mri.md)")
    title: ClassVar[str] = "ACR MRI phantom suite: all tests, one result per test"

    def detect(self, series: Series) -> float:
        return 0.0  # a group analysis: never chosen for one series alone

    def run(self, series: Series, **params: Any) -> Result:
        raise AnalysisError("mr.acr gives one result per test: call run_group((series,)) or "
                            "scanbench.analyze(), or name one test, e.g. mr.acr.uniformity")

    def figures(self, result: Result) -> list[Any]:
        return []  # each result carries its own test's analysis id and figures

    def group(self, series: Sequence[Series]) -> list[tuple[Series, ...]]:
        axials = [s for s in series if acr_axial_confidence(s) >= 0.5]
        taken = set(map(id, axials))
        locs = [s for s in series if id(s) not in taken and localiser_confidence(s) >= 0.5]
        taken.update(map(id, locs))
        odd = [s for s in series if id(s) not in taken and _looks_acr(s)]
        groups: list[tuple[Series, ...]] = []
        studies = list(dict.fromkeys(s.facts.study_instance_uid for s in axials + locs))
        for study in studies:
            members = [s for s in axials + locs if s.facts.study_instance_uid == study]
            groups.append(tuple(members))
        groups.extend((s,) for s in odd)
        return groups

    def run_group(self, group: tuple[Series, ...], **params: Any
                  ) -> list[Result | ScanbenchError]:
        axials = [s for s in group if orientation(s) == "axial" and s.shape[0] == N_SLICES]
        locs = [s for s in group if orientation(s) in ("sagittal", "coronal")
                and s.shape[0] <= 3]
        from scanbench.api import series_where

        out: list[Result | ScanbenchError] = []
        claimed = set(map(id, axials + locs))
        for s in group:
            if id(s) in claimed:
                continue
            orient = orientation(s)
            if orient == "axial":
                out.append(AnalysisError(
                    f"this axial ACR series has {s.shape[0]} slices; the ACR tests need all "
                    f"{N_SLICES} (missing slices: export the whole series)",
                    where=series_where(s)))
            else:
                out.append(AnalysisError(
                    f"this is a {orient} series of {s.shape[0]} slices; the ACR tests need the "
                    f"{N_SLICES}-slice axial series (a {orient} localiser is one slice)",
                    where=series_where(s)))
        localiser = locs[0] if locs else None
        for s in axials:
            try:  # the phantom found once: a series that is not the large phantom fails once
                axial_geometry(s)
            except ScanbenchError as exc:
                out.append(AnalysisError(f"{self.id}: {exc.message}",
                                         where=exc.where or series_where(s)))
                continue
            out.extend(_run_tests(s, localiser))
        if not axials:
            for loc in locs:
                result = new_result(acr_geometry.AcrGeometricAccuracy(), loc)
                try:
                    acr_geometry.measure_localiser(loc, result)
                except ScanbenchError as exc:
                    out.append(AnalysisError(exc.message, where=exc.where or series_where(loc)))
                    continue
                result.warnings.append("no axial ACR series with this localiser: only its "
                                       "length was measured")
                out.append(result)
        return out
