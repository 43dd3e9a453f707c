"""One JSON shape for every error (:class:`serving.schemas.ErrorBody`), and the handlers that produce it.

Bad input is a 4xx naming the field and the reason; a domain error (:mod:`features.errors`) gets
the status of its kind (422 invalid input, 404 not found, 409 conflict, 503 unavailable) in the same
body; an unexpected exception is logged with its traceback and answered with a 500 body that leaks
nothing (tests assert it never happens).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from features.errors import YueduError

_log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "content_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class FieldError(HTTPException):
    """A 422 about one input field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{field}: {reason}")
        self.field, self.reason = field, reason


def field_error(field: str, reason: str) -> FieldError:
    return FieldError(field, reason)


def body(code: int, message: str, fields: list[dict] | None = None, error: str | None = None) -> dict:
    return {"error": error or _CODES.get(code, "error"), "message": message, "fields": fields or []}


def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    fields = [{"field": exc.field, "reason": exc.reason}] if isinstance(exc, FieldError) else []
    return JSONResponse(
        body(exc.status_code, str(exc.detail), fields),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def json_position(doc: str | bytes, pos: int) -> tuple[int, int]:
    """Line and column (both from 1) of character ``pos`` of a JSON document, as ``json`` counts them."""
    text = doc.decode("utf-8", "replace") if isinstance(doc, bytes) else str(doc)
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _field(err: dict, doc: object) -> dict:
    """One validation failure as ``{field, reason}``; a JSON syntax error names its line and column."""
    loc = [str(p) for p in err.get("loc", ())]
    if err.get("type") == "json_invalid":
        pos = err["loc"][-1] if len(err.get("loc", ())) > 1 and isinstance(err["loc"][-1], int) else 0
        line, col = json_position(doc if isinstance(doc, (str, bytes)) else "", pos)
        why = (err.get("ctx") or {}).get("error", "syntax error")
        return {"field": "body", "reason": f"invalid JSON at line {line} column {col} ({why})"}
    return {"field": ".".join(loc) or "request", "reason": str(err.get("msg", "invalid"))}


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = [_field(err, exc.body) for err in exc.errors()]
    message = "; ".join(f"{f['field']}: {f['reason']}" for f in fields[:5]) or "invalid request"
    return JSONResponse(body(422, message, fields), status_code=422)


def _domain(request: Request, exc: YueduError) -> JSONResponse:
    """A domain error raised on purpose: its kind gives the status, its message is meant for the caller."""
    code = exc.http_status
    if code >= 500 and code != 503:
        return _unexpected(request, exc)
    field = getattr(exc, "field", None)
    fields = [{"field": str(field), "reason": str(getattr(exc, "reason", exc))}] if field else []
    return JSONResponse(body(code, str(exc), fields, error=exc.code), status_code=code)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    route = getattr(request.scope.get("route"), "path", "unmatched")
    _log.exception("unhandled %s on %s %s", type(exc).__name__, request.method, route)
    return JSONResponse(body(500, "internal error", error="internal"), status_code=500)


class UnexpectedErrorMiddleware:
    """Answers any exception a handler let through with the 500 body, and swallows it.

    Starlette's own catch-all (``add_exception_handler(Exception, ...)``) sends the 500 and then
    re-raises, so uvicorn closes the connection: the client's next request on it was reset. Here the
    exception ends with the answer and the connection stays usable (a pure ASGI middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:  # noqa: BLE001 - the one place a bug becomes a 500 answer
            if started:
                raise  # half a response is out: nothing sane to add
            await _unexpected(Request(scope), exc)(scope, receive, send)


def install(app: FastAPI) -> None:
    """The error handlers, and the catch-all middleware (call before adding other middleware, so that
    headers and metrics middleware see its 500s)."""
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(YueduError, _domain)
    app.add_middleware(UnexpectedErrorMiddleware)
