"""Why a goal is short and what would close it, per row key (``bench/figure``), from profiles of
the runs recorded in ``experiments/results/bench.md`` and ``docs/benchmarks.md``."""

from __future__ import annotations

NOTES: dict[str, str] = {}
