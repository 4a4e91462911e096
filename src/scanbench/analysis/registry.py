"""Where analyses register, and how a series finds its analysis.

A new analysis is a class decorated with :func:`register` in its module, and one line
in :data:`CATALOGUE` (its id, modality and module): the registry imports a module only
when a run needs one of its analyses (a series of that modality, or the id named).
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Iterable

import numpy as np

from scanbench.analysis.base import Analysis
from scanbench.errors import AnalysisError
from scanbench.types import Series

# Every analysis the modules register: id -> (modality, module that registers it), in the
# order they are listed (``choose`` breaks equal confidences in this order). The registry
# knows ids and modalities without importing a module, so a run imports only the analyses
# of the modalities present (issue 15: importing every CT and MR analysis, with scipy's
# heavier parts, took about 1.5 s of a 3 s PET run). A module that registers an id missing
# here, or under another modality or module, is refused when it registers (and
# tests/unit/analysis/test_import_hygiene.py checks that every entry registers).
CATALOGUE: dict[str, tuple[str, str]] = {
    "pet.nema_nu2_2018.image_quality": ("PT", "scanbench.analysis.pet.image_quality"),
    "pet.nema_nu2_2018.spatial_resolution": ("PT", "scanbench.analysis.pet.spatial_resolution"),
    "pet.calibration_uniformity": ("PT", "scanbench.analysis.pet.calibration_uniformity"),
    "pet.nema_nu2_2018.sensitivity": ("PT", "scanbench.analysis.pet.sensitivity"),  # raw data
    "pet.nema_nu2_2018.count_rate": ("PT", "scanbench.analysis.pet.count_rate"),
    "pet.nema_nu2_2018.tof_resolution": ("PT", "scanbench.analysis.pet.tof_resolution"),
    "pet.nema_nu2_2018.coregistration": ("PT", "scanbench.analysis.pet.coregistration"),
    "pet.nema_nu2_2018.corrections_accuracy": (
        "PT", "scanbench.analysis.pet.corrections_accuracy"),
    "pet.clinical_liver_noise": ("PT", "scanbench.quality.pet_liver"),  # patients
    "ct.acr464": ("CT", "scanbench.analysis.ct.acr464"),
    "ct.catphan": ("CT", "scanbench.analysis.ct.catphan"),
    "ct.dose_verification": ("CT", "scanbench.analysis.ct.dose_verification"),
    "ct.mtf": ("CT", "scanbench.analysis.ct.mtf"),
    "ct.water": ("CT", "scanbench.analysis.ct.water"),
    "ct.nps": ("CT", "scanbench.analysis.ct.nps"),
    "ct.clinical_global_noise": ("CT", "scanbench.quality.ct_noise"),  # patients
    "mr.acr.geometric_accuracy": ("MR", "scanbench.analysis.mr.acr_geometry"),
    "mr.acr.uniformity": ("MR", "scanbench.analysis.mr.acr_uniformity"),
    "mr.acr.ghosting": ("MR", "scanbench.analysis.mr.acr_ghosting"),
    "mr.acr.low_contrast": ("MR", "scanbench.analysis.mr.acr_low_contrast"),
    "mr.acr.high_contrast_resolution": ("MR", "scanbench.analysis.mr.acr_resolution"),
    "mr.acr.slice_position": ("MR", "scanbench.analysis.mr.acr_slice_position"),
    "mr.acr.slice_thickness": ("MR", "scanbench.analysis.mr.acr_slice_thickness"),
    "mr.acr": ("MR", "scanbench.analysis.mr.acr_suite"),
    "mr.nema_ms1.snr": ("MR", "scanbench.analysis.mr.snr"),
    "mr.nema_ms3.uniformity": ("MR", "scanbench.analysis.mr.uniformity"),
}

_REGISTRY: dict[str, Analysis] = {}
_imported: set[str] = set()


def register(cls: type) -> type:
    """Class decorator: register one instance of an Analysis class under its id."""
    inst = cls()
    if not isinstance(inst, Analysis):
        raise TypeError(f"{cls.__name__} does not implement the Analysis protocol")
    if inst.id in _REGISTRY:
        raise ValueError(f"analysis id {inst.id!r} registered twice")
    if CATALOGUE.get(inst.id) != (inst.modality, cls.__module__):
        raise ValueError(f"analysis {inst.id!r} ({inst.modality}, {cls.__module__}) is not in "
                         "scanbench.analysis.registry.CATALOGUE as such: add it there")
    _REGISTRY[inst.id] = inst
    return cls


def _import(modules: Iterable[str]) -> None:
    for mod in modules:
        if mod not in _imported:
            importlib.import_module(mod)
            _imported.add(mod)


def all_analyses(modality: str | Collection[str] | None = None) -> dict[str, Analysis]:
    """Every registered analysis by id, in catalogue order; with ``modality`` (one DICOM
    modality or several) only those analyses, and only their modules are imported."""
    wanted = None if modality is None else (
        {modality} if isinstance(modality, str) else set(modality))
    _import(dict.fromkeys(mod for mo, mod in CATALOGUE.values()
                          if wanted is None or mo in wanted))
    # Catalogue order whatever order the modules were imported in; analyses put in the
    # registry by hand (tests) after them, as they came.
    ids = [a for a in CATALOGUE if a in _REGISTRY] + [a for a in _REGISTRY if a not in CATALOGUE]
    return {a: _REGISTRY[a] for a in ids
            if wanted is None or _REGISTRY[a].modality in wanted}


def get(analysis_id: str) -> Analysis:
    """The analysis ``analysis_id``, importing only its module."""
    if analysis_id not in _REGISTRY and analysis_id in CATALOGUE:
        _import([CATALOGUE[analysis_id][1]])
    if analysis_id not in _REGISTRY:
        known = ", ".join(sorted(set(CATALOGUE) | set(_REGISTRY)))
        raise AnalysisError(f"unknown analysis {analysis_id!r}; known analyses: {known}")
    return _REGISTRY[analysis_id]


# Below this confidence no analysis is chosen automatically.
MIN_CONFIDENCE = 0.5


def accepts(analysis: Analysis, series: Series) -> bool:
    """Whether ``analysis`` may measure ``series``: a series of isolated slices (not a
    contiguous volume) only goes to an analysis that measures each slice on its own
    (class attribute ``accepts_isolated_slices``, e.g. ct.catphan)."""
    return series.isolated_positions_mm is None or bool(
        getattr(analysis, "accepts_isolated_slices", False))


def check_accepts(analysis: Analysis, series: Series) -> None:
    """AnalysisError, with the slice positions, when ``analysis`` may not take ``series``."""
    if not accepts(analysis, series):
        z = series.isolated_positions_mm
        assert z is not None
        steps = ", ".join(f"{s:.2f}" for s in sorted(set(np.round(np.diff(z), 2)))[:6])
        raise AnalysisError(
            f"missing slice(s): the series holds {len(z)} isolated slices (steps {steps} mm "
            f"along the slice normal), not a contiguous volume; {analysis.id} needs one")


def choose(series: Series) -> tuple[Analysis, float]:
    """The most confident analysis for a series, or AnalysisError naming the best guesses."""
    scores = []
    for a in all_analyses(series.facts.modality).values():
        if a.modality != series.facts.modality or not accepts(a, series):
            continue
        try:
            score = float(a.detect(series))
        except Exception as exc:  # detect must never stop the choice of another analysis
            score = 0.0
            series.warnings.append(f"{a.id}: detection failed ({exc})")
        scores.append((score, a))
    scores.sort(key=lambda t: -t[0])
    if not scores or scores[0][0] < MIN_CONFIDENCE:
        tried = ", ".join(f"{a.id} {s:.2f}" for s, a in scores) or "none for this modality"
        if series.isolated_positions_mm is not None:
            takers = ", ".join(a.id for a in all_analyses().values()
                               if getattr(a, "accepts_isolated_slices", False))
            tried += (f"; the series is {len(series.isolated_positions_mm)} isolated slices "
                      f"with missing slices between them, which only {takers} measures")
        raise AnalysisError(
            f"no analysis recognises this {series.facts.modality} series as its phantom "
            f"(confidence: {tried}); name one with --analysis")
    return scores[0][1], scores[0][0]

