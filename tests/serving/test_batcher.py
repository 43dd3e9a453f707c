"""Dynamic batching: concurrent requests are answered in batches, with the same lists as one by one."""

from __future__ import annotations

import asyncio

import pytest

from serving.batcher import RecommendationBatcher


@pytest.fixture(scope="module")
def bundle(app):
    return app.state.yuedu.bundle


def test_batched_answers_equal_single_answers(bundle):
    readers = [str(r) for r in bundle.model.readers_.ids[:24]] + ["UNKNOWN-1", "UNKNOWN-2"]
    batcher = RecommendationBatcher(max_batch=16)

    async def go():
        try:
            return await asyncio.gather(*(batcher.recommend(bundle, r, 7, None, True) for r in readers))
        finally:
            await batcher.aclose()

    batched = asyncio.run(go())
    single = [bundle.service.recommend_for_reader(r, n=7) for r in readers]
    assert [[x.title_id for x in b] for b in batched] == [[x.title_id for x in s] for s in single]
    assert max(batcher.batches) > 1 and max(batcher.batches) <= 16
    assert sum(batcher.batches) == len(readers)


def test_groups_never_mix_parameters(bundle):
    reader = str(bundle.model.readers_.ids[0])
    batcher = RecommendationBatcher()

    async def go():
        try:
            return await asyncio.gather(
                batcher.recommend(bundle, reader, 3, None, True), batcher.recommend(bundle, reader, 9, None, False)
            )
        finally:
            await batcher.aclose()

    short, long_ = asyncio.run(go())
    assert len(short) == 3 and len(long_) == 9
    assert [x.title_id for x in long_] == [
        x.title_id for x in bundle.service.recommend_for_reader(reader, 9, promotion=False)
    ]


def test_a_failing_batch_fails_only_its_requests():
    class Service:
        def recommend_for_readers(self, ids, n, branch, promotion):
            if n == 13:
                raise ValueError("unlucky")
            return {r: [r] * n for r in ids}

    class Bundle:
        service = Service()

    batcher = RecommendationBatcher()

    async def go():
        try:
            return await asyncio.gather(
                batcher.recommend(Bundle, "a", 13, None, True),
                batcher.recommend(Bundle, "b", 2, None, True),
                return_exceptions=True,
            )
        finally:
            await batcher.aclose()

    bad, good = asyncio.run(go())
    assert isinstance(bad, ValueError) and good == ["b", "b"]
