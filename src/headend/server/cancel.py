"""Stop work for a client that has gone away."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

from headend.errors import APIError

T = TypeVar("T")


class ClientDisconnected(APIError):
    """The client left before the answer; nobody reads this, the server just stops."""

    status = 499
    type = "client_closed_request"


async def until_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; if the client disconnects first, cancel it (freeing the model at once)."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                task.cancel()
                return

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        raise ClientDisconnected("The client closed the connection.") from None
    finally:
        watcher.cancel()
        task.cancel()
