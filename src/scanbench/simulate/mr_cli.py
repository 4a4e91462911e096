"""``scanbench simulate mr-acr | mr-uniform``: the virtual MRI scanner from the command line.

Bad option values print one clear message on stderr and exit with status 2.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scanbench.console import console, safe, text
from scanbench.simulate.mr import T1, T2, Imperfections, MrProtocol, MrScanner, simulate_acr
from scanbench.simulate.mr import simulate_uniform as _simulate_uniform

# Not a terminal: no hard wrap (a message stays one searchable line).
_err = console(stderr=True)
_out = console()

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")]
FieldOption = Annotated[float, typer.Option("--field-strength", help="B0, tesla.")]
MatrixOption = Annotated[int, typer.Option("--matrix", help="Acquisition matrix (256, 512).")]
SnrOption = Annotated[float | None, typer.Option(
    "--snr", help="SNR of the fill (default: from the scanner, field and protocol).")]
B1Option = Annotated[float, typer.Option(
    "--b1", help="Scale of the B1 inhomogeneity (0 uniform; 1 grows with B0²).")]
GhostOption = Annotated[float, typer.Option(
    "--ghost", help="Nyquist ghost amplitude, % of the signal.")]
RandomPhaseOption = Annotated[float, typer.Option(
    "--phase-noise", help="SD of random line-to-line phase errors, degrees.")]
RotationOption = Annotated[float, typer.Option("--rotation", help="Phantom rotation, degrees.")]
ShiftOption = Annotated[tuple[float, float, float], typer.Option(
    "--shift", help="Phantom centre X Y Z, LPS mm.")]
ScaleOption = Annotated[tuple[float, float, float], typer.Option(
    "--gradient-scale", help="Gradient calibration X Y Z (1 = exact).")]
RadialOption = Annotated[float, typer.Option(
    "--radial-distortion", help="Relative cubic radial distortion at r = 100 mm.")]
ChannelsOption = Annotated[int, typer.Option(
    "--channels", help="Receive channels (root-sum-of-squares magnitude when > 1).")]
ParallelOption = Annotated[float, typer.Option(
    "--parallel-factor", help="Parallel-imaging acceleration R (1 = none).")]
NoiseOption = Annotated[bool, typer.Option("--noise/--no-noise", help="Add noise.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Noise seed.")]
DeviceOption = Annotated[str | None, typer.Option(
    "--device", help="Device identity MAKER/MODEL or MAKER/MODEL/SERIAL in the headers.")]
NamesOption = Annotated[str, typer.Option(
    "--file-names", help="uid (sub-folder per series) or shuffled (one flat folder).")]


def _fail(message: str) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {safe(message)}", highlight=False)
    return typer.Exit(code=2)


def _scanner(field: float, channels: int, device: str | None) -> MrScanner:
    changes: dict[str, Any] = {"field_strength_t": field, "channels": channels}
    if device is not None:
        parts = [p.strip() for p in device.split("/")]
        if len(parts) not in (2, 3) or not all(parts):
            raise _fail(f"--device {device!r}: expected MAKER/MODEL or MAKER/MODEL/SERIAL")
        changes["manufacturer"], changes["model"] = parts[0], parts[1]
        if len(parts) == 3:
            changes["serial"] = parts[2]
    try:
        return MrScanner(**changes)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _imperfections(**kw: Any) -> Imperfections:
    try:
        return Imperfections(**kw)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _protocol(base: MrProtocol, **kw: Any) -> MrProtocol:
    try:
        return dataclasses.replace(base, **kw)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _run(func: Any, out: Path, **kw: Any) -> dict[str, Any]:
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out} exists and is not a folder")
    try:
        with _err.status("rendering through the k-space model ..."):
            return dict(func(out, **kw))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write to {out}: {exc}") from None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


def register(app: typer.Typer) -> None:
    """Add ``mr-acr`` and ``mr-uniform`` to ``scanbench simulate``."""

    @app.command("mr-acr")
    def mr_acr(
        out: OutOption,
        field_strength: FieldOption = 1.5,
        matrix: MatrixOption = 256,
        phantom: Annotated[str, typer.Option("--phantom", help="large or medium.")] = "large",
        snr: SnrOption = None,
        b1: B1Option = 1.0,
        ghost: GhostOption = 0.0,
        phase_noise: RandomPhaseOption = 0.0,
        rotation: RotationOption = 0.0,
        shift: ShiftOption = (0.0, 0.0, 0.0),
        slice_offset: Annotated[float, typer.Option(
            "--slice-offset", help="Slice displacement along the phantom axis, mm.")] = 0.0,
        slice_offset_11: Annotated[float | None, typer.Option(
            "--slice-offset-11", help="Slice 11's own displacement, mm (default: as slice 1; "
            "the slices between move linearly).")] = None,
        slice_thickness: Annotated[float | None, typer.Option(
            "--slice-thickness", help="Actual slice FWHM, mm (header says 5).")] = None,
        gradient_scale: ScaleOption = (1.0, 1.0, 1.0),
        radial_distortion: RadialOption = 0.0,
        channels: ChannelsOption = 1,
        parallel_factor: ParallelOption = 1.0,
        localiser: Annotated[bool, typer.Option(
            "--localiser/--no-localiser", help="Write the sagittal localiser.")] = True,
        noise: NoiseOption = True,
        seed: SeedOption = 0,
        device: DeviceOption = None,
        file_names: NamesOption = "uid",
    ) -> None:
        """ACR large (or medium) MRI phantom: T1 and T2 axial series and a sagittal localiser."""
        if phantom not in ("large", "medium"):
            raise _fail(f"--phantom must be large or medium, got {phantom!r}")
        imp = _imperfections(
            snr=snr, noise=noise, b1_scale=b1, ghost_fraction=ghost / 100.0,
            ghost_random_phase_deg=phase_noise, gradient_scale=gradient_scale,
            radial_distortion=radial_distortion, slice_thickness_mm=slice_thickness,
            slice_offset_mm=slice_offset, slice_offset_11_mm=slice_offset_11,
            rotation_deg=rotation, shift_mm=shift)
        t1 = _protocol(T1, matrix=matrix, parallel_factor=parallel_factor)
        t2 = _protocol(T2, matrix=matrix, parallel_factor=parallel_factor)
        truth = _run(simulate_acr, out, phantom=phantom,
                     scanner=_scanner(field_strength, channels, device), t1=t1, t2=t2,
                     imperfections=imp, localiser=localiser, seed=seed, file_names=file_names)
        table = Table(title="ACR MRI phantom (virtual scanner)", show_header=True,
                      title_justify="left")
        table.add_column("truth")
        for label in truth["series"]:
            table.add_column(label)
        keys = ("slice_thickness_mm", "slice_position_error_mm", "percent_integral_uniformity",
                "percent_signal_ghosting", "resolved_hole_mm", "spokes_detected_total", "snr")
        for key in keys:
            table.add_row(key, *[_fmt(s.get(key, "")) for s in truth["series"].values()])
        _out.print(table)
        _out.print(f"{truth['files']} files and ground_truth.json written to {safe(out)}")

    @app.command("mr-uniform")
    def mr_uniform(
        out: OutOption,
        field_strength: FieldOption = 1.5,
        matrix: MatrixOption = 256,
        diameter: Annotated[float, typer.Option(
            "--diameter", help="Phantom diameter, mm.")] = 190.0,
        repeats: Annotated[int, typer.Option(
            "--repeats", help="Identical acquisitions (2: the NEMA MS 1 pair).")] = 2,
        snr: SnrOption = None,
        b1: B1Option = 1.0,
        ghost: GhostOption = 0.0,
        phase_noise: RandomPhaseOption = 0.0,
        averages: Annotated[float, typer.Option("--averages", help="NSA.")] = 1.0,
        bandwidth: Annotated[float, typer.Option(
            "--bandwidth", help="Pixel bandwidth, Hz/pixel.")] = 130.0,
        channels: ChannelsOption = 1,
        parallel_factor: ParallelOption = 1.0,
        noise: NoiseOption = True,
        seed: SeedOption = 0,
        device: DeviceOption = None,
        file_names: NamesOption = "uid",
    ) -> None:
        """Uniform cylinder, one axial slice acquired REPEATS times (SNR, uniformity, ghosting)."""
        imp = _imperfections(snr=snr, noise=noise, b1_scale=b1, ghost_fraction=ghost / 100.0,
                             ghost_random_phase_deg=phase_noise)
        protocol = _protocol(MrProtocol(name="SNR uniform", tr_ms=1000.0, te_ms=30.0),
                             matrix=matrix, averages=averages, pixel_bandwidth_hz=bandwidth,
                             parallel_factor=parallel_factor)
        truth = _run(_simulate_uniform, out, scanner=_scanner(field_strength, channels, device),
                     protocol=protocol, imperfections=imp, diameter_mm=diameter,
                     repeats=repeats, seed=seed, file_names=file_names)
        table = Table(title="Uniform phantom (virtual MR scanner)", show_header=False,
                      title_justify="left")
        table.add_column("what", style="bold")
        table.add_column("value")
        table.add_row("written", text(f"{truth['files']} files + ground_truth.json in {out}"))
        for key in ("snr", "percent_uniformity", "percent_signal_ghosting", "noise_sigma"):
            table.add_row(key, _fmt(truth[key]))
        _out.print(table)
