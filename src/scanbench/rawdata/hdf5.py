"""The scanbench PET raw-data HDF5 layout: write and read (format: docs/pet-raw-data.md).

Layout (version 1)::

    /                     attrs: format = "scanbench-pet-raw", format_version = 1,
                                 kind = "sinogram" | "listmode", purpose, acquired_at (ISO 8601),
                                 radionuclide, half_life_s, manufacturer, model, serial,
                                 station, software_versions
    /geometry             attrs: rings, crystals_per_ring, ring_diameter_mm, ring_pitch_mm,
                                 max_ring_difference, span, tof_bins, tof_bin_width_ps,
                                 coincidence_window_ps, energy_window_kev (2,)
    /sinogram             attrs: n_bins, n_views, bin_size_mm, rebinning = "ssrb"
                          dataset plane_z_mm (n_planes,)           [sinogram files only]
    /phantom              attrs: name, activity_bq, activity_time_s (from the acquisition
                                 start), length_mm, diameter_mm, line_length_mm,
                                 line_x_mm, line_y_mm, volume_ml, ...  (all optional)
    /frames/NNNN          attrs: start_s, duration_s, singles_cps, dead_time_fraction,
                                 and per-frame facts (sleeves, source_x_mm, role, ...)
        prompts           (n_planes, n_views, n_bins) or (tof_bins, n_planes, n_views, n_bins)
        delayed           same shape as prompts (optional)
        events/           ring_a, crystal_a, ring_b, crystal_b (int), tof_ps (float32,
                          t_a - t_b), time_ms (float64), delayed (bool, optional)
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from scanbench.errors import InputError
from scanbench.rawdata import Events, Frame, RawDataset, ScannerGeometry, SinogramLayout
from scanbench.types import DeviceIdentity

FORMAT = "scanbench-pet-raw"
FORMAT_VERSION = 1
_GEOMETRY_REQUIRED = ("rings", "crystals_per_ring", "ring_diameter_mm", "ring_pitch_mm",
                      "max_ring_difference")
_DEVICE_KEYS = ("manufacturer", "model", "serial", "station", "software_versions")


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _attrs(obj: Any) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in obj.attrs.items()}


def _set_attrs(obj: Any, values: dict[str, Any]) -> None:
    for k, v in values.items():
        if v is None:
            continue
        obj.attrs[k] = v


def write_hdf5(
    path: str | Path,
    geometry: ScannerGeometry,
    frames: Iterable[dict[str, Any]],
    *,
    layout: SinogramLayout | None = None,
    device: DeviceIdentity | None = None,
    acquired_at: dt.datetime | None = None,
    radionuclide: str | None = "F-18",
    half_life_s: float | None = 6586.2,
    purpose: str | None = None,
    phantom: dict[str, Any] | None = None,
    compression: int | None = 1,
) -> Path:
    """Write one raw-data file; ``frames`` may be a generator, so that a long study is
    written frame by frame and never held in memory at once. Each frame dict has
    ``start_s``, ``duration_s``, optional ``singles_cps``, ``dead_time_fraction``,
    ``attrs`` (dict), and either ``prompts`` (+ optional ``delayed``) arrays or
    ``events`` (an :class:`Events`)."""
    import h5py

    p = Path(path)
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("no frames to write")
    kind = "listmode" if "events" in first else "sinogram"
    with h5py.File(p, "w") as h:
        _set_attrs(h, {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
                       "purpose": purpose, "radionuclide": radionuclide,
                       "half_life_s": half_life_s,
                       "acquired_at": acquired_at.isoformat() if acquired_at else None})
        if device is not None:
            _set_attrs(h, {k: getattr(device, k) for k in _DEVICE_KEYS})
        g = h.create_group("geometry")
        gd = geometry.to_dict()
        for k in ("axial_fov_mm", "acceptance_angle_deg"):
            gd.pop(k)
        if gd["energy_window_kev"] is not None:
            gd["energy_window_kev"] = np.asarray(gd["energy_window_kev"], dtype=float)
        _set_attrs(g, gd)
        if layout is not None:
            s = h.create_group("sinogram")
            _set_attrs(s, {"n_bins": layout.n_bins, "n_views": layout.n_views,
                           "bin_size_mm": layout.bin_size_mm, "rebinning": "ssrb"})
            s.create_dataset("plane_z_mm", data=np.asarray(layout.plane_z_mm, dtype=float))
        ph = h.create_group("phantom")
        _set_attrs(ph, dict(phantom or {}))
        fg = h.create_group("frames")
        opts: dict[str, Any] = {"compression": "gzip", "compression_opts": compression,
                                "shuffle": True} if compression else {}
        for i, f in enumerate(itertools.chain([first], it)):
            grp = fg.create_group(f"{i:04d}")
            _set_attrs(grp, {"start_s": float(f["start_s"]), "duration_s": float(f["duration_s"]),
                             "singles_cps": f.get("singles_cps"),
                             "dead_time_fraction": f.get("dead_time_fraction")})
            _set_attrs(grp, dict(f.get("attrs", {})))
            for name in ("prompts", "delayed"):
                if f.get(name) is not None:
                    arr = np.asarray(f[name])
                    chunks = (1,) * (arr.ndim - 2) + arr.shape[-2:] if arr.ndim >= 2 else None
                    grp.create_dataset(name, data=arr, chunks=chunks if opts else None, **opts)
            ev: Events | None = f.get("events")
            if ev is not None:
                eg = grp.create_group("events")
                for name in ("ring_a", "crystal_a", "ring_b", "crystal_b", "tof_ps", "time_ms",
                             "delayed"):
                    val = getattr(ev, name)
                    if val is not None:
                        eg.create_dataset(name, data=np.asarray(val), **opts)
    return p


def read_hdf5(path: Path) -> RawDataset:
    """Read the header of a scanbench HDF5 raw-data file; data load per frame on request."""
    import h5py

    try:
        h = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"not a readable HDF5 file ({exc})", path) from None
    with h:
        root = _attrs(h)
        if root.get("format") != FORMAT:
            raise InputError(
                f"HDF5 file is not in the scanbench PET raw-data layout (attribute "
                f"format={root.get('format')!r}, expected {FORMAT!r}); see docs/pet-raw-data.md",
                path)
        version = int(root.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise InputError(f"layout version {version} is newer than this scanbench reads "
                             f"({FORMAT_VERSION}); update scanbench", path)
        if "geometry" not in h:
            raise InputError("raw data without scanner geometry: the /geometry group (rings, "
                             "crystals per ring, ring diameter, ring pitch, MRD) is missing, "
                             "and no NEMA figure can be computed without it", path)
        ga = _attrs(h["geometry"])
        missing = [k for k in _GEOMETRY_REQUIRED if k not in ga]
        if missing:
            raise InputError(f"scanner geometry incomplete: /geometry lacks {', '.join(missing)}",
                             path)
        ew = ga.get("energy_window_kev")
        geometry = ScannerGeometry(
            rings=int(ga["rings"]), crystals_per_ring=int(ga["crystals_per_ring"]),
            ring_diameter_mm=float(ga["ring_diameter_mm"]),
            ring_pitch_mm=float(ga["ring_pitch_mm"]),
            max_ring_difference=int(ga["max_ring_difference"]), span=int(ga.get("span", 1)),
            tof_bins=int(ga.get("tof_bins", 0)),
            tof_bin_width_ps=_opt_float(ga.get("tof_bin_width_ps")),
            coincidence_window_ps=_opt_float(ga.get("coincidence_window_ps")),
            energy_window_kev=(float(ew[0]), float(ew[1])) if ew is not None else None)
        kind = str(root.get("kind", "sinogram"))
        layout = None
        if "sinogram" in h:
            sa = _attrs(h["sinogram"])
            needed = {"n_bins", "n_views", "bin_size_mm"}
            if "plane_z_mm" not in h["sinogram"] or not needed <= set(sa):
                raise InputError("sinogram geometry incomplete: /sinogram needs n_bins, n_views, "
                                 "bin_size_mm and the plane_z_mm dataset", path)
            layout = SinogramLayout(n_bins=int(sa["n_bins"]), n_views=int(sa["n_views"]),
                                    bin_size_mm=float(sa["bin_size_mm"]),
                                    plane_z_mm=np.asarray(h["sinogram/plane_z_mm"], dtype=float))
        if "frames" not in h or len(h["frames"]) == 0:
            raise InputError("no frames: the /frames group is missing or empty", path)
        frames: list[Frame] = []
        names = sorted(h["frames"].keys())
        for i, name in enumerate(names):
            grp = h["frames"][name]
            fa = _attrs(grp)
            if "start_s" not in fa or "duration_s" not in fa:
                raise InputError(f"frame {name} lacks start_s or duration_s", path)
            if not float(fa["duration_s"]) > 0:
                raise InputError(f"frame {name} has duration {fa['duration_s']} s", path)
            extra = {k: v for k, v in fa.items()
                     if k not in ("start_s", "duration_s", "singles_cps", "dead_time_fraction")}
            fr = Frame(index=i, start_s=float(fa["start_s"]), duration_s=float(fa["duration_s"]),
                       singles_cps=_opt_float(fa.get("singles_cps")),
                       dead_time_fraction=_opt_float(fa.get("dead_time_fraction")),
                       attrs=extra, has_prompts="prompts" in grp, has_delayed="delayed" in grp,
                       n_events=int(grp["events/tof_ps"].shape[0]) if "events" in grp
                       and "tof_ps" in grp["events"] else 0)
            if fr.has_prompts:
                if layout is None:
                    raise InputError("sinogram without geometry: frames hold prompts but the "
                                     "/sinogram group (bins, views, bin size, plane positions) "
                                     "is missing", path)
                shape = tuple(grp["prompts"].shape)
                want = (layout.n_planes, layout.n_views, layout.n_bins)
                if shape[-3:] != want or len(shape) not in (3, 4):
                    raise InputError(f"frame {name}: prompts have shape {shape}, the sinogram "
                                     f"geometry says (planes, views, bins) = {want}", path)
                if fr.has_delayed and tuple(grp["delayed"].shape) != shape:
                    raise InputError(f"frame {name}: delayed shape {tuple(grp['delayed'].shape)} "
                                     f"differs from prompts {shape}", path)
            frames.append(fr)
        acquired = None
        if root.get("acquired_at"):
            try:
                acquired = dt.datetime.fromisoformat(str(root["acquired_at"]))
            except ValueError:
                raise InputError(f"acquired_at {root['acquired_at']!r} is not ISO 8601",
                                 path) from None
        phantom = _attrs(h["phantom"]) if "phantom" in h else {}
    device = DeviceIdentity(**{k: (str(root[k]) if root.get(k) is not None else None)
                               for k in _DEVICE_KEYS})
    ds = RawDataset(path=path, kind=kind, geometry=geometry, frames=frames, device=device,
                    acquired_at=acquired, radionuclide=_opt_str(root.get("radionuclide")),
                    half_life_s=_opt_float(root.get("half_life_s")),
                    purpose=_opt_str(root.get("purpose")), phantom=phantom, layout=layout,
                    attrs=root)
    ds._prompts = lambda i: _load(path, names[i], "prompts")
    ds._delayed = lambda i: _load(path, names[i], "delayed")
    ds._events = lambda i: _load_events(path, names[i])
    return ds


def _load(path: Path, frame: str, name: str) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as h:
        arr = np.asarray(h["frames"][frame][name])
    if arr.ndim == 4:  # TOF sinogram: the NEMA count-rate method uses the TOF-summed data
        arr = arr.sum(axis=0, dtype=np.float64)
    # float32 holds every count up to 2^24 per bin exactly and halves the memory of a
    # long-AFOV frame; totals are summed in float64 by the analyses
    return arr.astype(np.float32, copy=False)


def _load_events(path: Path, frame: str) -> Events:
    import h5py

    with h5py.File(path, "r") as h:
        g = h["frames"][frame]["events"]
        missing = [k for k in ("ring_a", "crystal_a", "ring_b", "crystal_b", "tof_ps")
                   if k not in g]
        if missing:
            raise InputError(f"frame {frame}: list-mode events lack {', '.join(missing)}", path)
        n = g["tof_ps"].shape[0]
        return Events(ring_a=np.asarray(g["ring_a"]), crystal_a=np.asarray(g["crystal_a"]),
                      ring_b=np.asarray(g["ring_b"]), crystal_b=np.asarray(g["crystal_b"]),
                      tof_ps=np.asarray(g["tof_ps"], dtype=np.float64),
                      time_ms=np.asarray(g["time_ms"]) if "time_ms" in g else np.zeros(n),
                      delayed=np.asarray(g["delayed"], dtype=bool) if "delayed" in g else None)


def _opt_float(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def convert_interfile(headers: list[Path], out: str | Path, *, purpose: str,
                      phantom: dict[str, Any], frame_attrs: list[dict[str, Any]] | None = None,
                      device: DeviceIdentity | None = None,
                      half_life_s: float | None = 6586.2) -> Path:
    """Write STIR Interfile frames (one ``.hs`` per frame, delayed as ``<name>_delayed.hs``)
    as one HDF5 file in the scanbench layout, adding what Interfile cannot say: the
    purpose, the phantom (activity, volume, line position) and per-frame facts such as
    ``sleeves`` for the sensitivity test. Frames are SSRB-rebinned by the reader."""
    from scanbench.rawdata.interfile import read_interfile

    datasets = [read_interfile(Path(h)) for h in headers]
    if not datasets:
        raise InputError("no Interfile headers given", str(out))
    attrs = frame_attrs or [{} for _ in datasets]
    if len(attrs) != len(datasets):
        raise InputError(f"{len(datasets)} headers but {len(attrs)} frame attribute sets",
                         str(out))
    first = datasets[0]

    def frames() -> Any:
        for ds, extra in zip(datasets, attrs, strict=True):
            if ds.geometry != first.geometry or ds.layout is None or first.layout is None \
                    or ds.layout.n_planes != first.layout.n_planes:
                raise InputError("the headers describe different scanners or sinograms",
                                 ds.where)
            f = ds.frames[0]
            yield {"start_s": f.start_s, "duration_s": f.duration_s, "attrs": dict(extra),
                   "prompts": ds.prompts(0), "delayed": ds.delayed(0)}

    return write_hdf5(out, first.geometry, frames(), layout=first.layout,
                      device=device or first.device, purpose=purpose, phantom=phantom,
                      half_life_s=half_life_s)
