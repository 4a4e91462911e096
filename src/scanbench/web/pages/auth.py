"""Sign-in and sign-out pages.

Sign-in is the API's (:func:`scanbench.web.auth.authenticate`: Argon2id, throttled per
account and per address) behind a form. The form is protected against login CSRF by a
double-submit cookie set before sign-in (:mod:`scanbench.web.pages.common`). A
successful sign-in always starts a NEW session with a fresh random id and ends the one
the browser brought, so a session id planted before sign-in never becomes valid
(session fixation, OWASP Session Management Cheat Sheet, "Renew the Session ID After
Any Privilege Level Change"). Sign-out is a POST with the CSRF token.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from scanbench.web import auth
from scanbench.web.api.app import COOKIE
from scanbench.web.pages.common import P, page, redirect, render, safe_next, set_session_cookie

router = APIRouter()


@page(router, "/login", "public")
def login_form(ctx: P, next: str = "/") -> Response:
    """The sign-in form (signed in already: straight to ``next``)."""
    if ctx.principal is not None:
        return redirect(safe_next(next))
    return render(ctx, "login.html", next=safe_next(next), error=None, username="")


@page(router, "/login", "public", methods=("POST",))
def login(ctx: P) -> Response:
    """Check the password (throttled); on success a new session and back to ``next``."""
    username = ctx.form.get("username", "").strip()[:120]
    password = ctx.form.get("password", "")
    target = safe_next(ctx.form.get("next"))
    s = ctx.session
    try:
        user = auth.authenticate(s, username, password, ctx.client)
    except auth.Throttled as exc:
        return render(ctx, "login.html", status=429, next=target, error=str(exc),
                      username=username,
                      headers={"Retry-After": str(int(auth.THROTTLE_WINDOW.total_seconds()))})
    except auth.AuthError as exc:
        s.commit()  # the failure counts towards throttling
        return render(ctx, "login.html", status=401, next=target, error=str(exc),
                      username=username)
    raw, _row = auth.start_session(s, user, ctx.client, ctx.request.cookies.get(COOKIE))
    s.commit()
    response = redirect(target)
    set_session_cookie(ctx.request, response, raw)
    return response


@page(router, "/logout", "authenticated", methods=("POST",))
def logout(ctx: P) -> Response:
    """End this session (the form carries the CSRF token, so no other site can sign
    a user out)."""
    raw = ctx.request.cookies.get(COOKIE)
    if raw:
        auth.end_session(ctx.session, raw)
        ctx.session.commit()
    response = redirect("/login")
    response.delete_cookie(COOKIE, path="/")
    return response
