"""Wire shapes of ``GET /admin/schedules``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class FireShape(BaseModel):
    fire_at: float  # the time the cron named (Unix time)
    fired_at: float  # when an instance took it
    response_id: str | None  # the background response it started
    status: str | None  # that response's: queued, in_progress, completed…
    error: str | None  # why no run started


class ScheduleShape(BaseModel):
    object: Literal["schedule"] = "schedule"
    agent: str
    cron: str  # five fields, UTC
    input: str
    next_fire_at: float
    last_runs: list[FireShape]  # newest first


class ScheduleList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ScheduleShape]
