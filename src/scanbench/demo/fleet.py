"""The virtual fleet of ``scanbench demo``: its sites, devices, users and what happens to
them over the simulated year (a drift, a failure and its repair, a software upgrade).

Everything here is plain data. The days of the scenario are placed by *working-day
index* (Monday to Friday, the days daily QC is done), as fractions of the period, so a
shorter period (``--days``, for tests) keeps the same story: baseline first, then the
drift, the failure, the upgrade, each with at least 33 working days of history before
it (the trend rules estimate their baseline from the first 30 values of a segment,
scanbench.evaluation.alerts).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

#: The trend rules' baseline is the first 30 values of a segment
#: (scanbench.evaluation.alerts.SETTINGS.baseline_points); every scenario event comes
#: after at least this many working days of history.
MIN_HISTORY_DAYS = 33
#: The shortest period (70 calendar days): each event after MIN_HISTORY_DAYS of
#: history, and the drift rising for at least 12 working days (from 35 % of the period,
#: or MIN_HISTORY_DAYS, to +8 HU at 90 %): at most 0.67 HU a working day, so that the
#: trend rules (day-to-day SD 0.6 HU) have days to see it before the noise-free value
#: passes +7 HU.
MIN_WORKING_DAYS = MIN_HISTORY_DAYS + 15


@dataclass(frozen=True)
class SiteDef:
    key: str
    name: str
    institution: str
    timezone: str


@dataclass(frozen=True)
class DeviceDef:
    """One virtual scanner. ``kind``: petct, ct or mr (the QC it does); identity as the
    DICOM headers give it; class attributes as entered by the site."""

    key: str
    site: str
    kind: str
    manufacturer: str
    model: str
    serial: str
    station: str
    software: str
    country: str
    display_name: str
    field_strength_t: float | None = None
    axial_fov_cm: float | None = None
    helium_free: bool | None = None  # MRI: a sealed magnet with no helium boil-off

    @property
    def modality(self) -> str:
        return {"petct": "PT", "ct": "CT", "mr": "MR"}[self.kind]


SITES: tuple[SiteDef, ...] = (
    SiteDef("lead", "Northfield University Hospital", "Northfield University Hospital, "
            "Department of Nuclear Medicine and Radiology (virtual)", "Europe/Amsterdam"),
    SiteDef("riverside", "Riverside General Hospital", "Riverside General Hospital (virtual)",
            "Europe/Amsterdam"),
    SiteDef("hillcrest", "Hillcrest Regional Hospital", "Hillcrest Regional Hospital (virtual)",
            "Europe/Amsterdam"),
)

# Makes and models are real product names, to make the classes recognisable; every
# device, serial number and value here is simulated.
DEVICES: tuple[DeviceDef, ...] = (
    DeviceDef("lead-tb", "lead", "petct", "UIH", "uEXPLORER", "DEMO-TB-0194", "NUH_PETCT1",
              "R002", "China", "Total-body PET/CT (194 cm)", axial_fov_cm=194.0),
    DeviceDef("lead-ct", "lead", "ct", "SIEMENS", "SOMATOM Force", "DEMO-CT-1001", "NUH_CT1",
              "syngo CT VB20A", "Germany", "CT 1 (emergency)"),
    DeviceDef("lead-mr5t", "lead", "mr", "UIH", "uMR Jupiter", "DEMO-MR-5000", "NUH_MR5T",
              "R005", "China", "MRI 5 T whole body", field_strength_t=5.0, helium_free=False),
    DeviceDef("lead-mr15-free", "lead", "mr", "SIEMENS", "MAGNETOM Flow.Ace", "DEMO-MR-1501",
              "NUH_MR15A", "syngo MR XA61", "Germany", "MRI 1.5 T helium-free (sealed)",
              field_strength_t=1.5, helium_free=True),
    DeviceDef("lead-mr15", "lead", "mr", "GE MEDICAL SYSTEMS", "SIGNA Artist", "DEMO-MR-1502",
              "NUH_MR15B", "MR30.1", "United States", "MRI 1.5 T conventional magnet",
              field_strength_t=1.5, helium_free=False),
    DeviceDef("river-petct", "riverside", "petct", "GE MEDICAL SYSTEMS", "Discovery MI",
              "DEMO-PC-2001", "RGH_PETCT", "pet_coreload.46", "United States", "PET/CT",
              axial_fov_cm=25.0),
    DeviceDef("river-ct", "riverside", "ct", "GE MEDICAL SYSTEMS", "Revolution Apex",
              "DEMO-CT-2002", "RGH_CT1", "revo_apex.1", "United States", "CT 1"),
    DeviceDef("river-mr", "riverside", "mr", "Philips", "Ingenia Elition", "DEMO-MR-2003",
              "RGH_MR3T", "5.7.1", "Netherlands", "MRI 3 T", field_strength_t=3.0,
              helium_free=False),
    DeviceDef("hill-petct", "hillcrest", "petct", "SIEMENS", "Biograph Vision 600",
              "DEMO-PC-3001", "HRH_PETCT", "VG80", "Germany", "PET/CT", axial_fov_cm=26.3),
    DeviceDef("hill-ct", "hillcrest", "ct", "CANON_MEC", "Aquilion ONE PRISM", "DEMO-CT-3002",
              "HRH_CT1", "V10.6", "Japan", "CT 1"),
    DeviceDef("hill-mr", "hillcrest", "mr", "UIH", "uMR 780", "DEMO-MR-3003", "HRH_MR3T",
              "R004", "China", "MRI 3 T", field_strength_t=3.0, helium_free=False),
)


@dataclass(frozen=True)
class UserDef:
    username: str
    password: str
    display_name: str
    grants: tuple[tuple[str, str], ...]  # (site key, role)


#: Demo accounts (demo passwords, printed by the demo: never use them on real data).
USERS: tuple[UserDef, ...] = (
    UserDef("admin", "demo-admin-pass", "Demo administrator",
            tuple((s.key, "admin") for s in SITES)),
    UserDef("physicist", "demo-physicist-pass", "Demo physicist",
            tuple((s.key, "physicist") for s in SITES)),
    UserDef("technologist", "demo-technologist-pass", "Demo technologist",
            tuple((s.key, "technologist") for s in SITES)),
    UserDef("viewer", "demo-viewer-pass", "Demo viewer", tuple((s.key, "viewer") for s in SITES)),
    UserDef("riverside", "demo-riverside-pass", "Riverside physicist (one site only)",
            (("riverside", "physicist"),)),
)


@dataclass(frozen=True)
class Scenario:
    """The year's story in working-day indices (0 = the first working day)."""

    start: dt.date  # first calendar day of the period
    days: int  # calendar days in the period
    workdays: tuple[dt.date, ...]
    drift_device: str = "lead-ct"
    drift_start: int = 0  # first working day whose value is off
    drift_hu_per_day: float = 0.0
    failure_device: str = "river-ct"
    failure_day: int = 0  # the QC on this day fails (uniformity)
    repair_day: int = 0  # repaired and re-tested (passes) on this day
    upgrade_device: str = "hill-ct"
    upgrade_day: int = 0
    extras: dict[str, int] = field(default_factory=dict)

    def date(self, workday: int) -> dt.date:
        return self.workdays[workday]

    def drift_offset_hu(self, workday: int) -> float:
        """The water CT number drift (HU) of the drifting CT on a working day."""
        return max(0, workday - self.drift_start + 1) * self.drift_hu_per_day \
            if workday >= self.drift_start else 0.0

    @property
    def limit_crossing_day(self) -> int:
        """The first working day on which the noise-free drift exceeds +7 HU (the water
        CT-number limit of the daily-water-qc spec)."""
        return self.drift_start - 1 + math.floor(7.0 / self.drift_hu_per_day) + 1


def scenario(days: int, end: dt.date) -> Scenario:
    """The story over ``days`` calendar days ending on ``end`` (inclusive)."""
    start = end - dt.timedelta(days=days - 1)
    workdays = tuple(d for d in (start + dt.timedelta(days=i) for i in range(days))
                     if d.weekday() < 5)
    w = len(workdays)
    if w < MIN_WORKING_DAYS:
        raise ValueError(f"the demo needs at least {MIN_WORKING_DAYS} working days "
                         f"(--days {7 * math.ceil(MIN_WORKING_DAYS / 5)} or more)")
    drift_start = max(MIN_HISTORY_DAYS, round(0.35 * w))
    # The drift reaches +8 HU at 90 % of the period: it crosses +7 HU before the end.
    rate = 8.0 / (round(0.9 * w) - drift_start)
    failure = max(MIN_HISTORY_DAYS, round(0.55 * w))
    upgrade = max(MIN_HISTORY_DAYS, round(0.7 * w))
    return Scenario(start=start, days=days, workdays=workdays, drift_start=drift_start,
                    drift_hu_per_day=rate, failure_day=failure, repair_day=failure + 2,
                    upgrade_day=upgrade)
