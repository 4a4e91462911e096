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
    has no clinical CT noise result at all."""
    import plotly.graph_objects as go

    from scanbench.report.store_reports import RCell, RSection, RTable
    from scanbench.web.pages.clinical_iq import residual_figure, size_figure

    view = clinical_iq.device_view(session, device.id)
    if not view["protocols"]:
        return None
    out = RSection("Clinical image quality", intro=(
        "Global noise of the patient CT series the node measured (Duke tissue mode, "
        "Christianson et al., AJR 2015;205:W93-W99), per protocol, against the size model "
        "fitted on the device's first 30 measured exams of each baseline period: ln σ = "
        "a + b·D_w − ½·ln CTDIvol (D_w: water-equivalent diameter, AAPM Report 220). The "
        "drift rule runs Westgard 1-3s and the tabular CUSUM (k = 0.5, h = 5; Montgomery, "
        "Introduction to Statistical Quality Control, chapter 9) on the standardised "
        "residuals."))
    table = RTable("Protocols", ["protocol", "exams in the period (measured / refused)",
                                 "median D_w (mm)", "median CTDIvol (mGy)",
                                 "median noise (HU)", "residual SD of the baseline (%)",
                                 "exams to detect +15 % (expected)", "drift alerts not "
                                 "closed"], [])
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
            RCell(med("water_equivalent_diameter_mm"), True), RCell(med("ctdivol_mgy"), True),
            RCell(med("noise_hu"), True),
            RCell(f"{100 * model['residual_sd_ln']:.1f}" if model else "no model yet", True),
            RCell(f"{model['expected_exams_to_detect_15pct']:.1f}" if model else "—", True),
            RCell(str(p["open_alerts"]), True)])
        period = {**p, "exams_list": inside}
        for fig in (size_figure(period), residual_figure(period, set())):
            if fig is not None:
                # header text: plotly reads tags in titles, so escaped
                fig["layout"]["title"] = {"text": html.escape(str(p["protocol"])[:80])}
                out.figures.append(go.Figure(fig))
        refused = [e for e in inside if e["refused"]]
        out.notes.extend(f"{p['protocol']}: {e['acquired_at']} not trended: {e['refused']}"
                         for e in refused[:20])
    if not table.rows:
        out.notes.append("No patient CT series was measured in the period.")
    else:
        out.tables.append(table)
    return out
