"""Batch lists for many readers (the app's nightly refresh) on one machine, honouring readers' choices.

:func:`batch_lists` ranks readers in chunks through :class:`recsys.service.RecommendationService`,
with the online service's filters, promotion and fallbacks. A reader who refused personalisation
gets the list the API would show them (filtered popularity, nothing from their history); a reader
who refused promotion gets the model's own ranking. Rows: ``reader_id``, ``rank`` (int16, 1 = best),
``title_id``, ``score`` (float32), the columns of the Spark nightly lists (:mod:`recsys.spark.nightly`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import polars as pl

from recsys.service import Recommendation, RecommendationService

#: Polars schema of the written lists (the Spark nightly job's OUTPUT_SCHEMA).
LIST_SCHEMA = {"reader_id": pl.String, "rank": pl.Int16, "title_id": pl.String, "score": pl.Float32}


def batch_lists(
    service: RecommendationService,
    reader_ids: Sequence[str],
    n: int = 20,
    *,
    not_personalised: Collection[str] = (),
    no_promotion: Collection[str] = (),
    chunk: int = 2048,
) -> pl.DataFrame:
    """Every reader's top-``n``, sorted by reader and rank.

    Args:
        reader_ids: readers to list (duplicates ignored).
        not_personalised: readers who refused personalisation (stored preference) or erased their
            profile: a non-personalised list.
        no_promotion: readers who refused reading-promotion boosts.
        chunk: readers ranked per call (memory: chunk × titles scores).
    """
    refused, plain = set(not_personalised), set(no_promotion)
    groups: dict[tuple[bool, bool], list[str]] = {}
    for rid in dict.fromkeys(reader_ids):
        groups.setdefault((rid not in refused, rid not in plain), []).append(rid)
    frames = [pl.DataFrame(schema=LIST_SCHEMA)]
    for (personalised, promotion), ids in sorted(groups.items()):
        for start in range(0, len(ids), chunk):
            out = service.recommend_for_readers(
                ids[start : start + chunk], n, None, promotion, personalised=personalised
            )
            frames.append(_frame(out))
    return pl.concat(frames).sort("reader_id", "rank")


def _frame(lists: Mapping[str, list[Recommendation]]) -> pl.DataFrame:
    """One row per recommended title of each reader's list."""
    return pl.DataFrame(
        {
            "reader_id": [rid for rid, recs in lists.items() for _ in recs],
            "rank": [i for recs in lists.values() for i in range(1, len(recs) + 1)],
            "title_id": [r.title_id for recs in lists.values() for r in recs],
            "score": [r.score for recs in lists.values() for r in recs],
        },
        schema=LIST_SCHEMA,
    )
