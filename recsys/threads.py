"""Thread-pool limits for BLAS / OpenMP, cheap enough for the per-request hot path.

``threadpoolctl.threadpool_limits`` rediscovers the loaded native libraries on every call (it reads
``/proc/self/maps``: milliseconds, as much as a whole single-reader recommendation). One process-wide
controller does that discovery once; ``limit_threads`` reuses it.
"""

from __future__ import annotations

from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None


def limit_threads(limits: int | None, user_api: str | None = "blas"):
    """A context manager limiting ``user_api`` thread pools to ``limits`` threads (None = no limit)."""
    global _controller
    if _controller is None:  # created on first use, after numpy/scipy have loaded their BLAS
        _controller = ThreadpoolController()
    return _controller.limit(limits=limits, user_api=user_api)
