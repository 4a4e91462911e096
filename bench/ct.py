"""Benchmark and cross-check: ACR 464 and CatPhan end to end, scanbench against pylinac.

The same DICOM files go to both tools: virtual scans of the ACR CT 464 and a
CatPhan 504 (``scanbench simulate ct-acr464 / ct-catphan``, written once into a
temporary folder with their ground truth) and the real CatPhan series in
``shared/data/ct/catphan`` (single-module partial scans: CTP404 3 slices, CTP486
3 slices). pylinac (PyPI) runs in its own virtual environment,
``bench/.peers/pylinac`` (created on first use), one process per analysis, and
reports the time of its load + analyze (interpreter start and imports
excluded); scanbench's time is read + recognise + analyse in this process.

Printed per data set: both tools' times (median of rounds) and the ratio, then
the numbers side by side with the truth where there is one. What pylinac does
with the partial real scans and where the tools differ is printed, not hidden.

    python bench/ct.py [--rounds 3] [--data ../shared/data] [--keep DIR]

Never run as a timed test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PEER_VENV = REPO / "bench" / ".peers" / "pylinac"

PEER_SCRIPT = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pylinac
from pylinac import ACRCT, CatPhan503, CatPhan504, CatPhan600, CatPhan604
cls = {"acr": ACRCT, "503": CatPhan503, "504": CatPhan504, "600": CatPhan600,
       "604": CatPhan604}[sys.argv[1]]
out = {"version": pylinac.__version__, "errors": {}}
t0 = time.perf_counter()
try:
    ph = cls(sys.argv[2])
    ph.analyze()
except Exception as exc:
    out["failed"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out)); sys.exit(0)
out["seconds"] = time.perf_counter() - t0
def grab(key, fn):
    try:
        out[key] = fn()
    except Exception as exc:
        out["errors"][key] = f"{type(exc).__name__}: {exc}"
if sys.argv[1] == "acr":
    grab("hu", lambda: {k: float(v.pixel_value) for k, v in ph.ct_calibration_module.rois.items()})
    grab("uniformity", lambda: {k: float(v.pixel_value)
                                for k, v in ph.uniformity_module.rois.items()})
    grab("noise", lambda: float(ph.uniformity_module.rois["Center"].std))
    grab("cnr", lambda: float(ph.low_contrast_module.cnr()))
    grab("rmtf", lambda: {str(k): float(v) for k, v in
                          ph.spatial_resolution_module.mtf.norm_mtfs.items()})
else:
    grab("hu", lambda: {k: float(v.pixel_value) for k, v in ph.ctp404.rois.items()})
    grab("slice_thickness", lambda: float(ph.ctp404.meas_slice_thickness))
    grab("uniformity", lambda: {k: float(v.pixel_value) for k, v in ph.ctp486.rois.items()})
    grab("rmtf", lambda: {str(k): float(v) for k, v in ph.ctp528.mtf.norm_mtfs.items()})
print(json.dumps(out))
'''

# pylinac's ROI names -> scanbench's material labels
ACR_NAMES = {"Air": "air", "Poly": "polyethylene", "Acrylic": "acrylic", "Bone": "bone",
             "Water": "water"}
CATPHAN_NAMES = {"Air": "air", "PMP": "pmp", "LDPE": "ldpe", "Poly": "polystyrene",
                 "Acrylic": "acrylic", "Delrin": "delrin", "Teflon": "teflon",
                 "50% Bone": "bone_50", "20% Bone": "bone_20"}


def ensure_peer() -> Path | None:
    """The peer's python, creating its venv with pylinac on first use; None if impossible."""
    py = PEER_VENV / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import pylinac"],
                                      capture_output=True).returncode == 0:
        return py
    try:
        print(f"creating {PEER_VENV} with pylinac (first run only) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "pylinac"], check=True,
                       timeout=900)
        return py
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"pylinac unavailable: {exc}", file=sys.stderr)
        return None


def run_pylinac(py: Path, kind: str, folder: Path) -> dict[str, Any]:
    proc = subprocess.run([str(py), "-c", PEER_SCRIPT, kind, str(folder)], capture_output=True,
                          text=True, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"failed": (proc.stderr.strip().splitlines() or ["no output"])[-1],
                "errors": {}}
    return json.loads(lines[-1])


def run_scanbench(folder: Path) -> tuple[float, dict[str, Any]]:
    from scanbench.analysis.registry import choose
    from scanbench.dicom.read import read

    t0 = time.perf_counter()
    series = read([folder]).series[0]
    analysis, _ = choose(series)
    result = analysis.run(series)
    return time.perf_counter() - t0, result.to_dict()


def dicom_only(src: Path, dst: Path) -> Path:
    """pylinac reads every file in a folder: give it the DICOM files only."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.dcm"):
        shutil.copy2(f, dst / f.name)
    return dst


def measurements(result: dict[str, Any], name: str) -> dict[str, float]:
    out = {}
    for m in result["measurements"]:
        if m["name"] == name:
            key = ",".join(str(v) for v in m["labels"].values()) or "-"
            out[key] = m["value"]
    return out


def simulate(root: Path) -> dict[str, tuple[Path, str, dict[str, Any] | None]]:
    from scanbench.simulate.ct import CtScannerModel
    from scanbench.simulate.ct_dicom import write_ct_series
    from scanbench.simulate.ct_phantoms import render_acr464, render_catphan

    model = CtScannerModel()
    sets: dict[str, tuple[Path, str, dict[str, Any] | None]] = {}
    for name, render, kw, kind in (
            ("ACR 464 (virtual, 2.5 mm, 0.5 mm pixels)", render_acr464,
             {"pixel_mm": 0.5, "slice_thickness_mm": 2.5, "rotation_deg": 3.0, "seed": 3},
             "acr"),
            ("CatPhan 504 (virtual, 2.5 mm, 0.5 mm pixels)", render_catphan,
             {"pixel_mm": 0.5, "slice_thickness_mm": 2.5, "rotation_deg": 3.0, "seed": 3},
             "504")):
        out = root / kind
        vol, truth = render(model, **kw)
        write_ct_series(vol, out, model=model, description=name)
        sets[name] = (out, kind, truth.get("expected"))
    return sets


def compare(name: str, folder: Path, kind: str, truth: dict[str, Any] | None,
            py: Path | None, rounds: int, tmp: Path) -> dict[str, Any]:
    times_sb = []
    result: dict[str, Any] = {}
    for _ in range(rounds):
        t, result = run_scanbench(folder)
        times_sb.append(t)
    row: dict[str, Any] = {"data": name, "scanbench_s": statistics.median(times_sb),
                           "scanbench_analysis": result["analysis"]}
    peer: dict[str, Any] = {}
    if py is not None:
        clean = dicom_only(folder, tmp / (kind + "-" + folder.name))
        runs = [run_pylinac(py, kind, clean) for _ in range(rounds)]
        peer = runs[-1]
        secs = [r["seconds"] for r in runs if "seconds" in r]
        if secs:
            row["pylinac_s"] = statistics.median(secs)
            row["ratio"] = row["pylinac_s"] / row["scanbench_s"]
    print(f"\n== {name}")
    print(f"   scanbench {row['scanbench_s']:.2f} s ({result['analysis']})", end="")
    if "pylinac_s" in row:
        print(f"   pylinac {row['pylinac_s']:.2f} s   pylinac/scanbench {row['ratio']:.1f}x")
    else:
        print(f"   pylinac: {peer.get('failed', 'not run')}")
    hu = measurements(result, "ct_number_hu")
    names = ACR_NAMES if kind == "acr" else CATPHAN_NAMES
    exp = (truth or {}).get("ct_number_hu", {})
    print(f"   {'material':<13}{'truth':>9}{'scanbench':>11}{'pylinac':>10}")
    for pl_name, label in names.items():
        if label not in hu:
            continue
        pl = peer.get("hu", {}).get(pl_name)
        t = exp.get(label)
        print(f"   {label:<13}{'' if t is None else f'{t:9.1f}':>9}{hu[label]:11.2f}"
              f"{'' if pl is None else f'{pl:10.2f}':>10}")
    st = measurements(result, "slice_thickness_mm").get("-")
    if st is not None or "slice_thickness" in peer:
        t_st = (truth or {}).get("slice_thickness_mm", float("nan"))
        print(f"   slice thickness  truth {t_st:.2f}"
              f"  scanbench {st if st is not None else float('nan'):.2f}"
              f"  pylinac {peer.get('slice_thickness', float('nan')):.2f} mm")
    if kind == "acr":
        cnr = measurements(result, "low_contrast_cnr").get("-")
        t_cnr = (truth or {}).get("low_contrast_cnr", float("nan"))
        print(f"   low-contrast CNR  truth {t_cnr:.3f}"
              f"  scanbench {cnr if cnr is not None else float('nan'):.3f} (mean over slices)"
              f"  pylinac {peer.get('cnr', float('nan')):.3f} (one slice)")
        bars = measurements(result, "bar_modulation")
        if bars and "rmtf" in peer:
            b4 = bars.get("4.0") or 1.0
            print("   relative MTF (to 4 lp/cm): lp/cm  truth  scanbench  pylinac")
            for lp_mm, pl in peer["rmtf"].items():
                lp = float(lp_mm) * 10
                tr = {float(k): v for k, v in (truth or {}).get("bar_modulation", {}).items()}
                t = tr.get(lp)
                t4 = tr.get(4.0)
                sb = bars.get(f"{lp:.1f}")
                print(f"      {lp:5.0f} {'' if t is None else f'{t / t4:6.3f}':>6}"
                      f" {'' if sb is None else f'{sb / b4:9.3f}':>9} {pl:8.3f}")
    for key, err in peer.get("errors", {}).items():
        print(f"   pylinac {key}: {err}")
    row["pylinac"] = {k: v for k, v in peer.items() if k != "errors"}
    row["pylinac_errors"] = peer.get("errors", {})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--keep", type=Path, default=None, help="keep the simulated scans here")
    args = ap.parse_args()
    py = ensure_peer()
    tmp = Path(tempfile.mkdtemp(prefix="scanbench-bench-ct-"))
    root = args.keep or tmp / "sim"
    print(f"scanbench bench/ct.py  {dt.date.today()}  {platform.node()}  "
          f"{platform.processor() or platform.machine()}  rounds {args.rounds}")
    sets = simulate(root)
    real = args.data / "ct" / "catphan"
    for sub in ("CTP404_FOV150", "CTP486"):
        if (real / sub).is_dir():
            sets[f"real {sub} (3 slices)"] = (real / sub, "504", None)
    rows = [compare(name, folder, kind, truth, py, args.rounds, tmp)
            for name, (folder, kind, truth) in sets.items()]
    print("\nsummary (median seconds; ratio = pylinac / scanbench, > 1: scanbench faster)")
    for r in rows:
        ratio = f"{r['ratio']:.1f}x" if "ratio" in r else "pylinac failed"
        pl = f"{r['pylinac_s']:.2f}" if "pylinac_s" in r else "-"
        print(f"   {r['data']:<48} scanbench {r['scanbench_s']:6.2f}   pylinac {pl:>6}   {ratio}")
    if args.keep is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
