"""A request's work stops when its client goes: told by headend's own server protocol, or,
under any other ASGI server, seen through ``receive``. Either way the work's own clean-up
runs (that is what gives a model slot back)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request
from starlette.types import Message

from headend.errors import ClientDisconnected
from headend.server.cancel import DISCONNECT, Disconnect, until_disconnected


class Work:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cleaned_up = False

    async def run(self) -> str:
        try:
            self.started.set()
            await asyncio.sleep(30)
            return "finished"
        finally:
            self.cleaned_up = True


def request_with(signal: Disconnect | None, gone: asyncio.Event) -> Request:
    scope: dict[str, object] = {"type": "http", "method": "POST", "path": "/", "headers": []}
    if signal is not None:
        scope["extensions"] = {DISCONNECT: {"signal": signal}}

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    return Request(scope, receive)


@pytest.mark.parametrize("told_by", ["protocol", "receive"])
async def test_a_client_leaving_cancels_the_work_and_its_clean_up_runs(told_by: str) -> None:
    signal = Disconnect() if told_by == "protocol" else None
    gone = asyncio.Event()
    work = Work()
    waiting = asyncio.ensure_future(until_disconnected(request_with(signal, gone), work.run()))
    await work.started.wait()
    if signal is not None:
        signal.fire()
    else:
        gone.set()
    with pytest.raises(ClientDisconnected):
        await asyncio.wait_for(waiting, 2)
    assert work.cleaned_up


async def test_a_client_gone_before_the_work_began_still_lets_it_clean_up() -> None:
    signal = Disconnect()
    signal.fire()
    work = Work()
    with pytest.raises(ClientDisconnected):
        await asyncio.wait_for(
            until_disconnected(request_with(signal, asyncio.Event()), work.run()), 2
        )
    assert work.started.is_set()
    assert work.cleaned_up


async def test_work_that_finishes_is_not_cancelled_later_by_its_connection_closing() -> None:
    signal = Disconnect()

    async def quick() -> str:
        return "done"

    assert await until_disconnected(request_with(signal, asyncio.Event()), quick()) == "done"
    signal.fire()  # the connection closes after the answer: nothing is waiting any more
    await asyncio.sleep(0)
    task = asyncio.current_task()
    assert task is not None
    assert not task.cancelling()


async def test_a_cancellation_from_elsewhere_is_not_mistaken_for_the_client_leaving() -> None:
    work = Work()
    waiting = asyncio.ensure_future(
        until_disconnected(request_with(Disconnect(), asyncio.Event()), work.run())
    )
    await work.started.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert work.cleaned_up
