"""``GET /admin/background`` and ``GET /admin/background/{id}`` (admin scope): every owner's
background runs, newest first, and one run with the steps its agent has committed so far
(the model's replies that called tools, and the tools' results), which the console shows
as they happen."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend.errors import NotFound
from headend.schemas.background_api import RunList, RunShape, RunSteps, StepShape
from headend.server.json_bodies import json_response
from headend.server.query import query_choice, query_whole
from headend.server.services import services
from headend.store.base import BackgroundRun, RunStep

MOST = 500
STATUSES = ("queued", "in_progress", "completed", "failed", "cancelled", "incomplete")
RESULT_CHARS = 4_000  # of a tool's result: the console shows its start


class RunNotFound(NotFound):
    default_code = "run_not_found"


async def list_runs(request: Request) -> Response:
    """``?status=queued|in_progress|…&limit=50``."""
    status = query_choice(request, "status", STATUSES)
    limit = query_whole(request, "limit", 1, MOST) or 50
    found = await services(request).store.list_background_runs(status, limit)
    return json_response(RunList(data=[run_shape(run) for run in found]))


async def run_steps(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    store = services(request).store
    run = await store.any_background_run(response_id)
    if run is None:
        raise RunNotFound(f"No background run '{response_id}'.")
    steps = [step_shape(step) for step in await store.run_steps(response_id)]
    return json_response(RunSteps(**run_shape(run).model_dump(), steps=steps))


def run_shape(run: BackgroundRun) -> RunShape:
    return RunShape(
        id=run.id,
        owner=run.owner,
        status=run.status,
        cancel_requested=run.cancel_requested,
        taken_up=run.attempt,
        created_at=run.created_at,
        updated_at=run.updated_at,
    )


def step_shape(step: RunStep) -> StepShape:
    shape = StepShape(
        number=step.number,
        kind="tool" if step.kind == "tool" else "reply",
        taken_up=step.attempt,
        created_at=step.created_at,
    )
    data = step.data
    if step.kind == "tool":
        shape.call_id = data.get("call_id")
        shape.result = str(data.get("content") or "")[:RESULT_CHARS]
        return shape
    message = data.get("message") or {}
    shape.text = message.get("content") or None
    shape.usage = data.get("usage")
    shape.tool_calls = [
        {
            "id": call.get("id"),
            "name": (call.get("function") or {}).get("name"),
            "arguments": (call.get("function") or {}).get("arguments"),
        }
        for call in message.get("tool_calls") or ()
    ]
    return shape
