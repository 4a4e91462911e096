"""``scanbench specs load|assign|assignments``, ``scanbench scorecard`` and ``scanbench
due`` run as the real command line on a node database holding a PET device's weekly
calibration QC: the stored spec, its assignment (audited), the scorecard (stored once for
unchanged inputs), the due list, a changed spec under the same version refused with
exit 2, and a device serial with rich markup printed as text."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Result
from scanbench.web import audit, sites

SPEC = """name: site-cal
title: Site calibration QC
version: "1"
description: weekly calibration QC
verified: true
sources: ["site QC manual"]
tests:
  - {{test: pet.calibration_uniformity, analysis: pet.calibration_uniformity,
     frequency: weekly, dimension: image_quality, source: "site QC manual 4.1"}}
rules:
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bias_percent
    low: -{band}
    high: {band}
    source: "site QC manual 4.1"
    confidence: C
"""
SERIAL = "[red]SN-1[/red]"


def run(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanbench", *map(str, args), "--home",
                           str(home)], capture_output=True, text=True, timeout=180)


def test_specs_assign_scorecard_and_due_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = Database(home)
    try:
        with db.sessions() as s:
            ident = DeviceIdentity("Siemens", "Biograph Vision", SERIAL)
            dev = devices.register(s, ident, modality="PT")
            dev.site_id = sites.add_site(s, audit.Actor(None, "cli:test"), "Site A",
                                         timezone="Europe/Paris").id
            for day, bias in ((7, 2.0), (14, 30.0), (15, 1.0), (21, 2.0)):  # 28th missed
                r = Result("pet.calibration_uniformity", "EARL calibration QC", f"1.2.{day}",
                           ident, dt.datetime(2026, 1, day, 9))
                r.add("activity_concentration_bias_percent", bias, "%")
                repo.save_result(s, r, series_id=None, device_id=dev.id)
            s.commit()
            device_id = dev.id
    finally:
        db.close()
    spec = tmp_path / "site-cal.yaml"
    spec.write_text(SPEC.format(band=10))
    loaded = run(home, "specs", "load", spec)
    assert loaded.returncode == 0, loaded.stderr
    assert "stored spec site-cal version 1" in loaded.stdout
    assigned = run(home, "specs", "assign", "site-cal", "--modality", "PT",
                   "--from", "2026-01-01")
    assert assigned.returncode == 0, assigned.stderr
    listed = json.loads(run(home, "specs", "assignments", "--json").stdout)
    assert [(a["spec_name"], a["modality"]) for a in listed] == [("site-cal", "PT")]

    card = run(home, "scorecard", str(device_id), "--from", "2026-01-05", "--to",
               "2026-02-01", "--json")
    assert card.returncode == 0, card.stderr
    [part] = json.loads(card.stdout)
    data = part["scorecard"]["data"]
    assert part["added"] and data["spec"]["name"] == "site-cal"
    [test] = data["tests"]
    assert test["status"] == "overdue" and len(test["evidence"]) == 4
    comp = data["compliance"]
    assert (comp["required"], comp["on_time"]) == (5, 4)  # 4 weeks + 1 re-test; week 4 missed
    assert comp["follow_ups"][0]["hours_to_pass"] == 24.0
    # again, by serial, as a table: the same scorecard (unchanged inputs add nothing)
    table = run(home, "scorecard", SERIAL, "--from", "2026-01-05", "--to", "2026-02-01")
    assert table.returncode == 0, table.stderr
    assert f"scorecard {part['scorecard']['id']} (unchanged inputs)" in table.stdout
    assert SERIAL in table.stdout and "overdue" in table.stdout  # markup printed as text

    due = json.loads(run(home, "due", "--json").stdout)
    assert [(d["site"], d["device_id"]) for d in due] == [("Site A", device_id)]
    db = Database(home)
    try:
        with db.sessions() as s:
            assert s.scalar(select(func.count()).select_from(m.Scorecard)) == 1
            actions = list(s.scalars(select(m.AuditEntry.action)))
            assert "spec.assign" in actions
    finally:
        db.close()

    for args, message in ((("scorecard", "no-such-device"), "no device with id, serial"),
                          (("specs", "assign", "no-such-spec", "--modality", "PT"),
                           "no stored spec 'no-such-spec'")):
        bad = run(home, *args)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    spec.write_text(SPEC.format(band=5))  # changed limits, same version
    refused = run(home, "specs", "load", spec)
    assert refused.returncode == 2
    assert "already stored with a different text" in refused.stderr
    assert "Traceback" not in refused.stderr
