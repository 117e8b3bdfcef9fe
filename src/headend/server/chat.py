"""Serving chat completions: a ``model`` names an agent or a model route; either way the
request becomes an upstream call made by the router, and the answer goes back with the
client's ``model`` name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import orjson

from headend.agents.compose import agent_body
from headend.agents.registry import AgentRegistry
from headend.errors import APIError, InvalidRequest, ModelNotFound
from headend.providers.base import ChatCall, Json
from headend.providers.router import Router
from headend.providers.routes import RouteTable, Target
from headend.schemas.openai.chat import ChatCompletionRequest
from headend.schemas.validation import validate
from headend.server.context import RequestContext
from headend.server.sse import data_frame

log = logging.getLogger(__name__)

DONE_FRAME = b"data: [DONE]\n\n"


@dataclass(slots=True)
class Plan:
    """A validated request, ready to run."""

    client_model: str
    targets: tuple[Target, ...]
    call: ChatCall
    stream: bool
    include_usage: bool
    prepended: int = 0  # messages an agent put before the client's


_MESSAGE_PARAM = re.compile(r"^messages\[(\d+)\]")


def in_client_terms(error: InvalidRequest, prepended: int) -> InvalidRequest:
    """An upstream's complaint about ``messages[i]`` names the client's own message index."""
    param = error.param or ""
    match = _MESSAGE_PARAM.match(param) if prepended else None
    if match is not None and int(match.group(1)) >= prepended:
        error.param = f"messages[{int(match.group(1)) - prepended}]{param[match.end() :]}"
    return error


def _passthrough_checks(body: Json) -> None:
    """The little a plain model route checks itself; the upstream validates the rest."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "'messages' must be a non-empty array of messages.",
            param="messages",
            code="invalid_value",
        )
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise InvalidRequest("'stream' must be a boolean.", param="stream", code="invalid_type")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest(
            "'stream_options' must be an object.", param="stream_options", code="invalid_type"
        )


def _include_usage(body: Json) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class ChatService:
    def __init__(self, agents: AgentRegistry, routes: RouteTable, router: Router) -> None:
        self.agents = agents
        self.routes = routes
        self.router = router

    def plan(self, body: Any, context: RequestContext) -> Plan:
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(
                "Missing required parameter: 'model'.",
                param="model",
                code="missing_required_parameter",
            )
        agent = self.agents.get(name)
        if agent is not None:
            request = validate(ChatCompletionRequest, body)
            if request.unknown_fields():
                log.debug("ignoring unknown chat fields: %s", ", ".join(request.unknown_fields()))
            upstream, targets = agent_body(agent.spec, request), agent.targets
            prepended = len(upstream["messages"]) - len(request.messages)
        else:
            found = self.routes.for_client(name)
            if found is None:
                raise ModelNotFound(name)
            _passthrough_checks(body)
            upstream, targets, prepended = body, found, 0
        call = ChatCall(body=upstream, timer=context.timer, request_id=context.request_id)
        return Plan(
            client_model=name,
            targets=targets,
            call=call,
            stream=body.get("stream") is True,
            include_usage=_include_usage(body),
            prepended=prepended,
        )

    async def complete(self, plan: Plan) -> bytes:
        try:
            answer, _target = await self.router.complete(plan.targets, plan.call)
        except InvalidRequest as exc:
            raise in_client_terms(exc, plan.prepended) from None
        answer["model"] = plan.client_model
        return orjson.dumps(answer)

    async def stream(self, plan: Plan) -> AsyncGenerator[bytes, None]:
        """SSE frames of the upstream's chunks, relayed as they arrive.

        Upstreams are always asked for usage; the client sees it only if it asked too.
        """
        batches = self.router.stream(plan.targets, plan.call)
        try:
            async for batch in batches:
                frames = []
                for chunk in batch:
                    if not chunk.get("choices") and chunk.get("usage"):
                        if not plan.include_usage:
                            continue
                    elif not plan.include_usage:
                        chunk.pop("usage", None)
                    chunk["model"] = plan.client_model
                    frames.append(data_frame(orjson.dumps(chunk)))
                if frames:
                    yield b"".join(frames)
        except InvalidRequest as exc:
            raise in_client_terms(exc, plan.prepended) from None
        finally:
            await batches.aclose()
        yield DONE_FRAME


def error_frames(error: APIError) -> bytes:
    return data_frame(orjson.dumps(error.envelope())) + DONE_FRAME
