"""Collection analytics librarians use (DOMAIN.md §4), as a Markdown + HTML report with PNG plots.

:func:`collection_metrics` computes the tables with lazy polars pipelines over a data directory;
:func:`write_report` renders them (``yuedu acquisition report --data DIR --out FILE.md``).
:func:`collection_report` is the served form (the staff API's ``/v1/reports/collection``) over the
loaded :class:`recsys.context.LibraryContext`; both classify supply vs demand per class with
:func:`supply_vs_demand`, which also feeds a round's fallback ranking (:func:`class_demand`).

* turnover (loans per copy per year) and circulation per item, per CLC top class;
* supply vs demand per class and district (:mod:`acquisition.gaps`);
* holds-to-copies alerts: titles whose holds in the window exceed ``alert_ratio`` x their copies;
* dead stock: copies (not lost / withdrawn) not borrowed in ``dead_months`` months;
* dead on arrival: copies acquired in the window, at least ``doa_months`` months before its end,
  never borrowed since (by acquisition source: reader-chosen copies should be rare here);
* turnover per district x class two ways: by the district's branches' loans (demand, including
  copies delivered from elsewhere: :mod:`acquisition.gaps`), and by the copies homed in the district
  (``home_*``: what those copies themselves circulated, never above one copy's capacity);
* the programme KPI: loans per copy of reader-chosen vs library-selected (regular order) copies;
* age of the collection per class (years since acquisition).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from acquisition.gaps import HOLDS_ALERT_RATIO, gap_table
from acquisition.value import Circulation
from features.schema import CLC_TOP_CLASSES, LocalDateTime, clc_top, scan_table
from recsys.context import CLC_LETTERS, LibraryContext

_log = logging.getLogger(__name__)


@dataclass
class CollectionMetrics:
    """The report's tables; ``as_of`` is the end of the window, ``window_days`` its length."""

    as_of: datetime
    window_days: int
    by_class: pl.DataFrame
    by_source: pl.DataFrame
    gaps: pl.DataFrame
    holds_alerts: pl.DataFrame
    dead_stock: pl.DataFrame
    headline: dict[str, float]
    #: Copies acquired in the window (``doa_months`` before its end at the latest) never borrowed.
    dead_on_arrival: pl.DataFrame | None = None
    #: Loans in the window of the copies homed in each district x class (copies, loans).
    home_cells: pl.DataFrame | None = None


def collection_metrics(
    data_dir: str | Path,
    *,
    as_of: datetime | None = None,
    window_days: int = 365,
    dead_months: int = 24,
    alert_ratio: float = HOLDS_ALERT_RATIO,
    doa_months: int = 6,
) -> CollectionMetrics:
    """Compute every table of the report over the ``window_days`` before ``as_of`` (default: last loan)."""
    loans = scan_table(data_dir, "loans")
    if as_of is None:
        as_of = loans.select(pl.col("borrowed_at").max()).collect().item()
    start = as_of - timedelta(days=window_days)
    years = window_days / 365.0
    titles = scan_table(data_dir, "titles").select("title_id", clc_top(pl.col("clc_class")).alias("top"))
    copies = (
        scan_table(data_dir, "copies")
        .filter(~pl.col("status").is_in(["lost", "withdrawn"]) & (pl.col("acquired_at") <= as_of.date()))
        .join(titles, on="title_id")
    )
    copy_stats = _copy_stats(copies, loans, start, as_of)
    by_class = _by_class(copy_stats, years)
    dead_cut = as_of - timedelta(days=round(dead_months * 30.44))
    dead = copy_stats.filter(
        (pl.col("borrowed_at").is_null() | (pl.col("borrowed_at") < dead_cut))
        & (pl.col("acquired_at") < dead_cut.date())
    )
    dead_stock = (
        dead.group_by("top")
        .agg(pl.len().alias("dead_copies"))
        .join(by_class.select("top", "copies"), on="top")
        .with_columns((pl.col("dead_copies") / pl.col("copies")).alias("share_dead"))
        .sort("dead_copies", descending=True)
    )
    total_loans = int(copy_stats["loans"].sum())
    headline = {
        "copies": float(copy_stats.height),
        "loans_in_window": float(total_loans),
        "turnover_per_year": total_loans / max(1, copy_stats.height) / years,
        "dead_share": dead.height / max(1, copy_stats.height),
        "median_age_years": float(copy_stats["age_years"].median() or 0.0),
    }
    return CollectionMetrics(
        as_of=as_of,
        window_days=window_days,
        by_class=by_class,
        by_source=_by_source(copy_stats, years),
        gaps=gap_table(data_dir, as_of=as_of, window_days=window_days),
        holds_alerts=_holds_alerts(data_dir, copies, start, as_of, alert_ratio),
        dead_stock=dead_stock,
        headline=headline,
        dead_on_arrival=_dead_on_arrival(data_dir, copy_stats, start, as_of, doa_months),
        home_cells=_home_cells(data_dir, copy_stats),
    )


def _dead_on_arrival(
    data_dir: str | Path, copy_stats: pl.DataFrame, start: datetime, as_of: datetime, doa_months: int
) -> pl.DataFrame:
    """Copies acquired between the window's start and ``doa_months`` before ``as_of``, never borrowed."""
    latest = (as_of - timedelta(days=round(doa_months * 30.44))).date()
    titles = scan_table(data_dir, "titles").select("title_id", "title", "clc_class").collect()
    return (
        copy_stats.filter(pl.col("borrowed_at").is_null() & pl.col("acquired_at").is_between(start.date(), latest))
        .join(titles, on="title_id", how="left")
        .select("copy_id", "title_id", "title", "clc_class", "top", "branch_id", "source", "acquired_at")
        .sort("acquired_at", "copy_id")
    )


def _home_cells(data_dir: str | Path, copy_stats: pl.DataFrame) -> pl.DataFrame:
    """Copies and their loans in the window per district (of the copy's home branch) x class."""
    branches = scan_table(data_dir, "branches").select("branch_id", "district").collect()
    return (
        copy_stats.join(branches, on="branch_id")
        .filter(pl.col("top").is_not_null())
        .group_by("district", "top")
        .agg(pl.len().alias("copies"), pl.col("loans").sum().alias("loans"))
        .sort("district", "top")
    )


def _copy_stats(copies: pl.LazyFrame, loans: pl.LazyFrame, start: datetime, as_of: datetime) -> pl.DataFrame:
    """One row per held copy: its loans in the window, its last loan before ``as_of``, its age (years)."""
    window_loans = loans.filter(pl.col("borrowed_at").is_between(start, as_of))
    loans_per_copy = window_loans.drop_nulls("copy_id").group_by("copy_id").agg(pl.len().alias("loans"))
    last_loan = loans.filter(pl.col("borrowed_at") <= as_of).group_by("copy_id").agg(pl.col("borrowed_at").max())
    return (
        copies.join(loans_per_copy, on="copy_id", how="left")
        .join(last_loan, on="copy_id", how="left")
        .with_columns(
            pl.col("loans").fill_null(0),
            ((pl.lit(as_of.date()) - pl.col("acquired_at")).dt.total_days() / 365.25).alias("age_years"),
        )
        .collect()
    )


def _by_class(copy_stats: pl.DataFrame, years: float) -> pl.DataFrame:
    """Turnover, circulation, age and supply vs demand per CLC top class."""
    by_class = copy_stats.group_by("top").agg(
        pl.len().alias("copies"),
        pl.col("loans").sum(),
        (pl.col("loans").sum() / pl.len() / years).alias("turnover_per_year"),
        (pl.col("loans") > 0).mean().alias("share_circulating"),
        pl.col("age_years").median().alias("median_age_years"),
    )
    return supply_vs_demand(by_class, copies="copies", loans="loans").sort("loans", descending=True)


def _by_source(copy_stats: pl.DataFrame, years: float) -> pl.DataFrame:
    """Loans per copy per acquisition source (the programme KPI: reader choice vs regular order)."""
    return (
        copy_stats.group_by("source")
        .agg(
            pl.len().alias("copies"),
            pl.col("loans").sum(),
            (pl.col("loans").sum() / pl.len() / years).alias("loans_per_copy_per_year"),
        )
        .with_columns((pl.col("loans") / pl.col("loans").sum()).alias("share_of_loans"))
        .sort("source")
    )


def _holds_alerts(
    data_dir: str | Path, copies: pl.LazyFrame, start: datetime, as_of: datetime, alert_ratio: float
) -> pl.DataFrame:
    """Titles whose holds placed in the window exceed ``alert_ratio`` x their held copies."""
    holds = (
        scan_table(data_dir, "holds")
        .filter(pl.col("placed_at").is_between(start, as_of))
        .group_by("title_id")
        .agg(pl.len().alias("holds"))
    )
    return (
        holds.join(copies.group_by("title_id").agg(pl.len().alias("copies")), on="title_id", how="left")
        .with_columns(pl.col("copies").fill_null(0))
        .with_columns((pl.col("holds") / pl.col("copies").clip(lower_bound=1)).alias("holds_per_copy"))
        .filter(pl.col("holds_per_copy") > alert_ratio)
        .join(scan_table(data_dir, "titles").select("title_id", "title", "clc_class"), on="title_id", how="left")
        .sort("holds_per_copy", descending=True)
        .collect()
    )


# --- supply vs demand per class: one implementation for the report, the API and the round fallback ----

#: A class is under-supplied when its share of loans exceeds its share of copies by more than this
#: factor, and over-supplied below its inverse (0.8).
UNDER_SUPPLY_RATIO = 1.25


def supply_vs_demand(frame: pl.DataFrame, *, copies: str, loans: str) -> pl.DataFrame:
    """Add ``share_of_collection``, ``share_of_loans`` and ``supply`` (``under`` / ``over`` /
    ``balanced``) to a frame with one row per class and its ``copies`` and ``loans`` columns."""
    s_share = pl.col(copies) / pl.max_horizontal(pl.col(copies).sum(), pl.lit(1.0))
    l_share = pl.col(loans) / pl.max_horizontal(pl.col(loans).sum(), pl.lit(1.0))
    shares = frame.with_columns(s_share.alias("share_of_collection"), l_share.alias("share_of_loans"))
    ratio = (
        pl.when(pl.col("share_of_collection") > 0)
        .then(pl.col("share_of_loans") / pl.col("share_of_collection"))
        .otherwise(float("inf"))
    )
    supply = (
        pl.when(ratio > UNDER_SUPPLY_RATIO)
        .then(pl.lit("under"))
        .when(ratio < 1 / UNDER_SUPPLY_RATIO)
        .then(pl.lit("over"))
        .otherwise(pl.lit("balanced"))
    )
    return shares.with_columns(supply.alias("supply"))


def class_supply(context: LibraryContext) -> pl.DataFrame:
    """Per CLC top class with titles in the served catalogue: ``clc_top``, ``name``, ``titles``,
    ``copies_on_shelf``, ``loans`` (the context's whole-history popularity), ``share_of_collection``,
    ``share_of_loans``, ``turnover`` (loans per on-shelf copy, null without copies) and ``supply``."""
    k = len(CLC_LETTERS)
    cls = np.where(context.clc_top >= 0, context.clc_top, k).astype(np.int64)
    copies = np.asarray(context.on_shelf.sum(axis=1)).ravel()
    frame = pl.DataFrame(
        {
            "clc_top": list(CLC_LETTERS),
            "name": [str(CLC_TOP_CLASSES[c]) for c in CLC_LETTERS],
            "titles": np.bincount(cls, minlength=k + 1)[:k].astype(np.int64),
            "copies_on_shelf": np.bincount(cls, weights=copies, minlength=k + 1)[:k].astype(np.int64),
            "loans": np.bincount(cls, weights=context.popularity, minlength=k + 1)[:k].astype(np.float64),
        }
    )
    turnover = pl.when(pl.col("copies_on_shelf") > 0).then(pl.col("loans") / pl.col("copies_on_shelf")).otherwise(None)
    return (
        supply_vs_demand(frame, copies="copies_on_shelf", loans="loans")
        .with_columns(turnover.alias("turnover"))
        .filter(pl.col("titles") > 0)
    )


class ClassSupply(BaseModel):
    """One CLC top class of the collection report (over the report's window)."""

    model_config = ConfigDict(frozen=True)

    clc_top: str
    name: str = Field(description="The class's name (English; zh-CN in features.names.CLC_TOP_ZH).")
    copies: int = Field(description="Copies held (not lost or withdrawn, acquired by the window's end).")
    loans: int = Field(description="Loans of those copies in the window.")
    turnover_per_year: float = Field(description="Loans per copy per year over the window.")
    share_of_collection: float
    share_of_loans: float
    supply: Literal["over", "under", "balanced"]


class DistrictCell(BaseModel):
    """Turnover of one district x class cell (the heat map)."""

    model_config = ConfigDict(frozen=True)

    district: str
    clc_top: str
    copies: int
    loans_per_copy_per_year: float = Field(
        description="Loans made at the district's branches per copy held there, per year (demand: includes "
        "copies delivered from other districts, so it can exceed what one copy can circulate)."
    )
    home_copies: int = Field(0, description="Copies whose home branch is in the district.")
    home_loans_per_copy_per_year: float = Field(
        0.0, description="Loans of those copies themselves per copy per year (bounded by one copy's capacity)."
    )


class HoldsAlert(BaseModel):
    """A title whose holds in the window exceed the alert ratio times its copies."""

    model_config = ConfigDict(frozen=True)

    title_id: str
    title: str | None
    clc_class: str | None
    holds: int
    copies: int
    holds_per_copy: float


class DeadOnArrival(BaseModel):
    """A copy acquired in the window that has never been borrowed (months after its arrival)."""

    model_config = ConfigDict(frozen=True)

    copy_id: str
    title_id: str
    title: str | None
    clc_class: str | None
    branch_id: str | None
    source: str | None
    acquired_at: date


class CollectionReport(BaseModel):
    """The collection report: ONE computation (:func:`collection_metrics` over the data directory)
    behind ``yuedu acquisition report``, ``GET /v1/reports/collection`` and the staff page, so the
    three agree to the digit."""

    model_config = ConfigDict(frozen=True)

    as_of: LocalDateTime = Field(description="End of the window (the last loan in the data by default).")
    window_days: int
    copies: int
    loans_in_window: int
    turnover_per_year: float = Field(description="Loans per copy per year over the window, network-wide.")
    dead_share: float = Field(description="Share of copies not borrowed in 24 months (held that long).")
    classes: list[ClassSupply]
    cells: list[DistrictCell]
    by_source: dict[str, float] = Field(description="Loans per copy per year by acquisition source.")
    holds_alerts: list[HoldsAlert] = Field(default_factory=list, description="Every holds-to-copies alert.")
    dead_on_arrival: list[DeadOnArrival] = Field(
        default_factory=list, description="Copies acquired in the window, never borrowed 6 months on (first 200)."
    )
    dead_on_arrival_total: int = Field(0, description="How many such copies there are in all.")
    dead_on_arrival_by_source: dict[str, int] = Field(default_factory=dict, description="Their count per source.")
    copy_capacity_per_year: float = Field(
        0.0, description="Most loans one copy can serve in a year (acquisition.value.Circulation's capacity)."
    )


def report_from_metrics(m: CollectionMetrics) -> CollectionReport:
    """The served form of :func:`collection_metrics`' tables (rounded only where the page shows them)."""
    classes = [
        ClassSupply(
            clc_top=r["top"],
            name=str(CLC_TOP_CLASSES.get(r["top"], r["top"])),
            copies=int(r["copies"]),
            loans=int(r["loans"]),
            turnover_per_year=float(r["turnover_per_year"]),
            share_of_collection=float(r["share_of_collection"]),
            share_of_loans=float(r["share_of_loans"]),
            supply=r["supply"],
        )
        for r in m.by_class.filter(pl.col("top").is_not_null()).iter_rows(named=True)
    ]
    years = m.window_days / 365.0
    home = {
        (r["district"], r["top"]): r
        for r in (m.home_cells if m.home_cells is not None else pl.DataFrame()).iter_rows(named=True)
    }
    cells = [
        DistrictCell(
            district=r["district"],
            clc_top=r["top"],
            copies=int(r["copies"]),
            loans_per_copy_per_year=float(r["loans_per_copy"]) / years,
            **_home_figures(home.get((r["district"], r["top"])), years),
        )
        for r in m.gaps.filter(pl.col("copies") > 0).iter_rows(named=True)
    ]
    by_source = {str(r["source"]): float(r["loans_per_copy_per_year"]) for r in m.by_source.iter_rows(named=True)}
    return CollectionReport(
        as_of=m.as_of,
        window_days=m.window_days,
        copies=int(m.headline["copies"]),
        loans_in_window=int(m.headline["loans_in_window"]),
        turnover_per_year=float(m.headline["turnover_per_year"]),
        dead_share=float(m.headline["dead_share"]),
        classes=classes,
        cells=cells,
        by_source=by_source,
        **_lists(m),
    )


def _home_figures(row: dict | None, years: float) -> dict:
    if not row:
        return {}
    return {"home_copies": int(row["copies"]), "home_loans_per_copy_per_year": row["loans"] / row["copies"] / years}


#: Dead-on-arrival copies the served report lists (the total and per-source counts cover them all).
DOA_LISTED = 200


def _lists(m: CollectionMetrics) -> dict:
    """The report's holds alerts and dead-on-arrival copies."""
    alerts = [
        HoldsAlert(
            title_id=r["title_id"], title=r["title"], clc_class=r["clc_class"], holds=int(r["holds"]),
            copies=int(r["copies"]), holds_per_copy=float(r["holds_per_copy"]),
        )
        for r in m.holds_alerts.iter_rows(named=True)
    ]  # fmt: skip
    doa = m.dead_on_arrival if m.dead_on_arrival is not None else pl.DataFrame({"copy_id": [], "source": []})
    listed = [
        DeadOnArrival(**{k: r[k] for k in DeadOnArrival.model_fields})
        for r in doa.head(DOA_LISTED).iter_rows(named=True)
    ]
    by_source = dict(doa.group_by("source").len().sort("source").iter_rows()) if doa.height else {}
    return {
        "holds_alerts": alerts,
        "dead_on_arrival": listed,
        "dead_on_arrival_total": doa.height,
        "dead_on_arrival_by_source": {str(k): int(v) for k, v in by_source.items()},
        "copy_capacity_per_year": Circulation().capacity,
    }


def class_demand(context: LibraryContext | None) -> dict[str, float]:
    """Loans per on-shelf copy of each CLC top class relative to the city's (1.0 = average; also for
    classes without copies)."""
    if context is None or len(context.titles) == 0:
        return {}
    classes = class_supply(context)
    city = classes["loans"].sum() / max(float(classes["copies_on_shelf"].sum()), 1.0)
    rel = classes.select(
        "clc_top",
        pl.when(pl.col("copies_on_shelf") > 0)
        .then(pl.col("loans") / pl.col("copies_on_shelf") / max(city, 1e-9))
        .otherwise(1.0)
        .alias("rel"),
    )
    return {letter: 1.0 for letter in CLC_LETTERS} | dict(rel.iter_rows())


def _md_table(df: pl.DataFrame, digits: int = 3) -> str:
    df = df.with_columns(pl.col(pl.Float64).round(digits))
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in df.iter_rows())


def _plots(m: CollectionMetrics, out_dir: Path, stem: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(8, 4))
    bc = m.by_class.sort("top")
    x = range(bc.height)
    ax.bar([i - 0.2 for i in x], bc["share_of_collection"], width=0.4, label="share of collection")
    ax.bar([i + 0.2 for i in x], bc["share_of_loans"], width=0.4, label="share of loans")
    ax.set_xticks(list(x), bc["top"].to_list())
    ax.set_xlabel("CLC top class")
    ax.legend()
    ax.set_title("Supply vs demand per class")
    paths.append(out_dir / f"{stem}_supply_demand.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    pivot = m.gaps.pivot(on="top", index="district", values="gap_score").sort("district")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    cols = sorted(c for c in pivot.columns if c != "district")
    im = ax.imshow(pivot.select(cols).fill_null(0).to_numpy(), aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(pivot.height), pivot["district"].to_list())
    ax.set_title("Gap score (district x class)")
    fig.colorbar(im, ax=ax)
    paths.append(out_dir / f"{stem}_gaps.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write_report(m: CollectionMetrics, out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (Markdown) and ``out`` with ``.html``, plus PNG plots beside them."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pngs = _plots(m, out.parent, out.stem)
    h = m.headline
    src = {r["source"]: r for r in m.by_source.iter_rows(named=True)}
    kpi = ""
    if "reader_choice" in src and "regular_order" in src:
        rc, ro = src["reader_choice"], src["regular_order"]
        ratio = rc["loans_per_copy_per_year"] / ro["loans_per_copy_per_year"] if ro["loans_per_copy_per_year"] else 0
        kpi = (
            f"Reader-chosen copies: **{rc['loans_per_copy_per_year']:.2f}** loans per copy per year vs "
            f"**{ro['loans_per_copy_per_year']:.2f}** for library-selected copies (x{ratio:.2f}); reader-chosen "
            f"copies carry {rc['share_of_loans']:.1%} of loans.\n"
        )
    gaps_top = (
        m.gaps.sort("gap_score", descending=True)
        .head(15)
        .select("district", "top", "copies", "loans", "holds", "holds_per_copy", "pressure", "mix_gap", "gap_score")
    )
    sections = [
        f"# Collection report ({m.as_of:%Y-%m-%d}, last {m.window_days} days)\n",
        f"{int(h['copies'])} copies, {int(h['loans_in_window'])} loans; turnover {h['turnover_per_year']:.2f} "
        f"loans per copy per year; {h['dead_share']:.1%} dead stock; median copy age "
        f"{h['median_age_years']:.1f} years.\n",
        "## Reader-chosen vs library-selected (programme KPI)\n",
        kpi,
        _md_table(m.by_source),
        "## Turnover, circulation and age per class\n",
        _md_table(m.by_class),
        f"![supply vs demand]({pngs[0].name})\n",
        "## Largest gaps (district x class)\n",
        _md_table(gaps_top),
        f"![gaps]({pngs[1].name})\n",
        f"## Holds-to-copies alerts (> {HOLDS_ALERT_RATIO:.0f}:1)\n",
        _md_table(m.holds_alerts.head(30)) if m.holds_alerts.height else "None.\n",
        "## Dead stock per class\n",
        _md_table(m.dead_stock),
        "## Dead on arrival (acquired in the window, never borrowed 6 months on)\n",
        _md_table(m.dead_on_arrival.head(30))
        if m.dead_on_arrival is not None and m.dead_on_arrival.height
        else "None.\n",
    ]
    md = "\n".join(sections)
    out.write_text(md)
    html_path = out.with_suffix(".html")
    html_path.write_text(_to_html(md))
    _log.info("collection report written to %s and %s", out, html_path)
    return out, html_path


def _to_html(md: str) -> str:
    """A minimal Markdown -> HTML rendering of the report (headings, tables, images, paragraphs)."""
    body: list[str] = []
    in_table = False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1 : line.rindex(")")]
            body.append(f'<img src="{html.escape(src)}" alt="">')
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    if in_table:
        body.append("</table>")
    style = "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>{''.join(body)}</body></html>"
