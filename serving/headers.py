"""Security headers on every response (a pure ASGI middleware, so streaming responses keep streaming).

The staff pages and the API get a strict Content-Security-Policy (only this origin's scripts, styles
and images; no framing: ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), ``nosniff``, no
referrer beyond this site (``same-origin``: with ``no-referrer`` browsers send ``Origin: null`` on form posts, defeating the Origin check), and no caching of authenticated answers. The API page ``/docs`` (served from this origin by
:mod:`serving.docs_ui`) needs an inline bootstrap script: they get a policy allowing that,
still from this origin only.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
#: Swagger UI (``/docs``, files from this origin): an inline bootstrap script and injected styles.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = (DOCS_CSP if path.startswith("/docs") else STRICT_CSP).encode()
        private = path.startswith(("/staff", "/v1"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [*COMMON, (b"content-security-policy", csp)]
                if private:
                    extra.append((b"cache-control", b"no-store"))
                headers.extend((k, v) for k, v in extra if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
