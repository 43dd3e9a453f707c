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
        "fixed: implicit's fold-in ran an OpenMP region with the model's threads for ONE reader (36-61 ms with "
        "2 threads vs 0.06 ms with 1 on a loaded machine), and threadpoolctl rescanned /proc/self/maps on "
        "every call (~7 ms). Small batches now run single-threaded through one process-wide controller."
    ),
    "latency/recommend (service: filters, promotion, reasons): p99 ms": (
        "after the context caches (availability, booklist and audience masks built once per context) the "
        "service path on the city profile measured p50 18.6 ms / p99 32 ms at load ~2; cProfile of 20 calls "
        "then put 58 % in FactorizationRecommender._top_n, which copied the allowed rows of the 163k x 64 "
        "factor matrix on every call. Blocking the few disallowed titles per reader instead gives p50 8.0 ms / "
        "p99 26 ms (same profile script). Left: explain's best_history_titles (~17 %), sparse constructors "
        "(~13 %) and the p99 tail of a shared machine. To close: reasons only for the final n from a cached "
        "item-item index, and per-branch candidate lists instead of per-reader exclusion rows."
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
    "training/BPR fit: seconds": (
        "one (yuedu, raw) pair per run: BPR came out 0.79x raw in one run and 1.17x in the next on the same "
        "code, so a single pair does not resolve a 5 % goal. The wrapper hands implicit the same CSR and "
        "seed; its only extra work is recording the popularity vector. To settle it: several interleaved "
        "pairs (as the ALS row) on a quiet machine."
    ),
    "training/item-kNN (cosine) fit: seconds": (
        "one (yuedu, raw) pair on a machine whose load average rose from 10 to 18 during the run; the "
        "wrapper's only extra work is one float32 CSR copy of the similarity (K=100 x 163k titles, "
        "~16M entries, a fraction of a second of the 4 s gap). ALS and BPR, wrapped the same way, came "
        "out 8-21 % FASTER than raw in the same run, which bounds the noise. To settle it: more pairs on "
        "a quiet machine; to remove the copy: keep implicit's matrix when it is already float32 CSR."
    ),
    "latency/recommend (model, 1 reader): p99 ms": (
        "fixed with the fold-in note: one thread for implicit's topk on small batches, one thread-pool "
        "controller per process."
    ),
}
