"""``scanbench simulate pet-sensitivity | pet-count-rate | pet-tof | pet-coregistration``.

Each command writes one raw-data file (docs/pet-raw-data.md) and
``<name>_truth.json`` beside it. Bad option values print one message and exit
with status 2.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from scanbench.console import console, safe
from scanbench.simulate.pet_raw import (
    RAW_SCANNER_MODELS,
    RawScannerModel,
    simulate_coregistration,
    simulate_corrections_accuracy,
    simulate_count_rate,
    simulate_sensitivity,
    simulate_tof,
)

# Not a terminal: no hard wrap (a message stays one searchable line).
_err = console(stderr=True)
_out = console()

OutFile = Annotated[Path, typer.Option("--out", "-o", help="HDF5 file to write (.h5).")]
Scanner = Annotated[str, typer.Option(
    "--scanner", help=f"Raw scanner model: {', '.join(RAW_SCANNER_MODELS)}.")]
Seed = Annotated[int, typer.Option("--seed", help="Noise seed.")]
Tof = Annotated[float | None, typer.Option("--tof-fwhm", help="System TOF FWHM, ps.")]
Mrd = Annotated[int | None, typer.Option("--mrd", help="Maximum ring difference.")]
DeadTime = Annotated[str | None, typer.Option(
    "--dead-time-model", help="paralysable or nonparalysable.")]
Length = Annotated[float, typer.Option(
    "--phantom-length", help="Scatter phantom and line length, mm (NEMA 700; long AFOV "
                             "practice 1400-2000).")]


def _fail(message: str) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {safe(message)}", highlight=False)
    return typer.Exit(code=2)


def _model(name: str, tof: float | None = None, mrd: int | None = None,
           dead_time_model: str | None = None) -> RawScannerModel:
    if name not in RAW_SCANNER_MODELS:
        raise _fail(f"unknown scanner {name!r}; choose one of {', '.join(RAW_SCANNER_MODELS)}")
    changes: dict[str, Any] = {}
    if tof is not None:
        changes["tof_fwhm_ps"] = tof
    if mrd is not None:
        changes["max_ring_difference"] = mrd
    if dead_time_model is not None:
        changes["dead_time_model"] = dead_time_model
    try:
        return dataclasses.replace(RAW_SCANNER_MODELS[name], **changes)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _run(func: Any, out: Path, **kwargs: Any) -> dict[str, Any]:
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise _fail(f"--out {out}: the file must end in .h5 or .hdf5")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _err.status(f"simulating {safe(out.name)} ..."):
            return dict(func(out, **kwargs))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc}") from None


def pet_sensitivity(out: OutFile, scanner: Scanner = "virtual-pet", mrd: Mrd = None,
                    activity: Annotated[float, typer.Option(
                        "--activity", help="Line activity, MBq.")] = 5.0,
                    line_length: Annotated[float, typer.Option(
                        "--line-length", help="Line length, mm.")] = 700.0,
                    seed: Seed = 0) -> None:
    """NEMA NU 2-2018 sensitivity: line source in 5..1 sleeves at r = 0 and 10 cm."""
    truth = _run(simulate_sensitivity, out, scanner=_model(scanner, mrd=mrd),
                 activity_mbq=activity, line_length_mm=line_length, seed=seed)
    sens = ", ".join(f"r {k} mm {v:.3f}" for k, v in truth["sensitivity_cps_per_kbq"].items())
    _out.print(f"written {safe(out)} (+ {safe(out.stem)}_truth.json)\n"
               f"true sensitivity (cps/kBq): {sens}")


def pet_count_rate(out: OutFile, scanner: Scanner = "virtual-pet", mrd: Mrd = None,
                   dead_time_model: DeadTime = None,
                   activity: Annotated[float, typer.Option(
                       "--activity", help="Activity at the first frame, MBq.")] = 1100.0,
                   frames: Annotated[int, typer.Option("--frames")] = 24,
                   frame_s: Annotated[float, typer.Option("--frame-s")] = 300.0,
                   gap_s: Annotated[float, typer.Option("--gap-s")] = 1200.0,
                   phantom_length: Length = 700.0, seed: Seed = 0) -> None:
    """NEMA NU 2-2018 count rate: the 20 cm scatter phantom decaying over frames."""
    if frames < 3:
        raise _fail("--frames must be at least 3")
    truth = _run(simulate_count_rate, out,
                 scanner=_model(scanner, mrd=mrd, dead_time_model=dead_time_model),
                 start_activity_mbq=activity, frames=frames, frame_s=frame_s, gap_s=gap_s,
                 phantom_length_mm=phantom_length, seed=seed)
    _out.print(f"written {safe(out)} (+ {safe(out.stem)}_truth.json)\ntrue peak NECR "
               f"{truth['peak_necr_kcps']:.1f} kcps at "
               f"{truth['activity_at_peak_necr_kbq_ml']:.2f} kBq/mL; scatter fraction "
               f"{truth['scatter_fraction_percent']:.2f} %")


def pet_tof(out: OutFile, scanner: Scanner = "virtual-pet", tof_fwhm: Tof = None,
            activity: Annotated[list[float] | None, typer.Option(
                "--activity", help="Activity of one list-mode frame, MBq; repeatable.")] = None,
            events: Annotated[int, typer.Option("--events", help="Events per frame.")] = 400_000,
            phantom_length: Length = 700.0, seed: Seed = 0) -> None:
    """NEMA NU 2-2018 TOF resolution: list mode of the scatter phantom's line source."""
    truth = _run(simulate_tof, out, scanner=_model(scanner, tof=tof_fwhm),
                 activities_mbq=tuple(activity or (30.0, 500.0)), events_per_frame=events,
                 phantom_length_mm=phantom_length, seed=seed)
    levels = ", ".join(
        f"{lv['activity_concentration_kbq_ml']:.2f} kBq/mL {lv['tof_fwhm_ps']:.1f} ps"
        for lv in truth["levels"])
    _out.print(f"written {safe(out)} (+ {safe(out.stem)}_truth.json)\ntrue TOF FWHM: {levels}")


def pet_coregistration(
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder for pet/, ct/ and "
                                                             "ground_truth.json.")],
        offset: Annotated[tuple[float, float, float], typer.Option(
            "--offset", help="CT - PET misregistration X Y Z, mm.")] = (0.6, -0.4, 0.5),
        sag: Annotated[float, typer.Option(
            "--sag", help="Table sag, mm of y per m of z.")] = 2.0,
        seed: Seed = 0) -> None:
    """NEMA NU 2-2018 PET/CT co-registration: point markers as PET and CT DICOM series."""
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out} exists and is not a folder")
    try:
        with _err.status("simulating PET and CT markers ..."):
            truth = simulate_coregistration(out, offset_mm=offset, sag_mm_per_m=sag, seed=seed)
    except (ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    _out.print(f"written {safe(out)}/pet, {safe(out)}/ct and ground_truth.json\ntrue maximum "
               f"co-registration error {truth['max_error_mm']:.3f} mm")


def pet_corrections(
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder for one series per "
                                                             "frame and ground_truth.json.")],
        scanner: Scanner = "virtual-pet",
        frames: Annotated[int, typer.Option("--frames")] = 10,
        max_error: Annotated[float, typer.Option(
            "--max-error", help="Residual correction error at the peak-NECR activity, %.")
        ] = 2.5,
        seed: Seed = 0) -> None:
    """NEMA NU 2-2018 accuracy of corrections: reconstructed frames of the count-rate phantom."""
    if frames < 5:
        raise _fail("--frames must be at least 5")
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out} exists and is not a folder")
    try:
        with _err.status("simulating reconstructed frames ..."):
            truth = simulate_corrections_accuracy(out, scanner=_model(scanner), frames=frames,
                                                  max_error_percent=max_error, seed=seed)
    except (ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    _out.print(f"written {frames} frame series and ground_truth.json in {safe(out)}\n"
               f"peak NECR at {truth['peak_necr_kbq_ml']:.1f} kBq/mL; true max rate error "
               f"{truth['max_rate_error_percent']:.2f} % (give --param peak_necr_kbq_ml="
               f"{truth['peak_necr_kbq_ml']:.1f} to scanbench analyze)")


def register(app: typer.Typer) -> None:
    app.command("pet-sensitivity")(pet_sensitivity)
    app.command("pet-count-rate")(pet_count_rate)
    app.command("pet-tof")(pet_tof)
    app.command("pet-coregistration")(pet_coregistration)
    app.command("pet-corrections")(pet_corrections)
