"""``scanbench simulate ...``: write virtual-scanner DICOM and ground truth from the command line.

The main cli.py mounts ``simulate_app``. Bad option values print one clear
message on stderr and exit with status 2 (DESIGN.md: bad usage), never a
traceback.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scanbench.console import console, safe, text
from scanbench.simulate.pet import (
    SCANNER_MODELS,
    ScannerModel,
    simulate_iq,
    simulate_point,
    simulate_uniform,
)

simulate_app = typer.Typer(
    name="simulate",
    help="Virtual scanners: write a phantom's DICOM series and its ground_truth.json.",
    no_args_is_help=True,
    add_completion=False,
)

# Not a terminal: no hard wrap (a message stays one searchable line).
_err = console(stderr=True)
_out = console()

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Folder to write the series into.")]
ScannerOption = Annotated[str, typer.Option(
    "--scanner", help=f"Scanner model: {', '.join(SCANNER_MODELS)}.")]
FwhmOption = Annotated[tuple[float, float, float] | None, typer.Option(
    "--fwhm", help="Override the PSF FWHM at the centre: RADIAL TANGENTIAL AXIAL (mm).")]
BiasOption = Annotated[float, typer.Option(
    "--calibration-bias", help="Scanner activity-calibration error, %.")]
DeviceOption = Annotated[str | None, typer.Option(
    "--device", help="Device identity written to the headers, MAKER/MODEL or MAKER/MODEL/SERIAL "
                     "(e.g. 'UIH/uMI 550/U550-01'), to try a spec's per-model claims.")]
VoxelOption = Annotated[float | None, typer.Option("--voxel", help="Pixel size, mm.")]
SliceOption = Annotated[float | None, typer.Option("--slice", help="Slice spacing, mm.")]
MatrixOption = Annotated[int | None, typer.Option("--matrix", help="Transverse matrix size.")]
DurationOption = Annotated[float | None, typer.Option("--duration", help="Frame duration, s.")]
NoiseOption = Annotated[bool, typer.Option("--noise/--no-noise", help="Add realistic noise.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Noise seed.")]
FilterOption = Annotated[float, typer.Option("--post-filter", help="Post-filter FWHM, mm.")]
DecayOption = Annotated[str, typer.Option(
    "--decay-correction", help="Decay reference of the voxels: START, ADMIN or NONE.")]
NamesOption = Annotated[str, typer.Option(
    "--file-names", help="File names: uid (<SOPInstanceUID>.dcm) or shuffled.")]
SyntaxOption = Annotated[str, typer.Option(
    "--transfer-syntax", help="ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless "
                              "or JPEG2000Lossless.")]


def _fail(message: str) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {safe(message)}", highlight=False)
    return typer.Exit(code=2)


def _scanner(name: str, fwhm: tuple[float, float, float] | None, bias: float,
             device: str | None = None) -> ScannerModel:
    if name not in SCANNER_MODELS:
        raise _fail(f"unknown scanner {name!r}; choose one of {', '.join(SCANNER_MODELS)}")
    scanner = SCANNER_MODELS[name]
    changes: dict[str, Any] = {"calibration_bias_percent": bias}
    if fwhm is not None:
        changes["fwhm_mm"] = tuple(fwhm)
    if device is not None:
        parts = [p.strip() for p in device.split("/")]
        if len(parts) not in (2, 3) or not all(parts):
            raise _fail(f"--device {device!r}: expected MANUFACTURER/MODEL or "
                        "MANUFACTURER/MODEL/SERIAL")
        changes["manufacturer"], changes["model"] = parts[0], parts[1]
        if len(parts) == 3:
            changes["serial"] = parts[2]
    return dataclasses.replace(scanner, **changes)


def _common(voxel: float | None, slice_: float | None, matrix: int | None,
            duration: float | None, noise: bool, seed: int, post_filter: float,
            decay: str, names: str, syntax: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"noise": noise, "seed": seed, "post_filter_fwhm_mm": post_filter,
                          "decay_correction": decay.upper(), "file_names": names,
                          "transfer_syntax": syntax}
    for key, value in (("voxel_mm", voxel), ("slice_mm", slice_), ("matrix", matrix),
                       ("duration_s", duration)):
        if value is not None:
            kw[key] = value
    return kw


def _run(func: Any, out: Path, title: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out} exists and is not a folder")
    try:
        with _err.status(f"rendering {title} ..."):
            truth = func(out, **kwargs)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write to {out}: {exc}") from None
    return truth


def _summary(title: str, out: Path, truth: dict[str, Any], rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    scanner = truth["scanner"]
    table.add_row("written", text(f"{truth['files']} PET slices + ground_truth.json in {out}"))
    table.add_row("scanner", f"{scanner['manufacturer']} {scanner['model']} "
                             f"(serial {scanner['serial']})")
    table.add_row("grid", f"{truth['matrix']}² × {truth['n_slices']} slices, "
                          f"{truth['voxel_mm']:g} × {truth['voxel_mm']:g} × "
                          f"{truth['slice_mm']:g} mm")
    table.add_row("decay reference", f"{truth['decay_correction']} "
                                     f"({truth['decay_reference_datetime'] or 'none'})")
    for what, value in rows:
        table.add_row(what, value)
    _out.print(table)


@simulate_app.command("pet-iq")
def pet_iq(
    out: OutOption,
    scanner: ScannerOption = "virtual-pet",
    fwhm: FwhmOption = None,
    calibration_bias: BiasOption = 0.0,
    device: DeviceOption = None,
    voxel: VoxelOption = None,
    slice_: SliceOption = None,
    matrix: MatrixOption = None,
    ratio: Annotated[float, typer.Option("--ratio", help="Hot sphere : background.")] = 4.0,
    background: Annotated[float, typer.Option(
        "--background", help="Background concentration at scan start, Bq/mL.")] = 5300.0,
    cold: Annotated[list[float] | None, typer.Option(
        "--cold", help="Diameter (mm) of a sphere filled cold; repeat for several.")] = None,
    shift: Annotated[tuple[float, float, float], typer.Option(
        "--shift", help="Phantom centre X Y Z in LPS mm.")] = (0.0, 0.0, 0.0),
    rotation: Annotated[float, typer.Option(
        "--rotation", help="Phantom rotation about the scanner axis, degrees.")] = 0.0,
    scatter_residual: Annotated[float, typer.Option(
        "--scatter-residual", help="What scatter correction leaves, % of the activity "
        "blurred over 80 mm; shows as lung residual.")] = 0.0,
    duration: DurationOption = None,
    noise: NoiseOption = True,
    seed: SeedOption = 0,
    post_filter: FilterOption = 0.0,
    decay_correction: DecayOption = "START",
    file_names: NamesOption = "uid",
    transfer_syntax: SyntaxOption = "ExplicitVRLittleEndian",
) -> None:
    """NEMA NU 2-2018 image-quality (IEC body) phantom."""
    kw = _common(voxel, slice_, matrix, duration, noise, seed, post_filter, decay_correction,
                 file_names, transfer_syntax)
    kw.update(scanner=_scanner(scanner, fwhm, calibration_bias, device), activity_ratio=ratio,
              background_bq_ml=background, cold_spheres=tuple(cold or ()), shift_mm=shift,
              rotation_deg=rotation, scatter_residual_percent=scatter_residual)
    truth = _run(simulate_iq, out, "NEMA IQ phantom", kw)
    pc = ", ".join(f"{d} mm {v:.1f}" for d, v in truth["percent_contrast_noiseless"].items())
    _summary("NEMA IQ phantom", out, truth, [
        ("background", f"{truth['background_bq_ml']:.1f} Bq/mL at the reference"),
        ("sphere plane", f"z = {truth['sphere_plane_z_mm']:g} mm "
                         f"(slice {truth['sphere_plane_slice_index']})"),
        ("contrast, noiseless", f"{pc} %"),
        ("lung residual, noiseless", f"{truth['lung_residual_percent_noiseless']:.2f} %"),
    ])


@simulate_app.command("pet-point")
def pet_point(
    out: OutOption,
    scanner: ScannerOption = "virtual-pet",
    fwhm: FwhmOption = None,
    calibration_bias: BiasOption = 0.0,
    device: DeviceOption = None,
    voxel: VoxelOption = None,
    slice_: SliceOption = None,
    matrix: MatrixOption = None,
    position: Annotated[list[str] | None, typer.Option(
        "--position", help="Source position 'X,Y,Z' in LPS mm; repeat for several "
                           "(default: the NU 2 positions).")] = None,
    extent: Annotated[float, typer.Option(
        "--extent", help="Source size (cube side), mm.")] = 1.0,
    activity: Annotated[float, typer.Option(
        "--activity", help="Activity per source at scan start, Bq.")] = 1.0e6,
    duration: DurationOption = None,
    noise: NoiseOption = True,
    seed: SeedOption = 0,
    post_filter: FilterOption = 0.0,
    decay_correction: DecayOption = "START",
    file_names: NamesOption = "uid",
    transfer_syntax: SyntaxOption = "ExplicitVRLittleEndian",
) -> None:
    """Point sources for NEMA NU 2-2018 spatial resolution."""
    kw = _common(voxel, slice_, matrix, duration, noise, seed, post_filter, decay_correction,
                 file_names, transfer_syntax)
    positions = None
    if position:
        try:
            positions = [tuple(float(v) for v in p.split(",")) for p in position]
        except ValueError:
            raise _fail(f"--position takes 'X,Y,Z' in mm, got {position}") from None
        if any(len(p) != 3 for p in positions):
            raise _fail(f"--position takes 'X,Y,Z' in mm, got {position}")
    kw.update(scanner=_scanner(scanner, fwhm, calibration_bias, device), positions_mm=positions,
              source_extent_mm=extent, activity_bq=activity)
    truth = _run(simulate_point, out, "point sources", kw)
    rows = [(f"source {tuple(round(v, 1) for v in s['position_lps_mm'])}",
             "FWHM rad/tan/ax {radial:.2f} / {tangential:.2f} / {axial:.2f} mm".format(
                 **s["fwhm_mm"])) for s in truth["sources"]]
    _summary("Point sources", out, truth, rows)


@simulate_app.command("pet-uniform")
def pet_uniform(
    out: OutOption,
    scanner: ScannerOption = "virtual-pet",
    fwhm: FwhmOption = None,
    calibration_bias: BiasOption = 0.0,
    device: DeviceOption = None,
    voxel: VoxelOption = None,
    slice_: SliceOption = None,
    matrix: MatrixOption = None,
    diameter: Annotated[float, typer.Option("--diameter", help="Inner diameter, mm.")] = 200.0,
    length: Annotated[float, typer.Option("--length", help="Inner length, mm.")] = 200.0,
    activity: Annotated[float, typer.Option(
        "--activity", help="Activity in the cylinder at calibration, Bq.")] = 70.0e6,
    delay: Annotated[float, typer.Option(
        "--delay", help="Calibration to scan start, s.")] = 3600.0,
    weight: Annotated[float | None, typer.Option(
        "--weight", help="Patient weight in the header, kg (default: the water mass).")] = None,
    duration: DurationOption = None,
    noise: NoiseOption = True,
    seed: SeedOption = 0,
    post_filter: FilterOption = 0.0,
    decay_correction: DecayOption = "START",
    file_names: NamesOption = "uid",
    transfer_syntax: SyntaxOption = "ExplicitVRLittleEndian",
) -> None:
    """Uniform cylinder for the EARL calibration QC."""
    kw = _common(voxel, slice_, matrix, duration, noise, seed, post_filter, decay_correction,
                 file_names, transfer_syntax)
    kw.update(scanner=_scanner(scanner, fwhm, calibration_bias, device), diameter_mm=diameter,
              length_mm=length, activity_bq=activity, calibration_to_scan_s=delay,
              patient_weight_kg=weight)
    truth = _run(simulate_uniform, out, "uniform cylinder", kw)
    _summary("Uniform cylinder", out, truth, [
        ("concentration", f"{truth['concentration_bq_ml']:.1f} Bq/mL at the reference"),
        ("volume", f"{truth['volume_ml']:.1f} mL"),
        ("expected SUV", f"{truth['expected_suv']:.3f}"),
    ])


# Virtual scanners of other modalities and the clinical-study generator keep their
# commands beside their code; each module has ``register(app: typer.Typer) -> None``.
SIMULATE_MODULES: tuple[str, ...] = (
    "scanbench.simulate.ct_cli",  # ct-water, ct-wire, ct-edge
    "scanbench.simulate.ct_phantom_cli",  # ct-acr464, ct-catphan
    "scanbench.simulate.mr_cli",  # mr-acr, mr-uniform
    "scanbench.simulate.clinical_cli",  # ct-exam, petct-exam
    "scanbench.simulate.ct_patient_cli",  # ct-patient (virtual patient, known noise)
    "scanbench.simulate.pet_patient_cli",  # pet-patient (virtual PET/CT, known liver)
    "scanbench.simulate.pet_raw_cli",  # pet-sensitivity, pet-count-rate, pet-tof, ...
)


def _register_modalities() -> None:
    for name in SIMULATE_MODULES:
        importlib.import_module(name).register(simulate_app)


_register_modalities()
