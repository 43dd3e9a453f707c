"""Request coalescing: concurrent requests are answered in groups, with the same lists as one by one."""

from __future__ import annotations

import asyncio

import pytest

from serving.coalescer import RequestCoalescer


@pytest.fixture(scope="module")
def bundle(app):
    return app.state.yuedu.bundle


def test_coalesced_answers_equal_single_answers(bundle):
    readers = [str(r) for r in bundle.model.readers_.ids[:24]] + ["UNKNOWN-1", "UNKNOWN-2"]
    coalescer = RequestCoalescer(max_readers=16)

    async def go():
        try:
            return await asyncio.gather(*(coalescer.recommend(bundle, r, 7, None, True) for r in readers))
        finally:
            await coalescer.aclose()

    coalesced = asyncio.run(go())
    single = [bundle.service.recommend_for_reader(r, n=7) for r in readers]
    assert [[x.title_id for x in b] for b in coalesced] == [[x.title_id for x in s] for s in single]
    assert max(coalescer.group_sizes) > 1 and max(coalescer.group_sizes) <= 16
    assert sum(coalescer.group_sizes) == len(readers)


def test_groups_never_mix_parameters(bundle):
    reader = str(bundle.model.readers_.ids[0])
    coalescer = RequestCoalescer()

    async def go():
        try:
            return await asyncio.gather(
                coalescer.recommend(bundle, reader, 3, None, True), coalescer.recommend(bundle, reader, 9, None, False)
            )
        finally:
            await coalescer.aclose()

    short, long_ = asyncio.run(go())
    assert len(short) == 3 and len(long_) == 9
    assert [x.title_id for x in long_] == [
        x.title_id for x in bundle.service.recommend_for_reader(reader, 9, promotion=False)
    ]


def test_a_failing_group_fails_only_its_requests():
    class Service:
        def recommend_for_readers(self, ids, n, branch, promotion, personalised=True):
            if n == 13:
                raise ValueError("unlucky")
            return {r: [r] * n for r in ids}

    class Bundle:
        service = Service()

    coalescer = RequestCoalescer()

    async def go():
        try:
            return await asyncio.gather(
                coalescer.recommend(Bundle, "a", 13, None, True),
                coalescer.recommend(Bundle, "b", 2, None, True),
                return_exceptions=True,
            )
        finally:
            await coalescer.aclose()

    bad, good = asyncio.run(go())
    assert isinstance(bad, ValueError) and good == ["b", "b"]
