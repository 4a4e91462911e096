"""The FastAPI application: authentication (session cookie or Bearer token), CSRF,
per-route role rules, JSON errors, and the local API documentation page.

Every route is registered through :func:`route` with its rule (``public``,
``authenticated`` or a role from :data:`scanbench.store.models.ROLES`: the caller must
hold at least that role on at least one site; per-record checks then go through the
:class:`~scanbench.web.scope.Scope`). The rule is kept in the route's OpenAPI
``x-required-role``, so a test can enumerate the routes and refuse one without a rule.

Sessions: cookie ``scanbench_session``, HttpOnly, SameSite=Lax, Secure when the request
came over TLS (OWASP Session Management Cheat Sheet, "Cookies"). CSRF: a request with
the session cookie that changes state (any method but GET, HEAD, OPTIONS) must carry
the session's token in ``X-CSRF-Token`` (OWASP CSRF Prevention Cheat Sheet,
"Synchronizer Token Pattern"); Bearer tokens are not sent by browsers on their own,
so they need none.
"""

from __future__ import annotations

import hmac
import html
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from scanbench import __version__
from scanbench.errors import ScanbenchError
from scanbench.store.db import Database
from scanbench.web import auth
from scanbench.web.audit import Actor
from scanbench.web.auth import RANK, AuthError, Principal, Throttled
from scanbench.web.scope import Forbidden, NotFound, Scope

log = logging.getLogger("scanbench.web")

COOKIE = "scanbench_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RULE_KEY = "x-required-role"
RULES = ("public", "authenticated", *RANK)
PREFIX = "/api/v1"


class Conflict(Exception):
    """The record is not in a state that allows the action (HTTP 409)."""


@dataclass
class Ctx:
    """One request: its database session, caller and their scope."""

    session: Session
    request: Request
    principal: Principal | None
    client: str

    @property
    def who(self) -> Principal:
        if self.principal is None:
            raise AuthError("not signed in")
        return self.principal

    @property
    def scope(self) -> Scope:
        return Scope(self.session, self.who)

    def actor(self) -> Actor:
        return self.who.actor(self.client)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _principal(request: Request, session: Session) -> Principal:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("the Authorization header must be 'Bearer <token>'")
        return auth.principal_from_token(session, value.strip())
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        raise AuthError("not signed in: POST /api/v1/auth/login or send a Bearer token")
    who = auth.principal_from_session(session, cookie)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not who.csrf or not hmac.compare_digest(sent.encode(), who.csrf.encode()):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header (CSRF protection)")
    return who


def access(rule: str) -> Callable[[Request], Iterator[None]]:
    """The dependency that enforces ``rule`` and opens the request's session."""
    if rule not in RULES:
        raise ValueError(f"unknown access rule {rule!r}")

    def dependency(request: Request) -> Iterator[None]:
        db: Database = request.app.state.db
        with db.sessions() as session:
            principal = None
            if rule != "public":
                principal = _principal(request, session)
                if rule in RANK and not principal.sites_with(rule):
                    raise Forbidden(f"this needs the {rule} role on at least one site")
                session.commit()  # last_seen_at / last_used_at
            request.state.ctx = Ctx(session, request, principal, _client(request))
            yield

    return dependency


def context(request: Request) -> Ctx:
    ctx: Ctx = request.state.ctx
    return ctx


def route(router: APIRouter, method: str, path: str, rule: str,
          **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an endpoint with its access rule (see the module docstring)."""
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, fn, methods=[method], dependencies=[Depends(access(rule))],
                             openapi_extra={RULE_KEY: rule}, **kwargs)
        return fn
    return decorate


def _error(status: int, message: str, detail: Any = None,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def _not_found(_r: Request, exc: NotFound) -> JSONResponse:
        return _error(404, str(exc) or "not found")

    @app.exception_handler(Forbidden)
    async def _forbidden(_r: Request, exc: Forbidden) -> JSONResponse:
        return _error(403, str(exc))

    @app.exception_handler(AuthError)
    async def _auth(_r: Request, exc: AuthError) -> JSONResponse:
        if isinstance(exc, Throttled):
            seconds = int(auth.THROTTLE_WINDOW.total_seconds())
            return _error(429, str(exc), headers={"Retry-After": str(seconds)})
        return _error(401, str(exc), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ScanbenchError)
    async def _input(_r: Request, exc: ScanbenchError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_r: Request, exc: Conflict) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        # Only where and what: the raw input is not echoed back.
        detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                  for e in exc.errors()]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"]) if isinstance(first["loc"], list) else ""
        return _error(422, f"invalid request: {where}: {first['msg']}", detail)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error (logged on the server)")


def _docs_page(app: FastAPI) -> str:
    """A plain page listing every endpoint from the OpenAPI document: no script, no
    outside assets (the API must be documented on a network without internet)."""
    spec = app.openapi()
    rows = []
    for path, ops in sorted(spec.get("paths", {}).items()):
        for method, op in ops.items():
            params = ", ".join(p["name"] for p in op.get("parameters", []))
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())}</code></td>"
                f"<td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(str(op.get(RULE_KEY, '')))}</td>"
                f"<td>{html.escape(op.get('summary', ''))}</td>"
                f"<td>{html.escape(params)}</td></tr>")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(spec['info']['title'])} API</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em .6em;"
            "text-align:left;border-bottom:1px solid #ddd}</style></head><body>"
            f"<h1>{html.escape(spec['info']['title'])} API {html.escape(spec['info']['version'])}"
            "</h1><p>The full description is the OpenAPI document "
            "<a href='/api/openapi.json'>/api/openapi.json</a>. Sign in with "
            "<code>POST /api/v1/auth/login</code> (then send the session's "
            f"<code>{CSRF_HEADER}</code> on changes) or send "
            "<code>Authorization: Bearer &lt;token&gt;</code>.</p>"
            "<table><tr><th>method</th><th>path</th><th>needs</th><th>what</th>"
            f"<th>parameters</th></tr>{''.join(rows)}</table></body></html>")


def create_app(db: Database, *, secure_cookies: bool = False) -> FastAPI:
    """The web application on ``db``. ``secure_cookies`` marks the session cookie
    Secure even when the TLS ends in a proxy in front of us."""
    from scanbench.web.api.report_routes import router as report_router
    from scanbench.web.api.routes import router

    app = FastAPI(title="scanbench", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.db = db
    app.state.secure_cookies = secure_cookies
    _install_errors(app)
    app.include_router(router)
    app.include_router(report_router)
    from scanbench.web.api.dose_routes import router as dose_router

    app.include_router(dose_router)
    from scanbench.web.api.life_routes import router as life_router

    app.include_router(life_router)

    from scanbench.web.api.alert_routes import router as alert_router

    app.include_router(alert_router)
    from scanbench.web.api.eval_routes import router as eval_router

    app.include_router(eval_router)
    from scanbench.web.api.upload_routes import router as upload_router

    app.include_router(upload_router)
    from scanbench.web.api.review_routes import router as review_router

    app.include_router(review_router)  # expert review queue (issue 14)
    from scanbench.web.api.study_routes import router as study_router

    app.include_router(study_router)  # reader studies and SUS (issue 14)
    from scanbench.web.api.programme_report_routes import router as programme_report_router

    app.include_router(programme_report_router)  # multi-site evaluation report (issue 14)
    from scanbench.web.api.clinical_iq_routes import router as clinical_iq_router

    app.include_router(clinical_iq_router)  # clinical image quality trends (issue 16)
    from scanbench.web.api.fed_routes import create_fed_app

    # site nodes' batches (issue 14): site credentials, not user roles (fed_routes.py)
    fed_app = create_fed_app(db)
    fed_app.state.parent = app.state  # app.state.home (set by serve): where images go
    app.mount(f"{PREFIX}/fed", fed_app)

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(_docs_page(app))

    from scanbench.web.pages import install as install_pages

    install_pages(app)  # the pages, /static, HTML error pages, security headers
    return app
