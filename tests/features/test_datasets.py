"""load_dataset: public sets through the adapters into a hash-keyed cache, data directories as-is."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import polars as pl
import pytest

from features.datasets import DatasetError, load_dataset
from features.schema import INTERACTIONS


def _entries(cache: Path, prefix: str) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.name.startswith(prefix) and p.is_dir())


def test_movielens_is_adapted_once_into_the_cache(shared_data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ds = load_dataset("movielens", cache_dir=cache)
    events = ds.interactions.collect()
    assert events.columns == list(INTERACTIONS.columns)
    assert events.height == 100_836  # ratings.csv rows of latest-small
    assert events["occurred_at"].null_count() == 0
    assert set(events["value"].unique().to_list()) <= {x / 2 for x in range(1, 11)}
    assert ds.titles is not None and ds.titles.height == 9_742
    assert (cache / ".gitignore").read_text().strip() == "*"
    built = _entries(cache, "movielens-")
    assert len(built) == 1
    stamp = (built[0] / "_complete.json").stat().st_mtime_ns
    again = load_dataset("movielens", cache_dir=cache)
    assert again.data_dir == ds.data_dir
    assert (built[0] / "_complete.json").stat().st_mtime_ns == stamp  # a cache hit, not a rebuild


def test_changed_source_gets_a_new_cache_entry(shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "ml"
    shutil.copytree(shared_data / "movielens-latest-small", src)
    cache = tmp_path / "cache"
    first = load_dataset("movielens", path=src, cache_dir=cache)
    with gzip.open(src / "ratings.csv.gz", "rt") as fh:
        lines = fh.read().splitlines()
    with gzip.open(src / "ratings.csv.gz", "wt") as fh:
        fh.write("\n".join(lines[:1001]) + "\n")  # header + 1000 ratings
    second = load_dataset("movielens", path=src, cache_dir=cache)
    assert second.data_dir != first.data_dir
    assert second.interactions.select(pl.len()).collect().item() == 1000
    assert len(_entries(cache, "movielens-")) == 2


def test_sco_has_loans_titles_and_readers(shared_data: Path, tmp_path: Path) -> None:
    ds = load_dataset("sco", cache_dir=tmp_path)
    events = ds.interactions.collect()
    assert events.height > 20_000
    assert ds.titles is not None and ds.readers is not None
    # every event names a known title and reader of the adapted tables
    assert events["title_id"].is_in(ds.titles["title_id"].implode()).all()
    assert events["reader_id"].is_in(ds.readers["reader_id"].implode()).all()
    assert events["reader_id"].str.starts_with("sco-").all()  # pseudonyms, never member slugs


def test_dir_kind_reads_a_data_directory(tmp_path: Path) -> None:
    pl.DataFrame({"reader_id": ["a", "b"], "title_id": ["x", "y"]}).write_parquet(tmp_path / "interactions.parquet")
    ds = load_dataset("dir", path=tmp_path)
    assert ds.interactions.collect()["channel"].to_list() == ["event", "event"]
    assert ds.titles is None and ds.readers is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "dir"}, "needs a path"),
        ({"kind": "dir", "path": "/nonexistent/yuedu"}, "not a directory"),
        ({"kind": "movielens", "path": "/nonexistent/ml"}, "not found"),
        ({"kind": "netflix"}, "unknown dataset kind"),
    ],
)
def test_errors_name_the_problem(kwargs: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=match):
        load_dataset(cache_dir=tmp_path, **kwargs)
