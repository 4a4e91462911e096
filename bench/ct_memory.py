"""Benchmark: peak memory of reading a large CT series, relative to the volume (issue 15:
"a large CT series (300 slices of 512²): peak memory under 2× the volume").

A 16-bit CT series (Explicit VR Little Endian, rescale intercept −1024) is written with
pydicom into a temporary folder; a fresh process per run imports scanbench, resets its
peak resident set (``/proc/self/clear_refs``), notes its resident set, calls
``scanbench.dicom.read_one(folder)`` and reports its own ``VmHWM`` of
``/proc/self/status`` minus that baseline, over the float32 volume's size. (Not
``getrusage``: Linux carries ru_maxrss across fork/exec.) ``--src DIR`` measures another
source tree the same way, in the same run (``PYTHONPATH=DIR``). Linux only.

    python bench/ct_memory.py [--slices 300] [--size 512] [--rounds 3] [--src /tmp/before/src]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

CHILD = """
import json, sys, time
def status(key):
    with open('/proc/self/status') as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(key)
from scanbench.dicom import read_one
with open('/proc/self/clear_refs', 'w') as fh:
    fh.write('5')
base = status('VmRSS')
t0 = time.perf_counter()
series = read_one(sys.argv[1])
seconds = time.perf_counter() - t0
print(json.dumps({'extra': status('VmHWM') - base, 'volume': series.voxels.nbytes,
                  'seconds': seconds}))
"""


def write_series(folder: Path, slices: int, size: int) -> None:
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    for k in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = series, study, frame
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-250.0, -250.0, 1.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.9765625, 0.9765625]
        ds.SliceThickness = 1.0
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
        ds.PixelData = rng.integers(-1024, 3000, (size, size), dtype=np.int16).tobytes()
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)


def run(folder: Path, src: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True,
                         text=True, check=True, env=env)
    return dict(json.loads(out.stdout))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--src", help="another source tree to measure in the same run")
    args = ap.parse_args()
    print(f"date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")
    print(f"machine: {os.cpu_count()} logical cores, {platform.system()} {platform.release()}, "
          f"load {os.getloadavg()[0]:.1f}; Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_series(folder, args.slices, args.size)
        trees = [("this tree", None)] + ([(args.src, args.src)] if args.src else [])
        results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
        for _ in range(args.rounds):  # interleaved
            for label, src in trees:
                results[label].append(run(folder, src))
        for label, runs in results.items():
            volume = runs[0]["volume"] / 2**20
            extra = statistics.median(r["extra"] for r in runs) / 2**20
            secs = statistics.median(r["seconds"] for r in runs)
            print(f"{label}: {args.slices} x {args.size}^2, volume {volume:.0f} MiB float32; "
                  f"peak extra resident {extra:.0f} MiB = {extra / volume:.2f}x the volume "
                  f"(target < 2x); read_one {secs:.2f} s (median of {len(runs)})")


if __name__ == "__main__":
    main()
