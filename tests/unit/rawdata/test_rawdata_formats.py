"""The open raw-data formats: HDF5 round trip, STIR Interfile SSRB, and bad input named."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from scanbench.errors import InputError
from scanbench.rawdata import ScannerGeometry, SinogramLayout, read_raw
from scanbench.rawdata.hdf5 import write_hdf5
from scanbench.rawdata.interfile import write_interfile

GEO = ScannerGeometry(rings=4, crystals_per_ring=64, ring_diameter_mm=400.0, ring_pitch_mm=4.0,
                      max_ring_difference=3)
LAYOUT = SinogramLayout(n_bins=16, n_views=8, bin_size_mm=4.0,
                        plane_z_mm=(np.arange(7) - 3) * 2.0)


def _frames(n: int = 3, delayed: bool = True) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        p = rng.poisson(5.0, (7, 8, 16)).astype(np.uint32)
        out.append({"start_s": 100.0 * i, "duration_s": 50.0, "singles_cps": 1e5,
                    "attrs": {"role": "source", "sleeves": 5 - i},
                    "prompts": p, "delayed": (p // 2) if delayed else None})
    return out


def test_hdf5_round_trip(tmp_path: Path) -> None:
    frames = _frames()
    path = write_hdf5(tmp_path / "a.h5", GEO, frames, layout=LAYOUT, purpose="sensitivity",
                      phantom={"activity_bq": 1e6, "line_length_mm": 700.0})
    ds = read_raw(path)
    assert ds.kind == "sinogram" and ds.purpose == "sensitivity"
    assert ds.geometry == GEO
    assert ds.layout is not None and ds.layout.n_planes == 7
    assert [f.attrs["sleeves"] for f in ds.frames] == [5, 4, 3]
    np.testing.assert_array_equal(ds.prompts(1), frames[1]["prompts"])
    np.testing.assert_array_equal(ds.delayed(2), frames[2]["delayed"])
    assert ds.phantom["activity_bq"] == 1e6
    # decay over a frame: the mean activity is below the start activity
    assert ds.mean_activity_bq(ds.frames[1]) < ds.activity_bq_at(100.0)


def test_frames_out_of_order_are_refused(tmp_path: Path) -> None:
    frames = _frames()
    frames[1]["start_s"], frames[2]["start_s"] = 200.0, 100.0
    path = write_hdf5(tmp_path / "b.h5", GEO, frames, layout=LAYOUT)
    with pytest.raises(InputError, match="frames out of order"):
        read_raw(path)


def test_sinogram_without_geometry_is_named(tmp_path: Path) -> None:
    path = write_hdf5(tmp_path / "c.h5", GEO, _frames(), layout=LAYOUT)
    with h5py.File(path, "a") as h:
        del h["geometry"]
    with pytest.raises(InputError, match="without scanner geometry"):
        read_raw(path)
    path2 = write_hdf5(tmp_path / "d.h5", GEO, _frames(), layout=None)
    with pytest.raises(InputError, match="sinogram without geometry"):
        read_raw(path2)


def test_prompts_that_do_not_fit_the_geometry(tmp_path: Path) -> None:
    frames = _frames()
    frames[0]["prompts"] = np.zeros((7, 8, 15))
    frames[0]["delayed"] = None
    path = write_hdf5(tmp_path / "e.h5", GEO, frames, layout=LAYOUT)
    with pytest.raises(InputError, match=r"prompts have shape \(7, 8, 15\)"):
        read_raw(path)


def test_not_our_layout_and_not_raw(tmp_path: Path) -> None:
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as h:
        h["x"] = np.arange(3)
    with pytest.raises(InputError, match="not in the scanbench PET raw-data layout"):
        read_raw(p)
    q = tmp_path / "junk.h5"
    q.write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        read_raw(q)
    r = tmp_path / "x.dat"
    r.write_text("x")
    with pytest.raises(InputError, match="not a PET raw-data file"):
        read_raw(r)


def test_stir_interfile_ssrb(tmp_path: Path) -> None:
    """Span-1 segments rebin to SSRB plane 2a + |d|: a count at ring pair (r1, r2) lands in
    plane r1 + r2, whatever the segment."""
    rings, views, bins = GEO.rings, 8, 16
    segs = {d: np.zeros((rings - abs(d), views, bins), dtype=np.float32)
            for d in range(-3, 4)}
    expected = np.zeros((2 * rings - 1, views, bins))
    rng = np.random.default_rng(1)
    for d, arr in segs.items():
        arr[:] = rng.integers(0, 9, arr.shape)
        for a in range(arr.shape[0]):
            r1 = a if d >= 0 else a - d
            r2 = r1 + d
            expected[r1 + r2] += arr[a]
    hs = write_interfile(tmp_path / "s.hs", segs, geometry=GEO, bin_size_mm=4.0, duration_s=60.0)
    ds = read_raw(hs)
    assert ds.geometry.rings == 4 and ds.geometry.max_ring_difference == 3
    assert ds.layout is not None and ds.layout.bin_size_mm == pytest.approx(4.0)
    np.testing.assert_allclose(ds.prompts(0), expected)
    assert ds.delayed(0) is None
    assert ds.frames[0].duration_s == 60.0


def test_stir_interfile_problems_are_named(tmp_path: Path) -> None:
    segs = {d: np.ones((4 - abs(d), 8, 16), dtype=np.float32) for d in range(-3, 4)}
    hs = write_interfile(tmp_path / "s.hs", segs, geometry=GEO, bin_size_mm=4.0, duration_s=60.0)
    text = hs.read_text()
    (tmp_path / "nogeo.hs").write_text(text.replace("number of rings := 4\n", ""))
    with pytest.raises(InputError, match="lacks 'number of rings'"):
        read_raw(tmp_path / "nogeo.hs")
    hs.with_suffix(".s").write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="holds 100 bytes"):
        read_raw(hs).prompts(0)


def test_interfile_frames_converted_and_analysed(tmp_path: Path) -> None:
    """STIR headers carry no sleeves or activity: convert_interfile adds them, and the
    sensitivity analysis then runs on the HDF5 file; the delayed sibling is not a frame."""
    from scanbench.rawdata import find_raw_files
    from scanbench.rawdata.analysis import analyze_raw
    from scanbench.rawdata.hdf5 import convert_interfile

    rng = np.random.default_rng(3)
    headers = []
    for n, sleeves in enumerate((3, 2, 1)):
        # on-axis line: counts in the central bins, fewer with more aluminium
        segs = {d: np.zeros((4 - abs(d), 8, 16), dtype=np.float32) for d in range(-3, 4)}
        for arr in segs.values():
            arr[:, :, 7:9] = rng.poisson(2000 * np.exp(-2 * 0.0224 * 1.25 * sleeves),
                                         arr[:, :, 7:9].shape)
        hs = write_interfile(tmp_path / f"f{n}.hs", segs, geometry=GEO, bin_size_mm=4.0,
                             duration_s=60.0, start_s=70.0 * n)
        write_interfile(tmp_path / f"f{n}_delayed.hs",
                        {d: np.zeros_like(a) for d, a in segs.items()}, geometry=GEO,
                        bin_size_mm=4.0, duration_s=60.0, start_s=70.0 * n)
        headers.append(hs)
    raw, _ = find_raw_files([tmp_path])
    assert sorted(p.name for p in raw) == ["f0.hs", "f1.hs", "f2.hs"]
    out = convert_interfile(headers, tmp_path / "sens.h5", purpose="sensitivity",
                            phantom={"activity_bq": 1e6, "line_length_mm": 700.0},
                            frame_attrs=[{"sleeves": s} for s in (3, 2, 1)], half_life_s=None)
    r = analyze_raw(out)
    mu = r.get("aluminium_attenuation_coefficient_per_cm", radius_mm=0.0)
    assert mu.value == pytest.approx(0.224, rel=0.05)
