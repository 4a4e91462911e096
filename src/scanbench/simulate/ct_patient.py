"""Virtual patients for CT: an anatomy-like axial body with noise of a known level.

Ground truth for clinical image-quality measurements (``scanbench.quality.ct_noise``):
the exact noise the image was given, at every patient size, dose, kernel and slice
thickness, which no real patient scan can provide.

Anatomy (per axial slice, the same on every slice; HU from typical unenhanced values):
an elliptical body (LAT × AP) of soft tissue (40 HU) under a subcutaneous fat layer
(−100 HU, default 15 mm), a liver (60 HU) on the patient's right, a spleen (45 HU) and
two kidneys (30 HU), a vertebral body (700 HU cancellous, 1200 HU cortex) posteriorly,
optionally two lungs (−850 HU, ``region="chest"``), air (−1000 HU) around and a foam
table (−100 HU) 15 mm below. Edges are anti-aliased (2 × 2 supersampling).

Noise model (stated physics, not a scanner's measured curve):

    σ = σ_ref · sqrt(CTDI_ref / CTDIvol) · exp(μ_eff (D_w − D_ref) / 2)
        · sqrt(T_ref / T) · k(kernel)

- σ ∝ 1/√dose: quantum noise, detected quanta ∝ tube current-time product ∝ CTDIvol;
- exp(μ_eff D_w / 2): the quanta reaching the detector through the patient fall as
  exp(−μ_eff D_w) (Beer–Lambert), the variance grows as its inverse; μ_eff = 0.019 /mm
  (water at an effective energy near 60 keV for 120 kV);
- 1/√T: the reconstructed slice averages quanta over its thickness T;
- reference σ_ref = 12 HU at CTDIvol 12 mGy, D_w 300 mm, T 5 mm, STANDARD kernel.

Noise texture: filtered back-projection noise, noise power spectrum
NPS(f) ∝ |f| · exp(−(f/f_c)²) (ramp × apodisation; the kernel sets f_c), drawn as white
Gaussian noise filtered in the Fourier domain and scaled so that the expected pixel SD
is exactly σ. The kernel factor k = (f_c / f_c,STANDARD)^{3/2} follows from
σ² = ∫ NPS d²f ∝ f_c³ at the same dose. The noise is stationary (the same σ in the
body and in the air around it), independent from slice to slice; the known noise of a
series is σ, the SD of the pixels of a uniform soft-tissue region.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scanbench.clinical.ssde import water_equivalent_diameter_slice
from scanbench.types import CtFacts, DeviceIdentity, Series, SeriesFacts

SIGMA_REF_HU = 12.0
CTDI_REF_MGY = 12.0
DW_REF_MM = 300.0
THICKNESS_REF_MM = 5.0
MU_EFF_PER_MM = 0.019

# Kernel name -> apodisation cutoff f_c (cycles/mm) of the FBP noise power spectrum.
KERNELS: dict[str, float] = {"SOFT": 0.30, "STANDARD": 0.45, "SHARP": 0.70, "LUNG": 1.00}

HU = {"soft_tissue": 40.0, "fat": -100.0, "liver": 60.0, "spleen": 45.0, "kidney": 30.0,
      "bone": 700.0, "cortex": 1200.0, "lung": -850.0, "air": -1000.0, "table": -100.0}


@dataclass(frozen=True)
class VirtualPatient:
    """The body and the acquisition of one virtual CT series."""

    lat_mm: float = 330.0
    ap_mm: float = 240.0
    fat_mm: float = 15.0
    region: str = "abdomen"  # or "chest" (with lungs)
    ctdivol_mgy: float = 12.0
    kernel: str = "STANDARD"
    slice_mm: float = 5.0
    kvp: float = 120.0
    slices: int = 8
    matrix: int = 512
    fov_mm: float = 0.0  # 0: body LAT + 70 mm, at least 300 mm
    contrast: str | None = None  # Contrast/Bolus Agent, e.g. "IOHEXOL" (None: unenhanced)

    @property
    def field_of_view_mm(self) -> float:
        return self.fov_mm if self.fov_mm > 0 else max(300.0, self.lat_mm + 70.0)


def kernel_factor(kernel: str) -> float:
    """k(kernel) = (f_c / f_c,STANDARD)^{3/2} (module docstring)."""
    return (KERNELS[kernel] / KERNELS["STANDARD"]) ** 1.5


def known_noise_hu(p: VirtualPatient, dw_mm: float) -> float:
    """σ of the noise model (module docstring) for this patient and acquisition."""
    if p.kernel not in KERNELS:
        raise ValueError(f"kernel {p.kernel!r}: use one of {', '.join(KERNELS)}")
    return (SIGMA_REF_HU * math.sqrt(CTDI_REF_MGY / p.ctdivol_mgy)
            * math.exp(MU_EFF_PER_MM * (dw_mm - DW_REF_MM) / 2.0)
            * math.sqrt(THICKNESS_REF_MM / p.slice_mm) * kernel_factor(p.kernel))


def anatomy_slice(p: VirtualPatient, supersample: int = 2) -> np.ndarray:
    """One noiseless axial slice in HU (module docstring), ``matrix × matrix``."""
    n = p.matrix * supersample
    fov = p.field_of_view_mm
    c = (np.arange(n) + 0.5) * fov / n - fov / 2
    x, y = np.meshgrid(c, c)  # x: patient left is +x in LPS; image column grows to +x
    a, b = p.lat_mm / 2, p.ap_mm / 2

    def ell(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0

    hu = np.full((n, n), HU["air"])
    hu[(y >= b + 15) & (y <= b + 25) & (np.abs(x) <= 0.9 * fov / 2)] = HU["table"]
    hu[ell(0, 0, a, b)] = HU["fat"]
    hu[ell(0, 0, a - p.fat_mm, b - p.fat_mm)] = HU["soft_tissue"]
    if p.region == "chest":
        for s in (-1, 1):
            hu[ell(s * 0.42 * a, -0.05 * b, 0.3 * a, 0.55 * b)] = HU["lung"]
    else:
        hu[ell(-0.35 * a, -0.1 * b, 0.38 * a, 0.45 * b)] = HU["liver"]  # patient's right
        hu[ell(0.5 * a, 0.0, 0.18 * a, 0.3 * b)] = HU["spleen"]
        for s in (-1, 1):
            hu[ell(s * 0.3 * a, 0.45 * b, 0.1 * a, 0.2 * b)] = HU["kidney"]
    hu[ell(0, 0.6 * b, 0.12 * a, 0.17 * b)] = HU["cortex"]
    hu[ell(0, 0.6 * b, 0.10 * a, 0.14 * b)] = HU["bone"]
    return hu.reshape(p.matrix, supersample, p.matrix, supersample).mean(axis=(1, 3))


def fbp_noise(rng: np.random.Generator, shape: tuple[int, int], pixel_mm: float,
              cutoff_per_mm: float) -> np.ndarray:
    """Zero-mean noise of unit expected pixel variance with NPS ∝ |f| exp(−(f/f_c)²)."""
    fy = np.fft.fftfreq(shape[0], d=pixel_mm)
    fx = np.fft.fftfreq(shape[1], d=pixel_mm)
    f = np.hypot(*np.meshgrid(fy, fx, indexing="ij"))
    amp = np.sqrt(f * np.exp(-(f / cutoff_per_mm) ** 2))
    # Parseval: filtering unit white noise by ``amp`` gives variance mean(amp²)
    amp /= math.sqrt(float(np.mean(amp ** 2)))
    white = rng.standard_normal(shape)
    return np.real(np.fft.ifft2(np.fft.fft2(white) * amp))


def virtual_patient(p: VirtualPatient, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """A ``(slices, matrix, matrix)`` float32 volume in HU and its ground truth."""
    rng = np.random.default_rng(seed)
    clean = anatomy_slice(p)
    px = p.field_of_view_mm / p.matrix
    dw = water_equivalent_diameter_slice(clean, px * px)
    sigma = known_noise_hu(p, dw)
    vol = np.empty((p.slices, p.matrix, p.matrix), dtype=np.float32)
    for k in range(p.slices):
        vol[k] = clean + sigma * fbp_noise(rng, clean.shape, px, KERNELS[p.kernel])
    truth = {
        "noise_hu": sigma,
        "noise_definition": "expected SD of the pixels of a uniform soft-tissue region "
                            "(stationary noise, the same at the body centre and in air)",
        "water_equivalent_diameter_mm": dw, "ctdivol_mgy": p.ctdivol_mgy, "kvp": p.kvp,
        "kernel": p.kernel, "kernel_cutoff_per_mm": KERNELS[p.kernel],
        "slice_thickness_mm": p.slice_mm, "pixel_mm": px, "lat_mm": p.lat_mm,
        "ap_mm": p.ap_mm, "fat_mm": p.fat_mm, "region": p.region, "contrast": p.contrast,
        "seed": seed,
        "noise_model": {"sigma_ref_hu": SIGMA_REF_HU, "ctdivol_ref_mgy": CTDI_REF_MGY,
                        "dw_ref_mm": DW_REF_MM, "thickness_ref_mm": THICKNESS_REF_MM,
                        "mu_eff_per_mm": MU_EFF_PER_MM},
    }
    return vol, truth


def as_series(p: VirtualPatient, vol: np.ndarray) -> Series:
    """The volume as an in-memory axial CT Series with the header facts a scanner writes."""
    px = p.field_of_view_mm / p.matrix
    affine = np.array([[0.0, 0.0, px, -p.field_of_view_mm / 2 + px / 2],
                       [0.0, px, 0.0, -p.field_of_view_mm / 2 + px / 2],
                       [p.slice_mm, 0.0, 0.0, 0.0],
                       [0.0, 0.0, 0.0, 1.0]])
    facts = SeriesFacts(
        modality="CT", device=DeviceIdentity(manufacturer="ScanBench", model="Virtual CT 64"),
        series_instance_uid="2.25.1", series_description=f"{p.region} {p.slice_mm:g} mm",
        ct=CtFacts(kvp=p.kvp, kernel=p.kernel, slice_thickness_mm=p.slice_mm,
                   ctdivol_mgy=p.ctdivol_mgy, ctdi_phantom_cm=32,
                   reconstruction_diameter_mm=p.field_of_view_mm))
    return Series(voxels=vol, spacing=(p.slice_mm, px, px), affine=affine, facts=facts)


def write_ct_patient(out: Path, p: VirtualPatient, seed: int = 0, *,
                     noise_factor: float = 1.0, acquired: dt.datetime | None = None,
                     serial: str | None = None, protocol: str | None = None
                     ) -> dict[str, Any]:
    """Write the virtual patient as CT Image Storage DICOM under ``out`` with
    ``out/ground_truth.json``; returns the ground truth.

    For a simulated device's stream of exams (clinical IQ trending): ``noise_factor``
    multiplies the noise (a patient-to-patient variation the size model does not
    capture, or a drift of the device), ``acquired`` sets the study, series and
    acquisition date and time (default 2 March 2026 09:00), ``serial`` the Device Serial
    Number (0018,1000), ``protocol`` the Protocol Name (0018,1030)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        CTImageStorage,
        ExplicitVRLittleEndian,
        generate_uid,
    )
    from pydicom.valuerep import format_number_as_ds

    vol, truth = virtual_patient(p, seed)
    if noise_factor != 1.0:
        clean = anatomy_slice(p)
        vol = (clean + noise_factor * (vol - clean)).astype(np.float32)
        truth["noise_hu"] *= noise_factor
        truth["noise_factor"] = noise_factor
    when = acquired or dt.datetime(2026, 3, 2, 9, 0)
    out.mkdir(parents=True, exist_ok=True)
    px = p.field_of_view_mm / p.matrix
    study, series, frame = generate_uid(), generate_uid(), generate_uid()

    def ds_(v: float) -> str:
        return str(format_number_as_ds(float(v)))

    for k in range(p.slices):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame
        ds.Modality, ds.Manufacturer = "CT", "ScanBench"
        ds.ManufacturerModelName = "Virtual CT 64"
        ds.PatientName, ds.PatientID = "SIM^VIRTUAL^PATIENT", f"VP{seed:05d}"
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = when.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = when.strftime("%H%M%S")
        if serial:
            ds.DeviceSerialNumber = serial
        if protocol:
            ds.ProtocolName = protocol
        ds.SeriesNumber, ds.InstanceNumber = 2, k + 1
        ds.SeriesDescription = f"{p.region} {p.slice_mm:g} mm {p.kernel}"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP, ds.SliceThickness = ds_(p.kvp), ds_(p.slice_mm)
        ds.ConvolutionKernel = p.kernel
        ds.ReconstructionDiameter = ds_(p.field_of_view_mm)
        ds.CTDIvol = float(p.ctdivol_mgy)
        if p.contrast:
            ds.ContrastBolusAgent = p.contrast
        z = -k * p.slice_mm
        ds.ImagePositionPatient = [ds_(-p.field_of_view_mm / 2 + px / 2),
                                   ds_(-p.field_of_view_mm / 2 + px / 2), ds_(z)]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SliceLocation = ds_(z)
        ds.PixelSpacing = [ds_(px), ds_(px)]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = p.matrix
        # signed 16-bit, intercept 0: air with its noise is never clipped at −1024 HU
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
        ds.PixelData = np.clip(np.round(vol[k]), -32768, 32767).astype("<i2").tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        ds.preamble = b"\0" * 128
        ds.save_as(out / f"CT_{k + 1:04d}.dcm", enforce_file_format=True)
    truth["series_instance_uid"] = str(series)
    (out / "ground_truth.json").write_text(json.dumps(
        {"generator": "scanbench simulate ct-patient", **truth}, indent=1))
    return truth
