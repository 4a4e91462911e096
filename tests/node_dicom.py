"""Small DICOM instances for the node's tests: a few CT slices with chosen identity, and a
simulated PET uniform cylinder (fast, analysed by pet.calibration_uniformity)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_slice(*, study: str, series: str, index: int = 0, manufacturer: str = "ACME",
             model: str = "Scan 64", serial: str | None = "SN-1", station: str | None = "CT1",
             software: str | None = "1.0", when: dt.datetime = dt.datetime(2026, 3, 4, 10, 30),
             sop: str | None = None, rows: int = 8) -> bytes:
    """One CT Image Storage instance as Part 10 bytes (explicit VR little endian)."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop or generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Modality = "CT"
    ds.Manufacturer, ds.ManufacturerModelName = manufacturer, model
    if serial is not None:
        ds.DeviceSerialNumber = serial
    if station is not None:
        ds.StationName = station
    if software is not None:
        ds.SoftwareVersions = software
    ds.PatientName, ds.PatientID = "Test^Patient", "P1"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = when.strftime("%H%M%S")
    ds.SeriesNumber, ds.InstanceNumber = 2, index + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(index) * 5.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], 5.0
    ds.Rows = ds.Columns = rows
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024.0, 1.0
    ds.PixelData = (np.full((rows, rows), 1024, np.int16)).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def ct_series(n: int = 4, **kw: Any) -> tuple[str, str, list[bytes]]:
    """(study UID, series UID, n instances) of one small CT series."""
    study = kw.pop("study", None) or generate_uid()
    series = kw.pop("series", None) or generate_uid()
    return study, series, [ct_slice(study=study, series=series, index=i, **kw) for i in range(n)]


def uniform_phantom(folder: Path, **kw: Any) -> dict[str, Any]:
    """A PET uniform cylinder on the virtual scanner (36 slices of 8 mm, 0.2 s)."""
    from scanbench.simulate.pet import simulate_uniform

    return simulate_uniform(folder, voxel_mm=8.0, length_mm=120.0, diameter_mm=160.0,
                            seed=kw.pop("seed", 1), **kw)
