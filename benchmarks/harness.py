"""What every benchmark shares: the run context, result rows with goals, timing and peak-RSS sampling.

A benchmark is a generator ``run(ctx: BenchContext) -> Iterator[Row]`` (rows measured before a
failure are kept). Each :class:`Row` holds one
measured figure of yuedu, the same work done by the best peer *in the same run* and their ratio:
absolute times on a shared, noisy machine mean little, ratios measured side by side mean more.
Timings interleave yuedu and peer repeats (A, B, A, B, ...) and keep the best of each, so a burst
of load from another process hits both sides alike.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import psutil

_log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Cache of generated benchmark data (synthetic cities, CSV exports); git-ignored.
DEFAULT_CACHE = REPO_ROOT / ".cache" / "bench"
#: Public data sets, read in place.
SHARED_DATA = REPO_ROOT / ".." / "shared" / "data"

Status = Literal["pass", "short"]


class BenchError(RuntimeError):
    """A benchmark could not run (missing data, unknown name); the message says which and why."""


@dataclass(frozen=True)
class Goal:
    """A target a figure must meet: ``value <op> target`` in ``unit``."""

    op: Literal["<=", ">="]
    target: float
    unit: str

    def check(self, value: float) -> Status:
        ok = value <= self.target if self.op == "<=" else value >= self.target
        return "pass" if ok else "short"

    def __str__(self) -> str:
        return f"{self.op} {fmt(self.target)} {self.unit}".strip()


@dataclass
class Row:
    """One measured figure, its peer, ratio and goal.

    ``ratio`` is always ``value / peer_value`` (so for times, > 1 means yuedu is slower; for rates,
    < 1 means yuedu is slower). ``peak_rss_mb`` is the process's peak resident memory while the
    yuedu side ran, megabytes.
    """

    bench: str
    name: str
    value: float
    unit: str
    peer: str | None = None
    peer_value: float | None = None
    goal: Goal | None = None
    #: Which figure the goal applies to: the value itself or the ratio to the peer.
    goal_on: Literal["value", "ratio"] = "value"
    peak_rss_mb: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.peer_value is None or self.peer_value == 0:
            return None
        return self.value / self.peer_value

    @property
    def status(self) -> Status | None:
        if self.goal is None:
            return None
        figure = self.value if self.goal_on == "value" else self.ratio
        return None if figure is None else self.goal.check(figure)

    @property
    def key(self) -> str:
        return f"{self.bench}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["goal"] = None if self.goal is None else {**asdict(self.goal), "text": str(self.goal)}
        d["ratio"] = self.ratio
        d["status"] = self.status
        d["key"] = self.key
        return d


@dataclass
class BenchContext:
    """Settings and shared state of one ``yuedu bench`` run.

    Args:
        quick: small data everywhere (smoke test, well under a minute).
        threads: threads given to every model, BLAS and polars side alike.
        cache_dir: where generated data is kept between runs.
        seed: synthesis / sampling seed.
    """

    quick: bool = False
    threads: int = 2
    cache_dir: Path = DEFAULT_CACHE
    seed: int = 7
    #: Objects one benchmark builds and a later one reuses (fitted models, matrices), by name.
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def repeats(self) -> int:
        """Interleaved repeats of each timed pair (best kept)."""
        return 1 if self.quick else 2

    def remember(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()`` once per run, then the stored object."""
        if key not in self.memo:
            self.memo[key] = build()
        return self.memo[key]


# --- timing ----------------------------------------------------------------------------------------


def fmt(x: float | None) -> str:
    """A figure with 3-4 significant digits and thousands separators (for tables)."""
    if x is None:
        return "-"
    if not np.isfinite(x):
        return str(x)
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.01:
        return f"{x:.3g}"
    return f"{x:.2e}"


def time_pair(
    yuedu: Callable[[], Any], peer: Callable[[], Any], repeats: int, *, sampler: PeakRSS | None = None
) -> tuple[float, float]:
    """Best wall-clock seconds of ``yuedu()`` and ``peer()`` over interleaved repeats.

    The order alternates (yuedu first, then peer first, ...) so that neither side always pays for a
    cold start. A garbage collection runs before each call so that one side does not pay for the
    other's garbage. When ``sampler`` is given, the yuedu calls run inside it (peak RSS of the yuedu side).
    """
    best = {"yuedu": float("inf"), "peer": float("inf")}

    def timed(side: str) -> None:
        gc.collect()
        with sampler if sampler is not None and side == "yuedu" else _null():
            t0 = time.perf_counter()
            (yuedu if side == "yuedu" else peer)()
            best[side] = min(best[side], time.perf_counter() - t0)

    for i in range(max(1, repeats)):
        for side in ("yuedu", "peer") if i % 2 == 0 else ("peer", "yuedu"):
            timed(side)
    return best["yuedu"], best["peer"]


def time_best(fn: Callable[[], Any], repeats: int) -> float:
    """Best wall-clock seconds of ``fn()`` over ``repeats`` calls."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def latencies_ms(fn: Callable[[int], Any], n: int, warmup: int = 10) -> np.ndarray:
    """Wall-clock milliseconds of ``fn(i)`` for ``i`` in ``range(n)`` after ``warmup`` untimed calls
    ``fn(n)`` ... ``fn(n + warmup - 1)`` (so callers provide ``n + warmup`` distinct inputs).

    The collector is disabled during the timed calls: a full collection landing in one call is a
    property of the whole process, not of the call (the p99 would measure the heap, not the code)."""
    for i in range(n, n + warmup):
        fn(i)
    out = np.empty(n)
    gc.collect()
    gc.disable()
    try:
        for i in range(n):
            t0 = time.perf_counter()
            fn(i)
            out[i] = (time.perf_counter() - t0) * 1000.0
    finally:
        gc.enable()
    return out


@contextmanager
def _null() -> Iterator[None]:
    yield


# --- memory ----------------------------------------------------------------------------------------


class PeakRSS:
    """Peak resident set size of this process while inside the ``with`` block, sampled every 5 ms.

    Reusable: each entry starts a new sampling thread; ``peak_mb`` keeps the maximum over all
    entries and ``baseline_mb`` the RSS at the first entry.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.baseline_mb: float | None = None
        self._proc = psutil.Process(os.getpid())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss_mb(self) -> float:
        return self._proc.memory_info().rss / 1e6

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRSS:
        now = self._rss_mb()
        if self.baseline_mb is None:
            self.baseline_mb = now
        self.peak_mb = max(self.peak_mb, now)
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())


def scaling_exponent(sizes: list[float], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) on log(size): time ~ size ** exponent."""
    x, y = np.log(np.asarray(sizes, dtype=float)), np.log(np.asarray(seconds, dtype=float))
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("scaling_exponent needs at least two distinct sizes")
    return float(np.polyfit(x, y, 1)[0])
