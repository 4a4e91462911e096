"""The terminal table of one result: refused values withheld, each note printed once."""

from __future__ import annotations

import datetime as dt

from rich.console import Console

from scanbench.cli import print_result
from scanbench.types import DeviceIdentity, Result


def test_refused_and_not_judged_values_show_their_notes_once() -> None:
    r = Result("pet.nema_nu2_2018.image_quality", "NEMA NU 2-2018 section 7.4", "1.2.3",
               DeviceIdentity(manufacturer="ACME"), dt.datetime(2026, 1, 1))
    for sphere in (10, 13):
        r.add("rc_max", 3.9, "1", labels={"sphere_mm": sphere}).refuse(
            "rc_max read 3.9 [1], above what partial volume allows")
    r.add("percent_contrast", 71.5, "%", labels={"sphere_mm": 10}).not_judged(
        "activity_ratio not given")
    r.add("lung_residual", 0.5, "%")
    console = Console(record=True, width=200)
    print_result(r, console)
    out = console.export_text()
    rows = {line.split("│")[1].strip() + line.split("│")[2].strip(): line
            for line in out.splitlines() if line.count("│") > 5}
    assert "—" in rows["rc_max10 mm sphere"] and "3.9" not in rows["rc_max10 mm sphere"]
    assert "refused [1]" in rows["rc_max13 mm sphere"]
    assert "not_judged [2]" in rows["percent_contrast10 mm sphere"]
    assert "71.5" in rows["percent_contrast10 mm sphere"]  # reported, only not judged
    # the note's text is outside text: printed literally, once
    assert out.count("note 1: rc_max read 3.9 [1], above what partial volume allows") == 1
    assert out.count("note 2: activity_ratio not given") == 1
    assert "note 3" not in out
