"""Throughput of ``yuedu serve --workers N`` under mixed traffic, driven by an external load generator.

The generator is ``wrk`` (C, from Debian: ``apt-get install wrk``; ``make bench-workers`` installs it),
not the project's own client, so the figures do not depend on our code on both ends. It replays a
fixed, pre-drawn mix of requests (``benchmarks.loadtest.city_traffic``: recommendations for known and
unknown readers, counter decisions with unique idempotency keys, similar titles, reader events,
booklists, budgets) from a Lua script, closed loop, on 127.0.0.1 only, for a bounded time.

For each worker count and each connection count it reports requests per second and wrk's latency
percentiles; the ratio row compares 2 workers with 1 at the connection count where their p99 are
closest ("the same p99").

    .venv/bin/python -m benchmarks.workers --data DIR --model DIR --out experiments/results/workers.md
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from benchmarks.loadtest import DEFAULT_MIX, check_loopback, city_traffic

#: Requests pre-drawn into the Lua script (wrk cycles through them).
N_REQUESTS = 20_000


def _lua_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=True)  # a JSON string literal is a valid Lua string literal here


def write_script(
    path: Path, data: Path, secret: str, mix: dict[str, float], seed: int = 0, n: int = N_REQUESTS
) -> None:
    """A wrk Lua script cycling through ``n`` requests drawn from the city's traffic ``mix``."""
    draw, rng = city_traffic(data, secret, mix), random.Random(seed)
    lines = ["local reqs = {"]
    for _ in range(n):
        _route, method, target, headers, body = draw(rng)
        hdrs = dict(headers)
        payload = "nil"
        if body is not None:
            hdrs["Content-Type"] = "application/json"
            payload = _lua_string(json.dumps(body))
        h = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in hdrs.items())
        lines.append(f"  {{{_lua_string(method)}, {_lua_string(target)}, {{{h}}}, {payload}}},")
    lines += [
        "}",
        "local i = 0",
        "request = function()",
        "  i = i % #reqs + 1",
        "  local r = reqs[i]",
        "  return wrk.format(r[1], r[2], r[3], r[4])",
        "end",
        "done = function(summary, latency, requests)",
        '  io.write(string.format("JSON {\\"requests\\": %d, \\"seconds\\": %.3f, \\"errors\\": %d, '
        '\\"status\\": %d, \\"p50\\": %.3f, \\"p90\\": %.3f, \\"p99\\": %.3f, \\"max\\": %.3f}\\n", '
        "summary.requests, summary.duration / 1e6, "
        "summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, "
        "summary.errors.status, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, "
        "latency:percentile(99) / 1e3, latency.max / 1e3))",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")


def _serve(data: Path, model: Path, db_url: str, port: int, secret: str, workers: int, log: Path) -> subprocess.Popen:
    yuedu = Path(sys.executable).parent / "yuedu"
    env = {**os.environ, "YUEDU_SECRET_KEY": secret, "YUEDU_MODEL_POLL_S": "0"}
    cmd = [str(yuedu), "serve", "--data", str(data), "--model", str(model), "--db", db_url, "--port", str(port)]
    cmd += ["--today", "2026-06-15", "--log-level", "warning", "--workers", str(workers)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"yuedu serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not ready within {timeout_s} s")
        time.sleep(0.3)


def run_wrk(url: str, script: Path, connections: int, duration_s: int, threads: int = 1) -> dict:
    """One bounded wrk run (``duration_s`` seconds); the figures its ``done`` hook prints."""
    check_loopback(url)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s", "--timeout", "5s"]
    out = subprocess.run([*cmd, "-s", str(script), url], capture_output=True, text=True, timeout=duration_s + 60)
    found = re.search(r"^JSON (\{.*\})$", out.stdout, re.M)
    if found is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout[-1000:]} {out.stderr[-1000:]}")
    figures = json.loads(found.group(1))
    figures["rps"] = figures["requests"] / max(figures["seconds"], 1e-9)
    return figures


def measure(
    data: Path, model: Path, workers_list: list[int], conns: list[int], duration_s: int, mix: dict[str, float]
) -> list[dict]:
    from serving.server import free_port

    secret = uuid.uuid4().hex
    rows = []
    with tempfile.TemporaryDirectory(prefix="yuedu-workers-") as tmp:
        script = Path(tmp) / "mix.lua"
        write_script(script, data, secret, mix)
        for workers in workers_list:
            port, log = free_port(), Path(tmp) / f"serve-{workers}.log"
            proc = _serve(data, model, f"sqlite:///{tmp}/w{workers}.db", port, secret, workers, log)
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_ready(url, proc, log)
                run_wrk(url, script, conns[0], 3)  # warm-up (caches, connections, first model calls)
                for c in conns:
                    figures = run_wrk(url, script, c, duration_s)
                    rows.append({"workers": workers, "connections": c, **figures, "load": os.getloadavg()[0]})
                    print(
                        f"workers={workers} connections={c}: {figures['rps']:.0f} req/s, "
                        f"p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms",
                        flush=True,
                    )
            finally:
                proc.terminate()
                proc.wait(20)
    return rows


def same_p99_ratio(rows: list[dict], many: int = 2, one: int = 1) -> dict | None:
    """2 workers against 1 at the connection count where their p99 are closest (relative)."""
    a = {r["connections"]: r for r in rows if r["workers"] == many}
    b = {r["connections"]: r for r in rows if r["workers"] == one}
    pairs = [(abs(a[c]["p99"] - b[c]["p99"]) / max(b[c]["p99"], 1e-9), c) for c in a if c in b]
    if not pairs:
        return None
    _, c = min(pairs)
    return {"connections": c, "ratio": a[c]["rps"] / b[c]["rps"], "p99_many": a[c]["p99"], "p99_one": b[c]["p99"]}


def markdown(rows: list[dict], data: Path, model: Path, duration_s: int) -> str:
    lines = [
        "# `yuedu serve --workers N` under mixed traffic (external generator: wrk)",
        "",
        f"Data `{data}`, model `{model.name}`, SQLite ledger (WAL), {duration_s} s per row after a 3 s warm-up, "
        f"wrk 1 thread, closed loop, 127.0.0.1. Machine: {os.cpu_count()} cores (the generator shares them).",
        "",
        "| workers | connections | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | non-2xx/3xx | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workers']} | {r['connections']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p90']:.1f} | "
            f"{r['p99']:.1f} | {r['max']:.1f} | {r['errors']} | {r['status']} | {r['load']:.1f} |"
        )
    ratio = same_p99_ratio(rows)
    if ratio:
        lines += [
            "",
            f"2 workers / 1 worker at {ratio['connections']} connections (closest p99: {ratio['p99_many']:.1f} vs "
            f"{ratio['p99_one']:.1f} ms): **{ratio['ratio']:.2f}x** the throughput (goal >= 1.7x).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--workers", default="1,2", help="Worker counts, comma-separated.")
    ap.add_argument("--connections", default="4,16", help="wrk connection counts, comma-separated.")
    ap.add_argument("--duration", type=int, default=15, help="Seconds per row (at most 120).")
    ap.add_argument(
        "--mix", default=None, help="Traffic mix as JSON, e.g. '{\"recommendations\": 1}' (default: the load test's)."
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    mix = json.loads(args.mix) if args.mix else dict(DEFAULT_MIX)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (or make bench-workers)", file=sys.stderr)
        return 2
    duration = max(1, min(args.duration, 120))
    rows = measure(
        args.data,
        args.model,
        [int(w) for w in args.workers.split(",")],
        [int(c) for c in args.connections.split(",")],
        duration,
        mix,
    )
    md = markdown(rows, args.data, args.model, duration)
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
