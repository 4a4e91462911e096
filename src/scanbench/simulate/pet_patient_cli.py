"""``scanbench simulate pet-patient``: a virtual FDG PET/CT patient — a whole-body PET series
and its CT on one frame of reference, with a liver of known SUV and noise, and
ground_truth.json beside them (:mod:`scanbench.simulate.pet_patient`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scanbench.console import console, safe
from scanbench.simulate.pet_patient import Lesion, PetPatient, right_lobe_lesion, write_pet_patient


def _lesion(text: str) -> Lesion:
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (3, 4, 5) or (len(parts) > 3 and min(parts[3:]) <= 0):
        raise typer.BadParameter(f"--lesion {text!r}: give X,Y,Z[,DIAMETER_MM[,SUV]] in mm "
                                 "(LPS), diameter and SUV positive")
    return Lesion(*parts)


def pet_patient(
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write PT/, CT/ and "
                                          "ground_truth.json into.")],
        lat_mm: Annotated[float, typer.Option("--lat", help="Body width (LAT), mm.")] = 340.0,
        ap_mm: Annotated[float, typer.Option("--ap", help="Body depth (AP), mm.")] = 250.0,
        weight: Annotated[float, typer.Option("--weight", help="Patient weight, kg.")] = 75.0,
        activity: Annotated[float, typer.Option(
            "--activity", help="Injected FDG activity, MBq.")] = 280.0,
        uptake: Annotated[float, typer.Option("--uptake", help="Uptake time, min.")] = 60.0,
        bed_s: Annotated[float, typer.Option("--bed-time", help="Time per bed, s.")] = 120.0,
        liver_suv: Annotated[float, typer.Option("--liver-suv", help="Liver SUV.")] = 2.2,
        blood_suv: Annotated[float, typer.Option(
            "--blood-suv", help="Blood-pool (aorta) SUV.")] = 1.7,
        fwhm: Annotated[float, typer.Option(
            "--fwhm", help="Reconstructed resolution (PSF and noise texture), mm.")] = 6.0,
        voxel: Annotated[float, typer.Option("--voxel", help="PET voxel size, mm.")] = 4.0,
        z_min: Annotated[float, typer.Option(
            "--z-min", help="Inferior end of the field, mm (liver dome near z = 0).")] = -420.0,
        z_max: Annotated[float, typer.Option(
            "--z-max", help="Superior end of the field, mm.")] = 260.0,
        ct_pixel: Annotated[float, typer.Option(
            "--ct-pixel", help="CT pixel size, mm.")] = 0.9765625,
        ct_slice: Annotated[float, typer.Option("--ct-slice", help="CT slice spacing, mm.")] = 3.0,
        lesion: Annotated[list[str] | None, typer.Option(
            "--lesion", help="A lesion X,Y,Z[,DIAMETER_MM[,SUV]] (LPS mm); repeatable.")] = None,
        right_lobe: Annotated[bool, typer.Option(
            "--right-lobe-lesion", help="Add a 20 mm, SUV 8 lesion at the right lobe's "
                                        "centre (where the 3 cm VOI belongs).")] = False,
        cut: Annotated[bool, typer.Option(
            "--cut", help="Start the field at the liver's middle: the liver is cut.")] = False,
        noise: Annotated[bool, typer.Option("--noise/--no-noise", help="PET noise.")] = True,
        seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0) -> None:
    """Write a virtual PET/CT patient with a liver of known SUV and noise (ground_truth.json)."""
    lesions = tuple(_lesion(t) for t in lesion or [])
    p = PetPatient(lat_mm=lat_mm, ap_mm=ap_mm, weight_kg=weight, injected_mbq=activity,
                   uptake_min=uptake, bed_s=bed_s, liver_suv=liver_suv, blood_suv=blood_suv,
                   fwhm_mm=fwhm, voxel_mm=voxel, z_min_mm=z_min, z_max_mm=z_max,
                   ct_pixel_mm=ct_pixel, ct_slice_mm=ct_slice, lesions=lesions, noise=noise)
    if right_lobe:
        p = PetPatient(**{**p.__dict__, "lesions": (*lesions, right_lobe_lesion(p))})
    if cut:
        p = PetPatient(**{**p.__dict__, "z_min_mm": p.right_lobe()[0][2]})
    try:
        p.check()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    truth = write_pet_patient(out, p, seed)
    console().print(
        f"wrote the PET/CT to {safe(str(out))}: liver SUV {truth['liver_suv_mean']:.2f}, voxel "
        f"noise COV {truth['liver_cov_percent']:.1f} % (expected in a 3 cm sphere "
        f"{truth['liver_cov_3cm_expected_percent']:.1f} %), {truth['beds']} beds "
        f"(ground_truth.json)")


def register(app: typer.Typer) -> None:
    app.command("pet-patient")(pet_patient)
