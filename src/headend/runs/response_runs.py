"""A Responses request as a run: its ``item_reference`` inputs resolved, its conversation
continued from ``previous_response_id``, translated to a chat request and started. The
route then answers it, streams it or leaves it to run in the background; a schedule starts
its background runs the same way.

A background run is stored with what starting it again takes (``ResponseRun.resume``): the
request, its inputs as resolved, its session, the agent version and who asked. An instance
taking the run up after a crash ``restart``s it from that, as the same response.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from headend.access.principal import Principal
from headend.agents.versions import AgentVersions
from headend.errors import InvalidRequest
from headend.runs.approvals import Verdict
from headend.runs.background import BackgroundRuns
from headend.runs.record import RunRecord
from headend.runs.run import Run
from headend.runs.service import RunService
from headend.runs.socket_chain import Link
from headend.runs.stored_responses import ResponseService
from headend.store.base import ResponseRecord
from headend.surfaces.responses_tools import request_tools
from headend.surfaces.responses_translate import ResponseShape, items_of, to_chat
from headend.tools.base import HostedTool
from headend.types import Json


@dataclass(slots=True)
class ResponseRun:
    """A started Responses run: the chat run, the response it makes, and its input."""

    run: Run
    shape: ResponseShape
    items: list[Json]
    keep: bool  # stored (``store`` is not false)
    background: bool
    owner: str | None
    body: Json  # the request, as checked
    principal: Principal
    # not streamed, yet run as a stream and answered with the response it ends with: its
    # hosted tools' items (file_search_call) come from the stream's events
    assembled: bool = False

    def resume(self) -> Json:
        """What starting this run again takes (stored with a background run)."""
        session = self.run.session
        caller = self.principal
        model = self.body["model"]
        if self.run.agent is not None and self.run.agent_version is not None:
            model = f"{self.run.agent.id}@{self.run.agent_version}"  # the version started
        return {
            "request": self.body,
            "items": self.items,
            "model": model,
            "session_id": session.session_id if session is not None else None,
            "new_session": session is not None and session.new is not None,
            "caller": {"key_id": caller.key_id, "visitor": caller.visitor},
        }


def split_verdicts(items: list[Json]) -> tuple[list[Json], list[Verdict]]:
    """The input without its ``mcp_approval_response`` items, and those, as verdicts."""
    rest, verdicts = [], []
    for index, item in enumerate(items):
        if item.get("type") != "mcp_approval_response":
            rest.append(item)
            continue
        where = f"input[{index}]"
        approval_id, approve = item.get("approval_request_id"), item.get("approve")
        if not isinstance(approval_id, str):
            raise InvalidRequest(
                "'approval_request_id' must be a string.", param=f"{where}.approval_request_id"
            )
        if not isinstance(approve, bool):
            raise InvalidRequest("'approve' must be true or false.", param=f"{where}.approve")
        reason = item.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise InvalidRequest("'reason' must be a string.", param=f"{where}.reason")
        verdicts.append(Verdict(approval_id, approve, reason, f"{where}.approval_request_id"))
    return rest, verdicts


def searches(run: Run) -> bool:
    """Whether the run may call a hosted tool (a request's or an agent's file_search)."""
    return run.loop is not None and any(isinstance(t, HostedTool) for t in run.loop.agent.tools)


class ResponseRuns:
    def __init__(
        self,
        responses: ResponseService,
        versions: AgentVersions,
        runs: RunService,
        background: BackgroundRuns,
    ) -> None:
        self.responses = responses
        self.versions = versions
        self.runs = runs
        self.background = background

    async def start(
        self,
        body: Json,
        record: RunRecord,
        headers: Mapping[str, str],
        principal: Principal,
        after: Link | None = None,
        session_id: str | None = None,
    ) -> ResponseRun:
        """``body``: a request already checked (``surfaces.responses_translate.checked``);
        ``after``: the response it goes on from, when a WebSocket holds it (no store read);
        ``session_id``: a conversation of the caller's to go on with (A2A's ``contextId``)."""
        owner = principal.owner
        items = await self.responses.resolve(items_of(body), owner)
        if after is not None and after.session_id is None:
            items = [*after.items, *after.output, *items]  # the chain so far, from the socket
        said, verdicts = split_verdicts(items)
        offered = request_tools(body)
        chat = to_chat(body, said, offered)
        keep = body.get("store", True) is not False
        previous = body.get("previous_response_id")
        if session_id is not None:
            chat["session_id"] = session_id
        elif after is not None:
            if after.session_id is not None:
                chat["session_id"] = after.session_id
        elif previous is not None:
            model = chat["model"]
            agent = await self.versions.resolve(model) if isinstance(model, str) else None
            chat["session_id"] = await self.responses.session_after(
                previous, owner, agent.id if agent is not None else model
            )
        background = body.get("background") is True
        if background:
            if not keep:
                raise InvalidRequest(
                    "Background mode needs the response stored: 'store' may not be false.",
                    param="background",
                    code="invalid_value",
                )
            await self.background.make_room(owner)
            # streamed from the upstream whatever the client asked: its output shows so far
            chat |= {"stream": True, "stream_options": {"include_usage": True}}
        run = await self.runs.start(
            chat,
            record,
            headers,
            principal,
            keep=keep,
            slots_later=background,
            verdicts=verdicts,
            file_search=offered.file_search,
            file_search_param=offered.file_search_param,
        )
        run.approvals_as_text = False  # they are output items of their own
        # Hosted tools' items (file_search_call) come from a stream's events: a run not
        # streamed that may call one runs as a stream and answers with what it ends with.
        assembled = not run.stream and searches(run)
        if assembled:
            run.stream = run.include_usage = True
        shape = ResponseShape(body, run.client_model, offered)
        shape.session_id = run.session.session_id if run.session else None
        return ResponseRun(run, shape, items, keep, background, owner, body, principal, assembled)

    async def restart(
        self, resume: Json, so_far: ResponseRecord, record: RunRecord, principal: Principal
    ) -> ResponseRun:
        """A background run taken up after a crash, started again from what it stored: as
        the same response (id, creation time, session), at the agent version it began on."""
        body, items = resume["request"], resume["items"]
        offered = request_tools(body)
        # (answers to approval requests were settled by the first start: not again)
        chat = to_chat(body, split_verdicts(items)[0], offered)
        chat |= {"model": resume["model"], "stream": True}
        chat["stream_options"] = {"include_usage": True}
        session_id = resume["session_id"]
        fresh = session_id if resume["new_session"] else None
        if session_id is not None and fresh is None:
            chat["session_id"] = session_id
        run = await self.runs.start(
            chat,
            record,
            {},
            principal,
            keep=True,
            new_session=fresh,
            slots_later=True,
            file_search=offered.file_search,
            file_search_param=offered.file_search_param,
        )
        run.client_model = body["model"]  # as the client named it
        run.approvals_as_text = False
        shape = ResponseShape(body, run.client_model, offered)
        shape.id, shape.created_at = so_far.id, so_far.body["created_at"]
        shape.session_id = session_id
        return ResponseRun(run, shape, items, True, True, so_far.owner, body, principal)
