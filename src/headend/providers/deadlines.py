"""Deadlines for many awaits on one loop timer.

``asyncio.timeout`` makes a loop timer when a block starts and cancels it when the block
ends: about 8 µs under uvloop, paid once per upstream call and once per streamed chunk.
``Deadlines`` keeps the blocks in force in a set and one timer at the earliest deadline it
has been asked for: starting and ending a block is an insertion and a removal. When the
timer fires it cancels the tasks whose deadline has passed and is set again for the next.

A block behaves as ``asyncio.timeout``'s: past its deadline, the task is cancelled and the
block raises ``TimeoutError``; a cancellation from elsewhere goes through untouched.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType


class Deadlines:
    """The blocks in force on one event loop, and the one timer that watches them."""

    def __init__(self) -> None:
        self._active: set[Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None

    def at(self, when: float) -> Deadline:
        """A block that ends by ``when`` (the loop's clock)."""
        return Deadline(self, when)

    def after(self, seconds: float) -> Deadline:
        """A block that ends within ``seconds``."""
        return Deadline(self, asyncio.get_running_loop().time() + seconds)

    def _add(self, deadline: Deadline) -> None:
        self._active.add(deadline)
        if deadline.when < self._timer_at or self._loop is not asyncio.get_running_loop():
            self._arm(deadline.when)

    def _remove(self, deadline: Deadline) -> None:
        # The timer stays: when it fires it finds nothing due and moves to the next deadline.
        self._active.discard(deadline)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_at(when, self._fire)
        self._timer_at = when

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        assert self._loop is not None
        now = self._loop.time()
        due = [deadline for deadline in self._active if deadline.when <= now]
        for deadline in due:
            self._active.discard(deadline)
            deadline.expire()
        if self._active:
            self._arm(min(deadline.when for deadline in self._active))


class Deadline:
    """``async with deadlines.at(when):`` — the block's task is cancelled at ``when``."""

    __slots__ = ("_cancelling", "_expired", "_owner", "_task", "when")

    def __init__(self, owner: Deadlines, when: float) -> None:
        self._owner = owner
        self.when = when
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._expired = False

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._owner._add(self)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._owner._remove(self)
        if not self._expired:
            return
        assert self._task is not None
        # Ours was the cancellation (and no other is pending): it is a timeout.
        if self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from error

    def expire(self) -> None:
        if self._task is not None and not self._expired:
            self._expired = True
            self._task.cancel()
