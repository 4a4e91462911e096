"""Helpers for tests comparing what the node stores with what ``scanbench analyze`` gives:
measurements as comparable rows, and series "arriving" at a chosen time."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import aliased

from scanbench.store import models as m
from scanbench.store.repo import labels_key
from scanbench.types import Result

Row = tuple[str, str, str, str, str, str, str | None]  # series, analysis, name, labels, ...


def analyze_rows(results: Iterable[Result]) -> dict[Row, float | None]:
    """``scanbench analyze``'s measurements: (series UID, analysis, name, labels, unit,
    status, note) -> value (None when not finite, as the store keeps it)."""
    out: dict[Row, float | None] = {}
    for r in results:
        for meas in r.measurements:
            key = (str(r.series_instance_uid), r.analysis, meas.name, labels_key(meas.labels),
                   meas.unit, meas.status, meas.note)
            assert key not in out, f"two measurements with the same key: {key}"
            v = float(meas.value)
            out[key] = v if math.isfinite(v) else None
    return out


def stored_rows(session: Any) -> dict[Row, float | None]:
    """The node's current measurements (results no later row supersedes), same keys."""
    later = aliased(m.Result)
    q = (select(m.Measurement, m.Result.series_uid)
         .join(m.Result, m.Result.id == m.Measurement.result_id)
         .where(~select(later.id).where(later.supersedes_id == m.Result.id).exists()))
    out: dict[Row, float | None] = {}
    for meas, uid in session.execute(q):
        key = (str(uid), meas.analysis, meas.name, meas.labels_key, meas.unit, meas.status,
               meas.note)
        assert key not in out, f"two current measurements with the same key: {key}"
        out[key] = meas.value
    return out


def assert_same(stored: dict[Row, float | None], analysed: dict[Row, float | None],
                what: str) -> None:
    """Same measurements (series, analysis, name, labels, unit, status, note) and values
    equal to 1e-9 (relative to the value's size, at least 1e-9 absolute)."""
    missing = sorted(set(analysed) - set(stored))
    extra = sorted(set(stored) - set(analysed))
    assert not missing and not extra, (f"{what}: analyze only: {missing[:5]} ({len(missing)}); "
                                       f"node only: {extra[:5]} ({len(extra)})")
    for key, want in analysed.items():
        got = stored[key]
        if want is None or got is None:
            assert want is got, f"{what}: {key}: node {got}, analyze {want}"
            continue
        assert abs(got - want) <= 1e-9 * max(1.0, abs(want)), \
            f"{what}: {key}: node {got!r}, analyze {want!r}"


def dicom_files(*folders: Path) -> list[Path]:
    """Every file under the folders except ground-truth JSON."""
    return [f for d in folders for f in sorted(d.rglob("*"))
            if f.is_file() and f.suffix != ".json" and not f.name.endswith(".md")]


def arrive(pipe: Any, folder: Path, at: float) -> set[str]:
    """Store every file of ``folder`` and pretend it arrived at ``at`` (epoch s)."""
    uids = set()
    for f in dicom_files(folder):
        out = pipe.store_path(f)
        assert out.ok, out.reason
        uids.add(out.series_instance_uid)
    with pipe.db.session() as s:
        s.execute(update(m.Series).where(m.Series.series_uid.in_(uids))
                  .values(last_received=at))
    return uids


def states(pipe: Any) -> dict[str, str]:
    with pipe.db.session() as s:
        return {x.series_uid: x.state for x in s.scalars(select(m.Series))}
