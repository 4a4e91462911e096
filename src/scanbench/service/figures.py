"""A result's figures, drawn once in the job that made it and kept beside the file store.

Why in the job: an analysis's figures are drawn from its ``evidence`` (slices, ROI
positions, profiles), which only exists while the analysis runs; drawing them later
means reading the series and running the analysis again (seconds, in a web request).
So the worker process draws them right after the analysis, off the request path
(:func:`draw`), the job returns them as gzipped plotly JSON, and the node writes one
file per stored result (:func:`store_job_figures`): ``<home>/figures/<result id>.json.gz``.
The result page reads that file (:func:`load`).

The figures are the report's (:mod:`scanbench.report.html`): the analysis's own
``figures(result)``, with the report's shape defaults (outlines, not fills) and image
sizes; each figure keeps its kind (image or chart) and the full-resolution PNG link the
report shows.

A file names the result it belongs to (id, series UID, analysis, job), and :func:`load`
checks them: a file left by a transaction that was rolled back can never be shown for
another result that later got the same id.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scanbench.types import Result

log = logging.getLogger("scanbench.figures")

FOLDER = "figures"
FORMAT = 1
_IMAGE_HEIGHT_PX = 520


def key(series_uid: str | None, analysis: str) -> str:
    """How a job's outcome names the figures of one of its results."""
    return f"{series_uid or ''}|{analysis}"


def figure_entry(fig: Any) -> dict[str, Any]:
    """One plotly figure as the pages draw it: ``kind`` (image/chart), ``height`` (px),
    ``full_png`` (a data: URI of the full-resolution slice, or ""), ``full_png_label``,
    and the plotly ``data``/``layout``/``config`` (the report's settings)."""
    import plotly.io

    from scanbench.report.figures import readable_shapes

    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    kind = str(meta.get("kind", "chart"))
    full_png = str(meta.get("full_png", ""))
    label = str(meta.get("full_png_name", ""))
    fig.layout.meta = None
    readable_shapes(fig)
    if kind == "image" and fig.layout.height is None:
        fig.update_layout(height=_IMAGE_HEIGHT_PX)
    height = int(fig.layout.height or 450)
    body = json.loads(plotly.io.to_json(fig, validate=False, pretty=False))
    return {"kind": kind, "height": height, "full_png": full_png, "full_png_label": label,
            "data": body.get("data", []), "layout": body.get("layout", {}),
            "config": {"displaylogo": False, "responsive": True, "displayModeBar": "hover"}}


def draw(result: Result) -> bytes:
    """The result's figures (its analysis's ``figures``) as gzipped JSON: ``{"format",
    "figures": [figure_entry, ...]}``. Needs the result's ``evidence``: call it where
    the analysis ran. Raises what the analysis's ``figures`` raises."""
    from scanbench.analysis import registry

    figs = list(registry.get(result.analysis).figures(result))
    body = {"format": FORMAT, "figures": [figure_entry(f) for f in figs]}
    try:
        text = json.dumps(body, separators=(",", ":"), allow_nan=False, default=_plain)
    except ValueError:  # a NaN plotly left as a number: JSON has none, a gap is meant
        text = json.dumps(_finite(body), separators=(",", ":"), allow_nan=False,
                          default=_plain)
    return gzip.compress(text.encode("utf-8"), 6, mtime=0)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """numpy scalars plotly left in a layout (rare): as Python numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def path_for(home: Path, result_id: int) -> Path:
    return Path(home) / FOLDER / f"{int(result_id)}.json.gz"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fig-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(home: Path, row_id: int, series_uid: str | None, analysis: str,
         job_id: int | None, blob: bytes | None, error: str | None = None) -> Path:
    """Write the figures (``blob`` from :func:`draw`) or why there are none (``error``)
    of stored result ``row_id``."""
    body: dict[str, Any]
    if blob is not None:
        body = json.loads(gzip.decompress(blob))
    else:
        body = {"format": FORMAT, "figures": [], "error": error or "no figures"}
    body.update({"result_id": int(row_id), "series_uid": series_uid, "analysis": analysis,
                 "job_id": job_id})
    path = path_for(home, row_id)
    _write_atomic(path, gzip.compress(json.dumps(body, separators=(",", ":")).encode(), 6,
                                      mtime=0))
    return path


def store_job_figures(session: Session, home: Path, job_id: int,
                      figures: dict[str, bytes], errors: dict[str, str]) -> int:
    """After a series job's results were stored (flushed, in ``session``): write each
    one's figures, matched by series UID and analysis. Returns how many files were
    written. A write that fails is logged and leaves the result without figures (its
    page says so); it never fails the job."""
    from scanbench.store import models as m

    if not figures and not errors:
        return 0
    session.flush()
    rows = session.execute(select(m.Result.id, m.Result.series_uid, m.Result.analysis)
                           .where(m.Result.job_id == job_id))
    written = 0
    for rid, series_uid, analysis in rows:
        k = key(series_uid, analysis)
        if k not in figures and k not in errors:
            continue
        try:
            save(home, rid, series_uid, analysis, job_id, figures.get(k), errors.get(k))
            written += 1
        except (OSError, ValueError) as exc:
            log.error("figures of result %d could not be written: %s", rid, exc)
    return written


class Figures:
    """What the result page shows: the figures, or why there are none."""

    def __init__(self, figures: list[dict[str, Any]], note: str = "") -> None:
        self.figures = figures
        self.note = note


def load(home: Path | None, row_id: int, series_uid: str | None, analysis: str) -> Figures:
    """The stored figures of a result, or an empty list with the reason."""
    if home is None:
        return Figures([], "this server has no data directory: figures are not available")
    path = path_for(home, row_id)
    if not path.is_file():
        return Figures([], "no figures were stored for this result (it was analysed "
                           "before figures were kept, or on another node's data directory)")
    try:
        body = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, ValueError, EOFError) as exc:
        return Figures([], f"the stored figures could not be read ({type(exc).__name__})")
    if (body.get("result_id") != row_id or body.get("analysis") != analysis
            or body.get("series_uid") != series_uid):
        return Figures([], "the stored figures belong to another result: not shown")
    figs = [f for f in body.get("figures", []) if isinstance(f, dict)]
    note = str(body.get("error") or "")
    if note:
        note = f"the figures could not be drawn when the result was made: {note}"
    return Figures(figs, note)


__all__ = ["Figures", "draw", "figure_entry", "key", "load", "save", "store_job_figures"]
