"""The recommendation ceiling of a synthetic city: each reader's expected events per title in a window.

:func:`ceiling_scores` uses everything the generator knows (``truth/``): a reader's print
intents arrive at a rate ∝ activity and pick a cluster by taste, then a print title of that
cluster **already in the collection on that day** by popularity; a loan follows only when a copy
serves the intent (the title's served share in ``truth/title_periods.parquet``). E-book downloads
arrive ∝ e-book affinity and pick e-book titles the same way. The expected count of a reader's
events on a title within ``[start, end)`` is therefore::

    rate_format(reader) × taste[reader, cluster] × Σ_days day_weight(day) × weight / W_cluster(day) × served

where ``W_cluster(day)`` is the total weight of that cluster's titles of the same format held on
that day. Ranking each reader's titles by it maximises the expected hits of any top-k list: no
model that sees only the data can do better in expectation, so it is a true ceiling (unlike
:func:`features.synth.oracle_scores`, static tastes that ignore arrivals, formats and copies).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from features.synth_world import N_CLUSTERS, N_DAYS, START, day_weights
from features.vocab import Vocabulary


def _day(x: date | datetime) -> int:
    d = x.date() if isinstance(x, datetime) else x
    return (d - START).days


def _availability(cluster, ebook, weight, added, lo: int, hi: int, children: bool) -> np.ndarray:
    """Per title: Σ over days in ``[lo, hi)`` of day weight × weight / held weight of its cluster
    and format on that day (0 for days before it arrived)."""
    days = np.arange(lo, hi)
    key = (cluster * 2 + ebook).astype(np.int64)
    # Held weight per (cluster, format) and day: titles added on or before the day.
    grid = np.zeros((N_CLUSTERS * 2, hi - lo))
    first = np.clip(added - lo, 0, None)
    ok = first < hi - lo
    np.add.at(grid, (key[ok], first[ok]), weight[ok])
    held = np.cumsum(grid, axis=1)
    all_days = day_weights(children)
    dw = all_days[days] / all_days.sum()  # the share of a reader's draws that fall on each day
    share = np.where(held > 0, dw[None, :] / np.where(held > 0, held, 1.0), 0.0)
    cum = np.concatenate([np.zeros((len(share), 1)), np.cumsum(share, axis=1)], axis=1)
    # Days from the title's arrival to the window's end.
    return weight * (cum[key, -1] - cum[key, np.minimum(first, hi - lo)])


def ceiling_scores(
    data_dir: Path | str, reader_ids, title_ids, start: date | datetime, end: date | datetime | None = None
) -> np.ndarray:
    """Expected events (loans and e-book downloads) of each reader on each title within
    ``[start, end)`` (default: to the end of the history), from the generator's truth.

    Returns float32 ``len(readers) × len(titles)``. Raises ``KeyError`` for unknown ids."""
    d = Path(data_dir)
    lo, hi = max(_day(start), 0), N_DAYS if end is None else min(_day(end), N_DAYS)
    taste = pl.read_parquet(
        d / "truth" / "reader_taste.parquet", columns=["reader_id", "taste", "activity", "ebook_affinity"]
    )
    readers = pl.read_parquet(d / "readers.parquet", columns=["reader_id", "card_type"])
    taste = taste.join(readers, on="reader_id", how="left", maintain_order="left")
    r = Vocabulary(taste["reader_id"], "reader_id").index(pl.Series(list(reader_ids), dtype=pl.String))
    if (r < 0).any():
        raise KeyError(f"{d}/truth/reader_taste.parquet: {(r < 0).sum()} of {len(r)} reader ids unknown")
    titles = _title_terms(d, lo, hi)
    t = Vocabulary(titles["title_id"], "title_id").index(pl.Series(list(title_ids), dtype=pl.String))
    if (t < 0).any():
        raise KeyError(f"{d}: {(t < 0).sum()} of {len(t)} title ids unknown to the truth")
    ebook = titles["ebook"].to_numpy()[t]
    rate = _format_rates(d, taste)[r]  # readers × 2 (print, e-book)
    child = (taste["card_type"] == "child").to_numpy()[r]
    avail = np.where(child[:, None], titles["avail_child"].to_numpy()[t], titles["avail_adult"].to_numpy()[t])
    tastes = taste["taste"].to_numpy()[r][:, titles["cluster"].to_numpy()[t]]
    return (rate[:, ebook.astype(np.int64)] * tastes * avail).astype(np.float32)


def _title_terms(d: Path, lo: int, hi: int) -> pl.DataFrame:
    """Per title: cluster, format, availability in the window for children and adults (× the
    share of print intents served in the last period of the truth)."""
    latent = pl.read_parquet(d / "truth" / "title_latent.parquet", columns=["title_id", "cluster", "weight"])
    meta = pl.read_parquet(d / "titles.parquet", columns=["title_id", "format", "added_at"])
    served = (
        pl.read_parquet(d / "truth" / "title_periods.parquet")
        .filter(pl.col("period") == pl.col("period").max())
        .select(
            "title_id", share=pl.when(pl.col("intents") > 0).then(pl.col("loans") / pl.col("intents")).otherwise(1.0)
        )
    )
    x = (
        latent.join(meta, on="title_id", how="left", maintain_order="left")
        .join(served, on="title_id", how="left", maintain_order="left")
        .with_columns(ebook=pl.col("format") == "ebook", share=pl.col("share").fill_null(1.0))
    )
    cluster = x["cluster"].to_numpy().astype(np.int64)
    ebook = x["ebook"].to_numpy()
    weight = x["weight"].to_numpy()
    added = (x["added_at"].to_numpy() - np.datetime64(START, "D")).astype(np.int64)
    share = x["share"].to_numpy()
    args = (cluster, ebook, weight, added, lo, hi)
    return (
        x.select("title_id", "cluster", "ebook")
        .with_columns(
            # E-book events follow the adults' calendar for every reader.
            avail_child=pl.Series(_availability(*args, children=True) * share),
            avail_adult=pl.Series(_availability(*args, children=False) * share),
        )
        .with_columns(avail_child=pl.when("ebook").then("avail_adult").otherwise("avail_child"))
    )


def _format_rates(d: Path, taste: pl.DataFrame) -> np.ndarray:
    """Per reader: expected print intents and e-book downloads over the history (∝ activity and
    e-book affinity, scaled by the city's totals)."""
    intents = pl.scan_parquet(d / "truth" / "title_periods.parquet").select(pl.col("intents").sum()).collect().item()
    downloads = (
        pl.scan_parquet(d / "ebook_events.parquet")
        .filter(pl.col("action") == "download")
        .select(pl.len())
        .collect()
        .item()
    )
    act = taste["activity"].to_numpy()
    aff = taste["ebook_affinity"].to_numpy()
    return np.stack([intents * act / act.sum(), downloads * aff / max(aff.sum(), 1e-12)], axis=1)
