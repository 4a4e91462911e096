"""Route what arrives: each instance by its header, each quiet series by its content.

At store time (:func:`instance_kind`, header only, cheap): a dose report (CT or
X-ray Radiation Dose SR, Radiopharmaceutical Radiation Dose SR, or an enhanced /
comprehensive SR whose document title is a dose report: PS3.16 TID 10011
"CT Radiation Dose" (title code 113701 DCM), TID 10021 "Radiopharmaceutical
Radiation Dose" (113500 DCM)) → ``dose_report``; an image SOP class →
``image``; anything else (other SRs, presentation states, raw data...) →
``other``, kept but not analysed. When issue 4's ``scanbench.clinical.dose``
offers ``classify_dataset``, its finer routing is used.

When a series is quiet, its job asks the analysis registry (``registry.choose``):
a phantom an analysis recognises is analysed, any other image series is a
clinical series, and its study gets the dose and workflow job (as does the
study of a dose report).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from pydicom.dataset import Dataset

from scanbench.dicom import headers as h

log = logging.getLogger("scanbench.node")

DOSE_SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.67",  # X-Ray Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.88.68",  # Radiopharmaceutical Radiation Dose SR
}
GENERIC_SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
}
#: Document titles (Concept Name Code Sequence of the root, DCM) of dose reports.
DOSE_TITLES = {"113701", "113500"}
#: Storage SOP classes whose instances are images (PS3.4 B.5), by UID prefix.
_IMAGE_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.1",  # CR, DX, MG, IO
    "1.2.840.10008.5.1.4.1.1.2",  # CT, enhanced CT, legacy converted
    "1.2.840.10008.5.1.4.1.1.4",  # MR, enhanced MR, MR spectroscopy (not an image; below)
    "1.2.840.10008.5.1.4.1.1.6",  # ultrasound
    "1.2.840.10008.5.1.4.1.1.7",  # secondary capture
    "1.2.840.10008.5.1.4.1.1.12",  # X-ray angiography / RF
    "1.2.840.10008.5.1.4.1.1.20",  # NM
    "1.2.840.10008.5.1.4.1.1.128",  # PET, legacy converted enhanced PET
    "1.2.840.10008.5.1.4.1.1.130",  # enhanced PET
    "1.2.840.10008.5.1.4.1.1.481.1",  # RT image
)
_NOT_IMAGE = {"1.2.840.10008.5.1.4.1.1.4.2"}  # MR Spectroscopy


def _clinical_classifier() -> Callable[[Any], str] | None:
    try:
        from scanbench.clinical.dose import classify_dataset
    except Exception as exc:  # absent, or broken: routing by header alone still works
        if not isinstance(exc, ImportError):
            log.error("scanbench.clinical.dose cannot be imported (%s: %s); routing dose "
                      "reports by SOP class and document title", type(exc).__name__, exc)
        return None
    return classify_dataset


def instance_kind(ds: Dataset) -> str:
    """``dose_report``, ``image`` or ``other`` for one instance (module docstring)."""
    sop = h.text(ds, "SOPClassUID") or ""
    classify = _clinical_classifier()
    if classify is not None:
        try:
            kind = classify(ds)
        except Exception:
            kind = None
        if kind in ("ct_dose_sr", "radiopharmaceutical_sr", "dose_screen"):
            return "dose_report"  # a dose screen: its study's dose job says "not parsed"
        if kind == "other_sr":
            return "other"
        if kind == "image":
            return "image"
    if sop in DOSE_SR_CLASSES:
        return "dose_report"
    if sop in GENERIC_SR_CLASSES:
        title = h.item(ds, "ConceptNameCodeSequence")
        if (h.text(title, "CodeValue") in DOSE_TITLES
                and h.text(title, "CodingSchemeDesignator") == "DCM"):
            return "dose_report"
        return "other"
    if sop not in _NOT_IMAGE and any(sop == p or sop.startswith(p + ".")
                                     for p in _IMAGE_PREFIXES):
        return "image" if h.has(ds, "PixelData") or h.has(ds, "FloatPixelData") else "other"
    return "other"


#: How many identical copies of a series stand for "its repeats": enough for the group
#: analysis that needs the most series of one kind (NEMA NU 2-2018 section 7.6
#: corrections accuracy needs five frames or more).
_REPEATS = 5


def awaited_by(series: Any, pool: Sequence[Any]) -> str | None:
    """The id of a multi-series analysis (:class:`scanbench.analysis.base.GroupAnalysis`)
    that could claim ``series`` once its partners are in, or None.

    The test asks each group analysis's own ``group()``: is ``series`` in a group when it
    is offered with ``pool`` (the other phantom series already received in its study)
    and with repeats of itself (the same images under other Series Instance UIDs: what
    an ACR T1 / T2 pair, a NEMA MS 1 SNR pair or a run of frames look like to a
    grouping)? ``group()`` never raises by contract; if one does, that analysis is left
    out.
    """
    from scanbench.analysis import registry
    from scanbench.analysis.base import is_group_analysis

    offered = [*(p for p in pool if p is not series), series,
               *(_repeat(series, k) for k in range(1, _REPEATS))]
    for a in sorted(registry.all_analyses().values(), key=lambda a: a.id):
        if not is_group_analysis(a) or not getattr(a, "automatic", True):
            continue  # a named-only analysis (automatic False) is never waited for
        try:
            groups = a.group(offered)  # type: ignore[attr-defined]
        except Exception as exc:
            log.error("%s.group failed (%s: %s); not waiting for its partners", a.id,
                      type(exc).__name__, exc)
            continue
        if any(any(s is series for s in g) for g in groups):
            return str(a.id)
    return None


def _repeat(series: Any, k: int) -> Any:
    """``series`` as if acquired again: the same voxels and facts under another Series
    Instance UID, sharing the memo of derived data (same voxels, same derivations)."""
    facts = dataclasses.replace(series.facts,
                                series_instance_uid=f"{series.uid or 'series'}.repeat{k}")
    twin = dataclasses.replace(series, facts=facts)
    twin.derived = series.derived
    return twin
