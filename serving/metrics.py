"""Prometheus metrics: request counts and latency histograms per route, and the served model version.

Metrics live in a per-app registry (not the global one), so several apps in one test process do not
collide. Route labels are route *templates* (``/v1/readers/{reader_id}/recommendations``), never raw
paths, so reader ids never reach the metrics.
"""

from __future__ import annotations

import logging
import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from features.privacy import pseudonymise

_log = logging.getLogger("serving.access")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "yuedu_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "yuedu_http_request_seconds",
            "HTTP request latency, seconds",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_version = Gauge(
            "yuedu_model_info", "Served model (value 1) by version", ["version"], registry=self.registry
        )
        # which worker process answered (``yuedu serve --workers N`` runs several behind one port)
        Gauge("yuedu_worker_info", "This worker process (value 1) by pid", ["pid"], registry=self.registry).labels(
            pid=str(os.getpid())
        ).set(1)

    def set_model_version(self, version: str) -> None:
        self.model_version.clear()
        self.model_version.labels(version=version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware) timing every HTTP request.

    It also writes the access log (logger ``serving.access``): route template, status, milliseconds and,
    for reader routes, the reader's pseudonym, never the raw path (run uvicorn with its own access log
    off, since that one prints raw paths with reader ids).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(template, method, str(status["code"])).inc()
            elapsed = time.perf_counter() - start
            self.metrics.latency.labels(template, method).observe(elapsed)
            if _log.isEnabledFor(logging.INFO):
                reader = (scope.get("path_params") or {}).get("reader_id")
                _log.info(
                    "%s %s %d %.1f ms%s",
                    method,
                    template,
                    status["code"],
                    elapsed * 1000,
                    f" reader={pseudonymise(str(reader))}" if reader is not None else "",
                )
