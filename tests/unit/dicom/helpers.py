"""Builders of derived DICOM test inputs (written with pydicom from real files)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ENHANCED_PET = "1.2.840.10008.5.1.4.1.1.130"


def write(dss: Sequence[Dataset], folder: Path, names: Sequence[str] | None = None) -> list[Path]:
    """Write data sets into ``folder`` (created) as Part 10 files; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, ds in enumerate(dss):
        path = folder / (names[n] if names else f"slice_{n:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def copies(dss: Sequence[Dataset]) -> list[Dataset]:
    return [copy.deepcopy(ds) for ds in dss]


def stored(ds: Dataset) -> np.ndarray:
    """Stored values of a classic single-frame data set, as pydicom decodes them."""
    return np.asarray(ds.pixel_array)


def physical(ds: Dataset) -> np.ndarray:
    """Stored × Rescale Slope + Rescale Intercept, float64, computed independently."""
    return stored(ds) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def new_series(dss: Sequence[Dataset]) -> list[Dataset]:
    """Copies with a fresh Series Instance UID and SOP Instance UIDs."""
    out = copies(dss)
    uid = generate_uid()
    for ds in out:
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        if hasattr(ds, "file_meta"):
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return out


def _item(**values: object) -> Dataset:
    item = Dataset()
    for key, value in values.items():
        setattr(item, key, value)
    return item


def enhanced_pet(dss: Sequence[Dataset], *, order: Sequence[int] | None = None,
                 temporal: Sequence[int] | None = None) -> Dataset:
    """An Enhanced PET Image (PS3.3 A.56) holding the given classic PET slices as frames.

    Pixel Measures and Plane Orientation go in the shared functional groups;
    Plane Position, Pixel Value Transformation (each frame keeps its own slope)
    and Frame Content in the per-frame groups. ``order`` permutes the frames
    as stored; ``temporal`` gives each input slice a Temporal Position Index.
    """
    first = dss[0]
    order = list(order) if order is not None else list(range(len(dss)))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ENHANCED_PET
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ENHANCED_PET
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for kw in ("Modality", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
               "SeriesDescription", "Units", "DecayCorrection", "CorrectedImage"):
        if kw in first:
            setattr(ds, kw, first.data_element(kw).value)
    ds.Modality = "PT"
    ds.Rows, ds.Columns = first.Rows, first.Columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = first.PixelRepresentation
    ds.NumberOfFrames = len(order)
    ds.DimensionIndexSequence = DicomSequence([
        _item(DimensionIndexPointer=0x00209056, FunctionalGroupPointer=0x00209111),
        _item(DimensionIndexPointer=0x00209128, FunctionalGroupPointer=0x00209111),
        _item(DimensionIndexPointer=0x00209057, FunctionalGroupPointer=0x00209111),
    ])
    shared = _item(
        PixelMeasuresSequence=DicomSequence([_item(PixelSpacing=first.PixelSpacing,
                                                   SliceThickness=first.SliceThickness)]),
        PlaneOrientationSequence=DicomSequence([_item(
            ImageOrientationPatient=first.ImageOrientationPatient)]),
    )
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    pixels = []
    for n in order:
        src = dss[n]
        t = temporal[n] if temporal is not None else 1
        per_frame.append(_item(
            PlanePositionSequence=DicomSequence([_item(
                ImagePositionPatient=src.ImagePositionPatient)]),
            PixelValueTransformationSequence=DicomSequence([_item(
                RescaleSlope=src.RescaleSlope, RescaleIntercept=src.RescaleIntercept,
                RescaleType="BQML")]),
            FrameContentSequence=DicomSequence([_item(
                StackID="1", InStackPositionNumber=n + 1, TemporalPositionIndex=t,
                DimensionIndexValues=[1, t, n + 1])]),
        ))
        pixels.append(stored(src).astype(f"<{'i' if first.PixelRepresentation else 'u'}2"))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.PixelData = np.stack(pixels).tobytes()
    return ds


def read_back(path: Path) -> Dataset:
    return pydicom.dcmread(path)
