"""The "you choose, I buy" programme and reading promotion of the synthetic city.

Purchase requests: readers (not children's cards) ask for mostly NEW books (not in the
catalogue) from their own taste clusters, at a bookstore counter (60%) or online (40%). About 15%
break a programme rule on purpose (price over 100 yuan, excluded category, published long ago,
already held in >= 3 copies, invalid ISBN check digit, more than 5 requests in a month); the
rules actually broken are recomputed from the data and kept in ``truth/requests.parquet``.
Budgets per month × district fund roughly 60-80% of the valid requests. Booklists are themed
promotions with date windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from features.schema import DISTRICTS, RequestStatus, conform
from features.synth_activity import TitleSampler, _timestamps
from features.synth_catalogue import Catalogue, author_names, class_matrix, subclass_of, title_texts
from features.synth_population import Population, registration_remap
from features.synth_sampling import (
    draw_categorical,
    draw_in_ranges,
    draw_rows,
    isbn13_check_digit,
    isbn13_strings,
    lognormal_weights,
    numbered_ids,
)
from features.synth_world import CLUSTERS, END, N_DAYS, PUBLISHERS, START, START_D64, day_weights

#: Programme defaults the generated truth is checked against (DOMAIN.md §3).
PRICE_CAP = 100.0
MAX_AGE_YEARS = 3
HELD_COPIES_CAP = 3
MONTHLY_LIMIT = 5
EXCLUDED_CATEGORIES = ("textbook", "exam_prep", "workbook", "reference", "audio_visual")
#: Share of valid requests the generated budgets can fund.
FUNDED_TARGET = 0.70
#: Intended violation types of ordinary requests and their probabilities (bursts of 7 requests in
#: a month add ~2% more, giving ~15% in all).
VIOLATIONS: dict[str, float] = {
    "price_over_cap": 0.035,
    "excluded_category": 0.03,
    "too_old": 0.025,
    "already_held": 0.025,
    "invalid_isbn": 0.025,
}
_CATEGORY_FIELDS: dict[str, tuple[str, str]] = {
    "textbook": ("G634", "义务教育教科书"),
    "exam_prep": ("G424", "高考真题汇编"),
    "workbook": ("G622", "同步练习册"),
    "reference": ("H164", "现代汉语词典"),
    "audio_visual": ("J6", "经典音乐光盘"),
}
#: A requested "new" book was published at most this many days before the request.
NEW_WINDOW_DAYS = 540


@dataclass
class Programme:
    requests: pl.DataFrame
    budgets: pl.DataFrame
    truth_requests: pl.DataFrame
    truth_request_titles: pl.DataFrame


def _new_title_pool(rng: np.random.Generator, n: int, demand: np.ndarray, isbn_body: np.ndarray) -> Catalogue:
    """New books on the market (not in the catalogue), released from 540 days before the history."""
    cluster = draw_categorical(rng, demand, n)
    release = rng.integers(-NEW_WINDOW_DAYS, N_DAYS, n)
    top = draw_rows(rng, class_matrix(), cluster)
    children = np.array([c.audience == "children" for c in CLUSTERS])[cluster]
    price = np.round(np.clip(np.exp(rng.normal(np.log(45.0), 0.3, n)) * np.where(children, 0.7, 1.0), 12.0, 95.0), 2)
    year = (START_D64 + release).astype("datetime64[Y]").astype(np.int64) + 1970
    frame = pl.DataFrame(
        {
            "isbn13": isbn13_strings(isbn_body),
            "title": title_texts(rng, top),
            "author": author_names(rng.integers(0, 90_000, n)),
            "publisher": np.array(PUBLISHERS)[rng.integers(0, len(PUBLISHERS), n)],
            "pub_year": year.astype(np.int16),
            "clc_class": subclass_of(rng, top, children),
            "price": price,
        }
    )
    return Catalogue(frame, cluster, lognormal_weights(rng, n, 1.4), release, np.zeros(n, bool), top, isbn_body)


def sample_requests(
    rng: np.random.Generator,
    n: int,
    pop: Population,
    cat: Catalogue,
    copies: pl.DataFrame,
    bookstores: pl.DataFrame,
    branches: pl.DataFrame,
    isbn_body: np.ndarray,
    print_cluster_total: np.ndarray,
    print_intents_per_year_by_cluster: np.ndarray,
) -> Programme:
    """``n`` purchase requests, the budgets and the generator's truth about them."""
    n_bursts = max(1, round(0.01 * n))
    n_base = n - 7 * n_bursts
    weight = np.where(pop.child, 0.0, pop.activity**0.7)
    reader_base = draw_categorical(rng, weight, n_base)
    day_base = registration_remap(draw_categorical(rng, day_weights(children=False), n_base), pop.reg_day[reader_base])
    # Bursts: one reader makes 7 requests within one calendar month (the 6th and 7th break the limit).
    burst_reader = np.repeat(draw_categorical(rng, weight, n_bursts), 7)
    month0 = (START_D64 + rng.integers(0, N_DAYS - 31, n_bursts)).astype("datetime64[M]").astype("datetime64[D]")
    burst_day = np.repeat((month0 - START_D64).astype(np.int64), 7) + rng.integers(0, 28, 7 * n_bursts)
    reader = np.concatenate([reader_base, burst_reader])
    day = np.clip(np.concatenate([day_base, burst_day]), 0, N_DAYS - 1)

    demand = (pop.activity[:, None] * pop.taste).sum(axis=0)
    n_pool = max(8 * len(CLUSTERS), int(0.7 * n))
    if len(isbn_body) < n_pool:
        raise ValueError(f"need {n_pool} ISBN bodies for the new-title pool, got {len(isbn_body)}")
    pool = _new_title_pool(rng, n_pool, demand / demand.sum(), isbn_body[:n_pool])
    cluster = draw_rows(rng, pop.taste, reader)
    row = TitleSampler(pool, np.ones(len(pool.cluster), bool), pool.added_day).draw(rng, cluster, day, NEW_WINDOW_DAYS)
    p = pool.frame[row]

    names = list(VIOLATIONS)
    probs = np.array(list(VIOLATIONS.values()))
    u = rng.random(n)
    edges = np.cumsum(probs)
    intended = np.where(
        u < edges[-1],
        np.array(names, dtype="U32")[np.searchsorted(edges, u, side="right").clip(0, len(names) - 1)],
        "none",
    )
    intended[n_base:] = "over_monthly_limit"
    year = (START_D64 + day).astype("datetime64[Y]").astype(np.int64) + 1970

    isbn = p["isbn13"].to_numpy().astype(object)
    title, author = p["title"].to_numpy().astype(object), p["author"].to_numpy().astype(object)
    publisher, clc = p["publisher"].to_numpy().astype(object), p["clc_class"].to_numpy().astype(object)
    pub_year = p["pub_year"].to_numpy().astype(np.int64)
    price = p["price"].to_numpy().copy()
    category = np.full(n, "general", dtype=object)
    t_cluster, t_weight = pool.cluster[row].copy(), pool.weight[row].copy()
    t_title_id = np.full(n, None, dtype=object)

    m = intended == "price_over_cap"
    price[m] = np.round(rng.uniform(105.0, 260.0, m.sum()), 2)
    m = intended == "excluded_category"
    cats = np.array(EXCLUDED_CATEGORIES)[rng.integers(0, len(EXCLUDED_CATEGORIES), m.sum())]
    category[m] = cats
    clc[m] = [_CATEGORY_FIELDS[c][0] for c in cats]
    title[m] = [_CATEGORY_FIELDS[c][1] for c in cats]
    m = intended == "too_old"
    pub_year[m] = year[m] - rng.integers(MAX_AGE_YEARS + 2, 15, m.sum())
    m = intended == "invalid_isbn"
    body = pool.isbn_body[row[m]]
    isbn[m] = isbn13_strings(body, (isbn13_check_digit(body) + rng.integers(1, 10, m.sum())) % 10).to_numpy()
    # Already held: a catalogue print title with >= 3 copies that are not lost or withdrawn.
    held = (
        copies.filter(~pl.col("status").is_in(["lost", "withdrawn"]))
        .group_by("title_id")
        .len()
        .filter(pl.col("len") >= HELD_COPIES_CAP)
    )
    cand = np.flatnonzero(
        cat.frame["title_id"].is_in(held["title_id"].implode()).to_numpy()
        & cat.frame["isbn13"].is_not_null().to_numpy()
    )
    m = intended == "already_held"
    if len(cand) == 0:
        intended[m] = "none"
    else:
        pick = cand[draw_categorical(rng, cat.weight[cand], m.sum())]
        tf = cat.frame[pick]
        isbn[m] = tf["isbn13"].to_numpy()
        title[m], author[m] = tf["title"].to_numpy(), tf["author"].to_numpy()
        publisher[m], clc[m] = tf["publisher"].to_numpy(), tf["clc_class"].to_numpy()
        pub_year[m] = tf["pub_year"].fill_null(2000).to_numpy()
        t_cluster[m], t_weight[m], t_title_id[m] = cat.cluster[pick], cat.weight[pick], tf["title_id"].to_numpy()

    # Bookstore: one in the requester's district when there is one, else any.
    home_district = branches["district"].to_numpy()[pop.home[reader]]
    bs = bookstores.sort("district", "bookstore_id")
    bs_d = bs["district"].to_numpy()
    lo = np.searchsorted(bs_d, home_district, side="left")
    hi = np.searchsorted(bs_d, home_district, side="right")
    none_here = hi == lo
    lo, hi = np.where(none_here, 0, lo), np.where(none_here, len(bs_d), hi)
    store = bs["bookstore_id"].to_numpy()[draw_in_ranges(rng, np.arange(len(bs_d) + 1, dtype=float), lo, hi)]
    channel = np.where(rng.random(n) < 0.6, "counter", "online")

    at = _timestamps(rng, day)
    order = np.lexsort((reader, at))
    frame = pl.DataFrame(
        {
            "reader_id": pop.frame["reader_id"].to_numpy()[reader],
            "bookstore_id": store,
            "isbn": pl.Series(isbn.tolist(), dtype=pl.String),
            "title": pl.Series(title.tolist(), dtype=pl.String),
            "author": pl.Series(author.tolist(), dtype=pl.String),
            "publisher": pl.Series(publisher.tolist(), dtype=pl.String),
            "pub_year": pub_year.astype(np.int16),
            "clc_class": pl.Series(clc.tolist(), dtype=pl.String),
            "category": pl.Series(category.tolist(), dtype=pl.String),
            "price": price,
            "requested_at": at,
            "channel": channel,
            "district": home_district,
            "intended": intended,
            "cluster": t_cluster,
            "weight": t_weight,
            "title_id": pl.Series(t_title_id.tolist(), dtype=pl.String),
        }
    )[order].with_columns(request_id=numbered_ids("P", n, 8, start=1))
    frame = _check_rules(frame, held["title_id"], cat.frame)
    frame, budgets = _fund(frame)

    requests = conform(frame, "purchase_requests")
    truth_requests = frame.select(
        "request_id", "intended", "violations", "breaks_rule", "funded", pl.col("district").alias("budget_district")
    )
    p_in = frame["weight"].to_numpy() / print_cluster_total[frame["cluster"].to_numpy()]
    truth_titles = (
        frame.with_columns(
            p_in_cluster=pl.Series(p_in),
            expected_loans_per_year=pl.Series(p_in * print_intents_per_year_by_cluster[frame["cluster"].to_numpy()]),
        )
        .group_by("isbn")
        .agg(
            in_catalogue=pl.col("title_id").is_not_null().first(),
            title_id=pl.col("title_id").first(),
            cluster=pl.col("cluster").first().cast(pl.Int16),
            weight=pl.col("weight").first(),
            p_in_cluster=pl.col("p_in_cluster").first(),
            expected_loans_per_year=pl.col("expected_loans_per_year").first(),
            n_requests=pl.len().cast(pl.Int32),
        )
        .sort("isbn")
    )
    return Programme(requests, budgets, truth_requests, truth_titles)


def _check_rules(frame: pl.DataFrame, held_title_ids: pl.Series, titles: pl.DataFrame) -> pl.DataFrame:
    """Recompute, from the data alone, which programme rules each request breaks."""
    held_isbns = titles.filter(pl.col("title_id").is_in(held_title_ids.implode()))["isbn13"].drop_nulls()
    digits = frame["isbn"].str.slice(0, 13).cast(pl.Int64, strict=False).fill_null(0).to_numpy()
    bad_isbn = (isbn13_check_digit(digits // 10) != digits % 10) | ~frame["isbn"].str.contains(
        r"^[0-9]{13}$"
    ).to_numpy()
    month = pl.col("requested_at").dt.strftime("%Y-%m")
    checks = {
        "price_over_cap": pl.col("price") > PRICE_CAP,
        "excluded_category": pl.col("category").is_in(list(EXCLUDED_CATEGORIES)),
        "too_old": pl.col("pub_year").cast(pl.Int32) < pl.col("requested_at").dt.year() - MAX_AGE_YEARS,
        "already_held": pl.col("isbn").is_in(held_isbns.implode()),
        "invalid_isbn": pl.Series(bad_isbn),
        "over_monthly_limit": pl.col("requested_at").rank("ordinal").over("reader_id", month) > MONTHLY_LIMIT,
    }
    flags = frame.select(**checks)
    violations = pl.concat_str([pl.when(pl.col(k)).then(pl.lit(k)) for k in checks], separator=";", ignore_nulls=True)
    return frame.with_columns(flags.select(violations.alias("violations")).to_series()).with_columns(
        breaks_rule=pl.col("violations") != ""
    )


def _fund(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Budgets per month × requester's district and yearly totals; requests are funded first come,
    first served within their month × district line.

    A line's amount is ``ratio × the district's mean monthly valid spend`` (whole 10 yuan). The
    ratio is calibrated (over a grid) so that about FUNDED_TARGET of the valid requests fit."""
    months = pl.date_range(START, END, "1mo", eager=True).dt.strftime("%Y-%m")
    grid = pl.DataFrame({"period": months}).join(pl.DataFrame({"district": list(DISTRICTS)}), how="cross")
    frame = frame.with_columns(period=pl.col("requested_at").dt.strftime("%Y-%m"))
    mean_spend = (
        frame.filter(~pl.col("breaks_rule")).group_by("district").agg(monthly=pl.col("price").sum() / len(months))
    )
    frame = frame.join(mean_spend, on="district", how="left").with_columns(
        cum=pl.when(~pl.col("breaks_rule"))
        .then(pl.col("price"))
        .otherwise(0.0)
        .cum_sum()
        .over("period", "district", order_by="requested_at"),
        monthly=pl.col("monthly").fill_null(0.0),
    )
    valid = ~frame["breaks_rule"].to_numpy()
    cum, monthly_mean = frame["cum"].to_numpy(), frame["monthly"].to_numpy()
    ratios = np.round(np.arange(0.30, 1.51, 0.02), 2)
    share = [
        ((cum <= np.maximum(np.round(r * monthly_mean, -1), 10.0)) & valid).sum() / max(valid.sum(), 1) for r in ratios
    ]
    ratio = float(ratios[int(np.argmin(np.abs(np.array(share) - FUNDED_TARGET)))])
    amount = ((pl.col("monthly") * ratio / 10).round(0) * 10).clip(10.0)
    monthly = (
        grid.join(mean_spend, on="district", how="left").with_columns(amount=amount.fill_null(10.0)).drop("monthly")
    )
    frame = frame.with_columns(funded=~pl.col("breaks_rule") & (pl.col("cum") <= amount))
    recent = pl.col("requested_at") > pl.lit(END).cast(pl.Datetime("us")) - pl.duration(days=14)
    status = (
        pl.when(pl.col("channel").eq("online") & recent & ~pl.col("breaks_rule"))
        .then(pl.lit(RequestStatus.PENDING.value))
        .when(~pl.col("funded"))
        .then(pl.lit(RequestStatus.DECLINED.value))
        .when(pl.col("channel") == "counter")
        .then(pl.lit(RequestStatus.FULFILLED.value))
        .otherwise(pl.lit(RequestStatus.RECEIVED.value))
    )
    frame = frame.with_columns(status=status).drop("cum", "monthly", "period")
    yearly = (
        monthly.with_columns(period=pl.col("period").str.slice(0, 4))
        .group_by("period")
        .agg(pl.col("amount").sum())
        .with_columns(district=pl.lit(None, pl.String))
    )
    budgets = (
        pl.concat([monthly.select("period", "district", "amount"), yearly.select("period", "district", "amount")])
        .sort("period", "district", nulls_last=False)
        .with_columns(
            budget_id=pl.lit("BUD-") + pl.col("period") + pl.lit("-") + pl.col("district").fill_null("ALL"),
            bookstore_id=pl.lit(None, pl.String),
        )
    )
    return frame, conform(budgets, "budgets")


#: Booklist themes: (theme, display name, first day, last day, selector name).
def _booklist_specs() -> list[tuple[str, str, date, date]]:
    specs: list[tuple[str, str, date, date]] = []
    for y in (2024, 2025, 2026):
        specs.append(("world_reading_day", f"World Reading Day {y}", date(y, 4, 1), date(y, 4, 30)))
        specs.append(("winter_holiday", f"Winter holiday reading {y}", date(y, 1, 15), date(y, 2, 28)))
    for y in (2023, 2024, 2025):
        specs.append(("summer_children", f"Summer reading for children {y}", date(y, 7, 1), date(y, 8, 31)))
    for y in (2024, 2025):
        specs.append(("local_history", f"City Memory: local history {y}", date(y, 9, 1), date(y, 10, 31)))
        specs.append(("award", f"Award winners {y}", date(y, 11, 1), date(y, 12, 31)))
    specs.append(("new_arrivals", "New arrivals winter 2025", date(2025, 1, 1), date(2025, 1, 31)))
    specs.append(("new_arrivals", "New arrivals spring 2026", date(2026, 3, 1), date(2026, 3, 31)))
    specs.append(("science_week", "Science week 2024", date(2024, 5, 18), date(2024, 5, 31)))
    return specs


def build_booklists(rng: np.random.Generator, cat: Catalogue) -> tuple[pl.DataFrame, pl.DataFrame]:
    """~16 themed booklists with date windows and 20-40 titles each (weighted by popularity,
    only titles already in the collection when the list starts)."""
    t = cat.frame
    audience = t["audience"].to_numpy()
    local = t["local_literature"].to_numpy()
    top = t["clc_class"].str.slice(0, 1).to_numpy()
    science = np.array([c.name == "children_science" for c in CLUSTERS])[cat.cluster] | np.isin(top, list("NOPQ"))
    kid = np.isin(audience, ("children", "teen"))
    lists, items = [], []
    for i, (theme, name, first, last) in enumerate(_booklist_specs()):
        start_day = (first - START).days
        ok = (cat.added_day <= start_day) & (audience != "adult_only")
        eligible = {
            "world_reading_day": ok,
            "winter_holiday": ok & kid,
            "summer_children": ok & (audience == "children"),
            "local_history": ok & local,
            "award": ok & (top == "I") & (audience == "general"),
            "new_arrivals": ok & (cat.added_day >= start_day - 120),
            "science_week": ok & science,
        }[theme]
        rows = np.flatnonzero(eligible)
        k = min(len(rows), int(rng.integers(20, 41)))
        booklist_id = f"BL-{i + 1:03d}"
        lists.append((booklist_id, name, theme, first, last))
        if k:
            w = cat.weight[rows]
            chosen = rng.choice(rows, size=k, replace=False, p=w / w.sum())
            items.append(
                pl.DataFrame({"booklist_id": booklist_id, "title_id": t["title_id"].to_numpy()[np.sort(chosen)]})
            )
    booklists = pl.DataFrame(lists, schema=["booklist_id", "name", "theme", "starts_on", "ends_on"], orient="row")
    return conform(booklists, "booklists"), conform(pl.concat(items), "booklist_items")
