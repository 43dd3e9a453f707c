"""Titles and copies of the synthetic city.

Every title belongs to one taste cluster and has a popularity weight (lognormal, so a small head
of titles takes most loans). A reader's chance to borrow a title in one draw is
``taste[reader, cluster] × weight / cluster_weight``: the oracle score kept in ``truth/``.
Titles arrive over time (``added_at``): about 70% are backlist, 30% new arrivals spread over the
three years. Print titles get copies (more for popular ones) spread over branches by footfall.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from features.schema import CLC_TOP_CLASSES, conform
from features.synth_population import Population, day_to_date
from features.synth_sampling import (
    cumulative,
    draw_categorical,
    draw_in_ranges,
    draw_rows,
    isbn13_check_digit,
    isbn13_strings,
    lognormal_weights,
    numbered_ids,
)
from features.synth_world import (
    CHILDREN_CLC,
    CLC_SUBCLASSES,
    CLUSTERS,
    FOOTFALL,
    GIVEN,
    LOCAL_PUBLISHERS,
    N_CLUSTERS,
    N_DAYS,
    PUBLISHERS,
    SURNAMES,
    TAIL_DEFAULT,
    TITLE_HEAD,
    TITLE_TAIL,
)

_log = logging.getLogger(__name__)

TOP_LETTERS = np.array(list(CLC_TOP_CLASSES))
#: Title popularity spread (lognormal sigma): ~1.4 gives the top 10% of titles about half the loans.
POPULARITY_SIGMA = 1.4
BACKLIST_SHARE = 0.7
EBOOK_SHARE = 0.15


@dataclass
class Catalogue:
    """Titles as aligned arrays (index = row of ``frame``) plus the schema frame."""

    frame: pl.DataFrame
    cluster: np.ndarray
    weight: np.ndarray  #: popularity weight
    added_day: np.ndarray  #: day the title entered the collection, relative to START
    ebook: np.ndarray  #: bool
    top: np.ndarray  #: CLC top letter index into TOP_LETTERS
    isbn_body: np.ndarray  #: 12-digit bodies of synthetic ISBNs (real ISBNs: -1)


def cluster_demand(pop: Population) -> np.ndarray:
    """Share of all borrowing that falls into each cluster (activity-weighted taste)."""
    d = (pop.activity[:, None] * pop.taste).sum(axis=0)
    return d / d.sum()


def class_matrix() -> np.ndarray:
    """(n_clusters × 22) CLC top-class probabilities of each cluster."""
    m = np.zeros((N_CLUSTERS, len(TOP_LETTERS)))
    for i, c in enumerate(CLUSTERS):
        for letter, w in c.classes.items():
            m[i, np.flatnonzero(letter == TOP_LETTERS)[0]] = w
    return m / m.sum(axis=1, keepdims=True)


def subclass_of(rng: np.random.Generator, top: np.ndarray, children: np.ndarray) -> np.ndarray:
    """A finer CLC class for each top-class index (children's literature/art get I287/J238)."""
    lists = [CLC_SUBCLASSES[letter] for letter in TOP_LETTERS]
    flat = np.array([s for lst in lists for s in lst])
    counts = np.array([len(lst) for lst in lists])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = flat[offsets[top] + (rng.random(len(top)) * counts[top]).astype(np.int64)]
    for letter, cls in CHILDREN_CLC.items():
        out = np.where(children & (TOP_LETTERS[top] == letter), cls, out)
    return out


def author_names(index: np.ndarray) -> np.ndarray:
    """Deterministic Chinese author names for author indices (about 92k distinct)."""
    s, g = np.array(SURNAMES), np.array(GIVEN)
    a = index.astype(np.int64)
    return np.char.add(np.char.add(s[a % len(s)], g[(a // len(s)) % len(g)]), g[(a // (len(s) * len(g))) % len(g)])


def title_texts(rng: np.random.Generator, top: np.ndarray) -> np.ndarray:
    """Synthetic title proper: a head phrase and a class-flavoured noun."""
    tails = [TITLE_TAIL.get(letter, TAIL_DEFAULT) for letter in TOP_LETTERS]
    flat = np.array([t for lst in tails for t in lst])
    counts = np.array([len(lst) for lst in tails])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tail = flat[offsets[top] + (rng.random(len(top)) * counts[top]).astype(np.int64)]
    head = np.array(TITLE_HEAD)[rng.integers(0, len(TITLE_HEAD), len(top))]
    return np.char.add(head, tail)


def draw_authors(rng: np.random.Generator, cluster: np.ndarray, n_per_cluster: np.ndarray) -> np.ndarray:
    """Author index per title, from its cluster's own pool with Zipf-like productivity."""
    pool = np.maximum(5, n_per_cluster // 4)
    starts = np.concatenate([[0], np.cumsum(pool)])
    rank = np.arange(starts[-1]) - np.repeat(starts[:-1], pool)
    cum = cumulative(1.0 / (rank + 1.0) ** 0.8)
    return draw_in_ranges(rng, cum, starts[cluster], starts[cluster + 1])


def build_titles(
    rng: np.random.Generator, n: int, demand: np.ndarray, isbn_body: np.ndarray, catalogue: Path | None
) -> Catalogue:
    """``n`` titles; ``isbn_body`` supplies at least ``n`` distinct synthetic ISBN bodies."""
    cluster = draw_categorical(rng, demand**0.8, n)
    ebook = rng.random(n) < EBOOK_SHARE
    # Every (cluster, format) pair gets backlist titles so that any loan day can find one.
    first = np.unique(cluster * 2 + ebook, return_index=True)[1]
    backlist = rng.random(n) < BACKLIST_SHARE
    backlist[first] = True
    added_day = np.where(backlist, -rng.integers(1, 365 * 15, n), rng.integers(0, N_DAYS, n))
    order = np.argsort(added_day, kind="stable")  # accession order = title id order
    cluster, ebook, added_day = cluster[order], ebook[order], added_day[order]

    weight = lognormal_weights(rng, n, POPULARITY_SIGMA)
    top = draw_rows(rng, class_matrix(), cluster)
    audience_of = np.array([c.audience for c in CLUSTERS])
    audience = audience_of[cluster]
    adult_only_share = np.array([c.adult_only for c in CLUSTERS])
    audience = np.where(rng.random(n) < adult_only_share[cluster], "adult_only", audience)
    children = audience == "children"
    clc = subclass_of(rng, top, children)
    local_cluster = np.array([c.name == "local_history" for c in CLUSTERS])
    local = (local_cluster[cluster] & (rng.random(n) < 0.35)) | (rng.random(n) < 0.012)
    local &= ~children

    added = day_to_date(added_day)
    added_year = added.dt.year().to_numpy()
    pub_year = np.where(
        added_day >= 0, added_year - (rng.random(n) < 0.3), added_year - rng.geometric(0.35, n) + 1
    ).astype(np.int16)
    price = np.exp(rng.normal(np.log(42.0), 0.4, n))
    price *= np.where(children, 0.7, 1.0) * np.where(np.isin(TOP_LETTERS[top], ("T", "R", "F", "O")), 1.3, 1.0)
    price = np.round(np.clip(price, 6.0, 398.0), 2)
    foreign = np.array([c.name == "foreign_fiction" for c in CLUSTERS])
    language = np.where(rng.random(n) < np.where(foreign[cluster], 0.2, 0.03), "en", "zh")
    publisher = np.where(
        local,
        np.array(LOCAL_PUBLISHERS)[rng.integers(0, len(LOCAL_PUBLISHERS), n)],
        np.array(PUBLISHERS)[rng.integers(0, len(PUBLISHERS), n)],
    )
    keyword = np.array([c.keyword for c in CLUSTERS])[cluster]
    subjects = np.char.add(
        np.char.add(keyword, ";"), np.where(local, "城市记忆", np.array(list(CLC_TOP_CLASSES.values()))[top])
    )
    n_per_cluster = np.bincount(cluster, minlength=N_CLUSTERS)
    author = author_names(draw_authors(rng, cluster, n_per_cluster))
    body = isbn_body[:n].copy()
    frame = pl.DataFrame(
        {
            "title_id": numbered_ids("T", n, 7, start=1),
            "isbn13": isbn13_strings(body),
            "title": title_texts(rng, top),
            "author": author,
            "publisher": publisher,
            "pub_year": pub_year,
            "clc_class": clc,
            "audience": audience,
            "language": language,
            "list_price": price,
            "format": np.where(ebook, "ebook", "print"),
            "local_literature": local,
            "subjects": subjects,
            "added_at": added,
        }
    )
    if catalogue is not None:
        frame, body = _merge_real_titles(frame, weight, top, body, catalogue)
    return Catalogue(conform(frame, "titles"), cluster, weight, added_day, ebook, top, body)


def _merge_real_titles(
    frame: pl.DataFrame, weight: np.ndarray, top: np.ndarray, body: np.ndarray, catalogue: Path
) -> tuple[pl.DataFrame, np.ndarray]:
    """Replace the bibliographic fields of part of the catalogue by real records.

    Real titles are matched to synthetic slots of the same CLC top class (letter ``I`` when the
    real record has no class), the most popular real records (file order) to the most popular
    slots, so that a well-known book stays popular. At most half the catalogue is replaced."""
    path = Path(catalogue) / "titles.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: --catalogue needs a titles.parquet in the titles schema")
    real = pl.read_parquet(path)
    missing = {"title", "isbn13"} - set(real.columns)
    if missing:
        raise ValueError(f"{path}: titles.parquet lacks column(s) {sorted(missing)}")
    cols = real.columns
    real = (
        real.select(
            pl.col("isbn13").cast(pl.String),
            pl.col("title").cast(pl.String).alias("real_title"),
            (pl.col("author") if "author" in cols else pl.lit(None)).cast(pl.String).alias("real_author"),
            (pl.col("publisher") if "publisher" in cols else pl.lit(None)).cast(pl.String).alias("real_publisher"),
            (pl.col("pub_year") if "pub_year" in cols else pl.lit(None)).cast(pl.Int16).alias("real_pub_year"),
            (pl.col("language") if "language" in cols else pl.lit("en")).cast(pl.String).alias("real_language"),
            (pl.col("clc_class").str.slice(0, 1) if "clc_class" in cols else pl.lit("I"))
            .cast(pl.String)
            .fill_null("I")
            .alias("top"),
        )
        .filter(pl.col("isbn13").str.contains(r"^97[89][0-9]{10}$") & pl.col("real_title").is_not_null())
        .unique("isbn13", keep="first", maintain_order=True)
    )
    digits = real["isbn13"].cast(pl.Int64).to_numpy()
    real = real.filter(pl.Series(isbn13_check_digit(digits // 10) == digits % 10))
    real = real.head(len(frame) // 2).with_columns(rank=pl.int_range(pl.len()).over("top"))
    slots = pl.DataFrame({"row": np.arange(len(frame)), "top": TOP_LETTERS[top], "w": weight}).with_columns(
        rank=pl.col("w").rank("ordinal", descending=True).over("top").cast(pl.Int64) - 1
    )
    matched = slots.join(real.with_columns(pl.col("rank").cast(pl.Int64)), on=["top", "rank"], how="inner")
    _log.info("catalogue %s: %d real records used of %d", path, len(matched), len(real))
    merged = (
        frame.with_row_index("row")
        .join(
            matched.select(pl.col("row").cast(pl.UInt32), pl.exclude("row", "top", "w", "rank")), on="row", how="left"
        )
        .with_columns(
            isbn13=pl.coalesce("isbn13_right", "isbn13"),
            title=pl.coalesce("real_title", "title"),
            author=pl.coalesce("real_author", "author"),
            publisher=pl.coalesce("real_publisher", "publisher"),
            pub_year=pl.coalesce(pl.min_horizontal("real_pub_year", pl.col("added_at").dt.year()), "pub_year"),
            language=pl.coalesce("real_language", "language"),
        )
        .sort("row")
    )
    body = np.where(merged["real_title"].is_null().to_numpy(), body, -1)
    return merged.drop("row"), body


def build_copies(
    rng: np.random.Generator, cat: Catalogue, branches: pl.DataFrame, expected_loans_per_year: np.ndarray
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Copies of print titles: ``1 + Poisson(expected loans per year / 7)`` (capped at 40), the
    first at the central or a district library, the rest spread by branch footfall.

    Returns the frame (sorted by title) and, per title row, the first copy row and copy count."""
    print_rows = np.flatnonzero(~cat.ebook)
    lam = expected_loans_per_year[print_rows] / 7.0
    n_copies = np.minimum(1 + rng.poisson(lam), 40)
    title_row = np.repeat(print_rows, n_copies)
    m = len(title_row)
    first_of_title = np.concatenate([[True], title_row[1:] != title_row[:-1]])
    kinds = branches["kind"].to_numpy()
    footfall = np.array([FOOTFALL[k] for k in kinds]) * (kinds != "delivery_hub")
    big = np.flatnonzero(np.isin(kinds, ("central", "district_library")))
    branch = np.where(first_of_title, big[rng.integers(0, len(big), m)], draw_categorical(rng, footfall, m))
    added = cat.added_day[title_row]
    new_title = added >= 0
    source = np.select(
        [new_title & (rng.random(m) < 0.06), rng.random(m) < 0.08],
        ["reader_choice", "donation"],
        "regular_order",
    )
    frame = pl.DataFrame(
        {
            "copy_id": numbered_ids("C", m, 9, start=1),
            "title_id": cat.frame["title_id"].gather(title_row),
            "branch_id": branches["branch_id"].gather(branch),
            "status": np.full(m, "on_shelf"),
            "acquired_at": day_to_date(added),
            "source": source,
        }
    )
    first_copy = np.full(len(cat.frame), -1, dtype=np.int64)
    count = np.zeros(len(cat.frame), dtype=np.int64)
    starts = np.flatnonzero(first_of_title)
    first_copy[title_row[starts]] = starts
    count[print_rows] = n_copies
    return frame, first_copy, count
