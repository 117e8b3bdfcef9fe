"""Wire shapes of ``GET /admin/background`` and ``GET /admin/background/{id}``: background
runs as operators see them, every owner's, and one run's committed steps."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class RunShape(BaseModel):
    object: Literal["background.run"] = "background.run"
    id: str  # the response's
    owner: str | None  # the key (or widget visitor) it belongs to
    status: str  # queued, in_progress, completed, failed, cancelled, incomplete
    cancel_requested: bool
    taken_up: int  # times another instance took it up after its own stopped
    created_at: float
    updated_at: float  # its last write: a running run writes at least each second


class StepShape(BaseModel):
    number: int
    kind: Literal["reply", "tool"]
    taken_up: int  # the claim that committed it (0: the instance that accepted the run)
    created_at: float
    text: str | None = None  # a reply's words
    tool_calls: list[dict[str, Any]] | None = None  # a reply's calls: id, name, arguments
    call_id: str | None = None  # a tool step's call
    result: str | None = None  # a tool step's result
    usage: dict[str, Any] | None = None  # a reply's model call


class RunList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RunShape]  # newest first


class RunSteps(RunShape):
    steps: list[StepShape]  # in the order committed
