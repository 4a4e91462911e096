"""Header facts of one series: device identity, UIDs, times (and PET, CT, MR facts).

Sources: General Equipment Module (PS3.3 C.7.5.1) for the device, General
Series / Study / Frame of Reference modules (C.7.3.1, C.7.2.1, C.7.4.1) for
UIDs and numbers, General Image / Enhanced General Equipment for acquisition
times (C.7.6.1, C.7.6.16.2.2). Datetimes are timezone-aware when Timezone
Offset From UTC (0008,0201) is present (C.12.1.1.8), else naive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pydicom.dataset import Dataset

from scanbench.dicom import headers as h
from scanbench.dicom.frames import Frame
from scanbench.dicom.modality_facts import ct_facts, mr_facts
from scanbench.dicom.pet import pet_facts
from scanbench.types import DeviceIdentity, SeriesFacts


def device_identity(ds: Dataset) -> DeviceIdentity:
    """Manufacturer (0008,0070), Manufacturer's Model Name (0008,1090), Device Serial
    Number (0018,1000), Station Name (0008,1010), Software Versions (0018,1020)
    (multi-valued, joined with a backslash)."""
    return DeviceIdentity(
        manufacturer=h.text(ds, "Manufacturer"),
        model=h.text(ds, "ManufacturerModelName"),
        serial=h.text(ds, "DeviceSerialNumber"),
        station=h.text(ds, "StationName"),
        software_versions=h.text(ds, "SoftwareVersions"),
    )


def earliest(values: Sequence[dt.datetime | None]) -> dt.datetime | None:
    """The earliest of the given datetimes (all localised alike), or None."""
    present = [v for v in values if v is not None]
    return min(present) if present else None


def series_facts(frames: Sequence[Frame]) -> SeriesFacts:
    """Facts of the series these frames belong to (header of the first frame's file,
    acquisition time the earliest over every frame)."""
    ds = frames[0].source.ds
    tz = h.timezone(ds)
    series_dt = h.localize(h.combine(h.text(ds, "SeriesDate"), h.text(ds, "SeriesTime")), tz)
    acquired = earliest([h.localize(f.acquired, tz) for f in frames])
    modality = h.text(ds, "Modality") or "OT"
    return SeriesFacts(
        modality=modality,
        device=device_identity(ds),
        study_instance_uid=h.text(ds, "StudyInstanceUID"),
        series_instance_uid=h.text(ds, "SeriesInstanceUID"),
        frame_of_reference_uid=h.text(ds, "FrameOfReferenceUID"),
        series_description=h.text(ds, "SeriesDescription"),
        series_number=h.integer(ds, "SeriesNumber"),
        acquired_at=acquired or series_dt,
        naive_times=tz is None,
        pet=pet_facts(ds, tz, acquired, frames[0].duration_s) if modality == "PT" else None,
        ct=ct_facts(ds) if modality == "CT" else None,
        mr=mr_facts(ds) if modality == "MR" else None,
    )
