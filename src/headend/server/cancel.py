"""Stop work for a client that has gone away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.types import Receive, Scope

from headend.errors import ClientDisconnected

T = TypeVar("T")

DISCONNECT = "headend.disconnect"  # the scope extension headend's own server protocol sets


class Disconnect:
    """A connection's going away, told by the server's protocol as it happens.

    With it, a request waits for its work without a watcher task of its own (a task and
    its cancellation are the dearest part of a short relay). Servers that do not set it
    are watched through ``receive`` instead."""

    __slots__ = ("_waiters", "gone")

    def __init__(self) -> None:
        self.gone = False
        self._waiters: list[Callable[[], None]] = []

    def fire(self) -> None:
        self.gone = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter()

    def add(self, waiter: Callable[[], None]) -> None:
        self._waiters.append(waiter)

    def discard(self, waiter: Callable[[], None]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it (freeing the model at once)."""
    return await while_connected(request.scope, request.receive, work)


async def while_connected(scope: Scope, receive: Receive, work: Awaitable[T]) -> T:
    """``until_disconnected`` for an ASGI app: the work runs in this very task, which is
    cancelled when the client goes (``ClientDisconnected`` is raised then)."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    def cancel() -> None:
        nonlocal gone
        gone = True
        task.cancel()

    signal: Disconnect | None = scope.get("extensions", {}).get(DISCONNECT, {}).get("signal")
    watcher: asyncio.Future[None] | None = None
    if signal is None:
        watcher = asyncio.ensure_future(_watch(receive, cancel))
    elif signal.gone:
        cancel()  # delivered at the work's first wait, so its own clean-up still runs
    else:
        signal.add(cancel)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone or task.cancelling() > 1:
            raise
        task.uncancel()
        raise ClientDisconnected("The client closed the connection.") from None
    finally:
        if watcher is not None:
            watcher.cancel()
        elif signal is not None:
            signal.discard(cancel)


async def _watch(receive: Receive, cancel: Callable[[], None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            cancel()
            return
