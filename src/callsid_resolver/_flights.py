"""Single flight in one process: concurrent lookups of one call SID share one upstream lookup."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future

from ._models import Resolution

__all__ = ["TaskFlights", "ThreadFlights"]


class ThreadFlights:
    """In-process single flight for threads: the first caller of a key runs, the others wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future[Resolution]] = {}

    def run(self, key: Hashable, work: Callable[[], Resolution]) -> Resolution:
        with self._lock:
            future = self._running.get(key)
            leader = future is None
            if future is None:
                future = self._running[key] = Future()
        if not leader:
            return _shared(future.result())
        try:
            result = work()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._lock:
                del self._running[key]


class TaskFlights:
    """Single flight for asyncio: one task per key, awaited (shielded) by every caller, so a
    cancelled caller never cancels the lookup the others are waiting for."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[Resolution]] = {}

    async def run(self, key: Hashable, work: Callable[[], Awaitable[Resolution]]) -> Resolution:
        task = self._running.get(key)
        leader = task is None
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda t: self._finished(key, t))
        result = await asyncio.shield(task)
        return result if leader else _shared(result)

    def _finished(self, key: Hashable, task: asyncio.Task[Resolution]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved, so an error nobody awaited is not reported as lost


def _shared(result: Resolution) -> Resolution:
    """A waiter's copy: it sent no request of its own."""
    return result.model_copy(update={"requests": 0})
