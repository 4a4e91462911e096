"""Real data: a value outside a limit the standards do not confirm is never shown as FAIL.

Issue 11 §2: the Siemens Aera 1.5 T T1 ACR series counted 29 low-contrast spokes, below
the "≥ 30" of the acr-mri-2022 spec, a number of the open-source hazen project that was
not checked in the ACR guidance. It must read outside_unconfirmed, in the JSON and in
the command line's table, and the result must not fail because of it. Since issue 17's
human-observer count the Aera reads 39 (hazen 38); the GE SIGNA Artist 1.5 T T2 series
(24 spokes, hazen 25) against the T2 "≥ 25" now carries the same check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SERIES = ("mr", "acr", "GE_Signa_Artist_1.5T_T2")


def _scanbench(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_low_contrast_below_an_unconfirmed_limit_is_outside_unconfirmed_not_fail(
        shared_data: Path) -> None:
    folder = shared_data.joinpath(*SERIES)
    proc = _scanbench("analyze", folder, "--spec", "acr-mri-2022", "--json")
    assert proc.returncode == 0, proc.stderr
    lcd = next(r for r in json.loads(proc.stdout) if r["analysis"] == "mr.acr.low_contrast")
    assert lcd["parameters"]["field_strength_t"] == 1.5 and lcd["parameters"]["sequence"] == "T2"
    m = next(m for m in lcd["measurements"] if m["name"] == "spokes_detected_total")
    assert m["limits"]["low"] == 25.0 and m["limits"]["verified"] is False
    assert "hazen" in m["limits"]["source"] and "not confirmed" in m["limits"]["source"]
    assert m["value"] < 25  # 24 under issue 17's observer; the point is the status below
    assert m["status"] == "outside_unconfirmed"

    table = _scanbench("analyze", folder, "--spec", "acr-mri-2022")
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if "spokes_detected_total" in line]
    assert rows and all("outside_unconfirmed" in row for row in rows)
    assert not any(" fail " in line for line in table.stdout.splitlines())
