"""Serving fixtures: the small synthetic city, an item-kNN model trained on it, and apps over a fresh
SQLite ledger per module (today = 2026-06-15, the last month the city's budget lines cover)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.security import issue_token
from serving.settings import Settings

SECRET = "test-secret"
STAFF_USERS = "alice:alice-pw,root:root-pw:admin"
TODAY = "2026-06-15"


@pytest.fixture(scope="session")
def model_dir(small_city, tmp_path_factory) -> Path:
    from features.interactions import load_interactions
    from features.matrix import build_matrix
    from recsys.models import make_model

    model = make_model("itemknn").fit(build_matrix(load_interactions(small_city).collect()))
    return model.save(tmp_path_factory.mktemp("model") / "itemknn")


def make_settings(data_dir: Path, db_path: Path, model_dir: Path | None, **extra) -> Settings:
    return Settings(
        data_dir=data_dir,
        db_url=f"sqlite:///{db_path}",
        model_dir=model_dir,
        secret_key=SECRET,
        staff_users=STAFF_USERS,
        today=TODAY,
        model_poll_s=0,
        **extra,
    )


def token(role: str, subject: str) -> dict[str, str]:
    """Authorization header for a role bound to a subject."""
    return {"Authorization": f"Bearer {issue_token(role, subject, SECRET)}"}


@pytest.fixture(scope="module")
def app(small_city, model_dir, tmp_path_factory):
    from serving.app import create_app

    return create_app(make_settings(small_city, tmp_path_factory.mktemp("db") / "yuedu.db", model_dir))


@pytest.fixture
def erasable_city(small_city, tmp_path) -> Path:
    """A copy of the small city for tests that rewrite its tables (an erasure pseudonymises loans)."""
    import shutil

    return Path(shutil.copytree(small_city, tmp_path / "city", ignore=shutil.ignore_patterns("truth")))


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def city_facts(small_city) -> dict:
    """A known reader, their bookstore-free facts, a title, a booklist, bookstores with their districts."""
    import polars as pl

    titles = pl.read_parquet(small_city / "titles.parquet")
    bookstores = pl.read_parquet(small_city / "bookstores.parquet")
    booklists = pl.read_parquet(small_city / "booklists.parquet")
    loans = pl.read_parquet(small_city / "loans.parquet")
    active = loans.group_by("reader_id").len().sort("len", descending=True)
    return {
        "reader": active["reader_id"][0],
        "other_reader": active["reader_id"][1],
        "title": titles["title_id"][0],
        "booklist": booklists["booklist_id"][0],
        "bookstores": dict(zip(bookstores["bookstore_id"], bookstores["district"], strict=True)),
    }
