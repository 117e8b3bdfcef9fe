"""The store, timed: every operation's latency in ``headend_store_operation_duration_seconds``."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from headend.observability.metrics import Metrics
from headend.store.base import Store


class _TimedStore:
    """Passes everything to the store; its coroutine methods are timed, labelled by name."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not inspect.iscoroutinefunction(found):
            return found
        method: Callable[..., Awaitable[Any]] = found
        timing = self._metrics.store_ops.labels(name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                timing.observe(time.perf_counter() - started)

        setattr(self, name, timed)  # found once: later calls skip __getattr__
        return timed


def timed_store(store: Store, metrics: Metrics) -> Store:
    return cast(Store, _TimedStore(store, metrics))
