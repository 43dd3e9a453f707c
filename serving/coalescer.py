"""Request coalescing: concurrent HTTP recommendation requests answered by one multi-reader call.

(The model-server trick of dynamic batching, on the recsys multi-reader API; "coalescing" here so
that it is not confused with batch ranking or the nightly top-n.)

:meth:`recsys.service.RecommendationService.recommend_for_readers` costs ~2 ms of CPU for one reader
and ~0.4 ms per extra reader (small city: 1 reader 2.8 ms, 8 readers 6.1 ms, 64 readers 27 ms; the
per-context parts are cached in ``recsys.context``). The coalescer queues concurrent requests and
answers them with one call per (model bundle, n, branch, promotion) group: while one group
computes, the next one fills, so groups grow with the load and latency stays near one call's
compute time. At low load a group holds one reader and nothing is waited for.

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

#: Readers per coalesced call at most (bounds one call's latency).
MAX_READERS_PER_CALL = 64


@dataclass
class _Request:
    bundle: ModelBundle
    reader_id: str
    n: int
    branch: str | None
    promotion: bool
    future: asyncio.Future
    personalised: bool = True


class RequestCoalescer:
    """Queue recommendation requests and answer them in coalesced groups on one model thread."""

    def __init__(self, max_readers: int = MAX_READERS_PER_CALL) -> None:
        self.max_readers = max_readers
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yuedu-model")
        self._queue: asyncio.Queue[_Request] | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        #: Readers per coalesced call served (for tests and the load-test note).
        self.group_sizes: list[int] = []

    def _ensure_started(self) -> asyncio.Queue[_Request]:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is not loop or self._task is None or self._task.done():
                self._loop = loop
                self._queue = asyncio.Queue()
                self._task = loop.create_task(self._run(self._queue))
        return self._queue

    async def recommend(
        self,
        bundle: ModelBundle,
        reader_id: str,
        n: int,
        branch: str | None,
        promotion: bool,
        personalised: bool = True,
    ) -> list[Recommendation]:
        """Recommendations for one reader, computed in one call with whatever else is queued alike."""
        queue = self._ensure_started()
        future = asyncio.get_running_loop().create_future()
        await queue.put(_Request(bundle, reader_id, n, branch, promotion, future, personalised))
        return await future

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model thread (e.g. ``service.record_event``)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def call_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model thread from a worker thread (a sync route; never from the
        event loop, which it would block) and wait for it."""
        return self._executor.submit(fn, *args).result()

    async def _run(self, queue: asyncio.Queue[_Request]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await queue.get()]
            while len(items) < self.max_readers and not queue.empty():
                items.append(queue.get_nowait())
            groups: dict[tuple, list[_Request]] = defaultdict(list)
            for it in items:
                groups[(id(it.bundle), it.n, it.branch, it.promotion, it.personalised)].append(it)
            for group in groups.values():
                try:
                    result = await loop.run_in_executor(self._executor, _recommend_group, group)
                except Exception as exc:  # noqa: BLE001 - hand the failure to every waiting request
                    for it in group:
                        if not it.future.done():
                            it.future.set_exception(exc)
                    continue
                self.group_sizes.append(len(group))
                for it in group:
                    if not it.future.done():
                        it.future.set_result(result[it.reader_id])

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)


def _recommend_group(group: list[_Request]) -> dict[str, list[Recommendation]]:
    first = group[0]
    ids = list(dict.fromkeys(it.reader_id for it in group))
    return first.bundle.service.recommend_for_readers(
        ids, n=first.n, branch=first.branch, promotion=first.promotion, personalised=first.personalised
    )
