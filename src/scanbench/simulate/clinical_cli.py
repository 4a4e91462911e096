"""``scanbench simulate ct-exam`` and ``petct-exam``: synthetic clinical studies with their
dose reports, headers and timings, and truth.json beside them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from scanbench.console import console, safe
from scanbench.simulate.clinical import (
    PROTOCOLS,
    DeviceSpec,
    PetProtocol,
    Schedule,
    simulate_ct_exams,
    simulate_petct_exams,
)

_err = console(stderr=True)  # not a terminal: a message is one line, for grep and logs

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder to write the exams into.")]
NOpt = Annotated[int, typer.Option("--exams", "-n", help="Number of exams (one per patient).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
StartOpt = Annotated[str, typer.Option(
    "--start", help="First exam start, ISO date-time (e.g. 2026-03-02T08:00).")]
GapOpt = Annotated[float, typer.Option("--mean-gap", help="Mean gap between patients, min.")]
DeviceOpt = Annotated[str | None, typer.Option(
    "--device", help="MAKER/MODEL or MAKER/MODEL/SERIAL written to the headers.")]


def _device(text: str | None, default: DeviceSpec) -> DeviceSpec:
    if not text:
        return default
    parts = [p.strip() for p in text.split("/")]
    if len(parts) < 2 or not all(parts):
        raise typer.BadParameter(f"--device '{text}': expected MAKER/MODEL or MAKER/MODEL/SERIAL")
    serial = parts[2] if len(parts) > 2 else default.serial
    return DeviceSpec(parts[0], parts[1], serial, station=serial[:16])


def _start(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"--start '{text}': expected an ISO date-time") from None


def ct_exam(out: OutOpt, exams: NOpt = 5, seed: SeedOpt = 0,
            protocols: Annotated[str, typer.Option(
                "--protocols", help=f"Comma-separated, cycled: {', '.join(PROTOCOLS)}.")]
            = "chest,abdomen_pelvis,head",
            start: StartOpt = "2026-03-02T08:00", mean_gap: GapOpt = 12.0,
            device: DeviceOpt = None,
            images: Annotated[bool, typer.Option("--images/--no-images",
                                                 help="Write the CT image series.")] = True,
            rdsr: Annotated[bool, typer.Option("--rdsr/--no-rdsr",
                                               help="Write the CT dose report.")] = True) -> None:
    """CT exams: dose report (TID 10011), localizer and axial series, truth.json."""
    names = tuple(p.strip() for p in protocols.split(",") if p.strip())
    try:
        truths = simulate_ct_exams(out, n=exams, protocols=names, seed=seed,
                                   schedule=Schedule(start=_start(start), mean_gap_min=mean_gap),
                                   device=_device(device, DeviceSpec()), images=images,
                                   rdsr=rdsr)
    except ValueError as exc:
        _err.print(f"[red]error:[/] {safe(exc)}")
        raise typer.Exit(2) from None
    _err.print(f"{len(truths)} CT exams written to {safe(out)} "
               f"(truth in {safe(out / 'truth.json')})")


def petct_exam(out: OutOpt, exams: NOpt = 3, seed: SeedOpt = 0,
               start: StartOpt = "2026-03-02T08:00", mean_gap: GapOpt = 8.0,
               device: DeviceOpt = None,
               activity: Annotated[tuple[float, float], typer.Option(
                   "--activity", help="FDG activity per kg: MEAN SD, MBq/kg.")] = (3.0, 0.3),
               uptake: Annotated[tuple[float, float], typer.Option(
                   "--uptake", help="Uptake time: MEAN SD, min.")] = (62.0, 7.0),
               rrdsr: Annotated[bool, typer.Option(
                   "--rrdsr/--no-rrdsr", help="Write a radiopharmaceutical dose report.")]
               = True) -> None:
    """FDG PET/CT exams: CT dose report, PET images with dose header fields, RRDSR."""
    if activity[0] <= 0 or activity[1] < 0 or uptake[0] <= 0 or uptake[1] < 0:
        _err.print("[red]error:[/] --activity and --uptake need a positive mean and SD ≥ 0")
        raise typer.Exit(2)
    try:
        truths = simulate_petct_exams(
            out, n=exams, seed=seed,
            pet=PetProtocol(activity_mbq_per_kg=activity, uptake_min=uptake, write_rrdsr=rrdsr),
            schedule=Schedule(start=_start(start), mean_gap_min=mean_gap),
            device=_device(device, DeviceSpec(model="Virtual PET/CT", serial="VPC-0001",
                                              station="VPC01")))
    except ValueError as exc:
        _err.print(f"[red]error:[/] {safe(exc)}")
        raise typer.Exit(2) from None
    _err.print(f"{len(truths)} PET/CT exams written to {safe(out)} "
               f"(truth in {safe(out / 'truth.json')})")


def register(app: typer.Typer) -> None:
    app.command("ct-exam")(ct_exam)
    app.command("petct-exam")(petct_exam)
