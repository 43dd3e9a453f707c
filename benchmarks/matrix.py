"""Matrix build: interaction events -> weighted reader x title CSR, events per second.

The yuedu side is :func:`features.matrix.build_matrix` with the default weighting (channel
weights, renewals, vocabularies, id mapping, duplicate summing) on events already in memory; the
peer is a bare ``scipy.sparse.coo_matrix((w, (r, c))).tocsr()`` of the same integer arrays, the
least any builder must do.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from benchmarks.data import city_dir, interactions
from benchmarks.harness import BenchContext, PeakRSS, Row, time_pair
from features.matrix import build_matrix
from features.vocab import Vocabulary


def run(ctx: BenchContext) -> Iterator[Row]:
    events = ctx.remember("city_events", lambda: interactions(city_dir(ctx)))
    readers = Vocabulary.from_values(events["reader_id"], "reader_id")
    titles = Vocabulary.from_values(events["title_id"], "title_id")
    r = readers.index(events["reader_id"]).astype(np.int32)
    c = titles.index(events["title_id"]).astype(np.int32)
    w = np.ones(len(r), dtype=np.float32)
    shape = (len(readers), len(titles))
    built: dict = {}

    def ours() -> None:
        built["m"] = build_matrix(events)

    def peer() -> None:
        sp.coo_matrix((w, (r, c)), shape=shape).tocsr()

    rss = PeakRSS()
    t_ours, t_peer = time_pair(ours, peer, ctx.repeats, sampler=rss)
    ctx.memo["city_matrix"] = built["m"]
    n = events.height
    yield (
        Row(
            bench="matrix",
            name="build_matrix: events/s",
            value=n / t_ours,
            unit="events/s",
            peer="scipy coo->csr of the same index arrays",
            peer_value=n / t_peer,
            peak_rss_mb=rss.peak_mb,
            extra={"events": n, "shape": list(shape), "nnz": built["m"].nnz, "seconds": t_ours, "peer_seconds": t_peer},
        )
    )
