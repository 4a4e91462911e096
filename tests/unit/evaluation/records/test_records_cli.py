"""``scanbench lifecycle|telemetry|costs|reliability|economics`` on a real SQLite store:
imports twice = once, reliability numbers by hand in JSON, bad input exit 2 with the
file's line, audit entries by ``cli:<login>``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from life_world import make_fleet
from sqlalchemy import select
from typer.testing import CliRunner

from scanbench.evaluation import records_cli
from scanbench.store import Database
from scanbench.store import models as m

runner = CliRunner()

LOG = """id,device,kind,start,end,note
i1,CT-1,installation,2025-12-01T00:00,,
f1,CT-1,failure,2026-01-05T10:00,2026-01-06T10:00,tube arc
f2,CT-1,failure,2026-01-20T14:00,2026-01-20T20:00,detector
m1,CT-1,maintenance,2026-01-10T08:00,2026-01-10T12:00,PM
"""


def test_lifecycle_import_reliability_and_costs_from_the_command_line(tmp_path: Path) -> None:
    app = typer.Typer()
    records_cli.register(app)
    home = tmp_path / "home"
    db = Database(home=home)
    make_fleet(db)
    db.close()
    h = ["--home", str(home)]
    log = tmp_path / "log.csv"
    log.write_text(LOG)
    first = runner.invoke(app, ["lifecycle", "import", str(log), *h])
    assert first.exit_code == 0, first.output
    assert "7 event(s) added, 0 already stored" in first.output
    again = runner.invoke(app, ["lifecycle", "import", str(log), *h])
    assert "0 event(s) added, 4 already stored" in again.output
    rel = runner.invoke(app, ["reliability", "--from", "2026-01-01", "--to", "2026-02-01",
                              "--json", *h])
    assert rel.exit_code == 0, rel.output
    [dev] = json.loads(rel.output)["devices"]
    # by hand: 744 h in service, down 24 + 6 h unplanned, 4 h planned: up 710 h
    assert (dev["device_names"], dev["failures"], dev["up_h"]) == (["CT one"], 2, 710.0)
    assert (dev["mtbf_h"], dev["mttr_h"]) == (355.0, 15.0)
    assert json.loads(rel.output)["models"][0]["model"] == "GE Revolution"
    cost = runner.invoke(app, ["costs", "add", "CT-1", "service_contract", "73050", "EUR",
                               "2026-01-01", "--until", "2027-01-01", *h])
    assert cost.exit_code == 0, cost.output
    eco = runner.invoke(app, ["economics", "--from", "2026-01-01", "--to", "2026-02-01",
                              "--json", *h])
    assert json.loads(eco.output)["devices"][0]["total_cost"] == 31 * 200.0
    # a conventional magnet losing 0.2 %/day of 1500 L (3 L/day) and a sealed one
    tel = tmp_path / "tel.csv"
    tel.write_text("device,time,helium_level_pct\n" + "".join(
        f"CV-2,2026-01-{d:02d}T06:00,{80 - 0.2 * d:.1f}\nHF-1,2026-01-{d:02d}T06:00,99.9\n"
        for d in range(1, 31)))
    res = runner.invoke(app, ["telemetry", "import", str(tel), *h])
    assert "60 reading(s) added" in res.output, res.output
    res = runner.invoke(app, ["telemetry", "show", "CV-2", "--compare", "HF-1", "--dewar-l",
                              "1500", "--json", *h])
    side = json.loads(res.output)
    assert side["a"]["rate_l_per_day"] == pytest.approx(3.0)
    assert side["b"]["consistent_with_zero"] is True and side["different"] is True
    runner.invoke(app, ["costs", "add", "CV-2", "consumable", "10", "EUR", "2026-01-02", *h])
    res = runner.invoke(app, ["economics", "--device", "CV-2", "--from", "2026-01-01",
                              "--to", "2026-01-31", "--helium-price", "20", "--dewar-l",
                              "1500", *h])
    # 3 L/day x 30 days x 20 EUR/L
    assert "= 1800.00 EUR (estimate, not in the total)" in res.output, res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("device,kind,start\nCT-1,explosion,2026-01-02T00:00\n")
    res = runner.invoke(app, ["lifecycle", "import", str(bad), *h])
    assert res.exit_code == 2
    assert "bad.csv:2: field 'kind': unknown kind 'explosion'" in res.output
    res = runner.invoke(app, ["lifecycle", "add", "CT-1", "downtime_end", "2026-01-08", *h])
    assert res.exit_code == 2 and "an end without a start" in res.output
    res = runner.invoke(app, ["costs", "add", "nowhere", "parts", "1", "EUR", "2026-01-01",
                              *h])
    assert res.exit_code == 2 and "no device 'nowhere'" in res.output
    db = Database(home=home)
    try:
        with db.sessions() as s:
            actors = set(s.scalars(select(m.AuditEntry.actor).where(
                m.AuditEntry.entity.in_(("lifecycle_event", "device_cost")))))
            assert len(actors) == 1 and next(iter(actors)).startswith("cli:")
    finally:
        db.close()
