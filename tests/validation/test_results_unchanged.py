"""Every real data set's ``analyze`` result is unchanged by the start-up work (issue 15).

The start-up work (lazy analysis registry, module imports moved into the
functions that need them, ``scipy.fft`` / ``statistics.NormalDist`` in place of
``scipy.signal`` / ``scipy.stats``, a faster ACR MRI path) must not move any
number. This test runs ``scanbench.api.analyze_paths`` — what ``scanbench
analyze FOLDER --json`` prints — on every folder of real scanner data in
``../shared/data`` (MANIFEST.md) and compares each measurement (name, labels,
unit, status, value and uncertainty to 1e-9 relative) with
``tests/data/real_results_reference.json``, generated from the code as it was
before that work (commit f12e1ae).

``mr.acr.low_contrast`` results are left out: that count was being changed by
another issue (issue 17) while this reference was made.

A later change that legitimately moves a number must regenerate the reference
in the same commit, and say why in its message::

    .venv/bin/python tests/validation/test_results_unchanged.py --regenerate
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "real_results_reference.json"
EXCLUDED_ANALYSES = frozenset({"mr.acr.low_contrast"})
REL = 1e-9


def data_sets() -> list[str]:
    """Every leaf folder of the shared data (files, no sub-folders), relative to it."""
    if not DATA.is_dir():
        return []
    return sorted(str(d.relative_to(DATA)) for d in DATA.rglob("*")
                  if d.is_dir() and not any(f.is_dir() for f in d.iterdir()))


def summarise(folder: str) -> dict[str, Any]:
    """The measurements ``analyze`` gives for one data set, plus its failures' places."""
    from scanbench.api import analyze_paths

    rep = analyze_paths([DATA / folder])
    results = []
    for r in rep.results:
        if r.analysis in EXCLUDED_ANALYSES:
            continue
        d = r.to_dict()
        results.append({
            "analysis": d["analysis"],
            "source": str(Path(d["source"]).relative_to(DATA)) if d["source"] else None,
            "measurements": [{k: m.get(k) for k in
                              ("name", "labels", "value", "unit", "uncertainty", "status")}
                             for m in d["measurements"]],
        })
    results.sort(key=lambda x: (x["analysis"], x["source"] or ""))
    return {"results": results,
            "failures": sorted(str(Path(f.where).relative_to(DATA)) for f in rep.failures)}


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-300) or a == b


@pytest.mark.slow
@pytest.mark.skipif(not REFERENCE.exists() or not DATA.is_dir(),
                    reason="needs ../shared/data and the committed reference")
@pytest.mark.parametrize("folder", data_sets())
def test_results_unchanged(folder: str) -> None:
    reference = json.loads(REFERENCE.read_text())
    assert folder in reference, f"{folder}: new data set, regenerate the reference"
    want, got = reference[folder], json.loads(json.dumps(summarise(folder)))
    assert got["failures"] == want["failures"]
    assert [(r["analysis"], r["source"]) for r in got["results"]] == [
        (r["analysis"], r["source"]) for r in want["results"]]
    for g, w in zip(got["results"], want["results"], strict=True):
        assert len(g["measurements"]) == len(w["measurements"]), g["analysis"]
        for gm, wm in zip(g["measurements"], w["measurements"], strict=True):
            where = f"{folder} {g['analysis']} {wm['name']} {wm['labels']}"
            for key in ("name", "labels", "unit", "status"):
                assert gm[key] == wm[key], f"{where}: {key}"
            for key in ("value", "uncertainty"):
                assert _close(gm[key], wm[key]), f"{where}: {key} {gm[key]} != {wm[key]}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit(f"usage: {sys.argv[0]} --regenerate")
    out = {folder: summarise(folder) for folder in data_sets()}
    REFERENCE.write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")
    n = sum(len(r["measurements"]) for v in out.values() for r in v["results"])
    print(f"{REFERENCE}: {len(out)} data sets, {n} measurements")
