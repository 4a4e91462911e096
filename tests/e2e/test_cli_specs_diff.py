"""``scanbench specs diff A B`` run as the real command line: a site spec that extends a
national one, its tightened and added limits in the table and in --json, and a usage
error (issue 13 item 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SITE = """name: acr-mri-site
title: ACR MRI with our tighter geometric accuracy
version: "2026-1"
description: site limits over the ACR large-phantom spec
verified: false
unverified_reason: inherits the ACR limits that are not confirmed
extends: {parent}
sources: ["site physics board, minute 12"]
tests:
  - {{test: mr.acr.ghosting, frequency: weekly, source: "site SOP 3.1"}}
rules:
  - analysis: mr.acr.geometric_accuracy
    measurement: length_mm
    labels: {{slice: 1}}
    low: {low}
    high: {high}
    source: "site physics board, minute 12"
    confidence: C
  - analysis: mr.acr.uniformity
    measurement: large_roi_mean
    low: 100
    source: "site physics board, minute 12"
    confidence: C
"""


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanbench", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _slice_1_band(parent: str) -> tuple[float, float]:
    out = run("specs", parent, "--json")
    assert out.returncode == 0, out.stderr
    rules = json.loads(out.stdout)["rules"]
    return next((r["low"], r["high"]) for r in rules if r["measurement"] == "length_mm"
                and r["labels"] == {"slice": 1})


def test_specs_diff_shows_what_a_site_spec_tightens_and_adds(tmp_path: Path) -> None:
    parent = "acr-mri-2022"
    low, high = _slice_1_band(parent)
    site = tmp_path / "site.yaml"
    site.write_text(SITE.format(parent=parent, low=low + 1, high=high - 1))
    out = run("specs", "diff", parent, site, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["a"]["name"] == parent and doc["b"]["name"] == "acr-mri-site"
    rows = {(c["change"], c["kind"], c["what"]) for c in doc["changes"]}
    assert ("tightened", "limit", "mr.acr.geometric_accuracy length_mm {slice: 1}") in rows
    assert ("added", "limit", "mr.acr.uniformity large_roi_mean") in rows
    assert ("added", "test", "mr.acr.ghosting") in rows
    assert len(doc["changes"]) == 3  # every other inherited limit is unchanged
    table = run("specs", "diff", parent, site)
    assert table.returncode == 0, table.stderr
    assert "tightened" in table.stdout and "added" in table.stdout
    assert f"{low + 1:g} to {high - 1:g}" in table.stdout
    # the other way round the same limit is loosened and the additions are removals
    back = json.loads(run("specs", "diff", site, parent, "--json").stdout)
    assert {c["change"] for c in back["changes"]} == {"loosened", "removed"}


def test_specs_diff_needs_two_specs_and_names_a_broken_one(tmp_path: Path) -> None:
    out = run("specs", "diff", "earl1")
    assert out.returncode == 2 and "scanbench specs diff A B" in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(SITE.format(parent="acr-mri-2022", low=1, high=2).replace("high: 2",
                                                                             "hihg: 2"))
    out = run("specs", "diff", "acr-mri-2022", bad)
    assert out.returncode == 2
    assert "bad.yaml" in out.stderr and "rules[0].hihg (line 16)" in out.stderr
