"""The fleet's year of QC, written as DICOM by the virtual scanners (scanbench.simulate).

What each device does, and the image sizes chosen so that a year of it is prepared in
minutes on two cores (the analyses are the ones a real scan gets; only the matrices are
smaller than a scanner's):

- CT: the daily water phantom on every working day (``ct.water``: 3 slices of 5 mm,
  2 mm pixels, 130 x 130); the ACR CT 464 phantom monthly (``ct.acr464``, 0.98 mm
  pixels).
- PET/CT: a uniform cylinder for the calibration check weekly
  (``pet.calibration_uniformity``: 64 x 64 voxels of 4 mm, 8 mm slices; for the
  total-body scanner the reconstruction covers the 300 mm around the phantom, not the
  whole 1940 mm); the NEMA IEC body phantom quarterly
  (``pet.nema_nu2_2018.image_quality``).
- MRI: the NEMA MS 1 two-acquisition SNR pair of a uniform cylinder weekly
  (``mr.nema_ms1.snr``, 128 x 128); the ACR large phantom once a year (T1, T2 and the
  sagittal localiser at the ACR's 256 x 256, ``mr.acr.*``: the slowest scan to
  simulate, about 7 s of CPU).

Day-to-day variation is simulated as a scanner's would be: image noise from the
virtual scanner, plus a small daily offset of the calibrated quantity (water CT number
SD 0.6 HU; PET calibration SD 1 %). The scenario (scanbench.demo.fleet.Scenario) adds
the drift, the failure and the upgrade.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from scanbench.demo.fleet import DeviceDef, Scenario

#: Daily QC start (local time); periodic tests later in the morning.
DAILY_AT = dt.time(7, 30)
PERIODIC_AT = dt.time(18, 30)
#: Reconstruction range (mm) of the PET calibration scan on the long-axial-FOV scanner.
TB_RECON_RANGE_MM = 300.0
#: Software version of the upgraded CT after its upgrade.
UPGRADED_SOFTWARE = "V10.8"
#: The tests that take longest to simulate, longest first (CPU per scan measured on the
#: development machine: ACR MRI about 7 s, ACR CT 464 about 3 s, NEMA IEC body phantom
#: about 0.9 s; a daily or weekly scan 0.03 to 0.17 s): simulated first.
SLOW_TESTS = ("mr-acr", "ct-acr464", "pet-iq")


@dataclass(frozen=True)
class QcTask:
    """One QC acquisition: which device, which test, when (local, aware) and what the
    scenario does to it (``hu_offset``, ``cupping_hu``, ``calibration_bias_percent``,
    ``noise_scale``, ``software``)."""

    device: DeviceDef
    test: str  # ct-water, ct-acr464, pet-uniform, pet-iq, mr-snr, mr-acr
    at: dt.datetime
    seed: int
    folder: str
    hu_offset: float = 0.0
    cupping_hu: float = 0.0
    calibration_bias_percent: float = 0.0
    noise_scale: float = 1.0
    software: str = ""


def _seed(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _local(day: dt.date, at: dt.time, zone: str) -> dt.datetime:
    return dt.datetime.combine(day, at, tzinfo=ZoneInfo(zone))


def plan(devices: tuple[DeviceDef, ...], sc: Scenario, zones: dict[str, str], *,
         periodic: bool = True) -> list[QcTask]:
    """Every QC acquisition of the period, in time order; ``periodic`` false leaves out
    the quarterly and annual phantom tests (the daily and weekly QC, and the scenario,
    are the same)."""
    tasks: list[QcTask] = []
    mr_acr_day = round(0.5 * len(sc.workdays))
    down = set(range(sc.failure_day + 1, sc.repair_day))  # the failed CT waits for repair
    for dev in devices:
        rng = np.random.default_rng(_seed("daily", dev.key))
        zone = zones[dev.site]
        base_hu = float(rng.normal(0.0, 0.8))
        base_cal = float(rng.normal(0.0, 1.5))
        last_week = None
        last_ct_quarter: tuple[int, int] | None = None
        last_quarter = None
        for i, day in enumerate(sc.workdays):
            software = dev.software
            hu, cup, noise = base_hu + float(rng.normal(0.0, 0.6)), 0.0, 1.0
            if dev.key == sc.upgrade_device and i >= sc.upgrade_day:
                # The upgrade's new reconstruction: less noise, water 1.8 HU higher; the
                # site marks it as a new baseline.
                software, hu, noise = UPGRADED_SOFTWARE, hu + 1.8, 0.8
            if dev.key == sc.drift_device:
                hu += sc.drift_offset_hu(i)
            if dev.key == sc.failure_device:
                if i in down:
                    continue
                if i == sc.failure_day:
                    cup = 12.0  # a failed detector calibration: strong cupping
            week = day.isocalendar()[:2]
            if dev.kind == "ct":
                tasks.append(QcTask(test="ct-water", at=_local(day, DAILY_AT, zone),
                                    seed=_seed(dev.key, day, "water"),
                                    folder=f"{dev.key}/{day}/water", hu_offset=hu,
                                    cupping_hu=cup, noise_scale=noise, device=dev,
                                    software=software))
                quarter_ct = (day.year, (day.month - 1) // 3)
                if periodic and quarter_ct != last_ct_quarter and i >= 10:
                    last_ct_quarter = quarter_ct
                    tasks.append(QcTask(test="ct-acr464", at=_local(day, PERIODIC_AT, zone),
                                        seed=_seed(dev.key, day, "acr"),
                                        folder=f"{dev.key}/{day}/acr464", hu_offset=hu,
                                        noise_scale=noise, device=dev, software=software))
            elif week != last_week:
                last_week = week
                if dev.kind == "petct":
                    tasks.append(QcTask(
                        test="pet-uniform", at=_local(day, DAILY_AT, zone),
                        seed=_seed(dev.key, day, "cal"), folder=f"{dev.key}/{day}/uniform",
                        calibration_bias_percent=base_cal + float(rng.normal(0.0, 1.0)),
                        device=dev, software=software))
                else:
                    tasks.append(QcTask(test="mr-snr", at=_local(day, DAILY_AT, zone),
                                        seed=_seed(dev.key, day, "snr"),
                                        folder=f"{dev.key}/{day}/snr", device=dev,
                                        software=software))
            quarter = (day.year, (day.month - 1) // 3)
            if not periodic:
                continue
            if dev.kind == "mr" and i == mr_acr_day:
                test = "mr-acr"
            elif dev.kind == "petct" and quarter != last_quarter and i >= 10:
                last_quarter = quarter
                test = "pet-iq"
            else:
                continue
            tasks.append(QcTask(test=test, at=_local(day, PERIODIC_AT, zone),
                                seed=_seed(dev.key, day, test), folder=f"{dev.key}/{day}/{test}",
                                calibration_bias_percent=base_cal, device=dev, software=software))
    tasks.sort(key=lambda t: (t.at, t.device.key))
    return tasks


def write(task: QcTask, root: Path) -> int:
    """Simulate ``task`` and write its DICOM under ``root / task.folder``; returns the
    number of files. Runs in a worker process (plain data in and out)."""
    out = Path(root) / task.folder
    d = task.device
    if task.test in ("ct-water", "ct-acr464"):
        from scanbench.simulate.ct import CtScannerModel, render_water
        from scanbench.simulate.ct_dicom import write_ct_series
        from scanbench.simulate.ct_phantoms import render_acr464

        model = CtScannerModel(manufacturer=d.manufacturer, model=d.model, serial=d.serial,
                               station=d.station, software_versions=task.software,
                               hu_offset=task.hu_offset, cupping_hu=task.cupping_hu,
                               noise_hu=6.0 * task.noise_scale)
        if task.test == "ct-water":
            vol, _ = render_water(model, pixel_mm=2.0, n_slices=3, seed=task.seed)
            description = "Daily QC water phantom"
        else:
            vol, _ = render_acr464(model, pixel_mm=0.98, seed=task.seed)
            description = "ACR CT 464 phantom"
        return len(write_ct_series(vol, out, model=model, description=description,
                                   acquired_at=task.at))
    if task.test in ("pet-uniform", "pet-iq"):
        from scanbench.simulate.pet import ScannerModel, simulate_iq, simulate_uniform

        afov = 10.0 * (d.axial_fov_cm or 26.0)
        scanner = ScannerModel(manufacturer=d.manufacturer, model=d.model, serial=d.serial,
                               station=d.station, software_versions=task.software,
                               axial_fov_mm=min(afov, TB_RECON_RANGE_MM),
                               calibration_bias_percent=task.calibration_bias_percent)
        if task.test == "pet-uniform":
            truth = simulate_uniform(out, scanner=scanner, matrix=64, voxel_mm=4.0,
                                     slice_mm=8.0, seed=task.seed, scan_start=task.at)
        else:
            truth = simulate_iq(out, scanner=scanner, seed=task.seed, scan_start=task.at)
        return int(truth["files"])
    if task.test in ("mr-snr", "mr-acr"):
        from scanbench.simulate import mr

        magnet = mr.MrScanner(manufacturer=d.manufacturer, model=d.model, serial=d.serial,
                              station=d.station, software_versions=task.software,
                              field_strength_t=d.field_strength_t or 1.5)
        if task.test == "mr-snr":
            protocol = mr.MrProtocol(name="SNR uniform", tr_ms=1000.0, te_ms=30.0, matrix=128)
            truth = mr.simulate_uniform(out, scanner=magnet, protocol=protocol,
                                        seed=task.seed, start=task.at)
        else:
            truth = mr.simulate_acr(out, scanner=magnet, seed=task.seed, start=task.at)
        return int(truth["files"])
    raise ValueError(f"unknown QC test {task.test!r}")


def task_json(task: QcTask) -> dict[str, Any]:
    """What the demo's plan file records of a task (for tests and for the curious)."""
    d = dataclasses.asdict(task)
    d["device"] = task.device.key
    d["at"] = task.at.isoformat()
    return json.loads(json.dumps(d))
