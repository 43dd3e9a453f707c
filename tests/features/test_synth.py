"""The synthetic city (profile small): schemas, integrity, determinism, learnable structure."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.schema import BRANCH_KINDS, DISTRICTS, TABLES
from features.synth import oracle_scores, synthesize
from features.synth_sampling import cumulative, draw_in_ranges, isbn13_check_digit, pseudonyms

SYNTH_TABLES = [t for t in TABLES if t != "interactions"]


def _read(d: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(d / f"{table}.parquet")


def _hashes(d: Path) -> dict[str, str]:
    return {
        p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*.parquet"))
    }


@pytest.fixture(scope="module")
def city(small_city: Path) -> dict[str, pl.DataFrame]:
    return {t: _read(small_city, t) for t in SYNTH_TABLES}


def test_every_table_conforms_to_its_schema(small_city: Path, city) -> None:
    for name in SYNTH_TABLES:
        schema = TABLES[name]
        df = city[name]
        assert df.schema == schema.polars_schema, name
        for col, spec in schema.columns.items():
            if not spec.nullable and col not in schema.optional:
                assert df[col].null_count() == 0, f"{name}.{col} has nulls"
            if spec.values is not None:
                assert set(df[col].drop_nulls().unique()) <= set(spec.values), f"{name}.{col}"
        if schema.primary_key:
            assert df[schema.primary_key].is_unique().all(), f"{name}.{schema.primary_key} not unique"
    manifest = json.loads((small_city / "manifest.json").read_text())
    assert manifest["profile"] == "small" and manifest["seed"] == 7
    assert manifest["counts"] == {t: len(city[t]) for t in SYNTH_TABLES}


def test_referential_integrity(city) -> None:
    for name in SYNTH_TABLES:
        for col, spec in TABLES[name].columns.items():
            if spec.ref is None:
                continue
            ref_table, ref_col = spec.ref.split(".")
            values = city[name][col].drop_nulls()
            missing = values.filter(~values.is_in(city[ref_table][ref_col].implode()))
            assert len(missing) == 0, f"{name}.{col} -> {spec.ref}: {len(missing)} dangling"
    loans = city["loans"].join(city["copies"].select("copy_id", pl.col("title_id").alias("copy_title")), on="copy_id")
    assert (loans["title_id"] == loans["copy_title"]).all(), "a loan's copy belongs to another title"


def test_network_and_sizes(city) -> None:
    b = city["branches"]
    kinds = b["kind"].value_counts()
    assert set(kinds["kind"]) == set(BRANCH_KINDS)
    assert (b["kind"] == "central").sum() == 1
    lib = b.filter(pl.col("kind") == "district_library")
    assert sorted(lib["district"]) == sorted(DISTRICTS)
    assert len(b) - 1 - len(lib) >= 100
    assert b["lat"].is_between(43.3, 45.1).all() and b["lon"].is_between(124.5, 126.9).all()
    assert 8 <= len(city["bookstores"]) <= 15
    assert 30_000 <= len(city["loans"]) <= 40_000
    assert len(city["readers"]) == 2_000 and len(city["titles"]) == 3_000
    assert 10 <= len(city["booklists"]) <= 20
    assert {"world_reading_day", "summer_children", "local_history"} <= set(city["booklists"]["theme"])


def test_dates_and_isbns_are_consistent(city) -> None:
    loans = city["loans"].join(city["titles"].select("title_id", "added_at"), on="title_id")
    assert (loans["borrowed_at"].dt.date() >= loans["added_at"]).all(), "loan before the title arrived"
    assert loans["borrowed_at"].dt.date().max() <= date(2026, 6, 30)
    assert loans["borrowed_at"].dt.date().min() >= date(2023, 7, 1)
    ret = loans.filter(pl.col("returned_at").is_not_null())
    assert (ret["returned_at"] > ret["borrowed_at"]).all()
    r = loans.join(city["readers"].select("reader_id", "registered_at"), on="reader_id")
    assert (r["borrowed_at"].dt.date() >= r["registered_at"]).all(), "loan before the card existed"
    digits = city["titles"]["isbn13"].cast(pl.Int64).to_numpy()
    assert (isbn13_check_digit(digits // 10) == digits % 10).all()
    # Titles added over the three years, not all at once.
    added = city["titles"]["added_at"]
    assert 0.2 < (added >= date(2023, 7, 1)).mean() < 0.4
    local = city["titles"]["local_literature"].mean()
    assert 0.01 < local < 0.04
    on_loan = city["copies"].filter(pl.col("status") == "on_loan")["copy_id"]
    open_loans = city["loans"].filter(pl.col("returned_at").is_null())["copy_id"]
    assert set(on_loan) == set(open_loans)


def test_determinism_and_seed_sensitivity(tmp_path: Path, small_city: Path) -> None:
    a = synthesize("small", seed=7, out=tmp_path / "a", progress=False)
    assert a.seconds < 5.0
    assert _hashes(tmp_path / "a") == _hashes(small_city)
    synthesize("small", seed=8, out=tmp_path / "b", progress=False)
    ha, hb = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert ha["loans.parquet"] != hb["loans.parquet"] and ha["readers.parquet"] != hb["readers.parquet"]
    assert ha["branches.parquet"] != hb["branches.parquet"]


def test_loans_follow_true_tastes(small_city: Path, city) -> None:
    taste = pl.read_parquet(small_city / "truth" / "reader_taste.parquet")
    latent = pl.read_parquet(small_city / "truth" / "title_latent.parquet")
    loans = (
        city["loans"]
        .join(latent.select("title_id", "cluster"), on="title_id")
        .join(taste.select("reader_id", "top_cluster"), on="reader_id")
    )
    in_top = (loans["cluster"] == loans["top_cluster"]).mean()
    # Chance: a loan's cluster is independent of the reader's top cluster.
    share = loans["cluster"].value_counts(normalize=True)
    chance = (
        loans.select("top_cluster")
        .join(share.rename({"cluster": "top_cluster"}), on="top_cluster", how="left")["proportion"]
        .fill_null(0)
        .mean()
    )
    assert in_top > 3 * chance, (in_top, chance)
    # The oracle ranks each reader's actually borrowed titles far above random titles.
    readers = loans["reader_id"].unique().sort().head(200)
    titles = latent["title_id"]
    s = oracle_scores(small_city, readers, titles)
    assert s.shape == (len(readers), len(titles)) and s.dtype == np.float32
    borrowed = (
        loans.filter(pl.col("reader_id").is_in(readers.implode()))
        .join(pl.DataFrame({"reader_id": readers, "r": np.arange(len(readers))}), on="reader_id")
        .join(pl.DataFrame({"title_id": titles, "t": np.arange(len(titles))}), on="title_id")
    )
    hit = s[borrowed["r"].to_numpy(), borrowed["t"].to_numpy()]
    assert np.median(hit) > 5 * np.median(s)
    with pytest.raises(KeyError):
        oracle_scores(small_city, ["Rnot-a-reader"], titles[:2])


def test_age_popularity_home_and_seasonality(city) -> None:
    loans = city["loans"].join(city["titles"].select("title_id", "audience", "clc_class"), on="title_id")
    loans = loans.join(city["readers"].select("reader_id", "card_type", "home_branch_id"), on="reader_id")
    kids = loans.filter(pl.col("card_type") == "child")
    assert kids["audience"].is_in(["children", "teen"]).mean() >= 0.9
    assert (kids["audience"] == "adult_only").sum() == 0
    assert (loans["branch_id"] == loans["home_branch_id"]).mean() >= 0.7
    counts = np.sort(loans["title_id"].value_counts()["count"].to_numpy())[::-1]
    assert counts[: len(city["titles"]) // 10].sum() / counts.sum() > 0.4
    top = loans["clc_class"].str.slice(0, 1).value_counts(sort=True)
    assert top["clc_class"][0] == "I" and top["count"][0] > 2 * top["count"][1]
    assert {"K", "B", "G", "J"} <= set(top["clc_class"].head(7))
    child_titles = loans.filter(pl.col("audience") == "children")
    month = child_titles["borrowed_at"].dt.month()
    holiday = month.is_in([7, 8, 1, 2]).mean()
    assert holiday > 4 / 12 * 1.15, holiday  # school holidays lift children's loans
    assert set(loans["channel"].unique()) >= {"counter", "self_service", "mobile", "delivery", "online"}
    assert 0.1 < (loans["renewals"] > 0).mean() < 0.4


def test_holds_ebooks_and_copies(city) -> None:
    holds = city["holds"].join(city["titles"].select("title_id", "format"), on="title_id")
    assert (holds["format"] == "print").all()
    # Holds queue where intents outrun copies: the top 10% of titles by loans per copy take most.
    hold_titles = holds["title_id"].value_counts()
    per_copy = (
        city["loans"]["title_id"].value_counts()
        .join(city["copies"]["title_id"].value_counts().rename({"count": "copies"}), on="title_id")
        .with_columns(per_copy=pl.col("count") / pl.col("copies"))
        .sort("per_copy", "title_id", descending=True)
    )  # fmt: skip
    head = set(per_copy["title_id"].head(len(per_copy) // 10))
    assert hold_titles.filter(pl.col("title_id").is_in(list(head)))["count"].sum() / len(holds) > 0.5
    ebooks = city["ebook_events"].join(city["titles"].select("title_id", "format"), on="title_id")
    assert (ebooks["format"] == "ebook").all() and set(ebooks["action"]) == {"download", "read"}
    copies = city["copies"].join(city["loans"]["title_id"].value_counts(), on="title_id", how="left")
    per_title = copies.group_by("title_id").agg(n=pl.len(), loans=pl.col("count").first().fill_null(0))
    popular = per_title["loans"] >= per_title["loans"].quantile(0.9)
    assert per_title.filter(popular)["n"].mean() > 1.5 * per_title.filter(~popular)["n"].mean()
    assert set(city["copies"]["source"]) == {"regular_order", "donation", "reader_choice"}


def test_purchase_requests_break_rules_at_about_15_percent(small_city: Path, city) -> None:
    req = city["purchase_requests"]
    truth = pl.read_parquet(small_city / "truth" / "requests.parquet")
    assert 0.10 <= truth["breaks_rule"].mean() <= 0.20
    # Every intended violation is actually detectable from the data.
    # (A burst is 7 requests in one month: only the 6th and 7th break the monthly limit.)
    intended = truth.filter(~pl.col("intended").is_in(["none", "over_monthly_limit"]))
    assert intended.select(pl.col("violations").str.contains(pl.col("intended"))).to_series().all()
    burst = truth.filter(pl.col("intended") == "over_monthly_limit")
    assert burst["violations"].str.contains("over_monthly_limit").sum() >= 2 * len(burst) // 7
    assert set(req["channel"]) == {"counter", "online"}
    held = set(city["titles"]["isbn13"].drop_nulls())
    assert (~req["isbn"].is_in(list(held))).mean() > 0.9, "requests should mostly be for new titles"
    valid = truth.filter(~pl.col("breaks_rule"))
    assert 0.6 <= valid["funded"].mean() <= 0.8
    by_year = req["requested_at"].dt.year().value_counts()
    assert len(by_year) >= 3
    rt = pl.read_parquet(small_city / "truth" / "request_titles.parquet")
    assert set(rt["isbn"]) == set(req["isbn"])
    s = oracle_scores(small_city, req["reader_id"].head(5), rt["isbn"].head(10))
    assert s.shape == (5, 10) and (s >= 0).all()
    budgets = city["budgets"]
    assert budgets.filter(pl.col("district").is_null())["period"].str.len_chars().eq(4).all()
    assert budgets.filter(pl.col("district").is_not_null())["period"].str.len_chars().eq(7).all()


def test_dirty_rate_injects_detectable_defects(tmp_path: Path) -> None:
    out = tmp_path / "dirty"
    summary = synthesize("small", seed=3, out=out, dirty_rate=0.01, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["defects"]) == set(summary.defects)
    loans, readers = _read(out, "loans"), _read(out, "readers")
    assert (loans["returned_at"] < loans["borrowed_at"]).sum() == summary.defects["loan_returned_before_borrowed"]
    assert (~loans["reader_id"].is_in(readers["reader_id"].implode())).sum() == summary.defects["loan_unknown_reader"]
    assert (loans["borrowed_at"].dt.year() == 2099).sum() == summary.defects["loan_borrowed_in_future"]
    assert summary.defects["loan_borrowed_in_future"] >= len(loans) * 0.01 / 3 - 1
    titles = _read(out, "titles")
    digits = titles["isbn13"].cast(pl.Int64).to_numpy()
    bad = (isbn13_check_digit(digits // 10) != digits % 10).sum()
    assert bad == summary.defects["title_bad_isbn_check_digit"] > 0
    assert (titles["list_price"] < 0).sum() == summary.defects["title_negative_price"] > 0
    copies = _read(out, "copies")
    assert len(copies) - copies["copy_id"].n_unique() == summary.defects["copy_duplicate_id"] > 0
    defects = pl.read_parquet(out / "truth" / "defects.parquet")
    assert len(defects) == sum(summary.defects.values())


def test_catalogue_merges_real_titles(tmp_path: Path) -> None:
    bodies = 978000000000 + np.arange(0, 4000, 3, dtype=np.int64)
    isbns = (bodies * 10 + isbn13_check_digit(bodies)).astype(str)
    real = pl.DataFrame(
        {
            "isbn13": isbns,
            "title": [f"Real book {i}" for i in range(len(isbns))],
            "author": "A. Writer",
            "pub_year": 2001,
        }
    )
    (tmp_path / "cat").mkdir()
    real.write_parquet(tmp_path / "cat" / "titles.parquet")
    synthesize("small", seed=1, out=tmp_path / "out", catalogue=tmp_path / "cat", progress=False)
    titles = _read(tmp_path / "out", "titles")
    merged = titles.filter(pl.col("title").str.starts_with("Real book"))
    assert 200 <= len(merged) <= 1500
    assert merged["isbn13"].is_in(real["isbn13"].implode()).all()
    assert titles["isbn13"].is_unique().all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="profile"):
        synthesize("huge", out="/nonexistent", progress=False)
    with pytest.raises(ValueError, match="dirty_rate"):
        synthesize("small", out="/nonexistent", dirty_rate=0.9, progress=False)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 10**6), st.integers(1, 300))
def test_pseudonyms_are_distinct_and_well_formed(seed: int, start: int, n: int) -> None:
    ids = pseudonyms(seed, start, n)
    assert len(set(ids)) == n
    assert all(len(i) == 11 and i[0] == "R" and all(c in "0123456789abcdef" for c in i[1:]) for i in ids)
    assert not set(ids) & set(pseudonyms(seed, start + n, 50))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.01, 100.0), min_size=2, max_size=30), st.data())
def test_draw_in_ranges_stays_in_range(weights: list[float], data) -> None:
    n = len(weights)
    lo = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=20)))
    hi = np.minimum(lo + np.array(data.draw(st.lists(st.integers(1, n), min_size=len(lo), max_size=len(lo)))), n)
    idx = draw_in_ranges(np.random.default_rng(0), cumulative(np.array(weights)), lo, hi)
    assert ((idx >= lo) & (idx < hi)).all()


def test_cli_writes_a_city(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from serving.cli import app

    result = CliRunner().invoke(
        app, ["data", "synth", "--profile", "small", "--seed", "4", "--out", str(tmp_path), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "loans" in result.output
    assert all((tmp_path / f"{t}.parquet").exists() for t in SYNTH_TABLES)
    bad = CliRunner().invoke(app, ["data", "synth", "--profile", "nope", "--out", str(tmp_path)])
    assert bad.exit_code == 2
