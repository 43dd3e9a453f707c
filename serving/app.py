"""The yuedu HTTP service: ``create_app(settings) -> FastAPI``.

Layout follows FastAPI's "bigger applications": one thin router per resource under
``serving/routes``, dependencies in ``serving/deps.py``, bodies in ``serving/schemas.py``, the
long-lived objects in ``serving/state.py``. Run it with ``yuedu serve`` (uvicorn, access log off: our
own access log pseudonymises reader ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from features import bounds
from serving import docs_ui, errors, openapi
from serving.headers import SecurityHeadersMiddleware
from serving.metrics import MetricsMiddleware
from serving.routes import (
    acquisition,
    audit,
    booklists,
    catalogue,
    counter,
    counter_page,
    funds,
    mediation,
    notices,
    ops,
    readers,
    staff,
    titles,
    whatif,
)
from serving.settings import Settings, get_settings
from serving.state import AppState

_log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

DESCRIPTION = """
Reading-promotion recommendations and the "you choose, I buy" programme of a city library network.

Authenticate with `Authorization: Bearer <token>` (bookstore terminals may send `X-API-Key: <token>`).
Staff get a token from `POST /v1/auth/token`; reader and bookstore tokens are issued with
`yuedu token issue --role reader|bookstore --subject ID`. Errors are JSON: `{error, message, fields}`.
"""


def create_app(settings: Settings | None = None, state: AppState | None = None) -> FastAPI:
    """Build the service. ``settings`` default to the environment (``YUEDU_*``); ``state`` may be passed
    to share an already-built :class:`AppState` (tests)."""
    settings = settings or get_settings()
    state = state or AppState.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if settings.model_alias and settings.model_dir is None and settings.model_poll_s > 0:
            tasks.append(asyncio.create_task(state.poll_alias(settings.model_poll_s)))
        if settings.reservation_sweep_s > 0:
            tasks.append(asyncio.create_task(state.sweep_reservations(settings.reservation_sweep_s)))
        if settings.live_sync_s > 0:
            tasks.append(asyncio.create_task(state.poll_shared(settings.live_sync_s)))
        if settings.notice_sweep_s > 0:
            tasks.append(asyncio.create_task(state.deliver_notices(settings.notice_sweep_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await state.coalescer.aclose()

    app = FastAPI(
        title="yuedu (悦读)",
        version="1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # serving.docs_ui: Swagger UI and ReDoc without a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
        max_body_size=bounds.BODY_MAX_BYTES,  # 413 before parsing; 1 MB strings still reach the 422 of their field
    )
    docs_ui.install(app, "yuedu (悦读)")
    openapi.install(app)
    app.state.yuedu = state
    errors.install(app)
    routers = (
        readers,
        titles,
        catalogue,
        booklists,
        counter,
        acquisition,
        audit,
        funds,
        whatif,
        mediation,
        notices,
        ops,
    )
    for module in (*routers, staff, counter_page):
        app.include_router(module.router)
    if STATIC_DIR.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
