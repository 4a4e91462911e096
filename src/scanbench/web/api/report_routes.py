"""Report downloads (issue 12 §4): a device's QC report for a period, its acceptance-test
report and a site's dose report, as HTML or PDF, built from the store by
:mod:`scanbench.report.store_reports`.

The device or site is found through the caller's :class:`~scanbench.web.scope.Scope`
(another site's record is 404, like one that does not exist); the report then reads
only that device's or site's records. The download's file name is made of ids and
dates only, never of outside text, so nothing a header or a form wrote reaches the
``Content-Disposition`` header.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from scanbench.errors import InputError
from scanbench.report import store_reports as sr
from scanbench.web.api.app import PREFIX, Ctx, context, route

router = APIRouter(prefix=PREFIX)
C = Annotated[Ctx, Depends(context)]

Format = Annotated[str, Query(pattern="^(html|pdf)$",
                              description="html (self-contained page) or pdf")]
From = Annotated[dt.date | None, Query(alias="from", description=(
    "first day (scanner local date, included); default: a year before `to`"))]
To = Annotated[dt.date | None, Query(alias="to", description=(
    "last day (scanner local date, included); default: today"))]


def _period(start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    end = end or dt.date.today()
    return start or end - dt.timedelta(days=364), end


def _known(what: str, name: str, names: list[str]) -> None:
    """Only names of specs shipped or stored: a web caller never names a file on the
    server."""
    if name not in names:
        raise InputError(f"{what}: no spec {name!r} is built in or stored; one of "
                         f"{', '.join(names)}")


def _download(report: sr.StoreReport, fmt: str) -> Response:
    filename = f"{report.filename}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "pdf":
        return Response(sr.pdf_bytes(report), media_type="application/pdf", headers=headers)
    return Response(sr.render_html(report), media_type="text/html; charset=utf-8",
                    headers=headers)


@route(router, "GET", "/devices/{device_id}/report", "viewer", response_class=Response)
def device_report(device_id: int, ctx: C, start: From = None, end: To = None,
                  format: Format = "html") -> Response:
    """The device's QC report for a period: identity, spec and scorecard, every test's
    results with limits and their sources, control charts, alerts, lifecycle and
    reliability."""
    device = ctx.scope.device(device_id)
    lo, hi = _period(start, end)
    report = sr.device_report(ctx.session, device, lo, hi)
    ctx.session.commit()  # the period's scorecard, stored once (its inputs_hash)
    return _download(report, format)


@route(router, "GET", "/devices/{device_id}/acceptance-report", "viewer",
       response_class=Response)
def acceptance_report(device_id: int, ctx: C,
                      spec: Annotated[str | None, Query(
                          max_length=120, pattern=r"^[A-Za-z0-9._-]+$",
                          description="a built-in or stored spec name; default: the "
                          "device's")] = None,
                      format: Format = "html") -> Response:
    """The device's acceptance tests (installation to acceptance; the rule is stated in
    the report) against the acceptance spec, with the vendor's claims the spec holds."""
    device = ctx.scope.device(device_id)
    if spec is not None:
        from sqlalchemy import select

        from scanbench.specs import list_specs
        from scanbench.store import models as m

        stored = ctx.session.scalars(select(m.Spec.name).distinct()).all()
        _known("spec", spec, sorted({*list_specs(), *stored}))
    return _download(sr.acceptance_report(ctx.session, device, spec), format)


@route(router, "GET", "/sites/{site_id}/dose-report", "viewer", response_class=Response)
def site_dose_report(site_id: int, ctx: C, start: From = None, end: To = None,
                     drl: Annotated[str | None, Query(
                         max_length=120, pattern=r"^[A-Za-z0-9._-]+$",
                         description="a shipped DRL table name (default: the dose "
                         "statistics' default table)")] = None,
                     format: Format = "html") -> Response:
    """The site's patient dose per protocol and device: distributions, medians against
    the reference levels of ``drl``, box plots."""
    site = ctx.scope.site(site_id)
    lo, hi = _period(start, end)
    return _download(sr.site_dose_report(ctx.session, site, lo, hi, drl=drl), format)
