"""The benchmark suite: harness arithmetic (goals, ratios, exponents, RSS sampling, latency sampling),
report writing, and ``yuedu bench --quick`` end to end as a smoke test (no timing assertions)."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from benchmarks import BENCHMARKS, BenchError, BenchReport, Goal, Row, markdown, run_bench, write_report
from benchmarks.harness import PeakRSS, latencies_ms, scaling_exponent, time_pair
from benchmarks.notes import load_notes

# --- goals and rows -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "target", "value", "expected"),
    [
        (">=", 2e6, 2e6, "pass"),
        (">=", 2e6, 1.99e6, "short"),
        ("<=", 5.0, 5.0, "pass"),
        ("<=", 5.0, 5.01, "short"),
    ],
)
def test_goal_check_is_inclusive_at_the_target(op, target, value, expected):
    assert Goal(op, target, "x").check(value) == expected


def test_row_ratio_and_status_follow_goal_on():
    goal = Goal("<=", 1.05, "x raw")
    slow = Row("training", "fit", value=1.2, unit="s", peer="raw", peer_value=1.0, goal=goal, goal_on="ratio")
    fast = Row("training", "fit", value=1.0, unit="s", peer="raw", peer_value=1.0, goal=goal, goal_on="ratio")
    assert slow.ratio == pytest.approx(1.2)
    assert (slow.status, fast.status) == ("short", "pass")
    # the same value judged on itself passes a >= goal the ratio would not
    on_value = Row("ingest", "rows", value=3e6, unit="rows/s", peer_value=6e6, goal=Goal(">=", 2e6, "rows/s"))
    assert on_value.ratio == pytest.approx(0.5) and on_value.status == "pass"
    no_goal = Row("matrix", "build", value=1.0, unit="s")
    assert no_goal.ratio is None and no_goal.status is None
    d = slow.to_dict()
    assert d["key"] == "training/fit" and d["status"] == "short" and d["goal"]["text"] == "<= 1.05 x raw"


@settings(max_examples=50, deadline=None)
@given(
    b=st.floats(0.2, 3.0),
    c=st.floats(1e-6, 10.0),
    sizes=st.lists(st.floats(10.0, 1e7), min_size=2, max_size=6, unique=True).filter(lambda s: max(s) / min(s) > 1.5),
)
def test_scaling_exponent_recovers_a_power_law(b, c, sizes):
    seconds = [c * s**b for s in sizes]
    assert scaling_exponent(sizes, seconds) == pytest.approx(b, rel=1e-6, abs=1e-6)


def test_scaling_exponent_needs_two_distinct_sizes():
    with pytest.raises(ValueError, match="two distinct sizes"):
        scaling_exponent([5.0, 5.0], [1.0, 2.0])


# --- timing and memory ----------------------------------------------------------------------------------


def test_time_pair_keeps_the_best_of_each_side_and_alternates_who_goes_first(monkeypatch):
    """A fake clock that the timed functions advance: exact, and immune to machine load."""
    from benchmarks import harness

    clock = {"now": 0.0}
    monkeypatch.setattr(harness.time, "perf_counter", lambda: clock["now"])
    calls: list[str] = []
    ours_cost = iter([3.0, 1.0, 2.0])

    def ours():
        calls.append("ours")
        clock["now"] += next(ours_cost)

    def peer():
        calls.append("peer")
        clock["now"] += 0.5

    best_ours, best_peer = time_pair(ours, peer, 3)
    # neither side is always the cold first call
    assert calls == ["ours", "peer", "peer", "ours", "ours", "peer"]
    assert (best_ours, best_peer) == (1.0, 0.5)


def test_latencies_warm_up_on_inputs_the_timed_calls_never_reuse():
    seen: list[int] = []
    samples = latencies_ms(seen.append, 20, warmup=5)
    assert seen[:5] == [20, 21, 22, 23, 24] and seen[5:] == list(range(20))
    assert samples.shape == (20,) and (samples >= 0).all()


def test_peak_rss_sees_a_temporary_allocation():
    sampler = PeakRSS(interval_s=0.001)
    with sampler:
        block = np.ones(50_000_000 // 8)  # 50 MB, touched
        time.sleep(0.02)
    del block  # freed after the block: the peak must still remember it
    assert sampler.baseline_mb is not None
    assert sampler.peak_mb - sampler.baseline_mb >= 40
    assert sampler.peak_mb >= PeakRSS()._rss_mb() + 30


# --- reports ----------------------------------------------------------------------------------------------


def _report() -> BenchReport:
    rows = [
        Row(
            "ingest", "loans: rows/s", 1e6, "rows/s", peer="pl.read_csv", peer_value=4e6, goal=Goal(">=", 2e6, "rows/s")
        ),
        Row(
            "latency",
            "decision: p99 ms",
            1.5,
            "ms",
            goal=Goal("<=", 2.0, "ms p99"),
            extra={"p50_ms": 0.8, "p99_ms": 1.5, "max_ms": 3.0, "calls": 100},
        ),
    ]
    env = {"threads": 2, "cpu_count": 2, "thread_pools": [], "versions": {"numpy": "2"}}
    return BenchReport(
        quick=True, rows=rows, errors={"milp": "BenchError: no optimizer"}, seconds={"ingest": 1.0}, env=env
    )


def test_markdown_lists_every_row_failures_and_the_short_goals(tmp_path):
    report = _report()
    md = markdown(report)
    assert md.count("\n| ingest |") == 1 and md.count("\n| latency |") == 1
    assert "| short |" in md and "| pass |" in md
    assert "p50 0.8 ms" in md
    short_section = md.split("## Goals short")[1]
    assert "ingest/loans: rows/s" in short_section and "decision" not in short_section
    assert "**milp**: BenchError: no optimizer" in md
    js, md_path = write_report(report, tmp_path)
    data = json.loads(js.read_text())
    assert [r["status"] for r in data["rows"]] == ["short", "pass"]
    assert data["rows"][0]["ratio"] == pytest.approx(0.25)
    assert md_path.read_text() == md


def test_unknown_benchmark_name_is_refused():
    with pytest.raises(BenchError, match="unknown benchmark 'nope'"):
        run_bench(quick=True, only="nope")


def test_cli_exit_code_2_for_an_unknown_benchmark():
    from serving.cli import app

    result = CliRunner().invoke(app, ["bench", "--quick", "--only", "nope"])
    assert result.exit_code == 2


def test_cli_says_so_in_one_line_when_the_benchmarks_package_is_absent(monkeypatch):
    from serving.cli import app

    monkeypatch.setitem(sys.modules, "benchmarks", None)  # as in an installed tree without the tooling
    result = CliRunner().invoke(app, ["bench", "--quick"])
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the benchmarks package is not installed")


def test_every_note_is_a_paragraph_under_a_row_key():
    notes = load_notes()
    assert notes and all(v and "\n" not in v for v in notes.values())
    # keys are `benchmark/figure` of benchmarks that exist (a renamed benchmark must take its notes along)
    assert {key.split("/")[0] for key in notes} <= set(BENCHMARKS)
    assert (
        "the top-k selection, not the product, is the cost"
        in notes["topn/top-10 for every reader (synthetic city): titles scored/s"]
    )


# --- the quick suite end to end ------------------------------------------------------------------------------


@pytest.mark.slow
def test_quick_bench_runs_every_benchmark_and_writes_both_files(tmp_path_factory):
    """`yuedu bench --quick` on the small city: every benchmark yields rows, every goal row is judged."""
    from serving.cli import app

    cache = tmp_path_factory.mktemp("bench-cache")
    out = tmp_path_factory.mktemp("bench-out")
    result = CliRunner().invoke(app, ["bench", "--quick", "--cache", str(cache), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "bench.json").read_text())
    assert data["quick"] is True and data["errors"] == {}
    assert {r["bench"] for r in data["rows"]} == set(BENCHMARKS)
    assert data["env"]["threads"] >= 1 and data["env"]["thread_pools"]
    for row in data["rows"]:
        assert np.isfinite(row["value"]), row["key"]
        if row["goal"] is not None:
            assert row["status"] in ("pass", "short"), row["key"]
        if row["peer_value"] is not None:
            assert row["ratio"] == pytest.approx(row["value"] / row["peer_value"])
    md = (out / "bench.md").read_text()
    assert md.count("\n| ") == len(data["rows"]) + 1  # header + one line per figure
    # the city was generated into the given cache, not the repo's
    assert any(p.name.startswith("synth-small-") for p in cache.iterdir())
