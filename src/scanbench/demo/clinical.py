"""The fleet's clinical exams: CT and PET/CT exams with their dose reports
(scanbench.simulate.clinical), spread over the period's working days.

A CT exam is its CT radiation dose structured report (the RDSR: CTDIvol, DLP, times)
and, for a body exam, its helical series as a virtual patient
(scanbench.simulate.ct_patient: the exam patient's size, noise from the exam's CTDIvol;
six 5 mm slices at 256 × 256). A PET/CT exam adds a virtual FDG patient
(scanbench.simulate.pet_patient, its small grids: PET 6 mm voxels, CT 4 mm pixels,
8 mm slices, upper pelvis to lung bases) with the exam's administered activity, uptake
time and time per bed in its headers, its low-dose CT on the same frame of reference,
and a radiopharmaceutical RDSR. The node measures their clinical image quality (CT
global noise, PET liver noise) as it does a real patient's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from scanbench.demo.fleet import DeviceDef, Scenario

#: Exams per clinic day written for each device (a sample of the day's list).
PER_DAY = {"ct": 5, "petct": 4}
#: Axial slices of a CT exam's virtual patient (5 mm, 256 × 256): enough for the
#: node's global noise measurement, few enough for a year of exams.
PATIENT_SLICES = 6


@dataclass(frozen=True)
class ExamDay:
    """A batch of exams of one device on one day."""

    device: DeviceDef
    day: dt.date
    seed: int
    n: int
    software: str = ""  # the Software Versions in force that day (after an upgrade: new)


def plan(devices: tuple[DeviceDef, ...], sc: Scenario, exams: int) -> list[ExamDay]:
    """About ``exams`` exams over the CT and PET/CT devices, on evenly spaced working
    days (not on the days the failed CT is down)."""
    scanners = [d for d in devices if d.kind in PER_DAY]
    per_device = max(1, exams // max(1, len(scanners)))
    down = set(range(sc.failure_day, sc.repair_day))
    out: list[ExamDay] = []
    for k, d in enumerate(scanners):
        n_days = max(1, round(per_device / PER_DAY[d.kind]))
        step = len(sc.workdays) / n_days
        for j in range(n_days):
            i = min(len(sc.workdays) - 1, int((j + 0.5) * step) + k % 3)
            if d.key == sc.failure_device and i in down:
                i = max(0, sc.failure_day - 1)
            software = d.software
            if d.key == sc.upgrade_device and i >= sc.upgrade_day:
                from scanbench.demo.qc import UPGRADED_SOFTWARE

                software = UPGRADED_SOFTWARE
            out.append(ExamDay(d, sc.date(i), 1000 * k + j, PER_DAY[d.kind], software))
    return out


def write(e: ExamDay, root: Path) -> int:
    """Simulate one day's exams of one device under ``root``; returns the files written."""
    from scanbench.simulate.clinical import (
        DeviceSpec,
        PetProtocol,
        Schedule,
        simulate_ct_exams,
        simulate_petct_exams,
    )
    from scanbench.simulate.pet_patient import SMALL_GRID

    d = e.device
    device = DeviceSpec(manufacturer=d.manufacturer, model=d.model, serial=d.serial,
                        station=d.station, software=e.software or d.software,
                        institution=d.site)
    out = Path(root) / d.key / str(e.day) / "clinical"
    start = dt.datetime.combine(e.day, dt.time(8, 0))
    if d.kind == "ct":
        simulate_ct_exams(out, n=e.n, schedule=Schedule(start=start), device=device,
                          seed=e.seed, images=False, patient_slices=PATIENT_SLICES,
                          protocols=("chest", "abdomen_pelvis", "head",
                                     "chest_abdomen_pelvis"))
    else:
        # Bed positions 240 mm apart (20 mm overlap of the 260 mm field): the simulator's
        # three slices per bed are then evenly spaced, as a reconstructed whole-body
        # series is (the node refuses a series with uneven slice spacing).
        simulate_petct_exams(out, n=e.n, schedule=Schedule(start=start, mean_gap_min=8.0),
                             pet=PetProtocol(bed_overlap_mm=20.0), device=device,
                             seed=e.seed, patient_grid=SMALL_GRID)
    return sum(1 for _ in out.rglob("*.dcm"))
