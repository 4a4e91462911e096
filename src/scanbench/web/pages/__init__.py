"""The web pages (issue 12 section 2): server-rendered Jinja2 templates with htmx,
mounted on the API's FastAPI application by :func:`install`.

Every module of this package except ``common`` is a group of pages and must define
``router`` (a :class:`fastapi.APIRouter` whose handlers are registered with
:func:`scanbench.web.pages.common.page`); :func:`build_router` mounts them all, so a
new page module needs no edit here. See :mod:`scanbench.web.pages.common` for how to
write a page.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import plotly
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware

from scanbench.web.pages.common import STATIC, SecurityHeaders, _install_errors

#: plotly.js as shipped inside the installed ``plotly`` package (the same file the
#: reports embed): served from there, never copied, never from a CDN.
PLOTLY_JS = "plotly.min.js"


def build_router() -> APIRouter:
    """One router with the routes of every page module (sorted by module name)."""
    router = APIRouter()
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name == "common" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        sub = getattr(module, "router", None)
        if not isinstance(sub, APIRouter):
            raise RuntimeError(f"page module {module.__name__} defines no 'router'")
        router.include_router(sub)
    return router


def _plotly_path() -> str:
    path = Path(plotly.__file__).parent / "package_data" / PLOTLY_JS
    if not path.is_file():
        raise RuntimeError(f"the plotly package has no {path}: reinstall plotly")
    return str(path)


def install(app: FastAPI) -> None:
    """Mount the pages, ``/static`` (our files and plotly.js), the HTML error pages and
    the security headers on ``app``."""
    plotly_file = _plotly_path()

    @app.get(f"/static/{PLOTLY_JS}", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_file, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(build_router())
    _install_errors(app)
    app.add_middleware(SecurityHeaders)
    # Pages of a thousand rows and plotly.js (4.8 MB, 1.4 MB gzipped) travel compressed.
    app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=6)


__all__ = ["build_router", "install"]
