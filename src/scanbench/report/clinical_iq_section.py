"""The device QC report's clinical image-quality section (issue 16 §3): per protocol,
the patient series measured in the period, the size model of the device's baseline,
the drift rule's expected detection and the exams it judged, with the figure the device
page draws (:mod:`scanbench.web.pages.clinical_iq`)."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from sqlalchemy.orm import Session

from scanbench.evaluation import clinical_iq
from scanbench.store import models as m


def section(session: Session, device: m.Device, lo: dt.datetime, hi: dt.datetime
            ) -> Any | None:
    """An ``RSection`` (:mod:`scanbench.report.store_reports`), or None when the device
    has no clinical image-quality result at all."""
    import plotly.graph_objects as go

    from scanbench.report.store_reports import RSection

    views = [clinical_iq.device_view(session, device.id, k) for k in clinical_iq.KINDS]
    views = [v for v in views if v["protocols"]]
    if not views:
        return None
    out = RSection("Clinical image quality", intro=(
        "Noise of the patient series the node measured, per protocol, against a model "
        "fitted on the device's first 30 measured exams of each baseline period: ln noise "
        "= a + b·size − ½·ln dose (CT: the global noise, Duke tissue mode, Christianson et "
        "al., AJR 2015;205:W93-W99, against the water-equivalent diameter of AAPM Report "
        "220 and CTDIvol; PET: the liver COV of the PERCIST 3 cm VOI against patient "
        "weight and activity × time per bed per kg). The drift rule runs Westgard 1-3s and "
        "the tabular CUSUM (k = 0.5, h = 5; Montgomery, Introduction to Statistical Quality "
        "Control, chapter 9) on the standardised residuals."))
    for view in views:
        table, figures, notes = _kind_table(view, lo, hi)
        if table is not None:
            out.tables.append(table)
        out.figures.extend(go.Figure(f) for f in figures)
        out.notes.extend(notes)
    if not out.tables:
        out.notes.append("No patient series was measured in the period.")
    return out


def _kind_table(view: dict[str, Any], lo: dt.datetime, hi: dt.datetime
                ) -> tuple[Any | None, list[dict[str, Any]], list[str]]:
    from scanbench.report.store_reports import RCell, RTable
    from scanbench.web.pages.clinical_iq import residual_figure, size_figure

    q = view["quantities"]
    what = "CT global noise" if view["kind"] == "ct" else "PET liver noise"
    table = RTable(what, [
        "protocol", "exams in the period (measured / refused)",
        f"median {q['size']['label']} ({q['size']['unit']})",
        f"median {q['dose']['label']} ({q['dose']['unit']})",
        f"median {q['noise']['label']} ({q['noise']['unit']})",
        "residual SD of the baseline (%)", "exams to detect +15 % (expected)",
        "drift alerts not closed"], [], clause=view["source"])
    figures: list[dict[str, Any]] = []
    notes: list[str] = []
    lo_s, hi_s = lo.isoformat(), hi.isoformat()
    for p in view["protocols"]:
        inside = [e for e in p["exams_list"] if lo_s <= e["acquired_at"] < hi_s]
        if not inside:
            continue
        ok = [e for e in inside if e["refused"] is None]
        model = p["model"]

        def med(key: str, rows: list[dict[str, Any]] = ok) -> str:
            v = sorted(e[key] for e in rows if e[key] is not None)
            return f"{v[len(v) // 2]:.4g}" if v else "—"

        table.rows.append([
            RCell(p["protocol"]), RCell(f"{len(ok)} / {len(inside) - len(ok)}"),
            RCell(med("size"), True), RCell(med("dose"), True), RCell(med("noise"), True),
            RCell(f"{100 * model['residual_sd_ln']:.1f}" if model else "no model yet", True),
            RCell(f"{model['expected_exams_to_detect_15pct']:.1f}" if model else "—", True),
            RCell(str(p["open_alerts"]), True)])
        period = {**p, "exams_list": inside}
        for fig in (size_figure(period), residual_figure(period, set())):
            if fig is not None:
                # header text: plotly reads tags in titles, so escaped
                fig["layout"]["title"] = {"text": html.escape(f"{what}: {p['protocol']}"[:90])}
                figures.append(fig)
        notes.extend(f"{p['protocol']}: {e['acquired_at']} not trended: {e['refused']}"
                     for e in [e for e in inside if e["refused"]][:20])
    return (table if table.rows else None), figures, notes
