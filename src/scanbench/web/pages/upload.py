"""The upload page: a zip of DICOM sent from the browser to ``POST /api/v1/uploads``
(:mod:`scanbench.web.api.upload_routes`: the node's ingest path, its limits and checks).

The page framework reads only short URL-encoded forms, so the file is not posted as a
form: ``/static/upload.js`` sends the chosen file itself as the body of the API call,
with the session's CSRF token in ``X-CSRF-Token`` (the API's rule for cookie sessions),
and shows the answer as text (member names are untrusted: never as markup)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from scanbench.store import models as m
from scanbench.web.api.upload_routes import UPLOAD_ROLE, max_upload_bytes
from scanbench.web.pages.common import P, nav, page, render

router = APIRouter()
nav("Upload", "/upload", order=60)


@page(router, "/upload", UPLOAD_ROLE)
def upload_page(ctx: P) -> HTMLResponse:
    """The form: the sites where the caller may upload, a zip file, a send button."""
    allowed = ctx.who.sites_with(UPLOAD_ROLE)
    rows = ctx.session.execute(ctx.scope.sites().with_only_columns(m.Site.id, m.Site.name)
                               .where(m.Site.id.in_(allowed)).order_by(m.Site.name))
    return render(ctx, "upload.html", sites=[(sid, name) for sid, name in rows],
                  max_mib=max_upload_bytes() / 2**20)
