"""Schemathesis fuzzes every operation of /openapi.json (bounded examples): no 5xx, and every answer has a
documented status, content type, headers and a body valid under its response schema.

Requests carry credentials so that generated input reaches the handlers (not only the 401 gate):
counter operations a bookstore terminal's token, everything else an admin's (admins may use every
non-counter endpoint, reader routes included). Each operation's strategy is driven by hypothesis
directly (``schemathesis.pytest.from_fixture`` does not work with this pytest), at most
``MAX_EXAMPLES`` examples per operation.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serving.conftest import token  # noqa: E402

#: 60 keeps the suite within its 10 minutes; ``YUEDU_SCHEMATHESIS_EXAMPLES=300`` (``make test-api-deep``)
#: runs the issue's depth.
MAX_EXAMPLES = int(os.environ.get("YUEDU_SCHEMATHESIS_EXAMPLES", "60"))
#: Every answer: no 5xx, a documented status, the documented content type, headers and body schema.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _calls(app) -> dict[tuple[str, str], float]:
    """Requests served so far by (route template, status), from the app's Prometheus counter."""
    out = {}
    for metric in app.state.yuedu.metrics.requests.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                out[sample.labels["route"], sample.labels["status"]] = sample.value
    return out


def _fuzzer(operation, headers: dict):
    @given(operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    return fuzz


def test_no_server_errors_on_any_operation(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    before = _calls(app)
    failures: dict[str, str] = {}
    seen = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        role = ("bookstore", "BS-01") if operation.path.startswith("/v1/purchase-requests") else ("admin", "root")
        seen += 1
        try:
            _fuzzer(operation, token(*role))()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, report them together
            failures[f"{operation.method.upper()} {operation.path}"] = str(exc)[:2000]
    assert seen >= 17
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    after = _calls(app)
    routes = {route for route, status in after if after[route, status] > before.get((route, status), 0)}
    assert sum(after.values()) - sum(before.values()) >= 10 * seen  # the fuzzer really called the app
    # ... and got past the gates: successful answers, not only 401/422 (random ids in paths are 404s).
    ok = {
        route for (route, status), n in after.items() if status.startswith("2") and n > before.get((route, status), 0)
    }
    assert len(ok) >= 8 and "/v1/readers/{reader_id}/recommendations" in ok, sorted(routes - ok)
