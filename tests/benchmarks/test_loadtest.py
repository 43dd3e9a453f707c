"""The load test's machinery: loopback only, open-loop schedule, per-route percentiles."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI

from benchmarks.loadtest import LoadConfig, LoadReport, NotLoopback, Sample, check_loopback, run_load
from serving.server import running_server


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://example.org", "http://0.0.0.0:80"])
def test_only_loopback_targets(url):
    with pytest.raises(NotLoopback):
        check_loopback(url)
    check_loopback("http://127.0.0.1:8000")
    check_loopback("http://localhost:1")


def test_percentiles_skip_warmup_and_count_errors():
    cfg = LoadConfig(rate=10, duration_s=10, warmup_s=1.0)
    samples = [Sample("A", 200, 999.0, 0.5)]  # warm-up: ignored
    samples += [Sample("A", 200, float(ms), 2.0) for ms in range(1, 101)]
    samples += [Sample("B", 503, 5.0, 3.0), Sample("B", 0, 7.0, 3.0), Sample("B", 404, 6.0, 3.0)]
    rows = {r["route"]: r for r in LoadReport(cfg, samples, 10.0).table()}
    assert rows["A"]["requests"] == 100 and rows["A"]["max_ms"] == 100.0
    assert rows["A"]["p50_ms"] == pytest.approx(50.5) and rows["A"]["p99_ms"] == pytest.approx(99.01)
    assert rows["B"]["errors"] == 2 and rows["B"]["non_2xx"] == 3


def test_open_loop_sends_the_scheduled_count_at_the_rate():
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict:
        return {"ok": True}

    cfg = LoadConfig(rate=50, duration_s=1.0, warmup_s=0.0)
    with running_server(app) as url:
        report = asyncio.run(run_load(url, lambda rng: ("GET /ping", "GET", "/ping", {}, None), cfg))
    assert len(report.samples) == 50 and all(s.status == 200 for s in report.samples)
    assert 0.9 <= report.wall_s < 3.0
    starts = sorted(s.at_s for s in report.samples)
    assert starts[-1] == pytest.approx(49 / 50)
    assert "| `GET /ping` | 50 |" in report.markdown()
