"""PET/CT co-registration accuracy from point markers, NEMA NU 2-2018 (co-registration clause).

Procedure (STANDARDS.md A.7; the marker layout and the 115 kg table load are
[U] there: the analysis takes whatever markers are imaged):

1. **Pairing.** A PET series of point markers (a few hot spots on an empty
   background) and a CT series of the same markers (small dense beads) that share
   the Frame of Reference UID, else the Study Instance UID, are analysed
   together (the multi-series hook, :class:`scanbench.analysis.base.GroupAnalysis`).
2. **Markers.** In each image the markers are the separated local maxima (the
   spatial-resolution source finder; on CT after subtracting the background
   median). Each marker's position is the centroid of the background-subtracted
   intensity in a box of ``±box_mm`` (PET 12 mm, CT 4 mm) around its hottest
   voxel, the background being the median of the box's outer shell; no
   threshold is applied, so that the sampling of a symmetric spot gives no bias.
3. **Matching.** Each PET marker is paired with the nearest CT marker within
   ``max_match_mm`` (10 mm), in patient coordinates (both series' affines).
4. **Error.** ``coregistration_error_mm`` per marker (labels: ``marker`` number
   and its PET position), the component offsets, and
   ``max_coregistration_error_mm``, the figure NEMA reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.base import Parameter, result_for
from scanbench.analysis.pet.spatial_resolution import SpatialResolution, find_point_sources
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError
from scanbench.types import Result, Series

PET_BOX_MM = 12.0
CT_BOX_MM = 4.0
MAX_MATCH_MM = 10.0


def marker_centroid(v: np.ndarray, peak: tuple[int, int, int],
                    spacing: tuple[float, float, float], box_mm: float) -> np.ndarray:
    """Fractional (k, j, i) centroid of the background-subtracted spot around ``peak``."""
    half = [max(1, round(box_mm / s)) for s in spacing]
    lo = [max(0, p - h) for p, h in zip(peak, half, strict=True)]
    hi = [min(n, p + h + 1) for p, h, n in zip(peak, half, v.shape, strict=True)]
    box = np.asarray(v[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], dtype=float)
    shell = np.ones(box.shape, dtype=bool)
    shell[1:-1, 1:-1, 1:-1] = False
    w = box - float(np.median(box[shell]))
    total = w.sum()
    if not total > 0:
        raise AnalysisError(f"marker at voxel {peak} has no signal above its surroundings")
    grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij")
    return np.array([float((g * w).sum() / total) for g in grids])


def _markers(series: Series, box_mm: float, subtract_median: bool) -> np.ndarray:
    v = np.asarray(series.voxels, dtype=np.float32)
    if subtract_median:
        v = v - float(np.median(v[::2, ::4, ::4]))
    peaks = find_point_sources(v, series.spacing, separation_mm=15.0, threshold_fraction=0.3)
    if not peaks:
        raise AnalysisError("no marker found", series.uid)
    idx = np.array([marker_centroid(v, p, series.spacing, box_mm) for p in peaks])
    return np.asarray(series.index_to_patient(idx))


def _looks_like_ct_markers(series: Series) -> bool:
    try:
        v = np.asarray(series.voxels)
        return int(np.count_nonzero(v[::2] > 500.0)) < 0.002 * v[::2].size and bool(
            np.any(v > 500.0))
    except Exception:
        return False


@register
class Coregistration:
    """NEMA NU 2-2018: PET/CT co-registration accuracy (point markers in both)."""

    id: ClassVar[str] = "pet.nema_nu2_2018.coregistration"
    modality: ClassVar[str] = "PT"
    standard: ClassVar[str] = (
        "NEMA NU 2-2018: PET/CT co-registration accuracy test, new in the 2018 edition (see "
        "docs/standards/nema-nu2-2018.md#pet-ct-co-registration-accuracy)")
    title: ClassVar[str] = "PET/CT co-registration (point markers in PET and CT)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("max_match_mm", "a PET and a CT marker farther apart than this are not "
                  "the same marker", "mm", 10.0),
        Parameter("pet_box_mm", "side of the box around each PET marker over which its "
                  "centroid is taken", "mm", 12.0),
        Parameter("ct_box_mm", "side of the box around each CT marker over which its "
                  "centroid is taken", "mm", 4.0),
    )

    def detect(self, series: Series) -> float:
        return 0.0  # needs its CT partner: chosen through group()

    def run(self, series: Series, **params: Any) -> Result:
        raise AnalysisError("co-registration needs the PET and the CT series of the markers "
                            "together: give both to scanbench analyze")

    def group(self, series: Sequence[Series]) -> list[tuple[Series, ...]]:
        pets = [s for s in series if s.facts.modality == "PT"
                and SpatialResolution().detect(s) >= 0.5]
        cts = [s for s in series if s.facts.modality == "CT"]
        out: list[tuple[Series, ...]] = []
        used: set[int] = set()
        for p in pets:
            for key in ("frame_of_reference_uid", "study_instance_uid"):
                mine = getattr(p.facts, key)
                match = [c for c in cts if id(c) not in used and mine
                         and getattr(c.facts, key) == mine and _looks_like_ct_markers(c)]
                if match:
                    used.add(id(match[0]))
                    out.append((p, match[0]))
                    break
        return out

    def run_group(self, group: tuple[Series, ...], **params: Any) -> list[Result]:
        pet = next((s for s in group if s.facts.modality == "PT"), None)
        ct = next((s for s in group if s.facts.modality == "CT"), None)
        if pet is None or ct is None:
            raise AnalysisError("co-registration needs one PET and one CT series")
        max_match = float(params.get("max_match_mm", MAX_MATCH_MM))
        result = result_for(self, pet)
        p_xyz = _markers(pet, float(params.get("pet_box_mm", PET_BOX_MM)), False)
        c_xyz = _markers(ct, float(params.get("ct_box_mm", CT_BOX_MM)), True)
        order = np.lexsort((p_xyz[:, 0], p_xyz[:, 1], p_xyz[:, 2]))
        p_xyz = p_xyz[order]
        pairs = []
        for n, p in enumerate(p_xyz, start=1):
            d = np.linalg.norm(c_xyz - p[None, :], axis=1)
            j = int(np.argmin(d))
            if d[j] > max_match:
                result.warnings.append(f"PET marker {n} at ({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f}) "
                                       f"mm has no CT marker within {max_match:g} mm")
                continue
            diff = c_xyz[j] - p
            lab = {"marker": n, "x_mm": round(float(p[0]), 1), "y_mm": round(float(p[1]), 1),
                   "z_mm": round(float(p[2]), 1)}
            result.add("coregistration_error_mm", float(d[j]), "mm", labels=dict(lab))
            for axis, comp in zip("xyz", diff, strict=True):
                result.add("coregistration_offset_mm", float(comp), "mm",
                           labels={"marker": n, "axis": axis})
            pairs.append((p, c_xyz[j]))
        if not pairs:
            raise AnalysisError("no PET marker has a CT marker within "
                                f"{max_match:g} mm; are these the same markers?")
        errs = [float(np.linalg.norm(c - p)) for p, c in pairs]
        result.add("max_coregistration_error_mm", max(errs), "mm", labels={"n_markers": len(errs)})
        if len(c_xyz) != len(p_xyz):
            result.warnings.append(f"{len(p_xyz)} markers in PET, {len(c_xyz)} in CT")
        result.parameters = {"max_match_mm": max_match, "ct_series": ct.uid,
                             "pet_box_mm": float(params.get("pet_box_mm", PET_BOX_MM)),
                             "ct_box_mm": float(params.get("ct_box_mm", CT_BOX_MM))}
        result.evidence = {"pairs": [(p.tolist(), c.tolist()) for p, c in pairs]}
        return [result]

    def figures(self, result: Result) -> list[Any]:
        """PET and CT marker positions (transverse and coronal) with the error vectors."""
        import plotly.graph_objects as go

        pairs = result.evidence.get("pairs", [])
        if not pairs:
            return []
        figs = []
        for a, b, name in ((0, 1, "transverse (x, y)"), (0, 2, "coronal (x, z)")):
            fig = go.Figure()
            fig.add_trace(go.Scatter(x=[p[a] for p, _ in pairs], y=[p[b] for p, _ in pairs],
                                     mode="markers", name="PET"))
            fig.add_trace(go.Scatter(x=[c[a] for _, c in pairs], y=[c[b] for _, c in pairs],
                                     mode="markers", name="CT", marker={"symbol": "x"}))
            fig.update_layout(title=f"Marker centroids, {name}", xaxis_title="mm",
                              yaxis_title="mm")
            figs.append(fig)
        return figs
