"""``scanbench simulate ct-acr464 | ct-catphan``: virtual scans of the ACR 464 and CatPhan phantoms.

Each command writes one CT Image Storage file per slice and
``ground_truth.json`` with, under ``expected``, what ``ct.acr464`` /
``ct.catphan`` should report (:mod:`scanbench.simulate.ct_phantoms`). The
scanner options are those of ``simulate ct-water``; bad values print one
message and exit with status 2.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from scanbench.phantoms.catphan import HOUSING_RADIUS_MM
from scanbench.simulate.ct_cli import (
    DeviceOption,
    FovOption,
    ModeOption,
    Mtf50Option,
    NoiseHuOption,
    NoiseOption,
    OffsetOption,
    OutOption,
    PixelOption,
    RotationOption,
    ScannerOption,
    SeedOption,
    ShiftOption,
    SignedOption,
    TableOption,
    _fail,
    _model,
    _report,
    _write,
)
from scanbench.simulate.ct_phantoms import render_acr464, render_catphan

ThicknessOption = Annotated[float, typer.Option("--thickness", help="Slice thickness, mm.")]
SpacingOption = Annotated[float | None, typer.Option(
    "--spacing", help="Slice spacing, mm (default: the thickness).")]
DropFirstOption = Annotated[int, typer.Option(
    "--drop-first", help="Leave out this many slices at the start (an incomplete scan).")]
DropLastOption = Annotated[int, typer.Option(
    "--drop-last", help="Leave out this many slices at the end.")]
ReconOption = Annotated[float | None, typer.Option(
    "--recon-diameter", help="Reconstruction circle diameter, mm (default: the FOV).")]


def _common(pixel: float | None, fov: float | None, thickness: float, spacing: float | None,
            table: float, shift: tuple[float, float], rotation: float, noise: bool, seed: int,
            mode: str, drop_first: int, drop_last: int, recon: float | None) -> dict[str, Any]:
    kw: dict[str, Any] = {"slice_thickness_mm": thickness, "slice_spacing_mm": spacing,
                          "table_z_mm": table, "shift_mm": (shift[0], shift[1], 0.0),
                          "rotation_deg": rotation, "noise": noise, "seed": seed, "mode": mode,
                          "drop_first": drop_first, "drop_last": drop_last,
                          "reconstruction_diameter_mm": recon}
    if pixel is not None:
        kw["pixel_mm"] = pixel
    if fov is not None:
        kw["fov_mm"] = fov
    if drop_first < 0 or drop_last < 0:
        raise _fail("--drop-first and --drop-last must be >= 0")
    return kw


def _summary(expected: dict[str, Any] | None) -> dict[str, Any] | None:
    if not expected:
        return None
    keep = ("slice_thickness_mm", "noise_hu", "high_contrast_resolution_lp_per_cm",
            "mtf50_lp_per_cm", "mtf10_lp_per_cm", "low_contrast_cnr")
    return {k: expected[k] for k in keep if expected.get(k) is not None}


def register(app: typer.Typer) -> None:
    """Add ct-acr464 and ct-catphan to ``scanbench simulate``."""

    @app.command("ct-acr464")
    def ct_acr464(
        out: OutOption,
        scanner: ScannerOption = "virtual-ct",
        modules: Annotated[str, typer.Option(
            "--modules", help="Modules to scan, e.g. 1,2,3,4 (all) or 3 (one module).")]
        = "1,2,3,4",
        pixel: PixelOption = None,
        fov: FovOption = None,
        thickness: ThicknessOption = 5.0,
        spacing: SpacingOption = None,
        table: TableOption = 0.0,
        shift: ShiftOption = (0.0, 0.0),
        rotation: RotationOption = 0.0,
        noise: NoiseOption = True,
        noise_hu: NoiseHuOption = None,
        mtf50: Mtf50Option = None,
        hu_offset: OffsetOption = None,
        seed: SeedOption = 0,
        mode: ModeOption = "image",
        drop_first: DropFirstOption = 0,
        drop_last: DropLastOption = 0,
        recon_diameter: ReconOption = None,
        signed: SignedOption = True,
        device: DeviceOption = None,
    ) -> None:
        """The ACR CT accreditation phantom (Gammex 464), its four 40 mm modules."""
        try:
            mods = tuple(int(m) for m in modules.split(",") if m.strip())
        except ValueError:
            raise _fail(f"--modules {modules!r}: expected numbers 1-4 such as 1,2,3,4") from None
        model = _model(scanner, noise_hu, mtf50, None, hu_offset, device)
        kw = _common(pixel, fov, thickness, spacing, table, shift, rotation, noise, seed, mode,
                     drop_first, drop_last, recon_diameter)
        kw["modules"] = mods
        volume, truth, n = _write(out, model, render_acr464, kw, signed, "ACR CT 464 phantom")
        _report(out, n, volume, model, _summary(truth.get("expected")))

    @app.command("ct-catphan")
    def ct_catphan(
        out: OutOption,
        catphan: Annotated[str, typer.Option(
            "--model", help="CatPhan model: 500, 503, 504, 600 or 604.")] = "504",
        scanner: ScannerOption = "virtual-ct",
        modules: Annotated[str | None, typer.Option(
            "--modules", help="Module kinds to scan: sensitometry, uniformity, resolution, "
                              "low_contrast (comma separated; default all).")] = None,
        pixel: PixelOption = None,
        fov: FovOption = None,
        thickness: ThicknessOption = 5.0,
        spacing: SpacingOption = None,
        table: TableOption = 0.0,
        shift: ShiftOption = (0.0, 0.0),
        rotation: RotationOption = 0.0,
        noise: NoiseOption = True,
        noise_hu: NoiseHuOption = None,
        mtf50: Mtf50Option = None,
        hu_offset: OffsetOption = None,
        cupping: Annotated[float | None, typer.Option(
            "--cupping", help="Cone-beam-like shading: the phantom's centre this much below "
                              "its 100 mm edge, HU.")] = None,
        seed: SeedOption = 0,
        mode: ModeOption = "image",
        drop_first: DropFirstOption = 0,
        drop_last: DropLastOption = 0,
        recon_diameter: ReconOption = None,
        signed: SignedOption = True,
        device: DeviceOption = None,
    ) -> None:
        """A CatPhan (500, 503, 504, 600, 604): its modules at the model's offsets."""
        model = _model(scanner, noise_hu, mtf50, cupping, hu_offset, device)
        kw = _common(pixel, fov, thickness, spacing, table, shift, rotation, noise, seed, mode,
                     drop_first, drop_last, recon_diameter)
        kw["catphan"] = catphan
        if cupping:
            kw["cupping_radius_mm"] = HOUSING_RADIUS_MM
        if modules:
            kw["modules"] = [m.strip() for m in modules.split(",") if m.strip()]
        volume, truth, n = _write(out, model, render_catphan, kw, signed,
                                  f"CatPhan {catphan} phantom")
        _report(out, n, volume, model, _summary(truth.get("expected")))


__all__ = ["register"]
