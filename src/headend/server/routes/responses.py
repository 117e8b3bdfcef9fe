"""``/v1/responses``: OpenAI's Responses API, over the same chat run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator

import orjson
from starlette.requests import Request
from starlette.responses import Response

from headend.errors import APIError, MethodNotAllowed, UpgradeRequired
from headend.runs.events import completion_of, stream_events
from headend.runs.run import Run
from headend.server.auth import principal_of
from headend.server.cancel import until_disconnected
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.query import query_flag, query_whole
from headend.server.request_record import request_context
from headend.server.services import Services, services
from headend.server.sse import EventStream
from headend.surfaces.responses_translate import (
    ResponseEvents,
    checked,
)
from headend.types import Json

log = logging.getLogger(__name__)

# Hosted tools (web_search, file_search…) a request offered that headend cannot run.
DROPPED_HEADER = "x-headend-dropped-tools"


def event_frames(events: list[Json]) -> bytes:
    return b"".join(
        b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        for event in events
    )


async def create_response(request: Request) -> Response:
    found = services(request)
    body = checked(decode_json(await read_body(request, found.settings.server.max_body_bytes)))
    started = await found.response_runs.start(
        body, request_context(request), request.headers, principal_of(request.scope)
    )
    run, shape, owner, items = started.run, started.shape, started.owner, started.items
    headers = run.headers
    if shape.offered.dropped:
        headers[DROPPED_HEADER] = ", ".join(shape.offered.dropped)
        log.info("tools not offered to the model (hosted): %s", ", ".join(shape.offered.dropped))
    if started.background:
        events = ResponseEvents(shape)
        queued = await found.background.accept(run, events, items, owner, started.resume())
        if body.get("stream") is not True:
            return json_response(queued, headers=headers)
        return follow_stream(found, await found.background.follow(shape.id, owner, -1), headers)
    if started.assembled:  # its hosted tools' items come from the stream's events
        events = ResponseEvents(shape)
        saved = items if started.keep else None
        response = await until_disconnected(
            request, assembled(response_events(found, run, events, saved, owner))
        )
        return json_response(response, headers=headers)
    if run.stream:
        events = ResponseEvents(shape)
        return EventStream(
            response_frames(found, run, events, items if started.keep else None, owner),
            on_error=lambda error: event_frames([events.failed(error)]),
            keepalive=found.settings.server.keepalive_seconds,
            headers=headers,
            on_close=lambda: found.runs.release(run),
        )
    answer = await until_disconnected(request, completion_of(found.runs.events(run)))
    response = shape.from_answer(answer)
    if started.keep:
        await found.responses.save(response, run, items, owner)
    return json_response(response, headers=headers)


async def assembled(batches: AsyncGenerator[list[Json], None]) -> Json:
    """The response a stream of events ends with (stored by the stream, if it is kept)."""
    response: Json = {}
    async with contextlib.aclosing(batches):
        async for batch in batches:
            for event in batch:
                if event["type"] in ("response.completed", "response.failed"):
                    response = event["response"]
    return response


def follow_stream(
    found: Services, batches: AsyncGenerator[list[Json], None], headers: dict[str, str] | None
) -> EventStream:
    """A background response's events as SSE; the run goes on when the client leaves."""
    return EventStream(
        (event_frames(batch) async for batch in batches),
        on_error=lambda error: event_frames([error_event(error)]),
        keepalive=found.settings.server.keepalive_seconds,
        headers=headers,
    )


def error_event(error: APIError) -> Json:
    """A stream's ``error`` event: the stream failed, not (as far as it knows) the run."""
    return {
        "type": "error",
        "code": error.code,
        "message": error.message,
        "param": error.param,
        "sequence_number": -1,
    }


async def response_events(
    found: Services,
    run: Run,
    events: ResponseEvents,
    items: list[Json] | None,
    owner: str | None,
) -> AsyncGenerator[list[Json], None]:
    """A run's Responses events, batch by batch, for a stream of any transport; the
    response is stored (``items``: its input) before the client hears it is done."""
    yield events.start()  # at once: a failure later is a response.failed
    async for event in stream_events(found.runs.events(run)):
        out = events.take(event)
        if out:
            yield out
    closing, response = events.finish_events()
    if items is not None:
        await found.responses.save(response, run, items, owner)
    yield closing


async def response_frames(
    found: Services,
    run: Run,
    events: ResponseEvents,
    items: list[Json] | None,
    owner: str | None,
) -> AsyncGenerator[bytes, None]:
    async for batch in response_events(found, run, events, items, owner):
        yield event_frames(batch)


async def responses_get(request: Request) -> Response:
    """A plain GET (the WebSocket upgrade goes to ``responses_socket``): 426 for an upgrade
    the server could not take (not to WebSocket), else 405."""
    if request.headers.get("upgrade"):
        raise UpgradeRequired(
            "The Responses API is served over HTTP (POST /v1/responses) and WebSocket "
            "(GET /v1/responses with 'Upgrade: websocket')."
        )
    raise MethodNotAllowed(f"Method GET is not allowed on {request.url.path}.")


async def retrieve_response(request: Request) -> Response:
    """The response; with ``stream=true``, a background response's events after
    ``starting_after`` (from its first), then as they come."""
    found, response_id = services(request), request.path_params["response_id"]
    owner = principal_of(request.scope).owner
    if query_flag(request, "stream"):
        after = query_whole(request, "starting_after", -1, 2**31 - 1)
        after = -1 if after is None else after
        return follow_stream(found, await found.background.follow(response_id, owner, after), None)
    record = await found.responses.readable(response_id, principal_of(request.scope))
    return json_response(record.body)


async def cancel_response(request: Request) -> Response:
    found = services(request)
    response_id = request.path_params["response_id"]
    body = await found.background.cancel(response_id, principal_of(request.scope).owner)
    return json_response(body)


async def delete_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    await services(request).responses.delete(response_id, principal_of(request.scope).owner)
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


async def list_input_items(request: Request) -> Response:
    record = await services(request).responses.get(
        request.path_params["response_id"], principal_of(request.scope).owner
    )
    items = record.input_items
    if request.query_params.get("order", "desc") == "desc":
        items = list(reversed(items))
    return json_response(
        {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
            "has_more": False,
        }
    )
