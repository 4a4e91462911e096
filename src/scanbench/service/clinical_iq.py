"""Clinical image quality measured by the node on the patient series it receives
(issue 16 §3): which series are measured, and how.

Rule (documented in docs/clinical-image-quality.md, "On the node"): a series job's
series that **no phantom analysis recognises** (the node calls it clinical) is a
patient's series; of those, every **axial CT** series (slice normal within 25° of the
patient's z axis, at least 64 × 64 pixels) is measured with ``ct.clinical_global_noise``
through the one shared path from series to results
(:func:`scanbench.api.analyze_series_list`, named analysis). A phantom that no
analysis recognises would be taken for a patient: the site turns the measurement off
with ``SCANBENCH_CLINICAL_IQ=0`` if it scans such phantoms. Localisers (one projection
image, not axial) and reformats in other planes are left out.

The result carries, in ``parameters``, the protocol it is trended under: Protocol Name
(0018,1030), else Series Description (0008,103E) (``protocol``), both as read. A
series the method refuses (a lung or bone kernel, a contrast-enhanced series, too
little soft tissue) is stored with the refused values and the reason; a series the
analysis cannot measure at all is named in the job's notes with the reason.

PET liver noise (``pet.clinical_liver_noise``, issue 16 §2) needs the PET series with
the CT on its frame of reference, which arrive as separate series: it runs in the
study's job (:func:`measure_study`), once every series of the study is in, on every
PET series of the study, and is stored against the PET series.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scanbench.service.jobs import JobOutcome
    from scanbench.types import Series

ENV_CLINICAL_IQ = "SCANBENCH_CLINICAL_IQ"
CT_NOISE = "ct.clinical_global_noise"
PET_LIVER = "pet.clinical_liver_noise"
#: modality -> the clinical image-quality analysis the node runs on its patient series
ANALYSES: dict[str, str] = {"CT": CT_NOISE}
#: cos(25°): the slice normal must be this close to the patient's z axis (axial)
_AXIAL_COS = 0.906
_MIN_PIXELS = 64


def enabled() -> bool:
    """Whether the node measures clinical image quality (``SCANBENCH_CLINICAL_IQ``)."""
    return os.environ.get(ENV_CLINICAL_IQ, "1").strip().lower() not in ("0", "no", "false",
                                                                        "off")


def why_not(series: Series) -> str | None:
    """None when ``series`` (already left unrecognised by the phantom analyses) is
    measured; otherwise why not."""
    if series.facts.modality not in ANALYSES:
        return f"no clinical image-quality measurement for modality {series.facts.modality}"
    rows, cols = series.shape[1:]
    if min(rows, cols) < _MIN_PIXELS:
        return f"{rows} × {cols} pixels: not a diagnostic image"
    # the affine's columns are the (z, y, x) voxel axes in patient LPS mm
    a = np.asarray(series.affine, dtype=float)[:3, :3]
    normal = np.cross(a[:, 2], a[:, 1])
    norm = float(np.linalg.norm(normal))
    if norm == 0 or abs(normal[2]) / norm < _AXIAL_COS:
        return "not an axial series"
    return None


def protocol_of(series: Series) -> dict[str, str | None]:
    """Protocol Name (0018,1030) of the first file and the Series Description; the
    ``protocol`` key is the first of them given (whitespace collapsed)."""
    name = None
    if series.files:
        try:
            import pydicom

            ds = pydicom.dcmread(series.files[0], stop_before_pixels=True,
                                 specific_tags=[(0x0018, 0x1030)])
            name = " ".join(str(ds.get("ProtocolName", "") or "").split()) or None
        except Exception:  # the series was read already; the tag is optional
            name = None
    desc = " ".join(str(series.facts.series_description or "").split()) or None
    return {"protocol": name or desc or "(no protocol name)", "protocol_name": name,
            "series_description": desc}


def measure(series: list[Series], read: list[Series], out: JobOutcome,
            params: Mapping[str, Any], analysis_params: Mapping[str, Mapping[str, Any]]
            ) -> None:
    """Measure the clinical image quality of ``series`` (a job's clinical series; ``read``
    all the series the job read) through :func:`scanbench.api.analyze_series_list`; the
    results go to ``out.results``, what was not measured to ``out.notes``."""
    if not enabled():
        return
    from scanbench.api import analyze_series_list

    by_analysis: dict[str, list[Series]] = {}
    for s in series:
        reason = why_not(s)
        if reason is None:
            by_analysis.setdefault(ANALYSES[s.facts.modality], []).append(s)
    for aid, chosen in by_analysis.items():
        report = analyze_series_list(read, analysis=aid, params=params,
                                     analysis_params=analysis_params,
                                     only={str(s.uid) for s in chosen})
        proto = {str(s.uid): protocol_of(s) for s in chosen}
        for result in report.results:
            result.parameters.update(proto.get(str(result.series_instance_uid), {}))
            result.evidence = {}
            out.results.append(result)
            refused = sorted({m.note for m in result.measurements
                              if m.status == "refused" and m.note})
            out.notes.append(f"clinical image quality {aid}: "
                             + ("refused: " + "; ".join(refused) if refused else "measured"))
        out.notes.extend(f"clinical image quality {aid} not measured: {f.where}: {f.reason}"
                         for f in report.failures)


def _has_pet(paths: list[str]) -> bool:
    """Whether any file of the study is a PET image (headers only, stops at the first)."""
    import pydicom

    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
        except Exception:  # unreadable here: the series jobs said why
            continue
        if str(getattr(ds, "Modality", "")) == "PT":
            return True
    return False


def measure_study(paths: list[str], out: JobOutcome, params: Mapping[str, Any]) -> None:
    """PET liver noise (:data:`PET_LIVER`) of each PET series of a patient study, with
    the CT on its frame of reference (the analysis groups them), from all the study's
    files: the study job's, run once every series of the study is in. Results go to
    ``out.results`` (stored against the PET series), what was not measured to
    ``out.notes``."""
    if not enabled() or not _has_pet(paths):
        return
    from pathlib import Path

    from scanbench import dicom
    from scanbench.analysis import registry
    from scanbench.api import analyze_series_list
    from scanbench.errors import ScanbenchError

    try:
        registry.get(PET_LIVER)
    except ScanbenchError:
        out.notes.append(f"clinical image quality: {PET_LIVER} is not installed")
        return
    read = dicom.read([Path(p) for p in paths])
    # every PET of a study the node handles as a patient's (it has a series no phantom
    # analysis recognises, or a dose report): not "no phantom analysis recognises the
    # PET", because the NEMA image-quality detector takes a whole-body patient PET for
    # the IEC body phantom at confidence 0.5; on a phantom the liver VOI is refused
    pets = {str(s.uid) for s in read.series if s.facts.modality == "PT"}
    if not pets:
        return
    report = analyze_series_list(read.series, analysis=PET_LIVER, params=params, only=pets)
    by_uid = {str(s.uid): s for s in read.series}
    for result in report.results:
        s = by_uid.get(str(result.series_instance_uid))
        if s is not None:
            result.parameters.update(protocol_of(s))
        result.evidence = {}
        out.results.append(result)
        refused = sorted({m.note for m in result.measurements
                          if m.status == "refused" and m.note})
        out.notes.append(f"clinical image quality {PET_LIVER}: "
                         + ("refused: " + "; ".join(refused) if refused else "measured"))
    out.notes.extend(f"clinical image quality {PET_LIVER} not measured: {f.where}: {f.reason}"
                     for f in report.failures)
