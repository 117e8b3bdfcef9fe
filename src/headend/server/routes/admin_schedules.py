"""``GET /admin/schedules``: every served agent's schedule entries, with their next fire and
their latest runs (admin scope)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from headend.schemas.schedules_api import FireShape, ScheduleList, ScheduleShape
from headend.server.json_bodies import json_response
from headend.server.services import services

LAST_RUNS = 5  # per entry


async def list_schedules(request: Request) -> Response:
    found = services(request)
    now = time.time()
    shown = []
    for agent in sorted(found.versions.agents, key=lambda a: a.id):
        if not agent.spec.schedule:
            continue
        fires = await found.store.recent_fires(agent.id, LAST_RUNS * len(agent.spec.schedule))
        for entry in agent.spec.schedule:
            runs = [
                FireShape(
                    fire_at=f.fire_at,
                    fired_at=f.fired_at,
                    response_id=f.response_id,
                    status=f.status,
                    error=f.error,
                )
                for f in fires
                if f.entry == entry.key
            ]
            shown.append(
                ScheduleShape(
                    agent=agent.id,
                    cron=entry.cron,
                    input=entry.input,
                    next_fire_at=entry.next(now),
                    last_runs=runs[:LAST_RUNS],
                )
            )
    return json_response(ScheduleList(data=shown))
