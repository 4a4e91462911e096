"""From image planes to volumes: splitting, slice order, spacing checks and the affine.

Rules (DICOM PS3.3 C.7.6.2.1.1, Image Plane Module):

- the slice normal is the cross product of the row and column direction
  cosines of Image Orientation (Patient) (0020,0037);
- slices are ordered by the projection of Image Position (Patient)
  (0020,0032) on that normal — never by file name or Instance Number;
- the voxel (k, j, i) — slice, row, column — lies at
  ``P0 + k·s + j·Δr·C + i·Δc·R`` where R and C are the row and column
  direction cosines, Δr and Δc the Pixel Spacing (0028,0030) values (between
  rows, between columns) and ``s`` the step between slice positions; ``dz``
  is ``s`` projected on the normal (the distance between slice centres).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from scanbench.dicom.frames import Frame
from scanbench.errors import SeriesError

#: Relative and absolute tolerance on slice spacing (float jitter in written positions).
SPACING_RTOL = 1e-3
SPACING_ATOL_MM = 1e-3
#: A step larger than this many typical (median) spacings means missing slices.
GAP_FACTOR = 1.5
#: Orientation cosines equal within this are the same orientation.
ORIENTATION_ATOL = 1e-4
#: Isolated slices (a CatPhan exported as one slice per module): every step between
#: neighbouring slices is at least this many slice thicknesses and this many mm.
ISOLATED_STEP_THICKNESSES = 3.0
ISOLATED_STEP_MM = 10.0


@dataclass
class Stack:
    """Frames of one volume, ordered along the normal, with their geometry."""

    frames: list[Frame]
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm
    affine: np.ndarray  # (k, j, i, 1) → LPS (x, y, z, 1)
    warnings: list[str] = field(default_factory=list)
    # isolated slices only: each slice's position along the normal (mm); the affine's
    # slice step is then the slice thickness, not the distance between the slices
    isolated_positions_mm: np.ndarray | None = None


def plane_name(normal: np.ndarray) -> str:
    """Axial, coronal, sagittal or oblique, from the dominant LPS axis of the normal."""
    axis = int(np.argmax(np.abs(normal)))
    if abs(normal[axis]) < 0.9:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def split_volumes(frames: list[Frame], where: str) -> tuple[list[tuple[str, list[Frame]]],
                                                           list[str]]:
    """Split one series' frames into volumes that each have one orientation and size.

    Frames differing in orientation, Rows × Columns, Pixel Spacing, stack or
    temporal position (enhanced Frame Content, PS3.3 C.7.6.16.2.2) form
    separate volumes. If positions still repeat within a volume (classic
    dynamic or multi-echo series), the first header field that separates them
    is used (see ``frames._alternates``). Returns ``[(label, frames), ...]``
    and warnings; raises SeriesError if repeated positions cannot be resolved.
    """
    clusters: list[list[Frame]] = []
    for f in frames:
        for c in clusters:
            ref = c[0]
            # Identical (shared) cosines and equal spacings are close: skip allclose.
            if (f.rows == ref.rows and f.columns == ref.columns and f.split == ref.split
                    and (f.row_cosines is ref.row_cosines
                         or np.allclose(f.row_cosines, ref.row_cosines, atol=ORIENTATION_ATOL))
                    and (f.col_cosines is ref.col_cosines
                         or np.allclose(f.col_cosines, ref.col_cosines, atol=ORIENTATION_ATOL))
                    and (f.pixel_spacing == ref.pixel_spacing
                         or np.allclose(f.pixel_spacing, ref.pixel_spacing, rtol=1e-4))):
                c.append(f)
                break
        else:
            clusters.append([f])

    volumes: list[tuple[str, list[Frame]]] = []
    for c in clusters:
        for extra, part in _resolve_repeats(c, where):
            volumes.append((_label(part[0], extra), part))
    warnings: list[str] = []
    if len(volumes) > 1:
        labels = "; ".join(f"{i + 1}: {lab} ({len(p)} slices)"
                           for i, (lab, p) in enumerate(volumes))
        warnings.append(f"this series mixes {len(volumes)} volumes, read separately "
                        f"[{labels}]")
    return volumes, warnings


def _label(f: Frame, extra: str) -> str:
    parts = [plane_name(f.normal), f"{f.rows}×{f.columns}",
             f"{f.pixel_spacing[0]:g}×{f.pixel_spacing[1]:g} mm pixels"]
    parts += [f"{k} {v}" for k, v in f.split]
    if extra:
        parts.append(extra)
    return ", ".join(parts)


def _positions(frames: list[Frame]) -> np.ndarray:
    normal = frames[0].normal
    return np.array([f.position @ normal for f in frames])


def _has_repeats(frames: list[Frame]) -> bool:
    d = np.sort(_positions(frames))
    return bool(len(d) > 1 and np.any(np.diff(d) <= SPACING_ATOL_MM))


#: Header fields tried, alone then in pairs, to separate classic slices that share a
#: position; a partition is accepted when it gives exactly as many volumes as the
#: most repeated position has copies, and no position repeats within a volume.
_ALTERNATE_ORDER = ("temporal position", "echo", "PET/NM frame", "acquisition number",
                    "trigger time", "image type", "folder", "acquisition time")


def _multiplicity(d: np.ndarray) -> tuple[int, int, float]:
    """(distinct positions, copies of the most repeated one, that position)."""
    ds = np.sort(d)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(ds) > SPACING_ATOL_MM) + 1])
    sizes = np.diff(np.concatenate([starts, [len(ds)]]))
    i = int(np.argmax(sizes))
    return len(sizes), int(sizes[i]), float(ds[starts[i]])


def _resolve_repeats(frames: list[Frame], where: str) -> list[tuple[str, list[Frame]]]:
    if not _has_repeats(frames):
        return [("", frames)]
    distinct, copies, repeated = _multiplicity(_positions(frames))
    candidates = [k for k in _ALTERNATE_ORDER if all(k in f.alternates for f in frames)]
    combos = [(k,) for k in candidates] + list(combinations(candidates, 2))
    for keys in combos:
        groups: dict[tuple[str, ...], list[Frame]] = {}
        for f in frames:
            groups.setdefault(tuple(f.alternates[k] for k in keys), []).append(f)
        if len(groups) == copies and not any(_has_repeats(g) for g in groups.values()):
            return [(", ".join(f"{k} {v}" for k, v in zip(keys, values, strict=True)), g)
                    for values, g in groups.items()]
    raise SeriesError(
        f"{len(frames)} slices but only {distinct} distinct positions (position "
        f"{repeated:.3f} mm along the normal occurs {copies} times) and no header field "
        "(temporal position, echo, frame, acquisition number, image type, folder or time) "
        "tells them apart", where)


def stack(frames: list[Frame], where: str, *, isolated_ok: bool = False) -> Stack:
    """Order one volume's frames along the normal, check spacing, and build the affine.

    Raises SeriesError for missing slices (a step over ``GAP_FACTOR`` × the
    median spacing), uneven spacing beyond the tolerance, or positions that do
    not lie on one line. With ``isolated_ok``, a series of isolated slices or groups of
    contiguous slices (every other step at least ``ISOLATED_STEP_THICKNESSES`` slice
    thicknesses and ``ISOLATED_STEP_MM``: one slice or a few per CatPhan module) is not
    refused: it
    comes back with ``isolated_positions_mm`` and the analyses decide (only those that
    measure each slice on its own accept it, :mod:`scanbench.analysis.registry`).
    """
    first = frames[0]
    normal = first.normal
    dy, dx = first.pixel_spacing
    warnings: list[str] = []
    d = _positions(frames)
    order = np.argsort(d, kind="stable")
    frames = [frames[i] for i in order]
    d = d[order]
    origin = frames[0].position
    n = len(frames)
    if n == 1:
        dz, source = _single_slice_spacing(first)
        warnings.append(f"single-slice series: slice spacing dz = {dz:g} mm taken from {source}")
        step = normal * dz
    else:
        steps = np.diff(d)
        median = _typical_step(steps)
        tol = max(SPACING_RTOL * median, SPACING_ATOL_MM)
        gaps = np.flatnonzero(steps > GAP_FACTOR * median)
        uneven = np.abs(steps - median) > tol
        if (gaps.size or uneven.any()) and isolated_ok and _isolated(steps, median, tol, first):
            return _isolated_stack(frames, d, where)
        if gaps.size:
            desc = "; ".join(f"{steps[g]:.3f} mm between positions {d[g]:.3f} and "
                             f"{d[g + 1]:.3f} mm (about {round(steps[g] / median) - 1} "
                             "slice(s) missing)" for g in gaps[:5])
            raise SeriesError(f"missing slice(s): gap of {desc} along the slice normal; the "
                              f"median spacing is {median:.3f} mm", where)
        if uneven.any():
            found = Counter(np.round(steps, 3).tolist())
            listing = ", ".join(f"{s:.3f} mm (×{c})" for s, c in found.most_common(6))
            k = int(np.flatnonzero(uneven)[0])
            raise SeriesError(
                f"uneven slice spacing: spacings found {listing}; tolerance ±{tol:.3g} mm; "
                f"first off-spacing step between positions {d[k]:.3f} and {d[k + 1]:.3f} mm",
                where)
        step = (frames[-1].position - origin) / (n - 1)
        dz = float(step @ normal)
        predicted = origin + np.arange(n)[:, None] * step
        actual = np.array([f.position for f in frames])
        off = np.linalg.norm(actual - predicted, axis=1)
        worst = int(np.argmax(off))
        if off[worst] > max(tol, 1e-2):
            raise SeriesError(f"slice positions do not lie on one line: slice {worst + 1} of {n} "
                              f"is {off[worst]:.3f} mm off the line through the first and last",
                              where)
        tilt = float(np.degrees(np.arccos(np.clip(abs(dz) / np.linalg.norm(step), 0, 1))))
        if tilt > 0.01:
            warnings.append(f"slices are sheared by {tilt:.2f}° (gantry tilt): the affine "
                            "follows the slice positions; dz is the spacing along the normal")
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = first.col_cosines * dy
    affine[:3, 2] = first.row_cosines * dx
    affine[:3, 3] = origin
    return Stack(frames=frames, spacing=(float(dz), float(dy), float(dx)), affine=affine,
                 warnings=warnings)


def _isolated(steps: np.ndarray, median: float, tol: float, first: Frame) -> bool:
    """Isolated slices or isolated groups of contiguous slices: every step is either the
    typical spacing (inside a group) or at least ``ISOLATED_STEP_MM`` and
    ``ISOLATED_STEP_THICKNESSES`` slice thicknesses (between groups)."""
    thickness = first.thickness or first.spacing_between
    if thickness is None:
        return False
    apart = (steps >= ISOLATED_STEP_MM) & (steps >= ISOLATED_STEP_THICKNESSES * thickness)
    return bool((apart | (np.abs(steps - median) <= tol)).all() and apart.any())


def _isolated_stack(frames: list[Frame], d: np.ndarray, where: str) -> Stack:
    """A stack of isolated slices: the affine's slice step is one slice thickness along
    the normal (what each slice represents); the true positions are kept apart."""
    first = frames[0]
    dy, dx = first.pixel_spacing
    for f in frames[1:]:
        across = f.position - first.position - ((f.position - first.position) @ first.normal) \
            * first.normal
        if float(np.linalg.norm(across)) > 1.0:
            raise SeriesError("isolated slices whose positions do not lie on one line along "
                              f"the slice normal ({float(np.linalg.norm(across)):.1f} mm off)",
                              where)
    dz, _ = _single_slice_spacing(first)
    affine = np.eye(4)
    affine[:3, 0] = first.normal * dz
    affine[:3, 1] = first.col_cosines * dy
    affine[:3, 2] = first.row_cosines * dx
    affine[:3, 3] = first.position
    listing = ", ".join(f"{z:.2f}" for z in d[:8]) + (" ..." if len(d) > 8 else "")
    return Stack(frames=frames, spacing=(float(dz), float(dy), float(dx)), affine=affine,
                 warnings=[f"{len(frames)} isolated slices at {listing} mm along the slice "
                           "normal (not a contiguous volume): each is measured on its own"],
                 isolated_positions_mm=np.asarray(d, dtype=float))


def _typical_step(steps: np.ndarray) -> float:
    """The slice spacing a series was meant to have: the median of the steps no larger
    than ``GAP_FACTOR`` × the smallest, so that gaps do not inflate it when many slices
    are missing; the median of all steps if those are under a third of them."""
    regular = steps[steps <= GAP_FACTOR * steps.min()]
    if 3 * regular.size < steps.size:
        regular = steps
    return float(np.median(regular))


def _single_slice_spacing(f: Frame) -> tuple[float, str]:
    if f.thickness is not None:
        return f.thickness, "Slice Thickness (0018,0050)"
    if f.spacing_between is not None:
        return f.spacing_between, "Spacing Between Slices (0018,0088)"
    return 1.0, "no header field (Slice Thickness absent; 1 mm assumed)"
