"""The per-context caches of the request path agree with the plain sparse / polars computations."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recsys.explain as explain_mod
from recsys.explain import _co_readers, _popular_masks
from recsys.filters import FilterConfig, allowed_titles, build_exclusions, unreachable
from recsys.rerank import PromotionConfig, boost_vectors
from tests.recsys._promotion_city import TODAY, build


@pytest.fixture(scope="module")
def city():
    return build(seed=5)


def test_shelf_bitmask_matches_on_shelf(city):
    _, _, ctx = city
    truth = (ctx.on_shelf > 0).toarray()  # titles × branches
    b, t = np.meshgrid(np.arange(len(ctx.branches)), np.arange(len(ctx.titles)), indexing="ij")
    assert np.array_equal(ctx.on_shelf_at(b, t), truth.T)
    assert np.array_equal(ctx.on_shelf_anywhere, truth.any(axis=1))
    first = np.where(truth.any(axis=1), truth.argmax(axis=1), -1)
    assert np.array_equal(ctx.first_shelf_branch, first)


def test_unreachable_matches_its_definition(city):
    _, _, ctx = city
    shelf = (ctx.on_shelf > 0).toarray().T  # branches × titles
    somewhere = shelf.any(axis=0) & ~ctx.digital
    branches = np.array([-1, *range(len(ctx.branches))])
    got = unreachable(ctx, branches).toarray()
    assert not got[0].any()  # unknown branch: delivery-like, nothing missing
    for i, b in enumerate(branches[1:], start=1):
        want = np.zeros(len(ctx.titles), bool) if ctx.branch_delivers[b] else somewhere & ~shelf[b]
        assert np.array_equal(got[i], want)


def test_memoised_arrays_are_read_only_and_follow_the_date(city):
    _, _, ctx = city
    active = ctx.active_booklists()
    assert active is ctx.active_booklists()  # memoised
    with pytest.raises(ValueError):
        active[...] = True
    # Another day is another entry, computed from the booklist windows.
    later = TODAY + timedelta(days=400)
    want = ((ctx.booklists["starts_on"] <= later) & (ctx.booklists["ends_on"] >= later)).fill_null(False).to_numpy()
    assert np.array_equal(ctx.active_booklists(later), want)
    boost, flags = boost_vectors(ctx, PromotionConfig())
    assert not boost.flags.writeable and not flags.flags.writeable


def test_global_mask_is_the_callers_own_copy(city):
    _, _, ctx = city
    _, glob = build_exclusions(ctx, np.arange(3), FilterConfig())
    glob[:] = True  # must not poison the cache
    _, again = build_exclusions(ctx, np.arange(3), FilterConfig())
    assert not again.all()
    assert np.array_equal(allowed_titles(ctx, FilterConfig()), np.flatnonzero(~again))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_co_readers_both_paths_count_shared_borrowers(city, data, monkeypatch):
    _, _, ctx = city
    n_t = len(ctx.titles)
    h = np.array(data.draw(st.lists(st.integers(0, n_t - 1), min_size=1, max_size=30)))
    t = np.array(data.draw(st.lists(st.integers(0, n_t - 1), min_size=len(h), max_size=len(h))))
    net = ctx.borrowed.toarray() > 0
    truth = (net[:, h] & net[:, t]).sum(axis=0)
    assert np.array_equal(_co_readers(ctx, h, t), truth)  # precomputed co-occurrence index
    ctx._memo.pop("cooccurrence", None)
    monkeypatch.setattr(explain_mod, "_COOC_MAX", 0)  # the large-catalogue path: column products
    assert np.array_equal(_co_readers(ctx, h, t), truth)
    ctx._memo.pop("cooccurrence", None)


def test_popular_at_branch_uses_the_branchs_top_cut(city):
    _, _, ctx = city
    top = 5
    branches = np.arange(len(ctx.branches))
    titles = np.tile(np.arange(len(ctx.titles)), (len(branches), 1))
    at_branch, in_city = _popular_masks(ctx, branches, titles, top)
    loans = sp.csr_matrix(ctx.branch_loans).toarray()
    for b in branches:
        cut = max(np.sort(loans[b])[::-1][top - 1], 1.0)
        assert np.array_equal(at_branch[b], loans[b] >= cut)
    city_cut = max(np.sort(ctx.popularity)[::-1][top - 1], 1.0)
    assert np.array_equal(in_city[0], ctx.popularity >= city_cut)
