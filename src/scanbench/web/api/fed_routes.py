"""Federation endpoints of the central node (issue 14 §1; the checks are in
:mod:`scanbench.programme.federation`), mounted at ``/api/v1/fed`` as an application of
their own: a site node authenticates with its site credential (``Authorization:
Bearer``, a :class:`~scanbench.store.models.FedCredential`), never with a user's
session or token, so these endpoints are outside the user role table of
:func:`scanbench.web.api.app.route` (a user's token here is an unknown credential: 401).

- ``POST /api/v1/fed/batches``: a batch of records (size limit, schema, claimed site,
  revoked credential, sequence order, replay), answered ``{"state", "acked_seq"}`` or a
  JSON error with the reason (and ``expected_seq`` for a sequence gap).
- ``GET /api/v1/fed/whoami``: the credential's site and the last seq stored for it.
- ``GET /api/v1/fed/decisions?since=``: review decisions on the site's results.
- ``POST /api/v1/fed/images?record_key=``: one de-identified DICOM instance of a result
  already received, when the site enabled image upload for review.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from scanbench.programme import federation as fed
from scanbench.store.db import Database

log = logging.getLogger("scanbench.web.federation")


def _token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _refused(exc: fed.Refused) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.reason, "state": "refused"}
    if exc.expected_seq is not None:
        body["expected_seq"] = exc.expected_seq
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def _body(request: Request, limit: int = fed.MAX_BATCH_BYTES) -> bytes:
    """The body, at most ``limit`` bytes (a larger one is refused before it is read
    whole, whether or not it announced its length)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise fed.Refused(413, f"the batch is {int(declared)} bytes, more than the "
                          f"{limit} bytes a batch may have; send fewer records per batch")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise fed.Refused(413, f"the batch is more than the {limit} bytes a batch may "
                              "have; send fewer records per batch")
        chunks.append(chunk)
    return b"".join(chunks)


def _receive(db: Database, token: str | None, body: bytes,
             home: Any = None) -> dict[str, Any]:
    with db.sessions() as session:
        out = fed.receive_committed(session, token, body)
    if out.get("stored"):
        _queue_reviews(db, home)
    return out


def _queue_reviews(db: Database, home: Any) -> None:
    """New results of a site with a reviewer join the expert review queue with their
    triage score (issue 14 §2; programme/review.py). Its own transaction, after the
    batch is acknowledged: a failure here is logged and never refuses the batch (the
    next batch or 'scanbench review queue' queues what was missed)."""
    from scanbench.programme import review, triage

    try:
        with db.sessions() as session:
            review.enqueue(session, None if home is None else
                           triage.models_path(Path(home)))
            session.commit()
    except Exception:  # the batch is stored; queueing is retried by the next batch
        log.exception("queueing received results for review")


async def post_batch(request: Request) -> Any:
    """Receive one batch from a site node (see the module docstring)."""
    try:
        body = await _body(request)
    except ClientDisconnect:  # cut off mid-transfer: nothing was read, nothing stored
        return JSONResponse({"error": "the batch was cut off in transfer",
                             "state": "refused"}, status_code=400)
    except fed.Refused as exc:
        return _refused(exc)
    try:
        parent = getattr(request.app.state, "parent", None)
        return await run_in_threadpool(_receive, request.app.state.db, _token(request), body,
                                       getattr(parent, "home", None))
    except fed.Refused as exc:
        return _refused(exc)


def _receive_image(db: Database, token: str | None, body: bytes, record_key: str,
                   home: Path) -> dict[str, Any]:
    from scanbench.service.filestore import FileStore

    with db.sessions() as session:
        try:
            out = fed.receive_image(session, token, body, record_key,
                                    FileStore(home / "files"))
        except fed.Refused:
            session.commit()  # the credential's last use
            raise
        session.commit()
        return out


async def post_image(request: Request, record_key: str) -> Any:
    """One de-identified instance of a result already received (opt-in image upload
    for review; body: the DICOM Part 10 file)."""
    parent = getattr(request.app.state, "parent", None)
    home = getattr(parent, "home", None) if parent is not None else None
    if home is None:
        return _refused(fed.Refused(503, "this central node keeps no images (it runs "
                                    "without a data folder)"))
    try:
        body = await _body(request, fed.MAX_IMAGE_BYTES)
        return await run_in_threadpool(_receive_image, request.app.state.db, _token(request),
                                       body, record_key, Path(home))
    except ClientDisconnect:
        return JSONResponse({"error": "the image was cut off in transfer",
                             "state": "refused"}, status_code=400)
    except fed.Refused as exc:
        return _refused(exc)


def _site_of(db: Database, token: str | None) -> Any:
    with db.sessions() as session:
        _cred, site = fed.credential_site(session, token)
        session.commit()
        return site, fed.last_seq(session, site.id)


def whoami(request: Request) -> Any:
    """The site this credential belongs to, and the last sequence number stored for it."""
    try:
        site, last = _site_of(request.app.state.db, _token(request))
    except fed.Refused as exc:
        return _refused(exc)
    return {"site": site.name, "last_seq": last, "protocol": fed.PROTOCOL}


def decisions(request: Request, since: dt.datetime | None = None) -> Any:
    """Review decisions on this site's results decided at or after ``since``."""
    db: Database = request.app.state.db
    with db.sessions() as session:
        try:
            _cred, site = fed.credential_site(session, _token(request))
        except fed.Refused as exc:
            return _refused(exc)
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        out = fed.decisions_for(session, site, since)
        session.commit()
        return {"decisions": [d.model_dump(mode="json") for d in out]}


def create_fed_app(db: Database) -> FastAPI:
    """The federation application on ``db`` (mounted by :func:`create_app`)."""
    app = FastAPI(title="scanbench federation", openapi_url=None, docs_url=None,
                  redoc_url=None)
    app.state.db = db
    app.add_api_route("/batches", post_batch, methods=["POST"])
    app.add_api_route("/whoami", whoami, methods=["GET"])
    app.add_api_route("/decisions", decisions, methods=["GET"])
    app.add_api_route("/images", post_image, methods=["POST"])

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}",
                             "state": "refused"}, status_code=422)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("federation %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error; the batch was not stored, send it "
                             "again later", "state": "refused"}, status_code=500)

    return app
