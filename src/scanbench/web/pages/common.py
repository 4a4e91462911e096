"""The page framework: server-rendered pages (Jinja2 + htmx) served by the same FastAPI
application as ``/api/v1``, on the same port, with the same sessions, rules and Scope.

How to add a page (engineers of the device, dose, workflow ... pages)::

    # src/scanbench/web/pages/mypage.py  (any module in this package is mounted; it
    # must define ``router``)
    from fastapi import APIRouter
    from scanbench.web.pages.common import P, nav, page, render

    router = APIRouter()
    nav("Dose", "/dose", order=30)          # optional: a link in the header

    @page(router, "/dose", "viewer")       # rule: public / authenticated / a role
    def dose(ctx: P, device: int | None = None) -> HTMLResponse:
        devices = ctx.session.scalars(ctx.scope.devices()).all()   # ALWAYS through Scope
        return render(ctx, "dose.html", devices=devices)

    @page(router, "/devices/{device_id}/events", "technologist", methods=("POST",))
    def add_event(ctx: P, device_id: int) -> Response:
        ctx.scope.require(ctx.scope.device(device_id).site_id, "technologist")
        text = ctx.form.get("text", "")          # the form, already CSRF-checked
        ...; return redirect(f"/devices/{device_id}")

Templates ``{% extends "base.html" %}`` and fill ``{% block content %}`` (and
``{% block scripts %}`` for page scripts: ``<script src="/static/..." defer>`` only —
the Content-Security-Policy allows no inline script; put page data in
``{{ data | json_data }}`` inside ``<script type="application/json">``, or a figure with
``{{ plot("id", figure) }}`` from ``macros.html``, which ``/static/app.js`` draws).
Every form carries ``{{ ui.csrf_field() }}`` (import the macros WITH the context:
``{% import "macros.html" as ui with context %}``); htmx requests send the token in
``X-CSRF-Token`` (base.html's ``hx-headers``). Everything rendered is escaped
(autoescape on); never ``|safe`` on text from outside (DICOM, forms, CSV).

What the framework does for every page:

- access: ``rule`` as in the API (:func:`scanbench.web.api.app.route`); without a valid
  session a page redirects to ``/login?next=<this page>`` (``next`` accepted only as a
  same-origin path, :func:`safe_next`); records of other sites are 404 via the Scope;
- CSRF on every state-changing request (POST/PUT/PATCH/DELETE): the form field
  ``csrf_token`` or the ``X-CSRF-Token`` header must equal the session's token
  (OWASP CSRF Prevention Cheat Sheet, "Synchronizer Token Pattern"); before sign-in, a
  double-submit cookie (same cheat sheet, "Signed Double-Submit Cookie") protects the
  sign-in form against login CSRF;
- errors as pages: :class:`~scanbench.web.scope.NotFound` -> 404 page, ``Forbidden`` ->
  403 page, bad input (:class:`~scanbench.errors.ScanbenchError`, a query parameter of
  the wrong type) -> 400 page with the message, anything else -> a 500 page that says
  it was logged (never a traceback); ``/api`` keeps its JSON errors;
- security headers on every response: Content-Security-Policy (scripts from 'self'
  only, no framing, forms post to 'self'), X-Content-Type-Options, Referrer-Policy,
  X-Frame-Options (OWASP Secure Headers Project).
"""

from __future__ import annotations

import datetime as dt
import hmac
import inspect
import json
import logging
import math
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlsplit

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from scanbench import __version__
from scanbench.errors import InputError, ScanbenchError
from scanbench.report.html import STATUS_MEANINGS, STATUS_WORDS, format_limits
from scanbench.report.numbers import format_number, format_uncertainty, format_with_unit
from scanbench.store.db import Database
from scanbench.web import auth
from scanbench.web.api.app import COOKIE, CSRF_HEADER, SAFE_METHODS, Conflict, Ctx
from scanbench.web.auth import RANK, AuthError, Principal, Throttled
from scanbench.web.scope import Forbidden, NotFound

log = logging.getLogger("scanbench.web.pages")

WEB = Path(__file__).resolve().parent.parent
TEMPLATES = WEB / "templates"
STATIC = WEB / "static"
#: The form field that carries the CSRF token.
CSRF_FIELD = "csrf_token"
#: Before sign-in: the double-submit cookie that protects the sign-in form.
PRE_COOKIE = "scanbench_presession"
#: A form body larger than this is refused (pages post short forms, never files).
MAX_FORM_BYTES = 1_000_000
RULES = ("public", "authenticated", *RANK)

# The Content-Security-Policy of every response. Scripts: only our own files (so no
# inline script, no eval). Styles: plotly.js sets inline styles on the elements it draws,
# so style attributes are allowed; images: plotly draws heatmaps as data: URIs.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


class LoginRequired(Exception):
    """The page needs a signed-in user and the request has no valid session."""


# --------------------------------------------------------------------------- context

@dataclass
class PageCtx(Ctx):
    """One page request: the API's :class:`~scanbench.web.api.app.Ctx` (database
    session, caller, ``scope``) plus the submitted form (already CSRF-checked) and the
    token the page's forms must carry."""

    form: Mapping[str, str] = field(default_factory=dict)
    csrf: str = ""
    new_pre_token: str | None = None  # set on the response as PRE_COOKIE by render()


def page_context(request: Request) -> PageCtx:
    ctx: PageCtx = request.state.ctx
    return ctx


#: The annotation a page handler takes its context with: ``def view(ctx: P, ...)``.
P = Annotated[PageCtx, Depends(page_context)]


@dataclass(frozen=True)
class NavLink:
    label: str
    path: str
    order: int


NAV: list[NavLink] = []


def nav(label: str, path: str, order: int = 50) -> None:
    """Add a link to the header of every page (idempotent: a module imported twice
    adds it once)."""
    if not any(n.path == path for n in NAV):
        NAV.append(NavLink(label, path, order))
        NAV.sort(key=lambda n: (n.order, n.label))


# --------------------------------------------------------------------------- helpers

def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site (``/fleet?x=1``), else ``default``: never
    a URL of another origin (``//evil``, ``https://evil``, ``/\\evil``), so the sign-in
    page cannot be used as an open redirect (OWASP Unvalidated Redirects Cheat Sheet)."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return default
    if any(c in value for c in "\\\r\n\t") or any(ord(c) < 32 for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def login_url(request: Request) -> str:
    return "/login?next=" + quote(safe_next(_here(request)), safe="")


def redirect(path: str, status: int = 303) -> Response:
    """A redirect after a form POST (303: the browser follows with GET)."""
    return RedirectResponse(safe_next(path), status_code=status)


def is_page_request(request: Request) -> bool:
    """Pages are everything but the JSON API (``/api``) and the static files."""
    path = request.url.path
    return not (path == "/api" or path.startswith(("/api/", "/static/")))


class _RawJSON(str):
    """JSON text already serialised (e.g. a plotly figure's ``to_json()``)."""


def raw_json(text: str) -> _RawJSON:
    """Mark ``text`` as JSON to embed as it is with the ``json_data`` filter."""
    return _RawJSON(text)


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) replaced by None: JSON has no
    NaN, and a missing point is what a chart should show for one."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def _json_data(value: Any) -> Markup:
    """``value`` as JSON safe inside ``<script type="application/json">``: ``<``, ``>``,
    ``&`` and U+2028/9 escaped as ``\\uXXXX`` (valid JSON, and no ``</script>`` can end
    the block early: HTML Living Standard, "Restrictions for contents of script
    elements")."""
    text = value if isinstance(value, _RawJSON) else json.dumps(
        finite_json(value), ensure_ascii=False, allow_nan=False, default=str)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return Markup(text)


def _when(value: dt.datetime | dt.date | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time as people read it (to the minute); an ISO 8601 string (the JSON views'
    form, as the API gives it) is read first, anything else shown as it is."""
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value).strftime(fmt)
        except ValueError:
            return value
    return value.strftime(fmt)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        # Everything is escaped: DICOM text, form input and CSV are untrusted.
        autoescape=jinja2.select_autoescape(["html", "htm", "xml"], default=True),
        trim_blocks=True, lstrip_blocks=True)
    env.filters.update(
        num=lambda v, digits=4, unc=None: format_number(v, unc, digits=digits),
        unc=format_uncertainty, with_unit=format_with_unit,
        status_word=lambda s: STATUS_WORDS.get(s, s), when=_when, json_data=_json_data,
        limits=format_limits, limits_pair=lambda pair: format_limits(*pair))
    env.globals.update(version=__version__, status_words=STATUS_WORDS,
                       status_meanings=STATUS_MEANINGS, nav_links=NAV,
                       csrf_field_name=CSRF_FIELD)
    return env


ENV = _environment()


def render(ctx: PageCtx, template: str, status: int = 200,
           headers: Mapping[str, str] | None = None, **values: Any) -> HTMLResponse:
    """``template`` rendered with ``values`` and what every page shows (the user, their
    sites and roles, the CSRF token, the header links)."""
    from scanbench.store import models as m

    who = ctx.principal
    sites: list[tuple[str, str]] = []
    if who is not None and who.grants:
        rows = ctx.session.execute(ctx.scope.sites().with_only_columns(m.Site.id, m.Site.name)
                                   .order_by(m.Site.name))
        sites = [(name, who.grants[sid]) for sid, name in rows]
    body = ENV.get_template(template).render(
        who=who, user_sites=sites, csrf_token=ctx.csrf, request=ctx.request,
        path=ctx.request.url.path, **values)
    response = HTMLResponse(body, status_code=status, headers=dict(headers or {}))
    if ctx.new_pre_token:
        _set_pre_cookie(ctx.request, response, ctx.new_pre_token)
    return response


def render_partial(ctx: PageCtx, template: str, **values: Any) -> HTMLResponse:
    """An htmx fragment (no ``base.html``): the same context as :func:`render`."""
    return render(ctx, template, **values)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or bool(
        getattr(request.app.state, "secure_cookies", False))


def _set_pre_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(PRE_COOKIE, token, httponly=True, samesite="strict",
                        secure=_secure(request), path="/", max_age=3600)


def set_session_cookie(request: Request, response: Response, raw: str) -> None:
    """The session cookie exactly as the API's sign-in sets it."""
    response.set_cookie(COOKIE, raw, httponly=True, samesite="lax", secure=_secure(request),
                        path="/", max_age=int(auth.SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(PRE_COOKIE, path="/")


# --------------------------------------------------------------------------- access

async def _read_form(request: Request) -> None:
    """Parse an ``application/x-www-form-urlencoded`` body (what a plain form and htmx
    send) into ``request.state.form``; other bodies give an empty form. Done here,
    asynchronously, so the synchronous access check below can verify its CSRF field."""
    form: dict[str, str] = {}
    if request.method not in SAFE_METHODS:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise InputError(f"the form is larger than {MAX_FORM_BYTES} bytes")
        if ctype == "application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                  max_num_fields=1000, strict_parsing=False)
            except (UnicodeDecodeError, ValueError) as exc:
                raise InputError(f"the form could not be read: {exc}") from None
            form = dict(pairs)
    request.state.form = form


def _optional_principal(request: Request, session: Any) -> Principal | None:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    try:
        return auth.principal_from_session(session, cookie)
    except AuthError:
        return None


def _access(rule: str) -> Callable[[Request], Iterator[None]]:
    if rule not in RULES:
        raise ValueError(f"unknown access rule {rule!r}")

    def dependency(request: Request) -> Iterator[None]:
        db: Database = request.app.state.db
        form: dict[str, str] = getattr(request.state, "form", {})
        with db.sessions() as session:
            principal = _optional_principal(request, session)
            if rule != "public":
                if principal is None:
                    raise LoginRequired()
                if rule in RANK and not principal.sites_with(rule):
                    raise Forbidden(f"this page needs the {rule} role on at least one site")
            if principal is not None:
                session.commit()  # last_seen_at
            new_pre = None
            if principal is not None:
                expected = principal.csrf or ""
            else:
                expected = request.cookies.get(PRE_COOKIE, "")
                if not expected:
                    expected = new_pre = secrets.token_urlsafe(32)
            if request.method not in SAFE_METHODS:
                sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, "")
                if (new_pre is not None or not expected
                        or not hmac.compare_digest(sent.encode(), expected.encode())):
                    raise Forbidden("the form was refused: missing or wrong CSRF token "
                                    "(reload the page and send it again)")
            client = request.client.host if request.client else "unknown"
            request.state.ctx = PageCtx(session, request, principal, client, form=form,
                                        csrf=expected, new_pre_token=new_pre)
            yield

    return dependency


#: (METHOD, path) -> rule of every page, for the tests that check each page's rule.
PAGE_RULES: dict[tuple[str, str], str] = {}


def page(router: APIRouter, path: str, rule: str, *, methods: tuple[str, ...] = ("GET",),
         **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a page handler at ``path`` with its access ``rule`` (``public``,
    ``authenticated`` or a role; see the module docstring). The handler takes
    ``ctx: P`` and returns :func:`render` (or a :func:`redirect`)."""
    if rule not in RULES:
        raise ValueError(f"unknown access rule {rule!r}")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, fn, methods=list(methods), response_class=HTMLResponse,
                             dependencies=[Depends(_read_form), Depends(_access(rule))],
                             include_in_schema=False, **kwargs)
        for method in methods:
            PAGE_RULES[(method, path)] = rule
        return fn
    return decorate


# --------------------------------------------------------------------------- errors

_TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict",
           429: "Too many attempts", 500: "Internal error"}


def error_page(request: Request, status: int, message: str,
               headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """The error page (no database needed: it must work when the database does not)."""
    ctx = getattr(request.state, "ctx", None)
    who = ctx.principal if isinstance(ctx, PageCtx) else None
    body = ENV.get_template("error.html").render(
        who=who, user_sites=[], csrf_token=ctx.csrf if isinstance(ctx, PageCtx) else "",
        request=request, path=request.url.path, status=status,
        title=_TITLES.get(status, "Error"), message=message)
    return HTMLResponse(body, status_code=status, headers=dict(headers or {}))


def _login_redirect(request: Request) -> Response:
    url = login_url(request)
    if request.headers.get("hx-request"):  # an htmx fragment: the whole page moves
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _page_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, LoginRequired):
        return _login_redirect(request)
    if isinstance(exc, NotFound):
        return error_page(request, 404, str(exc) or "not found")
    if isinstance(exc, Forbidden):
        return error_page(request, 403, str(exc))
    if isinstance(exc, Throttled):
        seconds = int(auth.THROTTLE_WINDOW.total_seconds())
        return error_page(request, 429, str(exc), {"Retry-After": str(seconds)})
    if isinstance(exc, AuthError):
        return _login_redirect(request)
    if isinstance(exc, ScanbenchError):
        return error_page(request, 400, str(exc))
    if isinstance(exc, Conflict):
        return error_page(request, 409, str(exc))
    if isinstance(exc, RequestValidationError):
        # Where and what, never the raw input.
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path"))
        return error_page(request, 400, f"{where}: {first.get('msg', 'invalid')}")
    if isinstance(exc, StarletteHTTPException):
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        return error_page(request, exc.status_code, message)
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_page(request, 500, "internal error (logged on the server)")


def _install_errors(app: FastAPI) -> None:
    """Wrap the API's exception handlers: pages get HTML, ``/api`` keeps its JSON."""
    handled = [LoginRequired, NotFound, Forbidden, AuthError, ScanbenchError, Conflict,
               RequestValidationError, StarletteHTTPException, Exception]
    for cls in handled:
        api_handler = app.exception_handlers.get(cls)

        async def handler(request: Request, exc: Exception,
                          _api: Any = api_handler) -> Any:
            if _api is None or is_page_request(request):
                return _page_error(request, exc)
            out = _api(request, exc)
            return await out if inspect.isawaitable(out) else out

        app.add_exception_handler(cls, handler)


# --------------------------------------------------------------------------- headers

class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response (unless
    the response set its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in have:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = [
    "CSRF_FIELD",
    "NAV",
    "PAGE_RULES",
    "LoginRequired",
    "P",
    "PageCtx",
    "error_page",
    "is_page_request",
    "login_url",
    "nav",
    "page",
    "raw_json",
    "redirect",
    "render",
    "render_partial",
    "safe_next",
    "set_session_cookie",
]
