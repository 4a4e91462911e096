"""Helpers shared by the MRI analyses: the object in a slice, central ROIs, background
regions, the NEMA ROI geometry, header numbers the MR analyses need.

- :func:`object_mask`: the phantom in one slice (Otsu threshold, largest connected
  component, holes filled), so that it works for round, square or bottle phantoms.
- :func:`central_roi`: the central part of the object holding a given fraction of its
  area, found from the distance to the object's edge (for a disc: a concentric disc of
  that area; for other shapes: the same shape shrunk evenly), so "75 % of the phantom
  area" (NEMA MS 1 / MS 3 practice, STANDARDS.md C.2 [U]) is well defined on any shape.
- :func:`background_rois`: four ellipses (10 cm², 4:1, the ACR ghosting geometry,
  STANDARDS.md C.1 #6 [C]) midway between the object and the image edges: top/bottom
  along the columns, left/right along the rows.
- :func:`air_region`: background far from the object and away from the band the
  object's ghosts fall into (the phase-encode direction through the object), for the
  single-image noise estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scanbench.analysis.memo import memo
from scanbench.errors import AnalysisError
from scanbench.types import Series


@dataclass(frozen=True)
class ObjectSlice:
    """The phantom in one slice: mask, centroid (row, col), equivalent radius (px)."""

    index: int
    image: np.ndarray
    mask: np.ndarray
    centre_rc: tuple[float, float]
    radius_px: float
    level: float  # median signal inside the object
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def area_px(self) -> int:
        return int(self.mask.sum())

    @property
    def depth(self) -> np.ndarray:
        """Distance (pixels) of every object pixel to the object's edge."""
        if "depth" not in self._cache:
            from scipy import ndimage  # here: an ACR MRI run never needs it (issue 15)

            self._cache["depth"] = ndimage.distance_transform_edt(self.mask)
        return np.asarray(self._cache["depth"])

    def central(self, fraction: float) -> np.ndarray:
        """``central_roi(mask, fraction)``, computed once per fraction."""
        key = ("central", round(float(fraction), 6))
        if key not in self._cache:
            self._cache[key] = central_roi(self.mask, fraction, self.depth)
        return np.asarray(self._cache[key])


def object_mask(image: np.ndarray) -> np.ndarray:
    """The largest bright connected object, holes filled (Otsu threshold)."""
    from scipy import ndimage  # here, not at import: an ACR MRI run never needs it (issue 15)
    from skimage.filters import threshold_otsu

    img = np.asarray(image, dtype=float)
    finite = img[np.isfinite(img)]
    if finite.size == 0 or float(finite.max()) <= float(finite.min()):
        return np.zeros(img.shape, bool)
    t = float(threshold_otsu(finite))
    labels, n = ndimage.label(img > t)
    if n == 0:
        return np.zeros(img.shape, bool)
    sizes = ndimage.sum_labels(np.ones_like(img), labels, index=np.arange(1, n + 1))
    mask = labels == (int(np.argmax(sizes)) + 1)
    return np.asarray(ndimage.binary_fill_holes(mask), dtype=bool)


def find_object(series: Series, index: int | None = None) -> ObjectSlice:
    """The object in slice ``index`` (default: the middle slice); AnalysisError when the
    slice holds no clear object."""
    nz = series.shape[0]
    k = nz // 2 if index is None else int(index)
    if not 0 <= k < nz:
        raise AnalysisError(f"slice {k} is outside the series (0..{nz - 1})")

    def compute() -> ObjectSlice:
        img = np.asarray(series.voxels[k], dtype=float)
        mask = object_mask(img)
        area = int(mask.sum())
        if area < 0.02 * img.size:
            raise AnalysisError(
                f"slice {k}: no phantom found (the largest bright object covers "
                f"{100 * area / img.size:.1f} % of the image)")
        rows, cols = np.nonzero(mask)
        return ObjectSlice(k, img, mask, (float(rows.mean()), float(cols.mean())),
                           math.sqrt(area / math.pi), float(np.median(img[mask])))

    return memo(series, f"mr.common.object.{k}", compute)


def central_roi(mask: np.ndarray, fraction: float, depth: np.ndarray | None = None) -> np.ndarray:
    """The central ``fraction`` of the object's area: pixels deepest inside it."""
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    if depth is None:
        from scipy import ndimage  # here: an ACR MRI run never needs it (issue 15)

        depth = ndimage.distance_transform_edt(mask)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return np.zeros_like(mask)
    # deepest first; among equal depths the pixels nearer the centroid (ties are common:
    # a square's depth is constant along lines)
    near = np.hypot(rows - rows.mean(), cols - cols.mean())
    # depth first, nearness only among equal depths: distinct Euclidean depths √a − √b
    # differ by at least 1/(2·depth) pixel (> 5e-4 up to 1000-pixel phantoms); the
    # nearness term stays below 1e-4
    key = depth[rows, cols] - 1e-4 * near / max(float(near.max()), 1.0)
    k = max(1, round(fraction * rows.size))
    keep = np.argpartition(-key, k - 1)[:k]
    out = np.zeros_like(mask, dtype=bool)
    out[rows[keep], cols[keep]] = True
    return out


def ellipse_mask(shape: tuple[int, int], centre_rc: tuple[float, float], half_cols: float,
                 half_rows: float) -> np.ndarray:
    r, c = np.ogrid[: shape[0], : shape[1]]
    return ((c - centre_rc[1]) / half_cols) ** 2 + ((r - centre_rc[0]) / half_rows) ** 2 <= 1.0


def disc_mask(shape: tuple[int, int], centre_rc: tuple[float, float],
              radius_px: float) -> np.ndarray:
    r, c = np.ogrid[: shape[0], : shape[1]]
    return (r - centre_rc[0]) ** 2 + (c - centre_rc[1]) ** 2 <= radius_px**2


def background_rois(obj: ObjectSlice, pixel_mm: float, area_cm2: float = 10.0,
                    aspect: float = 4.0) -> tuple[dict[str, np.ndarray], list[str]]:
    """The four background ellipses (top, bottom, left, right) midway between the object
    and the image edge; an ellipse too wide for its gap is shrunk to fit (said in the
    returned notes)."""
    ny, nx = obj.image.shape
    rows, cols = np.nonzero(obj.mask)
    gaps = {"top": float(rows.min()), "bottom": float(ny - 1 - rows.max()),
            "left": float(cols.min()), "right": float(nx - 1 - cols.max())}
    b = math.sqrt(area_cm2 * 100 / (math.pi * aspect)) / pixel_mm
    a = aspect * b
    notes = []
    out = {}
    rc, cc = obj.centre_rc
    for side, gap in gaps.items():
        bb, aa = b, a
        if 2 * bb + 2 > gap:
            bb = max((gap - 2) / 2, 1.0)
            aa = aspect * bb
            area = math.pi * aa * bb * pixel_mm**2 / 100
            notes.append(f"{side} background ROI shrunk to {area:.1f} cm² to fit the "
                         f"{gap * pixel_mm:.0f} mm between phantom and image edge")
        if side == "top":
            out[side] = ellipse_mask((ny, nx), (gap / 2, cc), aa, bb)
        elif side == "bottom":
            out[side] = ellipse_mask((ny, nx), (ny - 1 - gap / 2, cc), aa, bb)
        elif side == "left":
            out[side] = ellipse_mask((ny, nx), (rc, gap / 2), bb, aa)
        else:
            out[side] = ellipse_mask((ny, nx), (rc, nx - 1 - gap / 2), bb, aa)
    return out, notes


def air_region(obj: ObjectSlice, phase_direction: str | None, pixel_mm: float,
               margin_mm: float = 10.0, edge_px: int = 3) -> np.ndarray:
    """Background for the single-image noise: at least ``margin_mm`` from the object,
    ``edge_px`` from the image border, and outside the band through the object along the
    phase-encode direction (where ghosts fall; both bands when the direction is unknown)."""
    from scipy import ndimage  # here, not at import: an ACR MRI run never needs it (issue 15)

    grown = ndimage.binary_dilation(obj.mask, iterations=max(1, round(margin_mm / pixel_mm)))
    air = ~grown
    air[:edge_px, :] = air[-edge_px:, :] = False
    air[:, :edge_px] = air[:, -edge_px:] = False
    rows, cols = np.nonzero(grown)
    if phase_direction in (None, "COL"):  # ghosts along the columns: the vertical band
        air[:, cols.min():cols.max() + 1] = False
    if phase_direction in (None, "ROW"):
        air[rows.min():rows.max() + 1, :] = False
    return air


def slice_thickness_mm(series: Series) -> float | None:
    """Slice Thickness (0018,0050) of the series' first file (MrFacts does not carry it);
    None when unreadable."""

    def compute() -> float | None:
        import pydicom

        for f in series.files[:1]:
            try:
                ds = pydicom.dcmread(Path(f), stop_before_pixels=True, specific_tags=[
                    "SliceThickness", "SharedFunctionalGroupsSequence"])
            except Exception:
                return None
            v = ds.get("SliceThickness")
            if v is None:
                shared = ds.get("SharedFunctionalGroupsSequence")
                try:
                    v = shared[0].PixelMeasuresSequence[0].SliceThickness
                except Exception:
                    v = None
            try:
                return float(v) if v is not None else None
            except (TypeError, ValueError):
                return None
        return None

    return memo(series, "mr.common.slice_thickness", compute)


def number_param(params: dict[str, object], key: str, default: float, low: float,
                 high: float) -> float:
    """``--param key=value`` as a number in [low, high], AnalysisError naming it otherwise."""
    raw = params.get(key, default)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AnalysisError(f"parameter {key} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise AnalysisError(f"parameter {key} must be between {low:g} and {high:g}, got {value:g}")
    return value


def slice_param(params: dict[str, object], series: Series) -> int | None:
    """``--param slice=K`` (0-based index into the series) or None."""
    if params.get("slice") is None:
        return None
    k = number_param(params, "slice", 0, 0, series.shape[0] - 1)
    if k != int(k):
        raise AnalysisError(f"parameter slice must be a whole number, got {k:g}")
    return int(k)


def field_strength_t(series: Series) -> float | None:
    mr = series.facts.mr
    return mr.field_strength_t if mr is not None else None


def same_acquisition(a: Series, b: Series, tol_mm: float = 0.01) -> bool:
    """Whether two series are repeats of one acquisition: same grid, same place, same
    sequence parameters (the NEMA MS 1 pair)."""
    if a is b or a.shape != b.shape or a.facts.modality != "MR" or b.facts.modality != "MR":
        return False
    if a.uid == b.uid and a.files == b.files:
        return False
    if not np.allclose(a.affine, b.affine, atol=tol_mm):
        return False
    if a.facts.frame_of_reference_uid and b.facts.frame_of_reference_uid and \
            a.facts.frame_of_reference_uid != b.facts.frame_of_reference_uid and \
            a.facts.study_instance_uid != b.facts.study_instance_uid:
        return False
    ma, mb = a.facts.mr, b.facts.mr
    if ma is None or mb is None:
        return False
    for name in ("repetition_time_ms", "echo_time_ms", "flip_angle_deg", "pixel_bandwidth_hz",
                 "averages", "acquisition_matrix", "field_strength_t",
                 "phase_encoding_direction", "receive_coil"):
        va, vb = getattr(ma, name), getattr(mb, name)
        if isinstance(va, float) and isinstance(vb, float):
            if not math.isclose(va, vb, rel_tol=1e-3, abs_tol=1e-3):
                return False
        elif va != vb:
            return False
    return True


def image_figure(image: np.ndarray, spacing_yx: tuple[float, float], title: str,
                 outlines: list[tuple[np.ndarray, str, str]]) -> object:
    """A greyscale slice in mm with each mask drawn as its outline (a few hundred points,
    not a second image): ``outlines`` are (mask, colour, name). The slice is drawn as
    every report image is (:func:`scanbench.report.figures.image_figure`: high signal
    white, 0.5–99.9 percentile window, reduced for display)."""
    import plotly.graph_objects as go
    from skimage.measure import find_contours

    from scanbench.report.figures import image_figure as report_image

    dy, dx = spacing_yx
    img = np.asarray(image, dtype=np.float32)
    fig = report_image(img, (dy, dx), title, unit="signal")
    for mask, colour, name in outlines:
        first = True
        for c in find_contours(mask.astype(float), 0.5):
            fig.add_trace(go.Scatter(x=c[:, 1] * dx, y=c[:, 0] * dy, mode="lines", name=name,
                                     line={"color": colour, "width": 2}, showlegend=first,
                                     legendgroup=name))
            first = False
    fig.update_layout(legend={"orientation": "h", "y": -0.15})
    return fig
