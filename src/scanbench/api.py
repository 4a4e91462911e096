"""The Python entry point: ``scanbench.analyze(path) -> list[Result]``."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
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
    # Series Instance UID -> the analysis that took it (a group analysis' id for every
    # series of its group); None: no analysis recognises it (a clinical series).
    routed: dict[str, str | None] = field(default_factory=dict)
    # Series Instance UID -> the failure saying no analysis recognises the series (also
    # in ``failures``): the node tells a clinical series from a failed analysis by it.
    unrecognised: dict[str, Failure] = field(default_factory=dict)


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
    registry.check_accepts(chosen, series)  # isolated slices: only analyses that take them
    result = chosen.run(series, **(params or {}))
    result.warnings[:0] = [w for w in series.warnings if w not in result.warnings]
    result.source = result.source or _series_where(series)
    return result


def series_where(series: Series) -> str:
    """How a failure or a result names a series: its folder and description."""
    return _series_where(series)


def _failure_where(where: str | None, series: Series) -> str:
    """Where a failure of ``series`` is: the analysis' own ``where``, but the file itself
    for a one-file series (a file split off its series by a damaged header is named)."""
    if not where or (len(series.files) == 1 and str(series.files[0]) not in where):
        return _series_where(series)
    return where


def _series_where(series: Series) -> str:
    desc = series.facts.series_description or series.uid or "series"
    if len(series.files) == 1:  # a one-file series (or volume) is named by its file
        return f"{series.files[0]}: series '{desc}'"
    folder = series.files[0].parent if series.files else None
    return f"{folder}: series '{desc}'" if folder else f"series '{desc}'"


def analyze_paths(
    paths: Iterable[str | Path],
    *,
    analysis: str | None = None,
    params: dict[str, Any] | None = None,
    spec: str | None = None,
    baseline: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    read_progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> AnalyzeReport:
    """Read every series under ``paths`` and analyse each; never raises for one bad series.

    ``read_progress(files_done, files_total)`` follows the reading;
    ``progress(series)`` names each series as its analysis starts. ``baseline``
    is a results JSON file holding the device's accepted values, for spec rules
    judged against a baseline. ``workers``: processes analysing series at once (None:
    every core; 1: in this process, everything read first); with more than one, series
    are grouped from their headers and each read, analysed and released in a worker
    (:mod:`scanbench.parallel`), with the same results in the same order.
    """
    from scanbench import dicom

    report = AnalyzeReport()
    # PET raw data (.h5/.hdf5/.hs: sinograms, list mode) go to the raw-data analyses
    from scanbench.rawdata import find_raw_files
    from scanbench.rawdata.analysis import analyze_raw_files

    raw_files, paths = find_raw_files([Path(p) for p in paths])
    analyze_raw_files(raw_files, analysis, params or {}, report, progress)
    for r in report.results:  # raw-data results leave through the same door
        _leaving(r)
    from scanbench import parallel

    n_workers = parallel.default_workers() if workers is None else max(1, workers)
    plan = (parallel.plan(list(paths))
            if n_workers > 1 and parallel.splittable(analysis) else None)
    if (plan is not None and len(plan.units) > 1
            and parallel.known_groups_only(plan.modalities)):  # imported before the fork
        if read_progress:  # headers read; each unit's files are read by its worker
            n_files = sum(len(u.files) for u in plan.units)
            read_progress(n_files, n_files)

        parallel.analyze_units(plan.units, n_workers, analysis=analysis, params=params,
                               report=report, progress=progress)
        return analyze_series_list([], spec=spec, baseline=baseline, report=report)
    read = dicom.read(list(paths), progress=read_progress)
    report.skipped.extend(Failure(str(p), why) for p, why in read.skipped)
    report.failures.extend(Failure(str(w), why) for w, why in read.errors)
    return analyze_series_list(read.series, analysis=analysis, params=params, spec=spec,
                               baseline=baseline, progress=progress, report=report)


def analyze_series_list(
    series_list: list[Series],
    *,
    analysis: str | None = None,
    params: Mapping[str, Any] | None = None,
    analysis_params: Mapping[str, Mapping[str, Any]] | None = None,
    spec: str | None = None,
    baseline: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    report: AnalyzeReport | None = None,
    only: Collection[str] | None = None,
) -> AnalyzeReport:
    """THE path from series already read to results: ``scanbench analyze``, the Python
    API and the node's jobs all call it (DESIGN: one path from DICOM to results).

    Multi-series analyses first (:func:`_run_groups`: every group analysis proposes
    groups over ``series_list``, larger groups first, each series in one group), then
    each series left over by its most confident single-series analysis (or
    ``analysis``), then ``spec`` (with ``baseline``). ``params`` go to every analysis;
    ``analysis_params`` maps an analysis id, or a prefix of ids such as ``mr.acr``, to
    parameters for those analyses only (the node's protocols), laid over ``params``.
    ``only``: Series Instance UIDs; when given, only the groups holding one of them and
    only those series alone are analysed, the others serve as partners (the node
    analyses the series that arrived, with the study's other phantom series beside
    them; the grouping itself is the same as with every series). Results appended to
    ``report`` (a new one if None), which is returned.
    """
    report = AnalyzeReport() if report is None else report
    report.series_read += len(series_list)
    wanted = None if only is None else set(only)

    def params_for(aid: str) -> dict[str, Any]:
        return _params_for(aid, params, analysis_params)

    for series in _run_groups(series_list, analysis, params_for, report, progress, wanted):
        if wanted is not None and series.uid not in wanted:
            continue
        if progress:
            progress(_series_where(series))
        try:
            if analysis:
                chosen_id = analysis
            else:
                from scanbench.analysis import registry
                from scanbench.errors import AnalysisError

                try:
                    chosen_id = registry.choose(series)[0].id
                except AnalysisError:
                    report.routed[series.uid or ""] = None
                    raise
            report.routed[series.uid or ""] = chosen_id
            report.results.append(_leaving(analyze_series(series, chosen_id,
                                                          params_for(chosen_id)), series))
        except ScanbenchError as exc:
            report.failures.append(Failure(_failure_where(exc.where, series), exc.message))
            if report.routed.get(series.uid or "", "") is None:
                report.unrecognised[series.uid or ""] = report.failures[-1]
        except Exception as exc:  # a defect in one analysis must not lose the other series
            report.failures.append(Failure(
                _series_where(series),
                f"internal error ({type(exc).__name__}: {exc}); this is a scanbench defect: "
                "please report it with the series"))
    if spec:
        from scanbench.evaluation import Baseline, apply_spec
        from scanbench.specs import load_spec

        loaded = load_spec(spec)
        reference = Baseline.load(baseline) if baseline is not None else None
        for r in report.results:
            apply_spec(r, loaded, reference)
    return report


def _leaving(result: Result, series: Series | None = None) -> Result:
    """The single place where every result leaves the shared path (before any spec):
    checks that apply to all results, whatever analysis made them, go here.

    Physically impossible values are refused (:mod:`scanbench.analysis.physical`);
    ``series`` gives the bounds that depend on the images (Nyquist frequency)."""
    from scanbench.analysis.physical import enforce_physical_ranges

    enforce_physical_ranges(result, series)
    return result


def _params_for(aid: str, params: Mapping[str, Any] | None,
                analysis_params: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """``params`` with the entries of ``analysis_params`` whose key is ``aid`` or a
    dotted prefix of it laid over them, the more specific key last."""
    merged = dict(params or {})
    for key in sorted(analysis_params or {}, key=len):
        if aid == key or aid.startswith(key + "."):
            merged.update((analysis_params or {})[key])
    return merged


def _run_groups(
    series_list: list[Series],
    analysis: str | None,
    params_for: Callable[[str], dict[str, Any]],
    report: AnalyzeReport,
    progress: Callable[[str], None] | None,
    wanted: set[str] | None = None,
) -> list[Series]:
    """Run the multi-series analyses (:class:`scanbench.analysis.base.GroupAnalysis`)
    on the groups they claim; return the series left for single-series analysis.

    A named group analysis groups every series itself (each one it leaves out is
    a failure); otherwise every registered group analysis proposes its groups,
    larger groups first, each series in at most one group.
    """
    from scanbench.analysis import registry
    from scanbench.analysis.base import is_group_analysis

    if analysis:
        named = registry.get(analysis)
        if not is_group_analysis(named):
            return series_list
        candidates = [(named, g) for g in _proposed(named, series_list, report)]
    else:
        # only the modalities present: a PET run imports no CT or MR analysis (issue 15)
        present = registry.all_analyses({s.facts.modality for s in series_list})
        # an analysis marked ``automatic = False`` (a measurement of patients) runs only
        # when named: it would otherwise claim every clinical PET/CT study
        candidates = [(a, g) for a in sorted(present.values(), key=lambda a: a.id)
                      if is_group_analysis(a) and getattr(a, "automatic", True)
                      for g in _proposed(a, series_list, report)]
    candidates.sort(key=lambda c: -len(c[1]))  # stable: registry order among equal sizes
    claimed: set[int] = set()
    for a, group in candidates:
        if not group or any(id(s) in claimed for s in group):
            continue
        claimed.update(id(s) for s in group)
        report.routed.update((s.uid or "", a.id) for s in group)
        if wanted is not None and not any(s.uid in wanted for s in group):
            continue  # partners only: analysed when one of them is wanted
        where = _series_where(group[0])
        if progress:
            progress(where)
        try:
            results = a.run_group(group, **params_for(a.id))  # type: ignore[attr-defined]
        except ScanbenchError as exc:
            report.failures.append(Failure(exc.where or where, exc.message))
            continue
        except Exception as exc:  # a defect in one analysis must not lose the other series
            report.failures.append(Failure(where, _defect(exc)))
            continue
        by_uid = {s.uid: s for s in group}
        for r in results:
            if isinstance(r, ScanbenchError):  # one test or series of the group failed
                report.failures.append(Failure(r.where or where, r.message))
                continue
            s = by_uid.get(r.series_instance_uid, group[0])
            r.warnings[:0] = [w for w in s.warnings if w not in r.warnings]
            r.source = r.source or _series_where(s)
            report.results.append(_leaving(r, s))
    left = [s for s in series_list if id(s) not in claimed]
    if analysis:
        for s in left:
            if wanted is not None and s.uid not in wanted:
                continue
            report.failures.append(Failure(
                _series_where(s), f"{analysis} does not recognise this "
                f"{s.facts.modality} series as one of the series it analyses"))
        return []
    return left


def _proposed(a: Any, series_list: list[Series], report: AnalyzeReport) -> list[tuple[Series, ...]]:
    try:
        return [tuple(g) for g in a.group(series_list)]
    except Exception as exc:  # group must never raise; if it does, the others still run
        report.failures.append(Failure(f"{a.id} grouping", _defect(exc)))
        return []


def _defect(exc: Exception) -> str:
    return (f"internal error ({type(exc).__name__}: {exc}); this is a scanbench defect: "
            "please report it with the series")


def analyze(
    *paths: str | Path,
    analysis: str | None = None,
    params: dict[str, Any] | None = None,
    spec: str | None = None,
    baseline: str | Path | None = None,
    workers: int | None = None,
) -> list[Result]:
    """Analyse every image series found in files, folders or zips.

    Raises :class:`scanbench.errors.ScanbenchError` for the first failure, so
    that a script never silently loses a series; use :func:`analyze_paths` to
    collect failures instead. ``workers``: as :func:`analyze_paths` (None: every core).
    """
    report = analyze_paths(paths, analysis=analysis, params=params, spec=spec,
                           baseline=baseline, workers=workers)
    if report.failures:
        f = report.failures[0]
        raise ScanbenchError(f.reason, where=f.where)
    return report.results
