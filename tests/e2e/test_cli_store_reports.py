"""``scanbench report device|acceptance|site-dose`` run as the real command line on a
node's database: the reports written from the store with the stored numbers, device
text escaped, and clear usage errors (exit status 2, no traceback)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scanbench import cli
from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Result
from scanbench.web import audit, sites

XSS = "<img src=x onerror=alert(1)>"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real command line, in its own process."""
    return subprocess.run([sys.executable, "-m", "scanbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def invoke(*args: str | Path) -> tuple[int, str]:
    """The same command line in this process (faster: no second interpreter start)."""
    cli._mount_subapps(["report"])
    r = CliRunner().invoke(cli.app, [str(a) for a in args])
    return r.exit_code, r.output


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("report-home")
    db = Database(home)
    actor = audit.Actor(None, "cli:test")
    with db.sessions() as s:
        site = sites.add_site(s, actor, "North Hospital")
        ident = DeviceIdentity("GE", "Revolution", "CT-7", "CTSTATION")
        dev = devices.register(s, ident, modality="CT")
        dev.site_id, dev.display_name = site.id, f"CT 7 {XSS}"
        study = m.Study(study_uid="1.9", site_id=site.id)
        s.add(study)
        s.flush()
        for day, value in ((2, 1.5), (3, -2.25), (4, 9.5)):
            uid = f"1.9.{day}"
            when = dt.datetime(2026, 5, day, 7, 0)
            ser = m.Series(series_uid=uid, study_id=study.id, device_id=dev.id,
                           modality="CT", state="done", acquired_at=when)
            s.add(ser)
            s.flush()
            r = Result("ct.water", "IEC 61223-3-5", uid, ident, when)
            lim = Limits(-7.0, 7.0, "water CT number −7..+7 HU (test)", True)
            r.add("ct_number_water_hu", value, "HU", labels={"slice": "all"}, limits=lim,
                  status=lim.check(value))
            repo.save_result(s, r, series_id=ser.id, device_id=dev.id)
        s.add(m.LifecycleEvent(device_id=dev.id, kind="installation",
                               occurred_at=dt.datetime(2026, 5, 1, 9)))
        s.add(m.DoseEvent(study_id=study.id, device_id=dev.id, kind="ct",
                          occurred_at=dt.datetime(2026, 5, 2, 10), protocol=f"Head {XSS}",
                          ctdivol_mgy=41.5))
        s.commit()
    db.close()
    return home


def test_device_acceptance_and_site_dose_reports_written(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "device.html"
    got = run("report", "device", "CT-7", "--from", "2026-05-01", "--to", "2026-05-31",
              "-o", out, "--home", home)
    assert got.returncode == 0, got.stderr
    html = out.read_text(encoding="utf-8")
    assert XSS not in html and "CT 7 &lt;img src=x onerror=alert(1)&gt;" in html
    for shown in ("9.5 HU", "-2.25 HU", "1.5 HU", "water CT number −7..+7 HU (test)"):
        assert shown in html, shown
    acc = tmp_path / "acceptance.html"
    code, output = invoke("report", "acceptance", "CT-7", "-o", acc, "--home", home)
    assert code == 0, output
    text = acc.read_text(encoding="utf-8")
    # No acceptance event: the 30 days after the installation (1 May 09:00) hold the
    # three results; 9.5 HU is outside the stored ±7 HU.
    assert "within 30 days of the installation (2026-05-01 09:00)" in text
    assert text.count("(result ") == 3 and "status-fail" in text
    dose = tmp_path / "dose.html"
    code, output = invoke("report", "site-dose", "North Hospital", "--from", "2026-05-01",
                          "--to", "2026-05-31", "-o", dose, "--home", home)
    assert code == 0, output
    text = dose.read_text(encoding="utf-8")
    assert XSS not in text and "Head &lt;img" in text and "41.5" in text


def test_usage_errors_are_named_without_a_traceback(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.html"
    for args, message in (
            (("device", "nope"), "device 'nope'"),
            (("device", "CT-7", "--from", "2026-05-10", "--to", "2026-05-01"),
             "before it starts"),
            (("device", "CT-7", "--from", "May 1"), "--from 'May 1': expected a date"),
            (("site-dose", "Nowhere"), "no site 'Nowhere'")):
        code, output = invoke("report", *args, "-o", out, "--home", home)
        assert code == 2, (args, output)
        assert message in " ".join(output.split()) and "Traceback" not in output, output
    assert not out.exists()
