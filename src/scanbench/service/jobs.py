"""Job functions and the executors that run them.

A job is a plain function of plain data (:class:`JobSpec` in, :class:`JobOutcome`
out): it reads the files it is given and never touches the database, so the same
function runs in the node's own process pool or on a Dask cluster
(``SCANBENCH_DASK_SCHEDULER=tcp://host:8786``; the workers need the file store
path mounted). The pipeline stores what comes back; a job that raises, or whose
worker process dies, is recorded as failed with its error and the node goes on.

- ``series`` job (:func:`run_series_job`): read the series, let the analysis
  registry choose (``registry.choose``); a recognised phantom is analysed, a
  series no analysis recognises is a clinical series.
- ``study`` job (:func:`run_study_job`): patient dose and workflow timings of a
  clinical study (issue 4's ``scanbench.clinical`` extractors, when installed).
"""

from __future__ import annotations

import importlib.util
import os
import traceback
from dataclasses import dataclass, field
from typing import Any

from scanbench.errors import ScanbenchError
from scanbench.types import Result

ENV_DASK = "SCANBENCH_DASK_SCHEDULER"
ENV_FIGURES = "SCANBENCH_JOB_FIGURES"


def job_figures_env(value: str | None) -> str | None:
    """Set :data:`ENV_FIGURES` (whether jobs started from now on draw figures: ``"1"`` or
    ``"0"``; None: unset, the default) and return the value it had, to be given back to
    this function when done (the demos switch figures off for their ingest)."""
    before = os.environ.get(ENV_FIGURES)
    if value is None:
        os.environ.pop(ENV_FIGURES, None)
    else:
        os.environ[ENV_FIGURES] = value
    return before


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs: the job's id and kind, its target, the files to read.

    A series job analyses ``targets`` (default: ``target_uid`` alone); ``files`` hold
    theirs and those of the study's other phantom series, the partners a multi-series
    analysis may group them with. ``wait``: a target such an analysis could claim is not
    analysed yet but reported as waiting for its partners. ``params`` go to every
    analysis, ``analysis_params`` (analysis id or dotted prefix -> parameters: the
    device's protocols) to those analyses only."""

    job_id: int
    kind: str  # "series" or "study"
    target_uid: str
    files: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    wait: bool = False
    analysis_params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class JobOutcome:
    """What a job found. ``classified``: series UID → (kind, analysis id or None), kind
    phantom or clinical. ``results``: analysis results (figure evidence dropped).
    ``doses`` / ``timings``: issue 4's JSON objects, one per study / exam."""

    job_id: int
    classified: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    doses: list[dict[str, Any]] = field(default_factory=list)
    timings: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Series UID -> the multi-series analysis it waits for partners of (JobSpec.wait).
    waiting: dict[str, str] = field(default_factory=dict)
    # Series UID -> the analysis that ran on it (a group analysis' id for its group).
    routed: dict[str, str] = field(default_factory=dict)
    # figures.key(series UID, analysis) -> the result's figures drawn in the worker
    # (gzipped plotly JSON, scanbench.service.figures), or why they could not be drawn.
    figures: dict[str, bytes] = field(default_factory=dict)
    figure_errors: dict[str, str] = field(default_factory=dict)


class JobFailed(Exception):
    """A job's failure as the pipeline records it: a message, no traceback object (it
    must cross process and Dask boundaries as plain text)."""


# --------------------------------------------------------------------------- job functions

def run_job(spec: JobSpec) -> JobOutcome:
    """Run one job (the function every executor is given)."""
    try:
        if spec.kind == "series":
            return run_series_job(spec)
        if spec.kind == "study":
            return run_study_job(spec)
        raise JobFailed(f"unknown job kind {spec.kind!r}")
    except JobFailed:
        raise
    except ScanbenchError as exc:
        raise JobFailed(str(exc)) from None
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        raise JobFailed(f"internal error ({type(exc).__name__}: {exc}) at "
                        f"{os.path.basename(tb.filename)}:{tb.lineno}; this is a scanbench "
                        "defect: please report it with the series") from None


def run_series_job(spec: JobSpec) -> JobOutcome:
    """Classify and analyse the job's series through the one shared path from series to
    results (:func:`scanbench.api.analyze_series_list`, as ``scanbench analyze``):
    multi-series analyses group the targets with their partners among the files, the
    rest go to their most confident analysis; a series no analysis recognises is
    clinical. With ``spec.wait``, a target a multi-series analysis could claim
    (:func:`scanbench.service.classify.awaited_by`) waits instead."""
    from scanbench import dicom
    from scanbench.api import analyze_series_list
    from scanbench.service.classify import awaited_by

    out = JobOutcome(spec.job_id)
    targets = list(dict.fromkeys(spec.targets or (spec.target_uid,)))
    read = dicom.read(list(spec.files))
    mine = [s for s in read.series if s.uid in targets]
    missing = [u for u in targets if u not in {s.uid for s in mine}]
    if missing:  # no image volume: a non-image object (a dose screen capture), or damaged
        others = _series_uids(p for p, _ in read.non_image)
        unreadable = [u for u in missing if u not in others]
        if unreadable:
            why = "; ".join(f"{w}: {r}" for w, r in read.errors[:3]) or "no image volume"
            raise JobFailed(f"series {', '.join(unreadable)} could not be read: {why}")
        for uid in missing:
            out.classified[uid] = ("other", None)
        out.notes.append("no image volume: " + ", ".join(sorted({n for _, n in read.non_image})))
        if not mine:
            return out
    if spec.wait:
        for s in mine:
            group_id = awaited_by(s, read.series)
            if group_id is not None:
                out.waiting[str(s.uid)] = group_id
                out.classified[str(s.uid)] = ("phantom", group_id)
                out.notes.append(f"{group_id}: waiting for the other series of its group")
        mine = [s for s in mine if s.uid not in out.waiting]
        if not mine:
            return out
    wanted = {str(s.uid) for s in mine}
    report = analyze_series_list(read.series, params=spec.params,
                                 analysis_params=spec.analysis_params, only=wanted)
    unrecognised = [id(f) for f in report.unrecognised.values()]
    failures = []
    for f in report.failures:
        if id(f) in unrecognised:  # no analysis recognises it: a clinical series
            out.notes.append(f"clinical series: {f.reason}")
        else:
            failures.append(f)
    out.routed = {uid: aid for uid, aid in report.routed.items() if aid is not None}
    for s in mine:
        aid = report.routed.get(str(s.uid))
        out.classified[str(s.uid)] = ("clinical", None) if aid is None else ("phantom", aid)
    for result in report.results:
        _draw_figures(result, out)
        result.evidence = {}  # the figures are drawn: the evidence goes no further
        out.results.append(result)
    # a patient's series: its clinical image quality (scanbench.service.clinical_iq)
    from scanbench.service import clinical_iq

    clinical_iq.measure([s for s in mine if out.classified[str(s.uid)][0] == "clinical"],
                        read.series, out, spec.params, spec.analysis_params)
    counts: dict[str, int] = {}
    for r in out.results:
        counts[r.analysis] = counts.get(r.analysis, 0) + len(r.measurements)
    out.notes.extend(f"{a}: {n} measurements" for a, n in counts.items())
    if failures and not out.results:
        raise JobFailed("; ".join(f"{f.where}: {f.reason}" for f in failures))
    out.notes.extend(f"failed: {f.where}: {f.reason}" for f in failures)
    return out


def _draw_figures(result: Result, out: JobOutcome) -> None:
    """Draw the result's figures here, in the worker, while its evidence exists (the
    result page shows them; scanbench.service.figures). ``SCANBENCH_JOB_FIGURES=0``
    skips them. A figure that cannot be drawn never fails the job: the reason is kept."""
    if os.environ.get(ENV_FIGURES, "1") == "0":
        return
    from scanbench.service.figures import draw, key

    k = key(result.series_instance_uid, result.analysis)
    try:
        out.figures[k] = draw(result)
    except Exception as exc:  # an analysis's figure code: reported, never fatal
        out.figure_errors[k] = f"{type(exc).__name__}: {exc}"


def _series_uids(paths: Any) -> set[str]:
    """Series Instance UIDs of DICOM files, from their headers."""
    import pydicom

    uids = set()
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                                 specific_tags=["SeriesInstanceUID"])
        except Exception:  # unreadable: the read errors already say why
            continue
        uids.add(str(getattr(ds, "SeriesInstanceUID", "")))
    return uids


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def clinical_available() -> bool:
    """Whether issue 4's dose extractor is installed."""
    return _present("scanbench.clinical.dose")


def run_study_job(spec: JobSpec) -> JobOutcome:
    """Dose and workflow of one clinical study from all its files (issue 4's
    ``doses_from_paths`` and ``workflow_from_paths``, each when installed)."""
    from pathlib import Path

    out = JobOutcome(spec.job_id)
    paths = [Path(f) for f in spec.files]
    if clinical_available():
        from scanbench.clinical.dose import doses_from_paths

        dose = doses_from_paths(paths)
        out.doses = [_as_dict(s) for s in _items(dose, "studies")]
        out.notes.extend(str(w) for w in _problems(dose))
        out.notes.append(f"dose: {len(out.doses)} study record(s)")
    else:
        out.notes.append("dose extraction not available: scanbench.clinical (issue 4) is "
                         "not installed; run `scanbench jobs retry` once it is")
    if _present("scanbench.clinical.workflow"):
        from scanbench.clinical.workflow import workflow_from_paths

        try:
            flow = workflow_from_paths(paths)
        except ScanbenchError as exc:  # a study with no timings (e.g. a lone dose report)
            out.notes.append(f"workflow: {exc}")
        else:
            out.timings = [_as_dict(e) for e in _items(flow, "exams")]
            out.notes.extend(str(w) for w in _problems(flow))
    else:
        out.notes.append("workflow timings not available: scanbench.clinical.workflow "
                         "(issue 4) is not installed")
    from scanbench.service import clinical_iq  # PET liver noise (PET with its CT)

    clinical_iq.measure_study(list(spec.files), out, spec.params)
    return out


def _items(report: Any, name: str) -> list[Any]:
    for attr in (name, "studies", "exams", "items"):
        if hasattr(report, attr):
            return list(getattr(report, attr))
    return list(report) if isinstance(report, list | tuple) else [report]


def _problems(report: Any) -> list[Any]:
    found: list[Any] = []
    for attr in ("warnings", "notes", "failures"):
        value = getattr(report, attr, None)
        if isinstance(value, list | tuple):
            found.extend(": ".join(map(str, v)) if isinstance(v, tuple) else v for v in value)
    return found


def _as_dict(obj: Any) -> dict[str, Any]:
    d = obj.to_dict() if hasattr(obj, "to_dict") else obj
    if not isinstance(d, dict):
        raise JobFailed(f"the extractor returned {type(d).__name__}, not a JSON object")
    return d


# --------------------------------------------------------------------------- executors
# Where jobs run (in process, local worker processes, Dask), with timeouts and cancel:
# scanbench.service.executors, importable from here as before.
from scanbench.service.executors import (  # noqa: E402
    DaskExecutor,
    Handle,
    InlineExecutor,
    JobCancelled,
    JobExecutor,
    JobInterrupted,
    JobStopped,
    JobTimedOut,
    LocalExecutor,
    WorkerDied,
    make_executor,
)

__all__ = ["DaskExecutor", "Handle", "InlineExecutor", "JobCancelled", "JobExecutor",
           "JobFailed", "JobInterrupted", "JobOutcome", "JobSpec", "JobStopped",
           "JobTimedOut", "LocalExecutor", "WorkerDied", "make_executor", "run_job"]
