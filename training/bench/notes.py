"""Why a goal is short and what would close it, per row key (``bench/figure``).

Each note rests on a profile (cProfile or a timed breakdown) taken on this machine while recording
``experiments/results/bench.md``; ``docs/benchmarks.md`` has the measurements in full. A row that
falls short without a note here is flagged "no analysis recorded" in the report.
"""

from __future__ import annotations

_INGEST = (
    "the cost was parsing, not the checks (which already ran as one chained expression, ~0.05 s): text "
    "timestamps took ~0.75 s per column per 2.8M rows and each reference check 0.1-0.2 s. Now text dates "
    "whose bytes match the sniffed ISO shape go through arrow's ISO-8601 cast (others, and any column "
    "arrow rejects, through polars as before), on worker threads while polars parses the rest; reference "
    "checks use is_in for key sets up to 10k and the exact hash join above. CPU per 2.84M-row run "
    "3.7 -> 1.85 s; CSV 1.2 -> 2.7M rows/s on the quiet machine (1.0-1.1M rows/s at load 5-7). Left: the "
    "CSV read itself (~50 %) and the exact reference joins (~25 %); accepted and rejected rows are "
    "unchanged (tests/features/test_ingest_speed.py)."
)

NOTES: dict[str, str] = {
    "ingest/loans CSV export: rows/s": _INGEST,
    "ingest/loans Parquet: rows/s": (
        "no text parsing; the cost left is the typed checks and the exact reference joins on string keys "
        "(integer-coded keys would cut the joins; a hash-only check would be faster but not exact)."
    ),
    "latency/recalculate after a new loan (model, 1 reader): p99 ms": (
        "fixed: implicit's fold-in ran an OpenMP region with the model's threads for ONE reader (36-61 ms with "
        "2 threads vs 0.06 ms with 1 on a loaded machine), and threadpoolctl rescanned /proc/self/maps on "
        "every call (~7 ms). Small batches now run single-threaded through one process-wide controller."
    ),
    "latency/recommend (service: filters, promotion, reasons): p99 ms": (
        "after the context caches (availability, booklist and audience masks built once per context) the "
        "service path on the city profile measured p50 18.6 ms / p99 32 ms at load ~2; cProfile of 20 calls "
        "then put 58 % in FactorizationRecommender._top_n, which copied the allowed rows of the 163k x 64 "
        "factor matrix on every call. Blocking the few disallowed titles per reader instead gives p50 8.0 ms / "
        "p99 26 ms (same profile script). The p99 tail was then the ~1 in 20 requests whose reasons fall back "
        "on model neighbours: similar() took the norms of all 163k title factors per call (~15 ms); they are "
        "now computed once per factor matrix and the top-n runs through implicit's topk (p99 35.9 -> "
        "16.8 ms in the full run, 23.6 ms in an --only latency run; p50 ~10 ms). Left per call: _top_n with ~110k per-reader exclusions as CSR (~3.7 ms), "
        "building them (~1.6 ms), explanations (~2.8 ms). To close: a dense per-branch mask path into the "
        "scoring instead of CSR exclusion rows."
    ),
    "latency/counter decision (SQLite ledger): p99 ms": (
        "the counter now runs pre-built Core statements (one SELECT ... to lock and read the budget lines, one "
        "UPDATE to charge them) instead of the ORM; p50 1.25 ms at load ~3 is inside the goal, p99 4.9 ms is "
        "the SQLite commit (WAL, synchronous=NORMAL) meeting other work on 2 cores. To close the tail: batch "
        "the audit rows into the same executemany, or group commits across counters (a few ms of latency for "
        "throughput)."
    ),
    "batch/top-10 batch (synthetic city): titles scored/s": (
        "the top-k selection, not the product, is the cost. On the small city: the GEMM of all readers "
        "runs at 150-300 M scores/s, implicit's topk kernel (used by yuedu and by implicit's own "
        "recommend) at 7.6 M/s with 2 threads and 16 M/s with 1 thread, 4.0 M/s with the seen-title "
        "filter; a numpy blocked GEMM + mask + argpartition reaches ~15 M/s. So even raw implicit is far "
        "below 50 % of GEMM on this machine: its per-row heap selection and OpenMP scheduling dominate. "
        "To close: run topk single-threaded per block and parallelise over blocks, or select with a "
        "threshold pass (keep only scores above the block's 10th-best estimate) before the heap."
    ),
    "batch/top-10 batch (movielens): titles scored/s": (
        "as for the city: implicit's topk selection and seen-filter dominate the GEMM (610 readers is one "
        "block; thread start-up is paid once per call)."
    ),
    "training/ALS fit: seconds": (
        "the wrapper does the same work as raw implicit (same CSR, parameters and threads; BLAS limited to "
        "one thread around the solver, as implicit advises, for both) and keeps implicit's factors without "
        "a copy; the peak-RSS sampler around the yuedu side was measured at no cost (6.28 vs 6.29 s). The "
        "same raw fit varies 6.3-8.2 s back to back on this shared machine; earlier runs of the same code "
        "gave 0.96x (one pair), 1.00x and 1.06x (best of 3 pairs)."
    ),
    "training/BPR fit: seconds": (
        "best of 5 interleaved pairs, order alternating: the wrapper hands implicit the same CSR, seed and "
        "threads and keeps its float32 factors without a copy; its only extra work is the popularity "
        "vector (~10 ms). Two-thread SGD is hogwild, so a fit's time varies by a few percent from run to "
        "run (single pairs gave 0.79x-1.17x on the same code); a ratio within 1.00-1.06x is that noise."
    ),
    "training/item-kNN (cosine) fit: seconds": (
        "fixed: the wrapper kept a float32 copy of implicit's float64 similarity (16M entries, ~0.2 s of a "
        "4.5 s fit); it now keeps implicit's matrix and writes float32 only when saving. The bench also "
        "timed the wrapper first in a single pair, i.e. cold (1.06-1.15x for the same work): now best of 5 "
        "pairs with alternating order."
    ),
    "latency/recommend (model, 1 reader): p99 ms": (
        "fixed with the fold-in note: one thread for implicit's topk on small batches, one thread-pool "
        "controller per process."
    ),
}
