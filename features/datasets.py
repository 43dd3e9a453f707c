"""Evaluation data sets by name: MovieLens, the SCO lending library, a synthetic city, any data dir.

:func:`load_dataset` returns a :class:`Dataset` whose ``interactions`` follow the ``interactions``
schema, whatever the source. Public data sets are read in place from ``<repo>/../shared/data``
(never copied into the repo); adapted tables and synthetic cities are written to a cache,
``<repo>/.cache/datasets/<kind>-<key>/``, keyed by a hash of the source files' bytes (or of the
synthesis profile and seed), so a cache entry is rebuilt exactly when its inputs change. The
cache folder carries its own ``.gitignore`` so nothing in it is ever committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from features.errors import InvalidInput
from features.interactions import load_interactions
from features.schema import scan_table, table_path

_log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Where public data sets live (read in place).
SHARED_DATA = REPO_ROOT / ".." / "shared" / "data"
#: Default cache of adapted / synthesised data directories (git-ignored by its own .gitignore).
DEFAULT_CACHE = REPO_ROOT / ".cache" / "datasets"

DatasetKind = Literal["movielens", "sco", "city", "dir"]
DEFAULT_PATHS: dict[str, str] = {"movielens": "movielens-latest-small", "sco": "sco-lending-library"}
#: Bump when the way a cache entry is built changes, so old entries are not reused.
CACHE_VERSION = 1


class DatasetError(InvalidInput):
    """A data set cannot be found or built (the message names the path and the reason)."""


@dataclass
class Dataset:
    """One evaluation data set.

    ``interactions``: lazy events in the ``interactions`` schema; ``titles`` / ``readers``: the
    catalogue and reader tables when the source has them; ``data_dir``: the yuedu data directory
    the tables come from (None when read straight from a public file).
    """

    name: str
    interactions: pl.LazyFrame
    titles: pl.DataFrame | None = None
    readers: pl.DataFrame | None = None
    data_dir: Path | None = None


def _hash_files(paths: list[Path], extra: str = "") -> str:
    """SHA-256 (first 16 hex digits) of the files' names and bytes, plus ``extra``."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{extra}".encode())
    for p in sorted(paths):
        h.update(p.name.encode())
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def _cache_root(cache_dir: str | Path | None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return root


def _build_cached(root: Path, name: str, key: str, build) -> Path:
    """Return ``root/<name>-<key>``, building it with ``build(tmp_dir)`` first when absent.

    The build writes into a temporary sibling that is renamed into place only when complete, so an
    interrupted build never leaves a half-written entry that later looks valid."""
    out = root / f"{name}-{key}"
    if (out / "_complete.json").exists():
        _log.debug("dataset cache hit: %s", out)
        return out
    # A private temporary sibling: two processes (e.g. parallel test workers) may build at once.
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{key}.", dir=root))
    try:
        build(tmp)
        (tmp / "_complete.json").write_text(json.dumps({"key": key, "version": CACHE_VERSION}))
        if (out / "_complete.json").exists():  # another process finished first: keep its copy
            return out
        if out.exists():
            shutil.rmtree(out)
        try:
            tmp.rename(out)
        except OSError:
            if not (out / "_complete.json").exists():
                raise
            return out
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _log.info("dataset cache built: %s", out)
    return out


def _source_dir(kind: str, path: str | Path | None) -> Path:
    src = Path(path) if path is not None else SHARED_DATA / DEFAULT_PATHS[kind]
    if not src.exists():
        raise DatasetError(f"{src}: {kind} data set not found (give --path or install it under {SHARED_DATA})")
    return src


def _find(src: Path, stem: str) -> Path:
    for name in (f"{stem}.csv.gz", f"{stem}.csv", f"{stem}.parquet"):
        if (src / name).exists():
            return src / name
    raise DatasetError(f"{src / stem}.csv[.gz]: file not found")


def _optional_table(data_dir: Path, table: str) -> pl.DataFrame | None:
    return scan_table(data_dir, table).collect() if table_path(data_dir, table).exists() else None


def _from_dir(name: str, data_dir: Path) -> Dataset:
    return Dataset(
        name=name,
        interactions=load_interactions(data_dir),
        titles=_optional_table(data_dir, "titles"),
        readers=_optional_table(data_dir, "readers"),
        data_dir=data_dir,
    )


def _movielens(path: str | Path | None, cache_dir: str | Path | None) -> Dataset:
    from features.adapters import adapt_interactions

    src = _source_dir("movielens", path)
    ratings, movies = _find(src, "ratings"), _find(src, "movies")

    def build(out: Path) -> None:
        adapt_interactions(
            ratings,
            out,
            user_col="userId",
            item_col="movieId",
            weight_col="rating",
            time_col="timestamp",
            items_file=movies,
            item_title_col="title",
        )

    d = _build_cached(_cache_root(cache_dir), "movielens", _hash_files([ratings, movies]), build)
    return _from_dir("movielens", d)


def _sco(path: str | Path | None, cache_dir: str | Path | None) -> Dataset:
    from features.adapters import adapt_sco

    src = _source_dir("sco", path)
    files = [_find(src, s) for s in ("loans", "books", "members")]
    d = _build_cached(_cache_root(cache_dir), "sco", _hash_files(files), lambda out: adapt_sco(src, out))
    return _from_dir("sco", d)


def _synth(profile: str, seed: int, cache_dir: str | Path | None) -> Dataset:
    try:
        from features.synth import synthesize
    except ImportError as exc:  # written by another engineer; may not have landed yet
        raise DatasetError(f"synthetic city: features.synth.synthesize is not available ({exc})") from exc
    code = Path(__file__).resolve().parent
    # Key on the generator's own source too: a changed generator makes a different city.
    generator = sorted([*code.glob("synth*.py"), code / "circulation.py"])
    key = _hash_files(generator, extra=f"{profile}|{seed}")
    d = _build_cached(
        _cache_root(cache_dir),
        f"synth-{profile}-s{seed}",
        key,
        lambda out: synthesize(profile, seed, out, progress=False),
    )
    return _from_dir(f"synth-{profile}", d)


def load_dataset(
    kind: DatasetKind,
    path: str | Path | None = None,
    profile: str = "small",
    seed: int = 7,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """Load an evaluation data set.

    Args:
        kind: ``"movielens"`` (latest-small ratings, via the generic interactions adapter),
            ``"sco"`` (Shakespeare and Company lending library, via the SCO adapter), ``"city"``
            (a synthetic city from :func:`features.synth.synthesize`) or ``"dir"`` (an existing
            yuedu data directory at ``path``).
        path: source folder; defaults to ``<repo>/../shared/data/<set>`` for public sets.
        profile: synthesis profile (``city`` only), e.g. ``"small"``, ``"medium"``, ``"city"``.
        seed: synthesis seed (``city`` only).
        cache_dir: cache root (default ``<repo>/.cache/datasets``).

    Raises:
        DatasetError: the source is missing or ``kind`` is unknown.
    """
    if kind == "movielens":
        return _movielens(path, cache_dir)
    if kind == "sco":
        return _sco(path, cache_dir)
    if kind == "city":
        return _synth(profile, seed, cache_dir)
    if kind == "synth":
        raise DatasetError("dataset kind 'synth' is now called 'city' (the synthetic city)")
    if kind == "dir":
        if path is None:
            raise DatasetError("dataset kind 'dir' needs a path to a yuedu data directory")
        d = Path(path)
        if not d.is_dir():
            raise DatasetError(f"{d}: not a directory")
        return _from_dir(d.name, d)
    raise DatasetError(f"unknown dataset kind {kind!r}; expected movielens, sco, city or dir")
