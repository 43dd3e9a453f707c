"""Why a goal is short and what would close it, per row key (``bench/figure``).

Each note rests on a profile (cProfile or a timed breakdown) taken on this machine while recording
``experiments/results/bench.md``; ``docs/benchmarks.md`` has the measurements in full. A row that
falls short without a note here is flagged "no analysis recorded" in the report.
"""

from __future__ import annotations

_INGEST = (
    "validation, not reading, is the cost. Breakdown of ingest_table on 500k city loan rows (CSV): "
    "reading every cell as a string 0.70 s (the same as a bare pl.read_csv, 0.74 s), parsing the three "
    "timestamp columns from text 2.0 s (40 %), the four reference checks (is_in on string keys of 200k "
    "readers / 287k copies / 180k titles) 0.7 s, the other checks ~1.6 s; cProfile shows 53 separate "
    "LazyFrame.collect calls, one pass over the data each. On 2 loaded cores (load average 8-13) that is "
    "~0.3M rows/s for CSV. To close: (1) one fused lazy select for all checks (one collect, not 53); "
    "(2) let the CSV reader parse timestamps natively with a declared schema and re-read as text only the "
    "rows that fail, instead of str.to_datetime on every row; (3) reference checks as a semi-join on "
    "categorical / integer-coded keys. Parquet input skips the text parsing and is ~3x faster already."
)

NOTES: dict[str, str] = {
    "ingest/loans CSV export: rows/s": _INGEST,
    "ingest/loans Parquet: rows/s": (
        "same cause as the CSV row minus the text parsing: the checks run as ~50 separate polars passes "
        "over the frame, and the four reference look-ups hash string keys. Fusing the checks into one "
        "lazy query and coding keys as integers would close most of it (see the CSV note)."
    ),
    "latency/recalculate after a new loan (model, 1 reader): p99 ms": (
        "implicit's ALS fold-in (recalculate_user -> _als._least_squares) runs an OpenMP parallel loop "
        "with num_threads = the model's threads even for ONE reader. Timed on the small city: "
        "_least_squares for 1 row takes 0.03 ms with 1 thread and 3-35 ms with 2 threads (thread "
        "wake-up and barrier on an oversubscribed machine); recalculate_user with num_threads=1 takes "
        "0.06 ms vs 36-61 ms with 2. To close: in recsys/models/als.py call the fold-in with "
        "num_threads=1 when the batch is small (say < 64 readers), and the same for implicit's topk in "
        "FactorizationRecommender._top_n."
    ),
    "latency/recommend (service: filters, promotion, reasons): p99 ms": (
        "the model call is ~12 % of the service path. cProfile of 100 single-reader calls (small city): "
        "build_exclusions 35 % (the 'unreachable' filter alone 20 %), explain 33 % of which "
        "LibraryContext.active_booklists 28 % (two polars collects per call re-filtering booklists by "
        "date), rerank 16 %, model.recommend 12 %; ~66 scipy.sparse matrices are constructed per call. To "
        "close: cache active booklists / on-list masks per day in the context, build one reader's "
        "exclusions as index arrays instead of CSR matrices, and pass blocked columns straight to topk."
    ),
    "latency/counter decision (SQLite ledger): p99 ms": (
        "SQLAlchemy ORM overhead, not SQLite. cProfile of 200 decisions: ~10 SQL statements and 7 ORM "
        "flushes per decision; sqlite3 execute + commit together are ~15 % of the time; the rest is "
        "statement construction and compilation-cache lookups (110 coercions.expect calls and 9 cache "
        "keys per decision), the unit of work and audit rows. WAL with synchronous=NORMAL already avoids "
        "an fsync per commit. To close: the reader facts (5 COUNT queries) as one aggregate query, "
        "pre-built Core statements (or lambda_stmt) instead of ORM query building per call, and one "
        "executemany for the request + reservation + audit rows. CAVEAT: that profile (12:37) predates "
        "the counter's move to Core statements (commits 61e9d26 / 25fb19f, 13:29-13:32); this run's "
        "decisions (13:26) ran on an intermediate working copy, p50 1.6 ms. Re-run "
        "`yuedu bench --only latency` to measure the Core version; the p99 tail is then the question."
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
    "training/item-kNN (cosine) fit: seconds": (
        "one (yuedu, raw) pair on a machine whose load average rose from 10 to 18 during the run; the "
        "wrapper's only extra work is one float32 CSR copy of the similarity (K=100 x 163k titles, "
        "~16M entries, a fraction of a second of the 4 s gap). ALS and BPR, wrapped the same way, came "
        "out 8-21 % FASTER than raw in the same run, which bounds the noise. To settle it: more pairs on "
        "a quiet machine; to remove the copy: keep implicit's matrix when it is already float32 CSR."
    ),
    "latency/recommend (model, 1 reader): p99 ms": (
        "not profiled separately on the city; the same mechanism as the fold-in note is the leading "
        "suspect: implicit's topk runs an OpenMP region with the model's 2 threads for one query row "
        "(163k titles, a 10 MFLOP product that takes ~1-2 ms on one core). On the small city the same "
        "call had p50 0.23 ms at load ~8 and p99 0.5 ms, while here (load 13-22) p50 is 14 ms. To close: "
        "num_threads=1 in FactorizationRecommender._top_n for small batches, then re-measure."
    ),
}
