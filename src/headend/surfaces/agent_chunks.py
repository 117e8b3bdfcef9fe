"""An agent's tool loop on the wire: its events as chat.completion chunks and SSE frames.

Tool progress is opt-in. As a named event (``event: tool.progress``) it is invisible to
clients that skip named events; as a chunk (``choices: []`` and a ``tool_progress`` object,
plus the ``event`` status Open WebUI shows) every OpenAI SDK accepts it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import orjson

from headend.agents.loop import LoopEnd, LoopEvent, ToolProgress
from headend.errors import APIError
from headend.providers.reply import chat_completion
from headend.schemas.openai.chat_api import ProgressFormat
from headend.surfaces.citations import url_citations
from headend.types import Json

DONE_FRAME = b"data: [DONE]\n\n"


def data_frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def error_frames(error: APIError) -> bytes:
    return data_frame(orjson.dumps(error.envelope())) + DONE_FRAME


@dataclass(slots=True)
class Frames:
    """Chunks of one agent stream: one id, one model name, usage shown only when asked."""

    model: str
    include_usage: bool
    progress: ProgressFormat | None
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
    session_id: str | None = None  # shown on the first chunk
    produced: list[Json] = field(default_factory=list)  # the run's messages, once it ended
    end_state: LoopEnd | None = None  # how it ended
    # calls waiting for approval also said in words (the wires without a standard for it)
    approvals_as_text: bool = True
    usage: Json = field(default_factory=dict)  # the run's, once it ended
    _first: bool = True

    def chunk(self, choices: list[Json], **extra: object) -> Json:
        chunk: Json = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None
        if self._first and self.session_id is not None:
            chunk["session_id"] = self.session_id
        self._first = False
        return chunk | extra

    def content(self, batch: list[Json]) -> list[Json]:
        return [self.chunk(upstream["choices"]) for upstream in batch]

    def progress_frame(self, event: ToolProgress) -> bytes:
        payload = event.payload()
        if self.progress == "chunk":
            done = event.type == "tool.completed"
            status = {"description": f"{event.tool_name}: {event.label}", "done": done}
            chunk = self.chunk([], tool_progress=payload, event={"type": "status", "data": status})
            return data_frame(orjson.dumps(chunk))
        return b"event: tool.progress\n" + data_frame(orjson.dumps(payload))

    def end(self, end: LoopEnd) -> list[Json]:
        self.usage = end.usage
        self.produced = end.messages
        self.end_state = end
        frames = []
        if end.client_calls:
            calls = [{"index": i, **call} for i, call in enumerate(end.client_calls)]
            delta = {"tool_calls": calls}
            frames.append(
                self.chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
            )
        extra = {"approval_requests": approval_requests(end)} if end.approvals else {}
        if end.approvals and self.approvals_as_text:
            notice = approval_notice(end, self.session_id)
            frames.append(
                self.chunk(
                    [
                        {
                            "index": 0,
                            "delta": {"content": notice},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ]
                )
            )
        # the citations of what the answer said, on its last delta (where OpenAI streams them)
        cited = url_citations(end.text, end.sources) if end.sources else []
        last: Json = {"annotations": cited} if cited else {}
        frames.append(
            self.chunk(
                [{"index": 0, "delta": last, "logprobs": None, "finish_reason": end.finish_reason}],
                **extra,
            )
        )
        if self.include_usage:
            frames.append(self.chunk([]) | {"usage": end.usage})
        return frames


async def loop_chunks(
    events: AsyncGenerator[LoopEvent, None], frames: Frames
) -> AsyncGenerator[list[Json] | ToolProgress, None]:
    """An agent run as batches of chat.completion chunks, and its tool progress."""
    started = False
    try:
        async for event in events:
            if isinstance(event, ToolProgress):
                yield event
                continue
            if isinstance(event, LoopEnd):
                head = (
                    []
                    if started
                    else frames.content(
                        [
                            {
                                "choices": [
                                    {
                                        "index": 0,
                                        "delta": {"role": "assistant", "content": ""},
                                        "logprobs": None,
                                        "finish_reason": None,
                                    }
                                ]
                            }
                        ]
                    )
                )
                yield head + frames.end(event)
                return
            started = True
            yield frames.content(event)
    finally:
        await events.aclose()


def chunk_frames(chunks: list[Json]) -> bytes:
    return b"".join(data_frame(orjson.dumps(chunk)) for chunk in chunks)


def loop_completion(
    end: LoopEnd, model: str, approvals_as_text: bool = True, session_id: str | None = None
) -> Json:
    """The ``chat.completion`` of a finished agent run."""
    text = end.text
    if end.approvals and approvals_as_text:
        text += approval_notice(end, session_id)
    message: Json = {"role": "assistant", "content": text or None, "refusal": None}
    cited = url_citations(end.text, end.sources) if end.sources else []
    if cited:
        message["annotations"] = cited
    if end.client_calls:
        message["tool_calls"] = end.client_calls
    elif message["content"] is None:
        message["content"] = ""
    answer = chat_completion(model, message, end.finish_reason, end.usage)
    if end.approvals:
        answer["approval_requests"] = approval_requests(end)
    return answer


def approval_notice(end: LoopEnd, session_id: str | None) -> str:
    """The calls a run stopped at, in words any chat client shows, after what it said."""
    return ("\n\n" if end.text else "") + waiting_text(end.approvals, session_id)


def waiting_text(approvals: list[Json], session_id: str | None) -> str:
    """Calls waiting for approval (``id``, ``name``, ``arguments`` each), in words: what
    waits, and how to answer (the sessions API), then to go on with the next message."""
    session = session_id or "{session_id}"
    lines = [f"- {call['name']} {call['arguments']} (approval {call['id']})" for call in approvals]
    which = approvals[0]["id"] if len(approvals) == 1 else "<approval id>"
    return (
        "Waiting for your approval before running:\n"
        + "\n".join(lines)
        + f"\nAnswer with POST /v1/sessions/{session}/approvals/{which} and "
        + '{"approve": true} (or false, with a "reason"), then send your next message.'
    )


def approval_requests(end: LoopEnd) -> list[Json]:
    """The calls a run stopped at, as OpenAI's ``mcp_approval_request`` items (the
    extension field ``approval_requests`` of the chat answer or its last chunk)."""
    return [
        {
            "type": "mcp_approval_request",
            "id": call["id"],
            "server_label": call["server_label"],
            "name": call["name"],
            "arguments": call["arguments"],
        }
        for call in end.approvals
    ]
