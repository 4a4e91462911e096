"""PET header facts and the body-weight SUV scale factor.

Facts come from the PET Series and PET Isotope modules (DICOM PS3.3 C.8.9.1,
C.8.9.2): Units (0054,1001), Decay Correction (0054,1102), Corrected Image
(0028,0051), Actual Frame Duration (0018,1242), and the first item of the
Radiopharmaceutical Information Sequence (0054,0016).

The SUV scale follows the vendor-neutral pseudo-code of the QIBA FDG-PET/CT
profile, Appendix G ("Vendor-neutral pseudo-code for SUV calculation"):
``SUVbw = activity concentration (Bq/mL) × weight (g) / decayed dose (Bq)``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from pydicom.dataset import Dataset

from scanbench.dicom import headers as h
from scanbench.errors import AnalysisError, MissingTagError
from scanbench.types import PetFacts


def pet_facts(ds: Dataset, tz: dt.tzinfo | None, acquisition_start: dt.datetime | None,
              frame_duration_s: float | None) -> PetFacts:
    """PetFacts from one PET header; ``acquisition_start`` is the series' earliest
    acquisition time, already localised with ``tz``. Missing tags give None."""
    series_dt = h.localize(h.combine(h.text(ds, "SeriesDate"), h.text(ds, "SeriesTime")), tz)
    rp = h.item(ds, "RadiopharmaceuticalInformationSequence")
    nuclide = h.item(rp, "RadionuclideCodeSequence")
    injection = h.localize(h.parse_datetime(h.text(rp, "RadiopharmaceuticalStartDateTime")), tz)
    if injection is None:
        # QIBA App. G: Radiopharmaceutical Start Time (0018,1072) with the series date;
        # an injection "after" the scan means the scan crossed midnight.
        start = h.localize(h.combine(h.text(ds, "SeriesDate"),
                                     h.text(rp, "RadiopharmaceuticalStartTime")), tz)
        if start is not None and series_dt is not None and start > series_dt:
            start -= dt.timedelta(days=1)
        injection = start
    weight = h.number(ds, "PatientWeight")
    return PetFacts(
        units=h.text(ds, "Units"),
        decay_correction=h.text(ds, "DecayCorrection"),
        corrected_image=h.texts(ds, "CorrectedImage"),
        series_datetime=series_dt,
        acquisition_start=acquisition_start,
        frame_duration_s=frame_duration_s,
        radiopharmaceutical=h.text(rp, "Radiopharmaceutical"),
        radionuclide=h.text(nuclide, "CodeMeaning"),
        injected_activity_bq=h.number(rp, "RadionuclideTotalDose"),
        injection_datetime=injection,
        half_life_s=h.number(rp, "RadionuclideHalfLife"),
        patient_weight_kg=weight if weight is not None and weight > 0 else None,
    )


def decay_factor(start: dt.datetime, end: dt.datetime, half_life_s: float) -> float:
    """Fraction of activity left at ``end`` of what there was at ``start``:
    ``2^(−(end − start)/T½)`` (greater than 1 if ``end`` is earlier)."""
    if half_life_s is None or not half_life_s > 0:
        raise AnalysisError(f"half-life must be positive, got {half_life_s!r} s")
    if (start.tzinfo is None) != (end.tzinfo is None):
        raise AnalysisError("cannot compare a timezone-aware and a naive time "
                            f"({start.isoformat()} and {end.isoformat()})")
    elapsed = (end - start).total_seconds()
    return float(2.0 ** (-elapsed / half_life_s))


def frame_average_factor(half_life_s: float, duration_s: float) -> float:
    """Mean activity over a frame of ``duration_s`` relative to its value at the
    frame start: (1 − e^(−λT)) / (λT), λ = ln 2 / T½ (1 for T = 0)."""
    if not half_life_s > 0:
        raise AnalysisError(f"half-life must be positive, got {half_life_s} s")
    x = math.log(2.0) / half_life_s * duration_s
    return 1.0 if x == 0 else float(-math.expm1(-x) / x)


@dataclass(frozen=True)
class Reference:
    """The instant the stored voxel values refer to, and how it was chosen."""

    instant: dt.datetime
    mode: str  # START, ADMIN, NONE
    description: str
    frame_duration_s: float | None = None  # set for NONE: values are frame averages


def reference_instant(pet: PetFacts) -> Reference:
    """When the image values are decay-corrected to (DecayCorrection (0054,1102)).

    START: the series time (SeriesDate/Time (0008,0021)/(0008,0031), else the
    earliest acquisition time); ADMIN: the injection time
    (RadiopharmaceuticalStartDateTime (0018,1078)); NONE: not decay corrected —
    the acquisition start, with values averaged over ActualFrameDuration (0018,1242).
    Raises MissingTagError naming the tag that is needed and absent.
    """
    mode = (pet.decay_correction or "").upper()
    if not mode:
        raise MissingTagError("DecayCorrection (0054,1102) is missing: cannot tell which "
                              "instant the activity concentrations refer to")
    if mode == "START":
        # QIBA FDG-PET/CT profile App. G, as in scanbench.dicom.pet.suv_bw_scale: the series
        # time, or the earliest acquisition time when the series time is later (a
        # post-processed series).
        ref = pet.series_datetime
        if ref is None or (pet.acquisition_start is not None and pet.acquisition_start < ref):
            ref = pet.acquisition_start
        if ref is None:
            raise MissingTagError("SeriesDate/SeriesTime (0008,0021)/(0008,0031) are missing: "
                                  "needed as the START decay-correction reference")
        return Reference(ref, mode, "series start (DecayCorrection START)")
    if mode == "ADMIN":
        if pet.injection_datetime is None:
            raise MissingTagError("RadiopharmaceuticalStartDateTime (0018,1078) is missing: "
                                  "needed as the ADMIN decay-correction reference")
        return Reference(pet.injection_datetime, mode, "injection (DecayCorrection ADMIN)")
    if mode == "NONE":
        start = pet.acquisition_start or pet.series_datetime
        if start is None:
            raise MissingTagError("AcquisitionDate/AcquisitionTime (0008,0022)/(0008,0032) "
                                  "are missing: needed for an image without decay correction")
        if pet.frame_duration_s is None:
            raise MissingTagError("ActualFrameDuration (0018,1242) is missing: needed for an "
                                  "image without decay correction")
        return Reference(start, mode, "frame average from the acquisition start "
                                      "(DecayCorrection NONE)", pet.frame_duration_s)
    raise AnalysisError(f"DecayCorrection (0054,1102) {mode!r} is not START, ADMIN or NONE")


def suv_bw_scale(pet: PetFacts, *, acquisition_time: dt.datetime | None = None) -> float:
    """Factor (g/mL per Bq/mL) that turns activity concentration into SUVbw.

    QIBA FDG-PET/CT profile App. G: with Units BQML, ``scale = weight[g] /
    decayed dose[Bq]``, where the injected dose is decayed from the
    injection time to the time the voxel values refer to:

    - Decay Correction START: the Series Date/Time — or the earliest
      Acquisition Date/Time if the series time is later than it (a
      post-processed series, App. G);
    - ADMIN: no decay (values already refer to the injection time);
    - NONE: the frame's acquisition time (``acquisition_time``; default the
      series' earliest acquisition), and — because uncorrected voxel values
      are the frame's average of a decaying concentration — the dose averaged
      over the frame the same way, ``(1 − e^(−λT)) / (λT)`` with T the Actual
      Frame Duration (0018,1242). Without it the SUV would read low by that
      factor (1.6 % for a 300 s F-18 frame). QIBA App. G covers DECY images
      only; this extension keeps SUV consistent with the stored values.

    Units GML are already SUVbw (scale 1). Raises MissingTagError naming the
    absent tag, AnalysisError for units or corrections the profile excludes.
    """
    if pet.units is None:
        raise MissingTagError("SUVbw needs Units (0054,1001)")
    units = pet.units.upper()
    if units == "GML":
        return 1.0
    if units != "BQML":
        raise AnalysisError(f"SUVbw needs Units (0054,1001) BQML; this series has {pet.units!r} "
                            "(QIBA App. G: vendor-specific scaling not supported)")
    if pet.patient_weight_kg is None:
        raise MissingTagError("SUVbw needs PatientWeight (0010,1030)")
    if pet.injected_activity_bq is None:
        raise MissingTagError("SUVbw needs RadionuclideTotalDose (0018,1074)")
    if not pet.injected_activity_bq > 0:
        raise AnalysisError(f"RadionuclideTotalDose (0018,1074) is {pet.injected_activity_bq} Bq;"
                            " SUVbw needs a positive injected activity")
    if pet.decay_correction is None:
        raise MissingTagError("SUVbw needs DecayCorrection (0054,1102)")
    method = pet.decay_correction.upper()
    weight_g = pet.patient_weight_kg * 1000.0
    if method == "ADMIN":
        return weight_g / pet.injected_activity_bq
    if method == "START":
        if "ATTN" not in pet.corrected_image or "DECY" not in pet.corrected_image:
            raise AnalysisError("QIBA App. G requires Corrected Image (0028,0051) to contain "
                                f"ATTN and DECY; it is {list(pet.corrected_image)}")
        reference = reference_instant(pet).instant
    elif method == "NONE":
        frame_start = acquisition_time or pet.acquisition_start
        if frame_start is None:
            raise MissingTagError("SUVbw with Decay Correction NONE needs AcquisitionDate/"
                                  "AcquisitionTime (0008,0022)/(0008,0032)")
        reference = frame_start
    else:
        raise AnalysisError(f"Decay Correction (0054,1102) {pet.decay_correction!r} is not "
                            "START, ADMIN or NONE")
    if pet.injection_datetime is None:
        raise MissingTagError("SUVbw needs RadiopharmaceuticalStartDateTime (0018,1078) or "
                              "RadiopharmaceuticalStartTime (0018,1072)")
    if pet.half_life_s is None:
        raise MissingTagError("SUVbw needs RadionuclideHalfLife (0018,1075)")
    decayed = pet.injected_activity_bq * decay_factor(pet.injection_datetime, reference,
                                                      pet.half_life_s)
    if method == "NONE":
        if pet.frame_duration_s is None or not pet.frame_duration_s > 0:
            raise MissingTagError("SUVbw with Decay Correction NONE needs ActualFrameDuration "
                                  "(0018,1242): uncorrected values are a frame average")
        decayed *= frame_average_factor(pet.half_life_s, pet.frame_duration_s)
    return weight_g / decayed
