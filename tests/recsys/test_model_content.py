"""Content model: never-borrowed and newly bought titles reach the readers whose history matches."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys.base import ModelError
from recsys.models import ContentRecommender, load_model
from recsys.models.content import metadata_documents

from ._synthetic import catalogue, clustered

DATA = clustered()


def catalogue_with_unborrowed() -> pl.DataFrame:
    """The matrix titles plus one title nobody borrowed, in cluster 2 (computing)."""
    extra = pl.DataFrame(
        {
            "title_id": ["NEW-0001"],
            "title": ["programming volume 999"],
            "author": ["Author 2-0"],
            "clc_class": ["TP312"],
            "subjects": ["programming;computer"],
        }
    )
    return pl.concat([DATA.titles, extra])


def test_metadata_tokens_include_clc_prefixes_author_and_subjects():
    docs = metadata_documents(
        pl.DataFrame(
            {
                "title_id": ["a"],
                "title": ["活着"],
                "author": ["Yu Hua"],
                "clc_class": ["I247.5"],
                "subjects": ["小说; 农村"],
            }
        )
    )
    tokens = docs["meta"][0].split()
    for t in ("c:I", "c:I2", "c:I24", "c:I247", "c:I247.5", "a:yu_hua", "s:小说", "s:农村"):
        assert t in tokens
    assert docs["text"][0] == "活着"


def test_never_borrowed_title_reaches_matching_reader():
    model = ContentRecommender().fit(DATA.train, catalogue_with_unborrowed())
    new_col = model.titles_.get("NEW-0001")
    assert new_col == DATA.train.shape[1]  # appended after the matrix titles
    assert model.popularity_[new_col] == 0
    computing = np.flatnonzero(DATA.reader_cluster == 2)[:10]
    other = np.flatnonzero(DATA.reader_cluster == 0)[:10]
    # 40 slots hold every unseen cluster-2 title (40 per cluster, minus those borrowed) plus one
    ids_c, _ = model.recommend(computing, 40)
    ids_o, _ = model.recommend(other, 40)
    assert (ids_c == new_col).any(axis=1).all()
    assert not (ids_o == new_col).any()
    scores = model.score(reader_rows=computing)
    off_cluster = np.flatnonzero(DATA.title_cluster != 2)
    assert (scores[:, new_col] > scores[:, off_cluster].max(axis=1)).all()


def test_add_titles_makes_a_purchase_recommendable_at_once(tmp_path):
    model = ContentRecommender().fit(DATA.train, DATA.titles)
    reader = int(np.flatnonzero(DATA.reader_cluster == 1)[0])  # history readers (K29)
    bought = catalogue(["ISBN-9787000000001"], [1])
    model.add_titles(bought)
    col = model.titles_.get("ISBN-9787000000001")
    scores = model.score(reader_rows=np.array([reader]))[0]
    assert scores.shape == (len(model.titles_),)
    cluster_titles = np.flatnonzero(DATA.title_cluster == 1)
    assert scores[col] >= np.median(scores[cluster_titles])
    assert scores[col] > np.max(scores[: DATA.train.shape[1]][DATA.title_cluster != 1])
    # a reader folded in from history alone sees it too, and the extended model round-trips
    ids, _ = model.recalculate(_pad(DATA.train.matrix[[reader]], len(model.titles_)), 30)
    assert col in ids[0]
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(
        loaded.score(reader_rows=np.array([reader])), model.score(reader_rows=np.array([reader])), rtol=1e-5
    )
    # the loaded model can still add titles (vectorisers restored without pickle)
    loaded.add_titles(catalogue(["ISBN-9787000000002"], [4]))
    assert loaded.titles_.get("ISBN-9787000000002") == len(model.titles_)


def _pad(row: sp.csr_matrix, n_cols: int) -> sp.csr_matrix:
    """The same history row with empty columns for titles added after fit."""
    row = sp.csr_matrix(row)
    return sp.csr_matrix((row.data, row.indices, row.indptr), shape=(row.shape[0], n_cols))


def test_content_requires_catalogue():
    with pytest.raises(ModelError, match="titles frame"):
        ContentRecommender().fit(DATA.train)
    with pytest.raises(ModelError, match="clc_class"):
        ContentRecommender().fit(DATA.train, DATA.titles.drop("clc_class"))


def test_hybrid_with_extended_content_catalogue():
    """A content component knows more titles than the matrix; the hybrid blends over the matrix titles."""
    from recsys.models import make_model

    hybrid = make_model(
        "hybrid", components={"ease": {"model": "ease", "params": {"lambda_": 50.0}}, "content": {"model": "content"}}
    ).fit(DATA.train, catalogue_with_unborrowed())
    assert hybrid.components["content"].n_titles == DATA.train.shape[1] + 1
    ids, _ = hybrid.recalculate(DATA.train.matrix[:5], 10)
    assert ids.shape == (5, 10) and (ids >= 0).all() and (ids < DATA.train.shape[1]).all()
    assert hybrid.score(reader_rows=np.arange(3)).shape == (3, DATA.train.shape[1])
