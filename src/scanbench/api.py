"""The Python entry point: ``scanbench.analyze(path) -> list[Result]``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanbench.errors import ScanbenchError
from scanbench.types import Result, Series


@dataclass
class Failure:
    """A file or series that could not be read or analysed, and why."""

    where: str
    reason: str


@dataclass
class AnalyzeReport:
    """Everything one ``analyze`` call produced: results, skipped files and failures."""

    results: list[Result] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)  # non-DICOM files: a note, not a failure
    failures: list[Failure] = field(default_factory=list)
    series_read: int = 0  # image series that formed a volume, analysed or not


def analyze_series(
    series: Series,
    analysis: str | None = None,
    params: dict[str, Any] | None = None,
) -> Result:
    """Run the named analysis, or the most confident one, on one series."""
    from scanbench.analysis import registry

    chosen = registry.get(analysis) if analysis else registry.choose(series)[0]
    if analysis and chosen.modality != series.facts.modality:
        from scanbench.errors import AnalysisError

        raise AnalysisError(
            f"{chosen.id} analyses {chosen.modality} series; this series is "
            f"{series.facts.modality}", where=_series_where(series))
    result = chosen.run(series, **(params or {}))
    result.warnings[:0] = [w for w in series.warnings if w not in result.warnings]
    result.source = result.source or _series_where(series)
    return result


def _series_where(series: Series) -> str:
    desc = series.facts.series_description or series.uid or "series"
    folder = series.files[0].parent if series.files else None
    return f"{folder}: series '{desc}'" if folder else f"series '{desc}'"


def analyze_paths(
    paths: Iterable[str | Path],
    *,
    analysis: str | None = None,
    params: dict[str, Any] | None = None,
    spec: str | None = None,
    progress: Callable[[str], None] | None = None,
    read_progress: Callable[[int, int], None] | None = None,
) -> AnalyzeReport:
    """Read every series under ``paths`` and analyse each; never raises for one bad series.

    ``read_progress(files_done, files_total)`` follows the reading;
    ``progress(series)`` names each series as its analysis starts.
    """
    from scanbench import dicom

    report = AnalyzeReport()
    read = dicom.read(list(paths), progress=read_progress)
    report.skipped.extend(Failure(str(p), why) for p, why in read.skipped)
    report.failures.extend(Failure(str(w), why) for w, why in read.errors)
    report.series_read = len(read.series)
    for series in read.series:
        if progress:
            progress(_series_where(series))
        try:
            report.results.append(analyze_series(series, analysis, params))
        except ScanbenchError as exc:
            report.failures.append(Failure(exc.where or _series_where(series), exc.message))
        except Exception as exc:  # a defect in one analysis must not lose the other series
            report.failures.append(Failure(
                _series_where(series),
                f"internal error ({type(exc).__name__}: {exc}); this is a scanbench defect: "
                "please report it with the series"))
    if spec:
        from scanbench.evaluation import apply_spec
        from scanbench.specs import load_spec

        loaded = load_spec(spec)
        for r in report.results:
            apply_spec(r, loaded)
    return report


def analyze(
    *paths: str | Path,
    analysis: str | None = None,
    params: dict[str, Any] | None = None,
    spec: str | None = None,
) -> list[Result]:
    """Analyse every image series found in files, folders or zips.

    Raises :class:`scanbench.errors.ScanbenchError` for the first failure, so
    that a script never silently loses a series; use :func:`analyze_paths` to
    collect failures instead.
    """
    report = analyze_paths(paths, analysis=analysis, params=params, spec=spec)
    if report.failures:
        f = report.failures[0]
        raise ScanbenchError(f.reason, where=f.where)
    return report.results
