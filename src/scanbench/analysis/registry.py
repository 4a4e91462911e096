"""Where analyses register, and how a series finds its analysis."""

from __future__ import annotations

import importlib

import numpy as np

from scanbench.analysis.base import Analysis
from scanbench.errors import AnalysisError
from scanbench.types import Series

# Modules that hold analyses; importing one registers its analyses.
_MODULES = (
    "scanbench.analysis.pet.image_quality",
    "scanbench.analysis.pet.spatial_resolution",
    "scanbench.analysis.pet.calibration_uniformity",
    "scanbench.analysis.pet.sensitivity",  # raw data (issue 6)
    "scanbench.analysis.pet.count_rate",
    "scanbench.analysis.pet.tof_resolution",
    "scanbench.analysis.pet.coregistration",
    "scanbench.analysis.pet.corrections_accuracy",
    "scanbench.analysis.ct",  # the package imports each CT analysis module
    "scanbench.analysis.mr",  # the package imports each MR analysis module
)

_REGISTRY: dict[str, Analysis] = {}
_loaded = False


def register(cls: type) -> type:
    """Class decorator: register one instance of an Analysis class under its id."""
    inst = cls()
    if not isinstance(inst, Analysis):
        raise TypeError(f"{cls.__name__} does not implement the Analysis protocol")
    if inst.id in _REGISTRY:
        raise ValueError(f"analysis id {inst.id!r} registered twice")
    _REGISTRY[inst.id] = inst
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        for mod in _MODULES:
            importlib.import_module(mod)
        _loaded = True


def all_analyses() -> dict[str, Analysis]:
    _load()
    return dict(_REGISTRY)


def get(analysis_id: str) -> Analysis:
    analyses = all_analyses()
    if analysis_id not in analyses:
        known = ", ".join(sorted(analyses))
        raise AnalysisError(f"unknown analysis {analysis_id!r}; known analyses: {known}")
    return analyses[analysis_id]


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
    for a in all_analyses().values():
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

