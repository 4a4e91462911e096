"""``scanbench simulate ct-patient``: one axial CT series of a virtual patient with noise of
a known level, and ground_truth.json beside it (:mod:`scanbench.simulate.ct_patient`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scanbench.console import console, safe
from scanbench.simulate.ct_patient import KERNELS, VirtualPatient, write_ct_patient

_err = console(stderr=True)


def ct_patient(
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the series into.")],
        lat_mm: Annotated[float, typer.Option("--lat", help="Body width (LAT), mm.")] = 330.0,
        ap_mm: Annotated[float, typer.Option("--ap", help="Body depth (AP), mm.")] = 240.0,
        region: Annotated[str, typer.Option(
            "--region", help="abdomen (liver, spleen, kidneys) or chest (lungs).")] = "abdomen",
        ctdivol: Annotated[float, typer.Option("--ctdivol", help="CTDIvol, mGy.")] = 12.0,
        kernel: Annotated[str, typer.Option(
            "--kernel", help=f"Reconstruction kernel: {', '.join(KERNELS)}.")] = "STANDARD",
        slice_mm: Annotated[float, typer.Option("--slice", help="Slice thickness, mm.")] = 5.0,
        slices: Annotated[int, typer.Option("--slices", help="Number of slices.")] = 8,
        matrix: Annotated[int, typer.Option("--matrix", help="Matrix size.")] = 512,
        contrast: Annotated[str | None, typer.Option(
            "--contrast", help="Contrast/Bolus Agent written to the header.")] = None,
        seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0) -> None:
    """Write a virtual patient's axial CT series with known noise (ground_truth.json)."""
    if kernel not in KERNELS:
        raise typer.BadParameter(f"--kernel {kernel!r}: use one of {', '.join(KERNELS)}")
    if region not in ("abdomen", "chest"):
        raise typer.BadParameter(f"--region {region!r}: use abdomen or chest")
    if min(lat_mm, ap_mm, ctdivol, slice_mm) <= 0 or slices < 1 or matrix < 32:
        raise typer.BadParameter("sizes, CTDIvol and slice thickness must be positive, "
                                 "--slices at least 1 and --matrix at least 32")
    p = VirtualPatient(lat_mm=lat_mm, ap_mm=ap_mm, region=region, ctdivol_mgy=ctdivol,
                       kernel=kernel, slice_mm=slice_mm, slices=slices, matrix=matrix,
                       contrast=contrast)
    truth = write_ct_patient(out, p, seed)
    console().print(f"wrote {slices} slices to {safe(str(out))}: noise {truth['noise_hu']:.2f} "
                    f"HU, water-equivalent diameter "
                    f"{truth['water_equivalent_diameter_mm']:.1f} mm (ground_truth.json)")


def register(app: typer.Typer) -> None:
    app.command("ct-patient")(ct_patient)
