"""RecommendationService: end to end by reader id, live events, cold start, accuracy cost."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from features.schema import AUDIENCES
from recsys.explain import ReasonCode
from recsys.filters import FilterConfig, admissible, build_exclusions
from recsys.rerank import PromotionConfig
from recsys.service import RecommendationService, UnknownTitleError, accuracy_cost
from tests.recsys._promotion_city import build
from tests.recsys.test_explain import check_reason


@pytest.fixture(scope="module")
def city():
    frames, model, ctx = build(seed=8, n_titles=100, n_readers=40, n_loans=900)
    return frames, model, ctx, RecommendationService(model, ctx)


def test_known_readers_get_n_admissible_explained_titles(city):
    frames, model, ctx, svc = city
    ids = list(ctx.readers.ids[:15])
    out = svc.recommend_for_readers(ids, n=6)
    per, glob = build_exclusions(ctx, ctx.readers.index(ids), FilterConfig())
    ok = admissible(per, glob)
    shelf = frames["copies"].filter(pl.col("status") == "on_shelf")
    for i, rid in enumerate(ids):
        recs = out[rid]
        assert len(recs) == min(6, int(ok[i].sum()))
        home = ctx.branches.ids[ctx.reader_home_branch[ctx.readers.get(rid)]]
        for rec in recs:
            t = ctx.titles.get(rec.title_id)
            assert ok[i, t]
            assert rec.reasons, rec
            for reason in rec.reasons:
                check_reason(frames, reason, rid, rec.title_id, home)
            assert set(rec.available_at) == set(shelf.filter(pl.col("title_id") == rec.title_id)["branch_id"])
            if rec.available_at and home in rec.available_at:
                assert rec.available_at[0] == home


def test_promotion_off_is_the_models_filtered_ranking(city):
    frames, model, ctx, svc = city
    rid = ctx.readers.ids[3]
    mine = svc.recommend_for_reader(rid, n=8, promotion=False)
    rows = np.array([ctx.readers.get(rid)])
    per, glob = build_exclusions(ctx, rows, FilterConfig())
    direct, _ = model.recommend(rows, 8, exclude=per, candidates=np.flatnonzero(~glob))
    assert [r.title_id for r in mine] == list(ctx.titles.lookup(direct[0][direct[0] >= 0]))


def test_record_event_changes_the_next_list_at_once(city):
    frames, model, ctx, _ = city
    svc = RecommendationService(model, ctx)
    rid = ctx.readers.ids[5]
    before = svc.recommend_for_reader(rid, n=5)
    new_title = before[0].title_id
    svc.record_event(rid, new_title)
    after = svc.recommend_for_reader(rid, n=5)
    assert new_title not in {r.title_id for r in after}
    # The recalculated list is what the model gives for the enlarged history.
    hist = model.user_items_[[ctx.readers.get(rid)]].toarray()
    hist[0, ctx.titles.get(new_title)] = 1
    rows = np.array([ctx.readers.get(rid)])
    per, glob = build_exclusions(ctx, rows, FilterConfig(), extra_borrowed=sp.csr_matrix(hist > 0))
    direct, _ = model.recalculate(sp.csr_matrix(hist), 5, exclude=per, candidates=np.flatnonzero(~glob))
    off = svc.recommend_for_reader(rid, n=5, promotion=False)
    assert [r.title_id for r in off] == list(ctx.titles.lookup(direct[0][direct[0] >= 0]))
    with pytest.raises(UnknownTitleError):
        svc.record_event(rid, "NO-SUCH-TITLE")


def test_unknown_reader_cold_start_and_first_loan(city):
    frames, model, ctx, _ = city
    svc = RecommendationService(model, ctx)
    cold = svc.recommend_for_reader("walk-in", n=5, branch="CEN")
    assert len(cold) == 5
    adult_only = AUDIENCES.index("adult_only")
    assert all(ctx.audience[ctx.titles.get(r.title_id)] != adult_only for r in cold)  # unknown = protected
    codes = {x.code.value for r in cold for x in r.reasons}
    assert codes & {"popular_at_branch", "popular_in_city"}
    # Cold start ranks by the branch's own loans first.
    branch_loans = frames["loans"].filter(pl.col("branch_id") == "CEN").group_by("title_id").len()
    assert cold[0].title_id in set(branch_loans.sort("len", descending=True)["title_id"][:20])
    first = frames["loans"]["title_id"][0]
    warm = svc.recommend_for_reader("walk-in", n=5, branch="CEN", extra_history=[first])
    assert first not in {r.title_id for r in warm}
    assert any(x.code.value == "because_you_borrowed" and x.ref == first for r in warm for x in r.reasons)
    with pytest.raises(KeyError, match="branch"):
        svc.recommend_for_reader("walk-in", branch="NOWHERE")


def test_child_cards_never_get_adult_only_titles(city):
    frames, model, ctx, svc = city
    frames2 = dict(frames)
    frames2["readers"] = frames["readers"].with_columns(card_type=pl.lit("child"), age_band=pl.lit("adult"))
    from recsys.context import LibraryContext

    ctx2 = LibraryContext.from_frames(frames2, model.titles_, model.readers_, ctx.today)
    svc2 = RecommendationService(model, ctx2, FilterConfig(require_available=False))
    out = svc2.recommend_for_readers(list(ctx2.readers.ids), n=10)
    adult_only = AUDIENCES.index("adult_only")
    got = [ctx2.audience[ctx2.titles.get(r.title_id)] for recs in out.values() for r in recs]
    assert got and adult_only not in got


def test_context_must_match_model(city):
    frames, model, ctx, _ = city
    _, model2, _ = build(seed=1, n_titles=50)
    with pytest.raises(ValueError, match="title vocabulary"):
        RecommendationService(model2, ctx)


def test_accuracy_cost_table(city):
    frames, model, ctx, _ = city
    hist = model.user_items_
    # Hold out one loan per reader with at least 3 loans.
    rows = np.flatnonzero(np.diff(hist.indptr) >= 3)
    sub = hist[rows].tolil()
    target = sp.lil_matrix(sub.shape, dtype=np.float32)
    for i in range(sub.shape[0]):
        t = sub.rows[i][-1]
        target[i, t] = 1
        sub[i, t] = 0
    configs = {
        "none": PromotionConfig(opt_out=True),
        "default": PromotionConfig(),
        "diverse": PromotionConfig(mmr_lambda=0.0, novelty_exponent=0.0),
    }
    table = accuracy_cost(model, sp.csr_matrix(sub), sp.csr_matrix(target), ctx, configs, n=5)
    assert set(table["config"]) == set(configs)
    none = table.filter(pl.col("config") == "none")
    assert np.allclose(none["delta"].fill_nan(0).to_numpy(), 0.0)
    div = table.filter((pl.col("config") == "diverse") & (pl.col("metric") == "diversity"))["delta"][0]
    assert div >= 0


def test_personalisation_off_gives_the_same_filtered_popular_list_to_readers_of_a_branch(city):
    frames, model, ctx, svc = city
    ids = list(ctx.readers.ids[:12])
    off = svc.recommend_for_readers(ids, n=5, promotion=False, personalised=False)
    on = svc.recommend_for_readers(ids, n=5, promotion=False)
    per, glob = build_exclusions(ctx, ctx.readers.index(ids), FilterConfig())
    ok = admissible(per, glob)
    home = ctx.reader_home_branch[ctx.readers.index(ids)]
    for i, rid in enumerate(ids):
        for rec in off[rid]:
            assert ok[i, ctx.titles.get(rec.title_id)]  # filters still apply
            assert all(r.code != ReasonCode.BECAUSE_YOU_BORROWED for r in rec.reasons)
    # Two readers of one branch with the same admissible titles get the same non-personal list.
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            if home[i] == home[j] and (ok[i] == ok[j]).all():
                assert [r.title_id for r in off[ids[i]]] == [r.title_id for r in off[ids[j]]]
    assert any([r.title_id for r in off[x]] != [r.title_id for r in on[x]] for x in ids)
