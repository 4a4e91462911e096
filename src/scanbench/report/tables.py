"""Summary tables a standard asks for in its own layout, drawn from a result's measurements.

Only tables a standard lays out are here; every other result is shown as its list of
measurements. A table is plain data (header rows, body rows of text) so the HTML and
PDF reports show the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from scanbench.report.numbers import format_number
from scanbench.types import Result


@dataclass(frozen=True)
class Cell:
    """One table cell: text, how many columns it spans, whether it is a header, and
    whether it holds a number (right-aligned, never wrapped)."""

    text: str
    colspan: int = 1
    header: bool = False
    numeric: bool = False


@dataclass(frozen=True)
class SummaryTable:
    """A table with its title, the clause it follows, and notes under it."""

    title: str
    clause: str
    head: list[list[Cell]]
    body: list[list[Cell]]
    notes: list[str] = field(default_factory=list)


RESOLUTION_ANALYSIS = "pet.nema_nu2_2018.spatial_resolution"
_DIRECTIONS = ("radial", "tangential", "axial")
_POSITIONS_CM = (1, 10, 20)


def nema_resolution_table(result: Result) -> SummaryTable | None:
    """NEMA NU 2-2018 section 3 (Spatial Resolution), as reported: FWHM and FWTM in mm
    at 1, 10 and 20 cm from the axis, transverse radial, transverse tangential and
    axial, each the mean over the sources at that radius (the standard places them at
    the centre of the axial field of view and at 3/8 of it from the centre, and reports
    the average of the two).

    Built from the result's per-source ``fwhm_mm`` / ``fwtm_mm`` measurements (labels
    ``direction``, ``position_cm``, ``axial_mm``); None when there are none.
    """
    values: dict[tuple[str, int, str], list[float]] = {}
    axial: dict[int, set[float]] = {}
    for m in result.measurements:
        if m.name not in ("fwhm_mm", "fwtm_mm") or not np.isfinite(m.value):
            continue
        cm = m.labels.get("position_cm")
        direction = m.labels.get("direction")
        if cm not in _POSITIONS_CM or direction not in _DIRECTIONS:
            continue
        values.setdefault((m.name, int(cm), str(direction)), []).append(float(m.value))
        axial.setdefault(int(cm), set()).add(float(m.labels.get("axial_mm", 0.0)))
    if not values:
        return None
    head = [
        [Cell("radial distance from the axis", header=True),
         Cell("FWHM (mm)", colspan=3, header=True), Cell("FWTM (mm)", colspan=3, header=True),
         Cell("axial positions (mm)", header=True)],
        [Cell("", header=True)]
        + [Cell(d, header=True) for d in ("radial", "tangential", "axial")] * 2
        + [Cell("", header=True)],
    ]
    body: list[list[Cell]] = []
    for cm in _POSITIONS_CM:
        if cm not in axial:
            continue
        row = [Cell(f"{cm} cm", header=True)]
        for name in ("fwhm_mm", "fwtm_mm"):
            for d in _DIRECTIONS:
                vs = values.get((name, cm, d), [])
                # Two decimals in mm: the widths are read to a tenth of a voxel.
                row.append(Cell(format_number(float(np.mean(vs)), decimals=2) if vs else "—",
                                numeric=True))
        row.append(Cell(", ".join(format_number(z + 0.0) for z in sorted(axial[cm]))))
        body.append(row)
    notes = ["Each value is the mean over the point sources at that distance (NEMA NU 2-2018 "
             "averages the centre and the 3/8-of-the-axial-field-of-view positions); the "
             "per-source widths are listed under Measurements."]
    if any(len(zs) < 2 for zs in axial.values()):
        notes.append("Only one axial position was imaged at some distance: NEMA NU 2-2018 "
                     "asks for two (the centre and 3/8 of the axial field of view).")
    return SummaryTable(title="Spatial resolution summary",
                        clause="NEMA NU 2-2018 section 3, Spatial Resolution",
                        head=head, body=body, notes=notes)


def summary_tables(result: Result) -> Sequence[SummaryTable]:
    """The standard-layout tables for ``result`` (empty for most analyses)."""
    if result.analysis == RESOLUTION_ANALYSIS:
        table = nema_resolution_table(result)
        return [table] if table is not None else []
    return []


__all__ = ["Cell", "SummaryTable", "nema_resolution_table", "summary_tables"]
