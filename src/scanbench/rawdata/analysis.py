"""The raw-data entry of the analyses: ``RawAnalysis`` and how a raw file finds its analysis.

A raw-data analysis (NEMA sensitivity, count rate, TOF) does not take a DICOM
``Series`` but a :class:`scanbench.rawdata.RawDataset`. It registers like any
analysis (``@register``; its ``detect(series)`` returns 0 and ``run(series)``
refuses, so it is never chosen for an image series) and adds:

- ``detect_raw(dataset) -> float``: how sure it is this file is its acquisition;
- ``run_raw(dataset, **params) -> Result``: the same :class:`Result` as every
  analysis, so ``--json``, ``--spec`` and ``--report`` work unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from scanbench.errors import AnalysisError
from scanbench.rawdata import RawDataset, read_raw
from scanbench.types import Result, Series


@runtime_checkable
class RawAnalysis(Protocol):
    id: ClassVar[str]
    modality: ClassVar[str]
    standard: ClassVar[str]
    title: ClassVar[str]

    def detect_raw(self, dataset: RawDataset) -> float: ...

    def run_raw(self, dataset: RawDataset, **params: Any) -> Result: ...

    def figures(self, result: Result) -> list[Any]: ...


def is_raw_analysis(analysis: object) -> bool:
    return callable(getattr(analysis, "detect_raw", None)) and \
        callable(getattr(analysis, "run_raw", None))


class RawOnly:
    """Mixin: the single-series side of a raw-data analysis (never chosen for images)."""

    id: ClassVar[str]

    def detect(self, series: Series) -> float:
        return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        raise AnalysisError(f"{self.id} analyses PET raw data (sinograms or list mode in the "
                            "formats of docs/pet-raw-data.md), not an image series")


MIN_CONFIDENCE = 0.5


def raw_analyses() -> list[Any]:
    from scanbench.analysis.registry import all_analyses

    return [a for a in all_analyses().values() if is_raw_analysis(a)]


def choose_raw(dataset: RawDataset) -> Any:
    scores = []
    for a in raw_analyses():
        try:
            score = float(a.detect_raw(dataset))
        except Exception:  # detection never stops the choice of another analysis
            score = 0.0
        scores.append((score, a))
    scores.sort(key=lambda t: -t[0])
    if not scores or scores[0][0] < MIN_CONFIDENCE:
        tried = ", ".join(f"{a.id} {s:.2f}" for s, a in scores) or "none"
        raise AnalysisError(f"no raw-data analysis recognises this file (purpose "
                            f"{dataset.purpose!r}; confidence: {tried}); name one with --analysis",
                            dataset.where)
    return scores[0][1]


def analyze_raw(path: str | Path, analysis: str | None = None,
                params: dict[str, Any] | None = None) -> Result:
    """Read one raw-data file and run the named, or the most confident, raw analysis."""

    return run_dataset(read_raw(path), analysis, params)


def run_dataset(dataset: RawDataset, analysis: str | None = None,
                params: dict[str, Any] | None = None) -> Result:
    """Run the named, or the most confident, raw analysis on a dataset already read."""
    from scanbench.analysis.registry import get

    path = dataset.path
    chosen: Any
    if analysis:
        chosen = get(analysis)
        if not is_raw_analysis(chosen):
            raise AnalysisError(f"{analysis} analyses image series, not PET raw data", path)
    else:
        chosen = choose_raw(dataset)
    result: Result = chosen.run_raw(dataset, **(params or {}))
    result.warnings[:0] = [w for w in dataset.warnings if w not in result.warnings]
    result.source = result.source or str(path)
    return result


def common_parameters(dataset: RawDataset) -> dict[str, Any]:
    """What every raw result records: geometry and the long-AFOV conventions (STANDARDS.md
    A.8: phantom and line lengths, MRD / acceptance angle) so that numbers are compared
    only with numbers of the same convention."""
    g = dataset.geometry
    p = dataset.phantom
    out: dict[str, Any] = {
        "axial_fov_mm": round(g.axial_fov_mm, 2),
        "max_ring_difference": g.max_ring_difference,
        "acceptance_angle_deg": round(g.acceptance_angle_deg, 2),
        "span": g.span,
        "ring_diameter_mm": g.ring_diameter_mm,
    }
    for key in ("length_mm", "line_length_mm", "diameter_mm", "volume_ml"):
        if key in p:
            out[f"phantom_{key}" if not key.startswith("line") else key] = p[key]
    standard = (float(p.get("line_length_mm", 700.0)) == 700.0
                and float(p.get("length_mm", 700.0)) == 700.0)
    out["convention"] = ("NEMA NU 2-2018 (700 mm phantom and line)" if standard
                         else "long-AFOV extension (phantom/line longer than NEMA's 700 mm)")
    return out


def float_param(params: dict[str, Any], key: str, default: float | None) -> float | None:
    if key not in params:
        return default
    try:
        return float(params[key])
    except (TypeError, ValueError):
        raise AnalysisError(f"parameter {key}={params[key]!r} is not a number") from None


def analyze_raw_files(files: list[Path], analysis: str | None, params: dict[str, Any],
                      report: Any, progress: Any = None) -> None:
    """Analyse every raw-data file into ``report`` (an :class:`scanbench.api.AnalyzeReport`):
    a result each, or a failure naming the file; never raises for one bad file."""
    from scanbench.api import Failure
    from scanbench.errors import ScanbenchError

    for path in files:
        if progress:
            progress(str(path))
        try:
            dataset = read_raw(path)
        except ScanbenchError as exc:
            report.failures.append(Failure(exc.where or str(path), exc.message))
            continue
        report.series_read += 1  # read: a failure from here on is exit status 1, not 2
        try:
            report.results.append(run_dataset(dataset, analysis, params))
        except ScanbenchError as exc:
            report.failures.append(Failure(exc.where or str(path), exc.message))
        except Exception as exc:  # a defect in one analysis must not lose the other files
            report.failures.append(Failure(
                str(path), f"internal error ({type(exc).__name__}: {exc}); this is a scanbench "
                           "defect: please report it with the file"))
