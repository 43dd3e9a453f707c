"""Dynamic batching of recommendation requests (the model-server trick, on the recsys batch API).

:meth:`recsys.service.RecommendationService.recommend_for_readers` costs ~2 ms of CPU for one reader
and ~0.4 ms per extra reader (small city: 1 reader 2.8 ms, 8 readers 6.1 ms, 64 readers 27 ms; the
per-context parts are cached in ``recsys.context``). The batcher queues concurrent requests and
answers them with one batched call per (model bundle, n, branch, promotion) group: while one batch
computes, the next one fills, so batches grow with the load and latency stays near one batch's
compute time. At low load a batch holds one reader and nothing is waited for.

All model calls (recommendations and live events) run on ONE worker thread, so the service's
in-memory live-event store is never read and written at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from recsys.service import Recommendation

if TYPE_CHECKING:
    from serving.state import ModelBundle

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: Readers per batched call at most (bounds one batch's latency).
MAX_BATCH = 64


@dataclass
class _Item:
    bundle: ModelBundle
    reader_id: str
    n: int
    branch: str | None
    promotion: bool
    future: asyncio.Future


class RecommendationBatcher:
    """Queue recommendation requests and answer them in batches on one model thread."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yuedu-model")
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        #: Batch sizes served (for tests and the load-test note).
        self.batches: list[int] = []

    def _ensure_started(self) -> asyncio.Queue[_Item]:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is not loop or self._task is None or self._task.done():
                self._loop = loop
                self._queue = asyncio.Queue()
                self._task = loop.create_task(self._run(self._queue))
        return self._queue

    async def recommend(
        self, bundle: ModelBundle, reader_id: str, n: int, branch: str | None, promotion: bool
    ) -> list[Recommendation]:
        """Recommendations for one reader, computed in a batch with whatever else is queued."""
        queue = self._ensure_started()
        future = asyncio.get_running_loop().create_future()
        await queue.put(_Item(bundle, reader_id, n, branch, promotion, future))
        return await future

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model thread (e.g. ``service.record_event``)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _run(self, queue: asyncio.Queue[_Item]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await queue.get()]
            while len(items) < self.max_batch and not queue.empty():
                items.append(queue.get_nowait())
            groups: dict[tuple, list[_Item]] = defaultdict(list)
            for it in items:
                groups[(id(it.bundle), it.n, it.branch, it.promotion)].append(it)
            for group in groups.values():
                try:
                    result = await loop.run_in_executor(self._executor, _compute, group)
                except Exception as exc:  # noqa: BLE001 - hand the failure to every waiting request
                    for it in group:
                        if not it.future.done():
                            it.future.set_exception(exc)
                    continue
                self.batches.append(len(group))
                for it in group:
                    if not it.future.done():
                        it.future.set_result(result[it.reader_id])

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)


def _compute(group: list[_Item]) -> dict[str, list[Recommendation]]:
    first = group[0]
    ids = list(dict.fromkeys(it.reader_id for it in group))
    return first.bundle.service.recommend_for_readers(ids, n=first.n, branch=first.branch, promotion=first.promotion)
