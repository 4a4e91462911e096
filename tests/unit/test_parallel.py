"""scanbench.parallel: analysing a folder on several processes gives what one process gives,
and memory does not grow with the number of series (issue 15)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any, ClassVar

import pytest

from scanbench import parallel as par
from scanbench.analysis import registry
from scanbench.api import AnalyzeReport, analyze_paths
from scanbench.types import Result, Series


def _close(a: Any, b: Any, path: str = "") -> None:
    """Equal JSON, numbers to 1e-9 (relative) — the results-unchanged criterion of issue 15."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (
            math.isnan(a) and math.isnan(b)), path
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{n}]")
    else:
        assert a == b, path


def _same(serial: AnalyzeReport, parallel: AnalyzeReport) -> None:
    _close(json.loads(json.dumps([r.to_dict() for r in serial.results])),
           json.loads(json.dumps([r.to_dict() for r in parallel.results])))
    assert [(f.where, f.reason) for f in serial.failures] == [
        (f.where, f.reason) for f in parallel.failures]
    assert [(s.where, s.reason) for s in serial.skipped] == [
        (s.where, s.reason) for s in parallel.skipped]
    assert serial.series_read == parallel.series_read
    assert serial.routed == parallel.routed
    assert {u: (f.where, f.reason) for u, f in serial.unrecognised.items()} == {
        u: (f.where, f.reason) for u, f in parallel.unrecognised.items()}


@pytest.mark.parametrize("folders", [
    # two IEC-phantom reconstructions (one study each), a PET uniform cylinder with a
    # series that fails, CatPhan slices of three modules
    ("pet",),
    ("ct/catphan", "ct/catphan-ctp515-canon"),
    # ACR MRI: two studies, each T1 + T2 (+ localiser): the suite groups within a study
    ("mr/acr/GE_Artist_1.5T_T1", "mr/acr/GE_Artist_1.5T_T2",
     "mr/acr/Siemens_Aera_1.5T_T1", "mr/acr/Siemens_Aera_1.5T_T2"),
    # MagNET ghosting and uniformity series, with a non-DICOM file to skip
    ("mr/magnet/ghosting", "mr/magnet/uniformity", "mr/magnet/resolution"),
])
def test_parallel_equals_serial_on_real_data(shared_data: Path, folders: tuple[str, ...]
                                             ) -> None:
    paths = [shared_data / f for f in folders]
    serial = analyze_paths(paths, workers=1)
    parallel = analyze_paths(paths, workers=2)
    assert serial.results  # the comparison compares something
    _same(serial, parallel)


def test_parallel_spec_applied_as_in_process(shared_data: Path) -> None:
    """A spec is applied to the merged results exactly as to a whole read's."""
    paths = [shared_data / "pet" / "nema-iq-test-recon"]
    _same(analyze_paths(paths, workers=1, spec="earl2"),
          analyze_paths(paths, workers=2, spec="earl2"))


_MEASURE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from scanbench import parallel
    from scanbench.api import AnalyzeReport

    def hwm_kib():  # this process's own peak (ru_maxrss is carried across fork and exec)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    plan = parallel.plan([Path(p) for p in sys.argv[1:]])
    peaks = []
    rep = parallel.analyze_units(plan.units, 2, analysis=None, params=None,
                                 report=AnalyzeReport(), peaks=peaks)
    print(json.dumps({"parent": hwm_kib(), "worker": max(peaks), "results": len(rep.results),
                      "units": len(plan.units)}))
""")


@pytest.fixture(scope="module")
def pet_iq_folders(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from scanbench.simulate import simulate_iq

    root = tmp_path_factory.mktemp("pet_iq")
    out = []
    for seed in range(1, 5):
        simulate_iq(root / f"s{seed}", seed=seed)
        out.append(root / f"s{seed}")
    return out


def test_memory_does_not_grow_with_the_number_of_series(pet_iq_folders: list[Path]) -> None:
    """Streaming: the parent holds headers only and a worker one series at a time, so the
    peaks with four series stay within one series' volume of the peaks with one (reading
    every series first, as one process does, adds three volumes)."""
    import pydicom

    ds = pydicom.dcmread(next(pet_iq_folders[0].glob("*.dcm")), stop_before_pixels=True)
    n_files = len(list(pet_iq_folders[0].glob("*.dcm")))
    volume_kib = ds.Rows * ds.Columns * n_files * 4 / 1024  # float32 voxels of one series

    def measure(folders: list[Path]) -> dict[str, int]:
        out = subprocess.run([sys.executable, "-c", _MEASURE, *map(str, folders)],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    one, four = measure(pet_iq_folders[:1]), measure(pet_iq_folders)
    assert (one["results"], four["results"], four["units"]) == (1, 4, 4)
    assert four["parent"] - one["parent"] < volume_kib
    assert four["worker"] - one["worker"] < volume_kib


class _Crashing:
    """An analysis whose process dies (SIGKILL, as the kernel's OOM killer sends) on one
    series, and measures the others with the real uniformity analysis."""

    id: ClassVar[str] = "test.crashing"
    modality: ClassVar[str] = "PT"
    standard: ClassVar[str] = "none"
    title: ClassVar[str] = "crashing"
    victim: ClassVar[str] = ""

    def detect(self, series: Series) -> float:
        return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        if series.uid == self.victim:
            os.kill(os.getpid(), signal.SIGKILL)
        return registry.get("pet.calibration_uniformity").run(series, **params)

    def figures(self, result: Result) -> list[Any]:
        return []


def test_every_builtin_group_analysis_groups_as_the_units_do() -> None:
    """A group analysis the units do not know sends a whole analyze run of its modality
    in process, on one core (parallel.KNOWN_GROUPS). pet.clinical_liver_noise (PET + the
    CT on its frame of reference) was added without it: every PET folder lost its pool."""
    from scanbench.analysis.base import is_group_analysis

    groups = {a.id for a in registry.all_analyses().values() if is_group_analysis(a)}
    assert groups <= par.KNOWN_GROUPS, groups - par.KNOWN_GROUPS
    assert par.known_groups_only({"PT", "CT", "MR"})


def test_a_worker_that_dies_is_a_named_failure_of_its_series(tmp_path: Path) -> None:
    import pydicom

    from scanbench.simulate import simulate_uniform

    simulate_uniform(tmp_path / "a", seed=1, voxel_mm=8.0)
    simulate_uniform(tmp_path / "b", seed=2, voxel_mm=8.0)
    first = next((tmp_path / "a").glob("*.dcm"))
    _Crashing.victim = str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID)
    registry.all_analyses()
    # In process, the crashing analysis would SIGKILL the test run itself.
    assert par.known_groups_only({"PT"}), "PET series would be analysed in process"
    registry._REGISTRY[_Crashing.id] = _Crashing()
    try:
        rep = analyze_paths([tmp_path], analysis=_Crashing.id, workers=2)
    finally:
        del registry._REGISTRY[_Crashing.id]
    (result,) = rep.results  # the other series is measured
    assert result.source and result.source.startswith(f"{tmp_path / 'b'}: series ")
    (failure,) = rep.failures
    assert failure.where.startswith(f"{tmp_path / 'a'}: series ")
    assert "worker process" in failure.reason and "SIGKILL" in failure.reason


def test_header_walk_equals_pydicom_on_every_real_file(shared_data: Path) -> None:
    """The header pass's own walk (the grouping tags up to (0020,0052), implicit and
    explicit VR little endian) gives pydicom's values for every real Part 10 file, and
    on a truncated copy either those values or None (pydicom then reads the file), never
    another value."""
    tags = ["StudyInstanceUID", "SeriesInstanceUID", "Modality", "FrameOfReferenceUID",
            "SOPInstanceUID", "SeriesDescription"]
    files = sorted(p for p in shared_data.rglob("*") if p.is_file())
    walked = 0
    for n, path in enumerate(files):
        data = par._head_bytes(path)
        if data is None or data[128:132] != b"DICM":
            continue
        with warnings.catch_warnings():  # pydicom on real files' invalid UIs
            warnings.simplefilter("ignore")
            want = par._pydicom_header(path, tags)
        got = par._walk(data, path)
        if got is None:
            continue
        walked += 1
        assert got == want, path
        if n % 7 == 0:  # truncated copies of some of them: the values or None
            for cut in range(132, min(len(data), 4000), 37):
                short = par._walk(data[:cut])
                assert short is None or short == want, (path, cut)
    assert walked >= 300  # 363 real Part 10 files, implicit and explicit VR


def test_header_walk_skips_sequences_of_undefined_length(tmp_path: Path) -> None:
    """A sequence of undefined length (items of defined and undefined length) before the
    grouping tags is skipped to its delimiter (PS3.5 §7.5), in both VR encodings."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
        inner = Dataset()
        inner.CodeValue, inner.CodeMeaning = "126", "FDG [tag]"
        item = Dataset()
        item.RadiopharmaceuticalCodeSequence = Sequence([inner])
        item.Radiopharmaceutical = "Fluorodeoxyglucose"
        ds.ReferencedImageSequence = Sequence([item, Dataset()])  # (0008,1140), an SQ
        ds["ReferencedImageSequence"].is_undefined_length = True
        item.is_undefined_length_sequence_item = True  # the second item: a defined length
        ds.Modality, ds.SeriesDescription = "PT", "WB [x]"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.FrameOfReferenceUID = generate_uid()
        ds.Rows = 2  # the walk stops at the first tag past (0020,0052)
        path = tmp_path / f"{syntax}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        raw = path.read_bytes()
        assert b"\xfe\xff\xdd\xe0" in raw  # written with undefined lengths
        want = {par._STUDY: ds.StudyInstanceUID, par._SERIES: ds.SeriesInstanceUID,
                par._MODALITY: "PT", par._FOR: ds.FrameOfReferenceUID,
                par._SOP: ds.SOPInstanceUID, par._DESC: "WB [x]"}
        assert par._walk(raw, path) == want


def test_collector_frozen_only_across_the_fork(shared_data: Path) -> None:
    """The parallel path freezes the collector's objects for the fork alone: a process
    that had frozen nothing has nothing frozen afterwards (a long-lived caller keeps
    collecting its garbage), and one that froze objects itself keeps exactly those."""
    code = textwrap.dedent("""
        import gc, sys
        from pathlib import Path
        from scanbench.api import analyze_paths
        folder = [Path(sys.argv[1])]
        assert gc.get_freeze_count() == 0
        rep = analyze_paths(folder, workers=2)
        assert len(rep.results) == 2, rep.results  # two studies: two units, two workers
        assert gc.get_freeze_count() == 0, gc.get_freeze_count()
        gc.freeze()
        mine = gc.get_freeze_count()
        gc.disable()  # so that this garbage cycle is still there when the workers fork
        class Node: pass
        cycle = Node(); cycle.me = cycle; del cycle
        analyze_paths(folder, workers=2)
        assert gc.get_freeze_count() == mine, (gc.get_freeze_count(), mine)
        assert gc.collect() >= 1  # the cycle was not frozen: collected
    """)
    subprocess.run([sys.executable, "-c", code, str(shared_data / "pet" / "nema-iq-test-recon")],
                   check=True, timeout=300)
