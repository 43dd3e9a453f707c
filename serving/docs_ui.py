"""``/docs`` (Swagger UI) served from this process, never from a CDN.

Library intranets are often offline, and a documentation page that loads its scripts from jsDelivr
shows nothing there. The Swagger UI files come from the ``fastapi-offline`` package (a pinned
dependency); only its static files are used, mounted at ``/static/docs``. There is no ``/redoc``:
ReDoc's page fetches its logo from cdn.redoc.ly, and one API page is enough.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
PREFIX = "/static/docs"


def install(app: FastAPI, title: str) -> None:
    """Mount the assets and add ``/docs`` (the app must be built with ``docs_url=None``)."""
    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} · API",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon.png",
        )
