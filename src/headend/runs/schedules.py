"""Schedules: an agent file's ``schedule:`` entries start background runs by themselves.

Every instance looks at the served agents' entries. At an entry's time, the instances
sharing the store race to insert that fire (``Store.claim_fire``) and the one that wins
starts the run, so each fire makes one run however many instances serve. A fire is taken
only within ``LATE`` seconds of its time: fires missed while every instance was down are
not made up afterwards, in a burst or at all; the next fires as usual.

A scheduled run is a background response to the entry's input, owned by ``schedule`` (its
usage and limits are counted under that name); it ends like any, webhooks included.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

from headend.access.principal import Principal
from headend.agents.registry import Agent
from headend.agents.spec import ScheduleEntry
from headend.errors import APIError
from headend.runs.background import BackgroundRuns
from headend.runs.record import OwnRecord
from headend.runs.response_runs import ResponseRuns
from headend.runs.stored_responses import SCHEDULE_OWNER
from headend.store.base import Store
from headend.surfaces.responses_translate import ResponseEvents, checked

log = logging.getLogger(__name__)

LATE = 60.0  # a fire is taken at most this long after its time
LONGEST_SLEEP = 30.0  # how long the scheduler sleeps at most (agents may change meanwhile)

Start = Callable[[Agent, ScheduleEntry], Awaitable[str]]


def schedule_principal(agent_id: str) -> Principal:
    """Who a schedule's runs run as: ``schedule``, with that agent only."""
    return Principal(
        key_id=SCHEDULE_OWNER, scopes=frozenset({"chat"}), agents=frozenset({agent_id})
    )


class ScheduledRuns:
    """Starts an entry's run: a background response, as if POSTed by the schedule."""

    def __init__(self, response_runs: ResponseRuns, background: BackgroundRuns) -> None:
        self.response_runs = response_runs
        self.background = background

    async def start(self, agent: Agent, entry: ScheduleEntry) -> str:
        body = checked({"model": agent.id, "input": entry.input, "background": True})
        record = OwnRecord(request_id=f"sched_{uuid.uuid4().hex[:16]}")
        started = await self.response_runs.start(body, record, {}, schedule_principal(agent.id))
        events = ResponseEvents(started.shape)
        await self.background.accept(
            started.run, events, started.items, started.owner, started.resume()
        )
        return started.shape.id


class Scheduler:
    def __init__(
        self,
        store: Store,
        agents: Callable[[], Iterable[Agent]],
        start: Start,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.agents = agents  # the agents served now, at their current versions
        self.start = start
        self.clock = clock
        self._taken: dict[tuple[str, str], float] = {}  # the last fire this instance saw

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the store away: the next tick tries again
                log.warning("schedules: could not fire", exc_info=True)
            await asyncio.sleep(self.pause())

    async def tick(self) -> None:
        """Take and start every fire due now that no instance has taken."""
        now = self.clock()
        for agent, entry in self._entries():
            fire_at = entry.previous(now)
            key = (agent.id, entry.key)
            if now - fire_at > LATE or self._taken.get(key, float("-inf")) >= fire_at:
                continue
            self._taken[key] = fire_at
            if not await self.store.claim_fire(agent.id, entry.key, fire_at, now):
                continue  # another instance has it
            response_id: str | None = None
            error: str | None = None
            try:
                response_id = await self.start(agent, entry)
            except APIError as exc:  # over a limit, an agent that cannot run…
                error = exc.message
                log.warning("schedule of %s (%s) did not start: %s", agent.id, entry.cron, error)
            await self.store.fire_started(agent.id, entry.key, fire_at, response_id, error)

    def pause(self) -> float:
        """Seconds to the next fire of any entry (at most LONGEST_SLEEP)."""
        now = self.clock()
        upcoming = [entry.next(now) - now for _, entry in self._entries()]
        return max(0.05, min([LONGEST_SLEEP, *upcoming]))

    def _entries(self) -> list[tuple[Agent, ScheduleEntry]]:
        return [(agent, entry) for agent in self.agents() for entry in agent.spec.schedule]
