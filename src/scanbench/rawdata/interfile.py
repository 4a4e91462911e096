"""STIR Interfile projection data (``.hs`` header + ``.s`` data), read into SSRB sinograms.

STIR (UCL/STIR) writes 3-D PET sinograms as segments by ring difference; the
header gives the scanner (``number of rings``, ``number of detectors per
ring``, ``inner ring diameter (cm)``, ``distance between rings (cm)``,
``default bin size (cm)``), the axes (``matrix axis label [k]``: segment,
view or axial coordinate, tangential coordinate), the axial positions per
segment and the ring differences of each segment. Segments are stored in the
order STIR uses by default, 0, -1, +1, -2, +2, ...; the reader rebins every
oblique sinogram to its SSRB plane (the NEMA NU 2-2018 analyses work on SSRB
sinograms): for a span-1 segment of ring difference d, axial index a goes to
plane 2a + |d|; for a segment that mixes ring differences (span > 1) the axial
positions are spaced half a ring apart and centred on the scanner.

One header is one frame; time-frame keys (``image duration (sec)[1]``,
``image relative start time (sec)[1]``) are read when present. A delayed-window
sinogram is the sibling ``<name>_delayed.hs`` when it exists. Multi-frame
studies should use the HDF5 layout (docs/pet-raw-data.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from scanbench.errors import InputError
from scanbench.rawdata import Frame, RawDataset, ScannerGeometry, SinogramLayout
from scanbench.types import DeviceIdentity

_NUMBER_FORMATS = {("float", 4): "f4", ("float", 8): "f8", ("unsigned integer", 2): "u2",
                   ("unsigned integer", 4): "u4", ("signed integer", 2): "i2",
                   ("signed integer", 4): "i4", ("unsigned integer", 1): "u1"}


def parse_header(text: str) -> dict[str, str]:
    """Interfile ``key := value`` lines; keys lower-cased without '!' and extra spaces."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip() if not raw.strip().startswith(";") else ""
        if ":=" not in line:
            continue
        key, _, value = line.partition(":=")
        key = re.sub(r"\s+", " ", key.replace("!", "").strip().lower())
        key = re.sub(r"\s*\[\s*", " [", key)
        key = re.sub(r"\s*\]", "]", key)
        out[key] = value.strip()
    return out


def _ints(value: str) -> list[int]:
    return [int(float(v)) for v in re.findall(r"[-+]?\d+(?:\.\d*)?", value)]


def _need(h: dict[str, str], key: str, path: Path, why: str) -> str:
    if key not in h or not h[key]:
        raise InputError(f"Interfile header lacks '{key}' ({why})", path)
    return h[key]


def _segment_sequence(n: int) -> list[int]:
    """STIR's default storage order of segment numbers: 0, -1, +1, -2, +2, ..."""
    seq = [0]
    for k in range(1, n // 2 + 1):
        seq += [-k, k]
    return seq[:n]


def read_interfile(path: Path) -> RawDataset:
    h = parse_header(path.read_text(errors="replace"))
    if "interfile" not in h and not path.read_text(errors="replace").lstrip().upper().startswith(
            "!INTERFILE"):
        raise InputError("not an Interfile header (no '!INTERFILE :=' line)", path)
    geometry_why = "scanner geometry"
    try:
        rings = int(_need(h, "number of rings", path, geometry_why))
        crystals = int(_need(h, "number of detectors per ring", path, geometry_why))
        diam_mm = 10.0 * float(_need(h, "inner ring diameter (cm)", path, geometry_why))
        doi_mm = 10.0 * float(h.get("average depth of interaction (cm)", "0") or 0)
        pitch_mm = 10.0 * float(_need(h, "distance between rings (cm)", path, geometry_why))
        bin_mm = 10.0 * float(h.get("default bin size (cm)") or
                              _need(h, "effective central bin size (cm)", path, "bin size"))
    except ValueError as exc:
        raise InputError(f"Interfile scanner parameters are not numbers ({exc})", path) from None
    labels = {int(m.group(1)): v.lower() for k, v in h.items()
              if (m := re.fullmatch(r"matrix axis label \[(\d)\]", k))}
    if sorted(labels) != [1, 2, 3, 4] or labels[4] != "segment" \
            or labels[1] != "tangential coordinate":
        raise InputError("expected 4-D STIR projection data with axes segment / view / axial "
                         f"coordinate / tangential coordinate, found {labels or 'none'}", path)
    sizes = {k: _ints(_need(h, f"matrix size [{k}]", path, "matrix sizes")) for k in (1, 2, 3, 4)}
    n_seg = sizes[4][0]
    n_bins = sizes[1][0]
    view_axis = 3 if labels[3] == "view" else 2
    axial_axis = 5 - view_axis
    n_views = sizes[view_axis][0]
    n_axial = sizes[axial_axis]
    mins = _ints(_need(h, "minimum ring difference per segment", path, "segment layout"))
    maxs = _ints(_need(h, "maximum ring difference per segment", path, "segment layout"))
    if not (len(n_axial) == len(mins) == len(maxs) == n_seg):
        raise InputError(f"{n_seg} segments but {len(n_axial)} axial sizes, {len(mins)} minimum "
                         f"and {len(maxs)} maximum ring differences", path)
    fmt = h.get("number format", "float").lower()
    nbytes = int(h.get("number of bytes per pixel", "4"))
    if (fmt, nbytes) not in _NUMBER_FORMATS:
        raise InputError(f"number format {fmt!r} with {nbytes} bytes is not supported", path)
    dtype = np.dtype(_NUMBER_FORMATS[(fmt, nbytes)])
    order = h.get("imagedata byte order", "littleendian").lower()
    dtype = dtype.newbyteorder(">" if order.startswith("big") else "<")
    data_name = _need(h, "name of data file", path, "where the sinogram values are")
    data_path = (path.parent / data_name) if not Path(data_name).is_absolute() else Path(data_name)
    offset = int(h.get("data offset in bytes [1]", "0") or 0)
    seg_numbers = list(range(-(n_seg // 2), n_seg // 2 + 1)) if n_seg % 2 else None
    if seg_numbers is None:
        raise InputError(f"an even number of segments ({n_seg}) is not a STIR layout", path)
    total = sum(n_axial) * n_views * n_bins
    n_planes = 2 * rings - 1
    plane_z = (np.arange(n_planes) - (n_planes - 1) / 2.0) * pitch_mm / 2.0
    max_rd = max(max(abs(a), abs(b)) for a, b in zip(mins, maxs, strict=True))
    span = max(b - a for a, b in zip(mins, maxs, strict=True)) + 1

    def load(_: int, file: Path = data_path) -> np.ndarray:
        if not file.is_file():
            raise InputError(f"data file {file.name} named in the header is missing", path)
        need = offset + total * dtype.itemsize
        if file.stat().st_size < need:
            raise InputError(f"data file {file.name} holds {file.stat().st_size} bytes, the "
                             f"header describes {need}", path)
        raw = np.fromfile(file, dtype=dtype, count=total, offset=offset).astype(np.float64)
        out = np.zeros((n_planes, n_views, n_bins))
        pos = 0
        by_number = dict(zip(seg_numbers, zip(n_axial, mins, maxs, strict=True), strict=True))
        for seg in _segment_sequence(n_seg):
            na, lo, hi = by_number[seg]
            block = raw[pos:pos + na * n_views * n_bins]
            pos += na * n_views * n_bins
            if view_axis == 3:  # views outermost: (view, axial, bin)
                block = block.reshape(n_views, na, n_bins).transpose(1, 0, 2)
            else:
                block = block.reshape(na, n_views, n_bins)
            if lo == hi:
                planes = 2 * np.arange(na) + abs(lo)
            else:
                planes = np.arange(na) + (n_planes - na) // 2
            if planes.size and (planes.max() >= n_planes or planes.min() < 0):
                raise InputError(f"segment {seg} has {na} axial positions, more than "
                                 f"{rings} rings allow", path)
            np.add.at(out, planes, block)
        return out

    delayed_hs = path.with_name(path.stem + "_delayed.hs")

    def load_delayed(i: int) -> np.ndarray | None:
        if not delayed_hs.is_file():
            return None
        return read_interfile(delayed_hs).prompts(0)

    duration = _float(h.get("image duration (sec) [1]"))
    start = _float(h.get("image relative start time (sec) [1]")) or 0.0
    if duration is None or duration <= 0:
        raise InputError("Interfile header lacks 'image duration (sec)[1]': count rates "
                         "need the frame duration", path)
    geometry = ScannerGeometry(rings=rings, crystals_per_ring=crystals,
                               ring_diameter_mm=diam_mm + 2 * doi_mm, ring_pitch_mm=pitch_mm,
                               max_ring_difference=max_rd, span=span)
    layout = SinogramLayout(n_bins=n_bins, n_views=n_views, bin_size_mm=bin_mm,
                            plane_z_mm=plane_z)
    frame = Frame(index=0, start_s=start, duration_s=duration, has_prompts=True,
                  has_delayed=delayed_hs.is_file())
    ds = RawDataset(path=path, kind="sinogram", geometry=geometry, frames=[frame],
                    device=DeviceIdentity(model=h.get("originating system") or None),
                    layout=layout, attrs=dict(h))
    ds._prompts = load
    ds._delayed = load_delayed
    return ds


def write_interfile(path: Path, prompts_by_ring_difference: dict[int, np.ndarray], *,
                    geometry: ScannerGeometry, bin_size_mm: float, duration_s: float,
                    start_s: float = 0.0) -> Path:
    """Write span-1 STIR projection data: one ``(axial, views, bins)`` array per ring
    difference (axial size rings - |d|), in STIR's segment order, float32."""
    n_seg = 2 * geometry.max_ring_difference + 1
    first = next(iter(prompts_by_ring_difference.values()))
    _, n_views, n_bins = first.shape
    segs = list(range(-geometry.max_ring_difference, geometry.max_ring_difference + 1))
    data_path = path.with_suffix(".s")
    with open(data_path, "wb") as fh:
        for seg in _segment_sequence(n_seg):
            np.asarray(prompts_by_ring_difference[seg], dtype="<f4").tofile(fh)
    lines = [
        "!INTERFILE :=", f"name of data file := {data_path.name}",
        "originating system := scanbench virtual PET", "!GENERAL DATA :=",
        "!GENERAL IMAGE DATA :=", "!type of data := PET", "imagedata byte order := LITTLEENDIAN",
        "!PET STUDY (General) :=", "!PET data type := Emission",
        "applied corrections := {None}", "!number format := float",
        "!number of bytes per pixel := 4", "number of dimensions := 4",
        "matrix axis label [4] := segment", f"!matrix size [4] := {n_seg}",
        "matrix axis label [3] := axial coordinate",
        "!matrix size [3] := { " + ",".join(str(geometry.rings - abs(s)) for s in segs) + " }",
        "matrix axis label [2] := view", f"!matrix size [2] := {n_views}",
        "matrix axis label [1] := tangential coordinate", f"!matrix size [1] := {n_bins}",
        "minimum ring difference per segment := { " + ",".join(map(str, segs)) + " }",
        "maximum ring difference per segment := { " + ",".join(map(str, segs)) + " }",
        "Scanner parameters:=", f"number of rings := {geometry.rings}",
        f"number of detectors per ring := {geometry.crystals_per_ring}",
        f"Inner ring diameter (cm) := {geometry.ring_diameter_mm / 10.0}",
        "Average depth of interaction (cm) := 0",
        f"distance between rings (cm) := {geometry.ring_pitch_mm / 10.0}",
        f"Default bin size (cm) := {bin_size_mm / 10.0}", "end scanner parameters:=",
        "number of time frames := 1", f"image duration (sec)[1] := {duration_s}",
        f"image relative start time (sec)[1] := {start_s}", "!END OF INTERFILE :=", ""]
    path.write_text("\n".join(lines))
    return path


def _float(v: Any) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:
        return None
