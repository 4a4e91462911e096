"""The programme report (issue 14 §7) over the web: ``GET /api/v1/programme/report``, the
multi-site evaluation report of :mod:`scanbench.report.programme_report` as HTML, PDF or
JSON.

Who may read it: a physicist or admin. The report covers the devices of the sites where
the caller is physicist or admin (all of them by default, or those named by ``site``);
a named site the caller cannot see at all is 404, like one that does not exist, and a
site the caller sees with a lower role (viewer, technologist, reviewer) is 403 — a
programme report compares sites' results in full, so it never includes a site the caller
may not evaluate. The file name is made of the grouping and the dates only.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from scanbench.report import programme_report as pr
from scanbench.web.api.app import PREFIX, Ctx, context, route
from scanbench.web.scope import Forbidden

router = APIRouter(prefix=PREFIX)
C = Annotated[Ctx, Depends(context)]
#: The role on every included site.
ROLE = "physicist"


@route(router, "GET", "/programme/report", ROLE, response_class=Response)
def programme_report(
        ctx: C,
        start: Annotated[dt.date | None, Query(alias="from", description=(
            "first day (scanner local date, included); default: a year before `to`"))] = None,
        end: Annotated[dt.date | None, Query(alias="to", description=(
            "last day (scanner local date, included); default: today"))] = None,
        group_by: Annotated[str, Query(pattern="^(" + "|".join(pr.GROUPINGS) + ")$",
                                       description="device attribute to group by")] = "model",
        site: Annotated[list[int] | None, Query(description=(
            "site ids to include (default: every site where you are physicist or "
            "admin)"))] = None,
        format: Annotated[str, Query(pattern="^(html|pdf|json)$")] = "html") -> Response:
    """The multi-site evaluation report: per group of devices, each measurement's
    distribution (per-device means, 95 % CI), pass rates, reliability, dose and workflow,
    reader and SUS scores, costs, and the comparison between groups."""
    mine = set(ctx.scope.site_ids(ROLE))
    if site:
        for sid in site:
            ctx.scope.site(sid)  # another site's id: 404
            if sid not in mine:
                raise Forbidden(f"site {sid}: the programme report needs the physicist or "
                                "admin role on every site it includes")
        chosen = set(site)
    else:
        chosen = mine
    from sqlalchemy import select

    from scanbench.store import models as m

    ids = list(ctx.session.scalars(select(m.Device.id).where(
        m.Device.site_id.in_(sorted(chosen)))))
    end = end or dt.date.today()
    start = start or end - dt.timedelta(days=364)
    report = pr.programme_report(ctx.session, start, end, group_by=group_by, device_ids=ids)
    if format == "json":
        return JSONResponse(pr.report_data(report))
    headers = {"Content-Disposition": f'attachment; filename="{report.filename}.{format}"'}
    if format == "pdf":
        return Response(pr.pdf_bytes(report), media_type="application/pdf", headers=headers)
    return Response(pr.render_html(report), media_type="text/html; charset=utf-8",
                    headers=headers)
