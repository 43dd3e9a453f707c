"""Operations: liveness, readiness, Prometheus metrics, hot model reload, staff login."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from serving.deps import AdminCaller, State
from serving.schemas import Health, LoginIn, ReloadIn, ReloadOut, TokenOut
from serving.security import check_password, issue_token

_log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, response_model_exclude_unset=True)
def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(state: State) -> JSONResponse:
    """Ready when a model is loaded and the database answers (503 otherwise, saying what is missing).

    After a failed reload the previous model keeps serving: 200 with status ``degraded`` and the
    reason under ``detail.last_reload``."""
    bundle, db_ok = state.bundle, state.database_ok()
    detail = {}
    if bundle is None:
        detail["model"] = state.last_reload_error or "not loaded"
    if not db_ok:
        detail["database"] = "not reachable"
    ready = not detail
    if bundle is not None and state.last_reload_error:
        # still serving the previous model, so still ready; but say that the last reload failed
        detail["last_reload"] = f"failed, still serving {bundle.version}: {state.last_reload_error}"
    health = Health(
        status=("degraded" if detail else "ready") if ready else "not_ready",
        model_loaded=bundle is not None,
        model_version=bundle.version if bundle else None,
        database=db_ok,
        detail=detail,
    )
    return JSONResponse(health.model_dump(mode="json"), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(state: State) -> Response:
    """Prometheus text format: requests and latency per route template, served model version."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/admin/reload", response_model=ReloadOut, responses={409: {"model": ReloadOut}})
async def reload(state: State, _principal: AdminCaller, body: ReloadIn | None = None) -> JSONResponse:
    """Load the model again (or ``model_dir``) and swap it in without dropping requests; with several
    workers the others load the same source within ``YUEDU_LIVE_SYNC_S``.

    409 with the reason when loading fails; the previous model keeps serving.
    """
    result = await asyncio.to_thread(state.request_reload, body.model_dir if body else None)
    out = ReloadOut(**result)
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if out.reloaded else 409)


@router.post("/v1/auth/token", response_model=TokenOut)
def token(body: LoginIn, request: Request, state: State) -> TokenOut:
    """Staff login (users from ``YUEDU_STAFF_USERS``): a bearer token for the staff or admin role.

    Throttled like the staff page: after repeated wrong passwords 429 with ``Retry-After``."""
    client = request.client.host if request.client else None
    wait = state.login_guard.retry_after(body.username, client)
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    role = check_password(state.staff_users, body.username, body.password)
    if role is None:
        state.login_guard.failure(body.username, client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown user or wrong password")
    state.login_guard.success(body.username, client)
    ttl = state.settings.token_ttl_s
    _log.info("staff login (%s)", role)
    return TokenOut(
        access_token=issue_token(role, body.username, state.settings.secret_key, ttl), role=role, expires_in=ttl
    )
