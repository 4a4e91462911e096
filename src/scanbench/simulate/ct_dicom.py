"""Write a virtual CT volume as classic CT Image Storage DICOM, one file per slice.

DICOM PS3.3 A.3 CT Image IOD: Patient, General Study, General Series, Frame of
Reference, General Equipment, General Acquisition, General Image, Image Plane,
Image Pixel, CT Image, SOP Common. What real scanners write and the analyses
read:

- 16-bit pixels, signed (Pixel Representation 1, as GE) or unsigned (0, as
  Siemens), Rescale Intercept −1024 and Slope 1 with Rescale Type HU, so stored
  value − 1024 is the HU value rounded to the nearest integer;
- Pixel Padding Value (0028,0120) for the pixels outside the reconstruction
  circle: stored −2000 (HU −3024) when signed, 0 (HU −1024) when unsigned;
- CT acquisition facts: KVP, X-Ray Tube Current, Exposure Time, Exposure
  (mAs), Revolution Time, Single/Total Collimation Width, Spiral Pitch Factor,
  Table Feed per Rotation, Convolution Kernel, Reconstruction Diameter, Data
  Collection Diameter, CTDIvol with its CTDI Phantom Type Code Sequence (DCM
  113691 "IEC Body Dosimetry Phantom" for 32 cm, 113690 "IEC Head Dosimetry
  Phantom" for 16 cm, PS3.16 CID 4052), Exposure Modulation Type;
- Image Type ORIGINAL\\PRIMARY\\AXIAL, or LOCALIZER for a scout
  (:func:`write_ct_localizer`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from scanbench.simulate.ct import PADDING_HU, CtScannerModel, CtVolume
from scanbench.simulate.dicom_writer import _code, _da, _ds, _tm, _tz
from scanbench.types import DeviceIdentity

RESCALE_INTERCEPT = -1024.0
_PHANTOM_CODES = {16: ("113690", "IEC Head Dosimetry Phantom"),
                  32: ("113691", "IEC Body Dosimetry Phantom")}


def _base(ds: Dataset, sop_uid: str, model: CtScannerModel, device: DeviceIdentity,
          when: dt.datetime, study_uid: str, series_uid: str, frame_uid: str,
          description: str, series_number: int, patient_name: str, patient_id: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    study = when - dt.timedelta(minutes=2)
    ds.StudyDate, ds.StudyTime = _da(study), _tm(study)
    ds.SeriesDate, ds.SeriesTime = _da(when), _tm(when)
    ds.AcquisitionDate, ds.AcquisitionTime = _da(when), _tm(when)
    ds.ContentDate, ds.ContentTime = _da(when), _tm(when)
    tz = _tz(when)
    if tz is not None:
        ds.TimezoneOffsetFromUTC = tz
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = device.manufacturer or ""
    ds.InstitutionName = "scanbench virtual site"
    ds.ReferringPhysicianName = ""
    if device.station:
        ds.StationName = device.station
    ds.StudyDescription = "CT phantom QC (simulated)"
    ds.SeriesDescription = description
    if device.model:
        ds.ManufacturerModelName = device.model
    if device.serial:
        ds.DeviceSerialNumber = device.serial
    if device.software_versions:
        ds.SoftwareVersions = device.software_versions
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "ABDOMEN"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    # CT Image module acquisition facts.
    ds.KVP = _ds(model.kvp)
    ds.XRayTubeCurrent = round(model.tube_current_ma)
    ds.ExposureTime = round(model.rotation_time_s * 1000.0)
    ds.Exposure = round(model.exposure_mas)
    ds.RevolutionTime = model.rotation_time_s
    ds.SingleCollimationWidth = model.single_collimation_mm
    ds.TotalCollimationWidth = model.total_collimation_mm
    ds.ScanOptions = model.scan_options
    if model.scan_options.upper() == "HELICAL":
        ds.SpiralPitchFactor = model.pitch
        ds.TableFeedPerRotation = model.pitch * model.total_collimation_mm
    ds.ConvolutionKernel = model.kernel
    ds.CTDIvol = model.ctdivol_mgy
    code, meaning = _PHANTOM_CODES[model.ctdi_phantom_cm]
    ds.CTDIPhantomTypeCodeSequence = Sequence([_code(code, "DCM", meaning)])
    ds.ExposureModulationType = model.exposure_modulation
    ds.GantryDetectorTilt = "0"
    ds.RotationDirection = "CW"


def _pixels(ds: Dataset, hu: np.ndarray, pad: np.ndarray, signed: bool) -> None:
    stored = np.rint(hu - RESCALE_INTERCEPT)
    if signed:
        stored = np.clip(stored, -32768, 32767)
        stored[pad] = PADDING_HU - RESCALE_INTERCEPT
        arr = stored.astype(np.int16)
    else:
        stored = np.clip(stored, 0, 65535)
        stored[pad] = 0
        arr = stored.astype(np.uint16)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = hu.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    if pad.any():
        ds.PixelPaddingValue = int(arr[pad][0])
    ds.RescaleIntercept = _ds(RESCALE_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.PixelData = arr.tobytes()


def write_ct_series(volume: CtVolume, out_dir: Path, *, model: CtScannerModel,
                    device: DeviceIdentity | None = None, signed: bool = True,
                    description: str = "CT (simulated)", series_number: int = 2,
                    acquired_at: dt.datetime | None = None,
                    patient_name: str = "SCANBENCH^CTPHANTOM",
                    patient_id: str = "SB-CT-PHANTOM") -> list[Path]:
    """Write ``volume`` as one CT Image Storage file per slice; returns the paths in slice order.

    ``signed`` chooses Pixel Representation 1 (padding stored −2000) or 0
    (padding stored 0, values below −1024 HU clipped to it).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = device or model.device
    when = acquired_at or dt.datetime(2026, 3, 4, 8, 0, 0,
                                      tzinfo=dt.timezone(dt.timedelta(hours=1)))
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    pad = ~volume.inside_circle
    nz = volume.shape[0]
    paths = []
    for k in range(nz):
        uid = generate_uid()
        ds = Dataset()
        _base(ds, uid, model, dev, when, study_uid, series_uid, frame_uid, description,
              series_number, patient_name, patient_id)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = k + 1
        position = volume.affine @ np.array([k, 0.0, 0.0, 1.0])
        ds.ImagePositionPatient = [_ds(v) for v in position[:3]]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SliceLocation = _ds(position[2])
        ds.SliceThickness = _ds(volume.slice_thickness_mm)
        ds.PixelSpacing = [_ds(volume.pixel_mm), _ds(volume.pixel_mm)]
        ds.ReconstructionDiameter = _ds(volume.reconstruction_diameter_mm)
        ds.DataCollectionDiameter = _ds(max(500.0, volume.reconstruction_diameter_mm))
        _pixels(ds, volume.voxels[k].astype(np.float64), pad, signed)
        path = out_dir / f"CT{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_ct_localizer(projection_hu: np.ndarray, pixel_mm: float, out_dir: Path, *,
                       model: CtScannerModel, device: DeviceIdentity | None = None
                       ) -> Path:
    """Write a coronal localiser (scout) image: Image Type ORIGINAL\\PRIMARY\\LOCALIZER."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = device or model.device
    when = dt.datetime(2026, 3, 4, 7, 58, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    uid = generate_uid()
    ds = Dataset()
    _base(ds, uid, model, dev, when, generate_uid(), generate_uid(), generate_uid(),
          "Topogram (simulated)", 1, "SCANBENCH^CTPHANTOM", "SB-CT-PHANTOM")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.InstanceNumber = 1
    ny, nx = projection_hu.shape
    ds.ImagePositionPatient = [_ds(-(nx - 1) / 2 * pixel_mm), "0", _ds((ny - 1) / 2 * pixel_mm)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"]
    ds.SliceThickness = _ds(model.total_collimation_mm)
    ds.PixelSpacing = [_ds(pixel_mm), _ds(pixel_mm)]
    _pixels(ds, np.asarray(projection_hu, dtype=np.float64), np.zeros((ny, nx), bool), True)
    path = out_dir / "LOCALIZER.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


__all__ = ["RESCALE_INTERCEPT", "write_ct_localizer", "write_ct_series"]
