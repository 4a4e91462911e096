"""Outside text through the real command line: DICOM descriptions, device names, job
states and paths holding rich markup or terminal escapes are shown as written, never
interpreted; messages are never hard-wrapped when stderr is not a terminal; a report
into a missing folder is refused before any analysis (issue 11 §2, §3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scanbench.simulate.ct import CtScannerModel, render_water, write_ct_series
from scanbench.types import DeviceIdentity

#: What the campaign found: markup that crashes rich, markup that cuts the text, a
#: style tag, and a terminal escape (colour, then clear screen).
HOSTILE = "T2 [/b] T1 [post contrast] [bold red]x[/] \x1b[31mred\x1b[2J"
SHOWN = "T2 [/b] T1 [post contrast] [bold red]x[/] \\x1b[31mred\\x1b[2J"


def run(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    # COLUMNS=80: rich would hard-wrap at 80 columns when not on a terminal.
    return subprocess.run([sys.executable, "-m", "scanbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "80", **env})


@pytest.fixture(scope="module")
def hostile_ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated CT water phantom whose series description and manufacturer are
    hostile text."""
    folder = tmp_path_factory.mktemp("hostile") / "ct"
    model = CtScannerModel()
    volume, _truth = render_water(model, n_slices=3, seed=3)
    write_ct_series(volume, folder, model=model, description=HOSTILE,
                    device=DeviceIdentity(manufacturer="ACME [/b] \x1b[2J", model="CT [x]",
                                          serial="[/SERIAL]"))
    return folder


def _clean(stream: str) -> None:
    assert "Traceback" not in stream and "MarkupError" not in stream
    assert "\x1b" not in stream  # no terminal escape reaches the terminal


def test_analyze_shows_device_text_as_written(hostile_ct: Path) -> None:
    proc = run("analyze", hostile_ct)
    assert proc.returncode == 0, proc.stderr
    _clean(proc.stdout)
    _clean(proc.stderr)
    flat = " ".join(proc.stdout.split())
    assert "ACME [/b] \\x1b[2J CT [x] (serial [/SERIAL])" in flat


def test_analyze_failure_names_the_series_description_as_written(hostile_ct: Path) -> None:
    proc = run("analyze", hostile_ct, "--analysis", "pet.calibration_uniformity")
    assert proc.returncode == 1, proc.stderr
    _clean(proc.stderr)
    assert SHOWN in proc.stderr  # the whole description, uncut, on one line


def test_jobs_list_with_queued_and_running_jobs(tmp_path: Path) -> None:
    """`jobs list` crashed on every queued or running job ("[]running[/]")."""
    from scanbench.service.jobs import InlineExecutor
    from scanbench.service.pipeline import Pipeline
    from scanbench.store import models as m

    pipe = Pipeline(tmp_path, executor=InlineExecutor(), recover=False)
    try:
        with pipe.db.session() as s:
            s.add(m.Job(kind="series", target_uid="1.2.3", state="queued", owner="x"))
            s.add(m.Job(kind="series", target_uid="1.2.4", state="running", owner="x"))
            s.add(m.Job(kind="series", target_uid="1.2.5", state="failed", owner="x",
                        error=f"{HOSTILE}: cannot be read"))
    finally:
        pipe.close()
    proc = run("jobs", "list", "--home", tmp_path)
    assert proc.returncode == 0, proc.stderr
    _clean(proc.stdout)
    assert "queued" in proc.stdout and "running" in proc.stdout
    assert "T2 [/b] T1 [post contrast]" in " ".join(proc.stdout.split())


def test_ingest_rejection_quotes_the_file_name_as_written(tmp_path: Path) -> None:
    bad = tmp_path / "[bold red]x[b] \x1b[31m.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00")
    proc = run("ingest", bad, "--home", tmp_path / "home", "--workers", "0")
    assert proc.returncode == 1, proc.stderr
    _clean(proc.stderr)
    assert "[bold red]x[b] \\x1b[31m.dcm" in proc.stderr


def test_long_error_message_is_one_line_when_not_a_terminal(tmp_path: Path) -> None:
    deep = tmp_path / ("a-very-long-folder-name-" * 8) / ("and-another-one-" * 8) / "scan"
    proc = run("analyze", deep)
    assert proc.returncode == 2
    line, = (x for x in proc.stderr.splitlines() if "no such file" in x)
    assert str(deep) in line  # not broken across lines at 80 columns


def test_report_into_a_missing_folder_is_refused_before_any_analysis(
        hostile_ct: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(next(hostile_ct.glob("*.dcm")).read_bytes()[:500])
    target = tmp_path / "no" / "such" / "dir" / "report.html"
    proc = run("analyze", hostile_ct, damaged, "--report", target)
    assert proc.returncode == 2
    assert f"{target.parent}: no such folder" in proc.stderr
    assert "damaged.dcm" not in proc.stderr  # refused before a file was read
    assert not (tmp_path / "no").exists()
    _clean(proc.stderr)


def test_json_output_keeps_the_text_exactly(hostile_ct: Path) -> None:
    proc = run("analyze", hostile_ct, "--json")
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)
    assert r["device"]["manufacturer"] == "ACME [/b] \x1b[2J"  # data is data: unchanged


def test_dose_and_workflow_show_device_text_as_written(tmp_path: Path) -> None:
    from scanbench.simulate.clinical import DeviceSpec, simulate_ct_exams

    simulate_ct_exams(tmp_path / "exams", n=2, device=DeviceSpec(
        manufacturer="ACME [/b] \x1b[2J", model="CT [x]"), matrix=32)
    for command in ("dose", "workflow"):
        proc = run(command, tmp_path / "exams")
        assert proc.returncode == 0, proc.stderr
        _clean(proc.stdout)
        _clean(proc.stderr)
        assert "ACME [/b] \\x1b[2J" in proc.stdout and "CT [x]" in proc.stdout, command


def test_simulate_names_its_output_folder_as_written(tmp_path: Path) -> None:
    out = tmp_path / "[/b] scan [red]"
    proc = run("simulate", "ct-water", "--out", out)
    assert proc.returncode == 0, proc.stderr
    _clean(proc.stderr)
    assert f"in {out}" in proc.stdout
