"""``scanbench simulate ct-water | ct-wire | ct-edge``: virtual CT scans with their ground truth.

Each command writes one CT Image Storage file per slice and ``ground_truth.json``
(the scanner model, the geometry, and under ``expected`` what ct.water /
ct.mtf should report). Bad option values print one message and exit with
status 2.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from scanbench.console import console, safe
from scanbench.simulate.ct import (
    CT_SCANNER_MODELS,
    CtScannerModel,
    CtVolume,
    render_edge,
    render_water,
    render_wire,
)
from scanbench.simulate.ct_dicom import write_ct_series

# Not a terminal: no hard wrap (a message stays one searchable line).
_err = console(stderr=True)
_out = console()

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Folder to write the series into.")]
ScannerOption = Annotated[str, typer.Option(
    "--scanner", help=f"Scanner model: {', '.join(CT_SCANNER_MODELS)}.")]
PixelOption = Annotated[float | None, typer.Option("--pixel", help="Pixel size, mm.")]
FovOption = Annotated[float | None, typer.Option(
    "--fov", help="Display field of view (image width), mm.")]
SlicesOption = Annotated[int, typer.Option("--slices", help="Number of slices.")]
ThicknessOption = Annotated[float | None, typer.Option(
    "--thickness", help="Nominal slice thickness (= spacing), mm.")]
TableOption = Annotated[float, typer.Option(
    "--table", help="Table position of the first slice (z), mm.")]
ShiftOption = Annotated[tuple[float, float], typer.Option(
    "--shift", help="Phantom centre X Y off the scanner axis, mm.")]
RotationOption = Annotated[float, typer.Option(
    "--rotation", help="Phantom rotation about the scanner axis, degrees.")]
NoiseOption = Annotated[bool, typer.Option("--noise/--no-noise", help="Add CT noise.")]
NoiseHuOption = Annotated[float | None, typer.Option(
    "--noise-hu", help="Pixel SD in water at the model's reference mAs and slice, HU.")]
Mtf50Option = Annotated[float | None, typer.Option(
    "--mtf50", help="In-plane MTF50 of the scanner, lp/cm.")]
CuppingOption = Annotated[float | None, typer.Option(
    "--cupping", help="Cupping: centre below edge of a water cylinder by this much, HU.")]
OffsetOption = Annotated[float | None, typer.Option(
    "--hu-offset", help="Calibration offset added to every material, HU.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Noise seed.")]
ModeOption = Annotated[str, typer.Option(
    "--mode", help="image (analytic MTF/NPS) or fbp (radon/iradon, realistic texture).")]
SignedOption = Annotated[bool, typer.Option(
    "--signed/--unsigned", help="Pixel Representation 1 (padding −2000) or 0 (padding 0).")]
DeviceOption = Annotated[str | None, typer.Option(
    "--device", help="Device identity in the headers, MAKER/MODEL or MAKER/MODEL/SERIAL.")]


def _fail(message: str) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {safe(message)}", highlight=False)
    return typer.Exit(code=2)


def _model(name: str, noise_hu: float | None, mtf50: float | None, cupping: float | None,
           offset: float | None, device: str | None) -> CtScannerModel:
    if name not in CT_SCANNER_MODELS:
        raise _fail(f"unknown scanner {name!r}; choose one of {', '.join(CT_SCANNER_MODELS)}")
    changes: dict[str, Any] = {}
    for key, value in (("noise_hu", noise_hu), ("mtf50_lp_per_cm", mtf50),
                       ("cupping_hu", cupping), ("hu_offset", offset)):
        if value is not None:
            changes[key] = value
    if device is not None:
        parts = [p.strip() for p in device.split("/")]
        if len(parts) not in (2, 3) or not all(parts):
            raise _fail(f"--device {device!r}: expected MANUFACTURER/MODEL or "
                        "MANUFACTURER/MODEL/SERIAL")
        changes["manufacturer"], changes["model"] = parts[0], parts[1]
        if len(parts) == 3:
            changes["serial"] = parts[2]
    try:
        return dataclasses.replace(CT_SCANNER_MODELS[name], **changes)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _write(out: Path, model: CtScannerModel, render: Any, kwargs: dict[str, Any],
           signed: bool, description: str) -> tuple[CtVolume, dict[str, Any], int]:
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out} exists and is not a folder")
    if kwargs.get("mode") not in ("image", "fbp"):
        raise _fail(f"--mode must be image or fbp, got {kwargs.get('mode')!r}")
    try:
        with _err.status(f"scanning the virtual {description} ..."):
            volume, truth = render(model, **kwargs)
            files = write_ct_series(volume, out, model=model, signed=signed,
                                    description=description)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write to {out}: {exc}") from None
    truth["files"] = len(files)
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2, default=float) + "\n",
                                           encoding="utf-8")
    return volume, truth, len(files)


def _geometry(pixel: float | None, fov: float | None, slices: int, thickness: float | None,
              table: float, shift: tuple[float, float], rotation: float, noise: bool,
              seed: int, mode: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"n_slices": slices, "table_z_mm": table,
                          "shift_mm": (shift[0], shift[1], 0.0), "rotation_deg": rotation,
                          "noise": noise, "seed": seed, "mode": mode}
    if pixel is not None:
        kw["pixel_mm"] = pixel
    if fov is not None:
        kw["fov_mm"] = fov
    if thickness is not None:
        kw["slice_thickness_mm"] = thickness
    return kw


def _report(out: Path, n: int, volume: CtVolume, model: CtScannerModel,
            expected: dict[str, Any] | None) -> None:
    _out.print(f"  written   {n} CT slices + ground_truth.json in {safe(out)}")
    _out.print(f"  scanner   {model.manufacturer} {model.model} ({model.kernel}, "
               f"MTF50 {model.mtf50_lp_per_cm:g} lp/cm, CTDIvol {model.ctdivol_mgy:.2f} mGy "
               f"[{model.ctdi_phantom_cm} cm])")
    _out.print(f"  grid      {volume.shape[2]}² × {volume.shape[0]}, {volume.pixel_mm:.3f} mm "
               f"pixels, {volume.slice_thickness_mm:g} mm slices, noise SD "
               f"{volume.noise_sd_hu:.2f} HU")
    if expected:
        text = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in expected.items() if not isinstance(v, dict))
        _out.print(f"  truth     {text}")


def register(app: typer.Typer) -> None:
    """Add ct-water, ct-wire and ct-edge to ``scanbench simulate``."""

    @app.command("ct-water")
    def ct_water(
        out: OutOption,
        scanner: ScannerOption = "virtual-ct",
        diameter: Annotated[float, typer.Option(
            "--diameter", help="Outer diameter of the water cylinder, mm.")] = 200.0,
        wall: Annotated[float, typer.Option("--wall", help="Acrylic wall, mm.")] = 4.0,
        pixel: PixelOption = None,
        fov: FovOption = None,
        recon_diameter: Annotated[float | None, typer.Option(
            "--recon-diameter", help="Reconstruction circle diameter, mm (default the FOV)."
        )] = None,
        slices: SlicesOption = 5,
        thickness: ThicknessOption = None,
        table: TableOption = 0.0,
        shift: ShiftOption = (0.0, 0.0),
        rotation: RotationOption = 0.0,
        noise: NoiseOption = True,
        noise_hu: NoiseHuOption = None,
        mtf50: Mtf50Option = None,
        cupping: CuppingOption = None,
        hu_offset: OffsetOption = None,
        seed: SeedOption = 0,
        mode: ModeOption = "image",
        signed: SignedOption = True,
        device: DeviceOption = None,
    ) -> None:
        """Uniform water phantom for daily QC (ct.water, ct.nps)."""
        model = _model(scanner, noise_hu, mtf50, cupping, hu_offset, device)
        kw = _geometry(pixel, fov, slices, thickness, table, shift, rotation, noise, seed, mode)
        kw.update(diameter_mm=diameter, wall_mm=wall,
                  reconstruction_diameter_mm=recon_diameter)
        volume, truth, n = _write(out, model, render_water, kw, signed, "CT water phantom")
        _report(out, n, volume, model, truth.get("expected"))

    @app.command("ct-wire")
    def ct_wire(
        out: OutOption,
        scanner: ScannerOption = "virtual-ct",
        wire_diameter: Annotated[float, typer.Option(
            "--wire-diameter", help="Wire diameter, mm.")] = 0.1,
        tilt: Annotated[float, typer.Option(
            "--tilt", help="Wire tilt from the z axis, degrees (oversampling).")] = 0.0,
        pixel: PixelOption = None,
        fov: FovOption = None,
        slices: SlicesOption = 3,
        thickness: ThicknessOption = None,
        table: TableOption = 0.0,
        shift: ShiftOption = (0.0, 0.0),
        rotation: RotationOption = 0.0,
        noise: NoiseOption = True,
        noise_hu: NoiseHuOption = None,
        mtf50: Mtf50Option = None,
        seed: SeedOption = 0,
        mode: ModeOption = "image",
        signed: SignedOption = True,
        device: DeviceOption = None,
    ) -> None:
        """Thin wire in water for the MTF from the point spread function (ct.mtf)."""
        model = _model(scanner, noise_hu, mtf50, None, None, device)
        kw = _geometry(pixel, fov, slices, thickness, table, shift, rotation, noise, seed, mode)
        kw.update(wire_diameter_mm=wire_diameter, tilt_deg=tilt)
        volume, truth, n = _write(out, model, render_wire, kw, signed, "CT wire")
        _report(out, n, volume, model, truth.get("expected"))

    @app.command("ct-edge")
    def ct_edge(
        out: OutOption,
        scanner: ScannerOption = "virtual-ct",
        insert_diameter: Annotated[float, typer.Option(
            "--insert-diameter", help="Insert (rod) diameter, mm.")] = 25.0,
        insert_hu: Annotated[float, typer.Option(
            "--insert-hu", help="Insert CT number (teflon ≈ 950, acrylic ≈ 120), HU.")] = 950.0,
        pixel: PixelOption = None,
        fov: FovOption = None,
        slices: SlicesOption = 3,
        thickness: ThicknessOption = None,
        table: TableOption = 0.0,
        shift: ShiftOption = (0.0, 0.0),
        rotation: RotationOption = 0.0,
        noise: NoiseOption = True,
        noise_hu: NoiseHuOption = None,
        mtf50: Mtf50Option = None,
        seed: SeedOption = 0,
        mode: ModeOption = "image",
        signed: SignedOption = True,
        device: DeviceOption = None,
    ) -> None:
        """Circular-edge insert in water for the task transfer function (ct.mtf)."""
        model = _model(scanner, noise_hu, mtf50, None, None, device)
        kw = _geometry(pixel, fov, slices, thickness, table, shift, rotation, noise, seed, mode)
        kw.update(insert_diameter_mm=insert_diameter, insert_hu=insert_hu)
        volume, truth, n = _write(out, model, render_edge, kw, signed, "CT edge insert")
        _report(out, n, volume, model, truth.get("expected"))


__all__ = ["register"]
