import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from features.matrix import InteractionMatrix
from features.vocab import Vocabulary


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=60, unique=True))
def test_index_roundtrip(ids):
    v = Vocabulary(ids, "reader_id")
    idx = v.index(ids)
    assert idx.tolist() == list(range(len(ids)))
    assert v.lookup(idx).tolist() == ids
    assert v.index(["\x00not-there"]).tolist() == [-1]


def test_from_values_is_sorted_and_unique():
    v = Vocabulary.from_values(["b", "a", "b", None, "c"], "title_id")
    assert v.ids.tolist() == ["a", "b", "c"]


def test_duplicates_rejected():
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(["a", "a"])


def test_extend_keeps_existing_indices():
    v = Vocabulary(["x", "y"]).extend(["y", "z"])
    assert v.ids.tolist() == ["x", "y", "z"]


def test_matrix_save_load_roundtrip(tmp_path):
    m = sp.random(5, 4, density=0.5, format="csr", dtype=np.float64, random_state=0)
    im = InteractionMatrix(
        m, Vocabulary(list("abcde"), "reader_id"), Vocabulary(list("wxyz"), "title_id"), {"weighting": "binary"}
    )
    assert im.matrix.dtype == np.float32
    im.save(tmp_path)
    back = InteractionMatrix.load(tmp_path)
    assert (back.matrix != im.matrix).nnz == 0
    assert back.readers == im.readers and back.titles == im.titles
    assert back.meta == {"weighting": "binary"}
    assert back.fingerprint() == im.fingerprint()


def test_matrix_shape_must_match_vocab():
    with pytest.raises(ValueError, match="does not match"):
        InteractionMatrix(sp.csr_matrix((2, 2)), Vocabulary(["a"]), Vocabulary(["x", "y"]))
