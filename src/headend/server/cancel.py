"""Stop work for a client that has gone away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from headend.errors import ClientDisconnected

T = TypeVar("T")


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it (freeing the model at once).

    One watcher task cancels this very task, so the work runs without a task of its own.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gone = True
                task.cancel()
                return

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone or task.cancelling() > 1:
            raise
        task.uncancel()
        raise ClientDisconnected("The client closed the connection.") from None
    finally:
        watcher.cancel()
