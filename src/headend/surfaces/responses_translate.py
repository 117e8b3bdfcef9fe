"""OpenAI's Responses API in front of the chat run: ``input`` items as chat messages, chat
answers as ``response`` objects, chat chunks as the Responses stream events."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, cast

from headend.agents.loop import ToolProgress
from headend.errors import APIError, InvalidRequest, UnsupportedValue
from headend.pricing import cache_tokens, reasoning_tokens, tokens
from headend.schemas.openai.responses_api import ResponseRequest
from headend.schemas.validation import validate
from headend.surfaces.citations import file_citations
from headend.surfaces.fields import block_text
from headend.surfaces.responses_tools import (
    OfferedTools,
    chat_tool_choice,
    custom_arguments,
    flat_name,
)
from headend.tools.base import Source
from headend.types import Json

PASSED = {"temperature": "temperature", "top_p": "top_p", "user": "user", "stream": "stream"}
RENAMED = {"max_output_tokens": "max_tokens", "parallel_tool_calls": "parallel_tool_calls"}
ROLES = ("user", "system", "developer", "assistant")
# a chat finish_reason that leaves a response incomplete -> the reason it gives
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# Items that carry nothing for the model: reasoning (encrypted, another model's), the tools of
# Codex's "responses-lite" requests (taken by request_tools), and its settings changes.
SKIPPED_ITEMS = ("reasoning", "additional_tools", "configuration_update")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def _text_parts(content: Any, where: str) -> str | list[Json]:
    """A message's content as chat content: plain text, or parts when images are in it."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest("'content' must be a string or a list of parts.", param=where)
    parts: list[Json] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": block_text(part, f"{where}[{index}]")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.get("refusal", "")})
        else:
            raise UnsupportedValue(
                f"Content parts of type {kind!r} are not supported.", param=f"{where}[{index}]"
            )
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def checked(body: Any) -> Json:
    """The request body once every field this surface reads has its type (a 400 naming the
    first that has not): the translation below reads the dict it was given."""
    validate(ResponseRequest, body)
    return cast(Json, body)


def items_of(body: Json) -> list[Json]:
    """``input`` as a list of items; a string is one user message."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if isinstance(raw, list) and raw and all(isinstance(item, dict) for item in raw):
        return list(raw)
    raise InvalidRequest("'input' must be a string or a non-empty list of items.", param="input")


def to_messages(items: list[Json]) -> list[Json]:
    messages: list[Json] = []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise InvalidRequest(f"'role' must be one of {', '.join(ROLES)}.", param=where)
            messages.append(
                {"role": role, "content": _text_parts(item.get("content"), f"{where}.content")}
            )
        elif kind in ("function_call", "custom_tool_call"):
            custom = kind == "custom_tool_call"
            arguments = custom_arguments(str(item.get("input", ""))) if custom else None
            call = {
                "id": item.get("call_id", ""),
                "type": "function",
                "function": {
                    "name": flat_name(item.get("namespace"), str(item.get("name", ""))),
                    "arguments": arguments if custom else item.get("arguments", ""),
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls: one assistant message
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            text = (
                output if isinstance(output, str) else str(_text_parts(output, f"{where}.output"))
            )
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id", ""), "content": text}
            )
        elif kind in SKIPPED_ITEMS:
            continue
        else:
            raise UnsupportedValue(f"Input items of type {kind!r} are not supported.", param=where)
    return messages


def _response_format(text: Any) -> Json | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise UnsupportedValue("Unsupported 'text.format'.", param="text.format")


def to_chat(body: Any, items: list[Json], offered: OfferedTools) -> Json:
    """A Responses request as a chat completions request (the session adds the history);
    ``offered``: its tools, from ``request_tools``."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    messages = to_messages(items)
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    chat: Json = {"model": model, "messages": messages}
    for key, renamed in (PASSED | RENAMED).items():
        if body.get(key) is not None:
            chat[renamed] = body[key]
    if offered.chat:
        chat["tools"] = offered.chat
    if body.get("tool_choice") is not None:
        choice = chat_tool_choice(body["tool_choice"], offered.file_search is not None)
        if offered.chat or offered.file_search is not None:
            chat["tool_choice"] = choice
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    if chat.get("stream") is True:
        chat["stream_options"] = {"include_usage": True}
    return chat


def stored_items(items: list[Json]) -> list[Json]:
    """Input items as ``input_items`` lists them: each with an id and a type."""
    out = []
    for item in items:
        kind = item.get("type", "message")
        prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
        stored = {"id": new_id(prefix.get(kind, "item")), "type": kind, **item}
        if kind == "message" and isinstance(stored.get("content"), str):
            part = "output_text" if stored.get("role") == "assistant" else "input_text"
            stored["content"] = [{"type": part, "text": stored["content"]}]
        out.append(stored)
    return out


def usage_of(usage: Any) -> Json:
    prompt, completion = tokens(usage)
    cached, written = cache_tokens(usage)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens(usage)},
        "total_tokens": prompt + completion,
    }


class ResponseShape:
    """One response object, built up as its run goes."""

    def __init__(self, body: Json, model: str, offered: OfferedTools) -> None:
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.body = body
        self.model = model
        self.offered = offered
        self.session_id: str | None = None

    def envelope(
        self,
        status: str,
        output: list[Json],
        usage: Json | None = None,
        error: Json | None = None,
        incomplete: str | None = None,
    ) -> Json:
        body = self.body
        response: Json = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": body.get("background") is True,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True) is not False,
            "temperature": body.get("temperature"),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p"),
            "truncation": body.get("truncation") or "disabled",
            "metadata": body.get("metadata") or {},
        }
        if usage is not None:  # an object or absent: never null
            response["usage"] = usage
        if isinstance(body.get("user"), str):  # a string or absent: never null
            response["user"] = body["user"]
        if self.session_id is not None:
            response["session_id"] = self.session_id
        return response

    def from_answer(self, answer: Json) -> Json:
        choice = answer["choices"][0]
        message = choice.get("message") or {}
        output: list[Json] = []
        if message.get("content"):
            output.append(text_item(new_id("msg"), message["content"], "completed"))
        if message.get("refusal"):
            output += refusal_items(message["refusal"])
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            output.append(
                self.offered.call_item(
                    new_id("fc"),
                    call.get("id", ""),
                    function.get("name", ""),
                    function.get("arguments", ""),
                    "completed",
                )
            )
        output += answer.get("approval_requests") or []
        incomplete = INCOMPLETE.get(choice.get("finish_reason") or "")
        status = "incomplete" if incomplete else "completed"
        return self.envelope(status, output, usage_of(answer.get("usage")), None, incomplete)


def refusal_items(refusal: str) -> list[Json]:
    """A guardrail's refusal as output items: a message with the ``refusal`` part, then the
    same words as a message of text, which clients that know no refusal part show (Codex
    drops a message holding one; the SDKs' ``output_text`` reads text only)."""
    said: Json = {"type": "refusal", "refusal": refusal}
    return [
        {
            "type": "message",
            "id": new_id("msg"),
            "status": "completed",
            "role": "assistant",
            "content": [said],
        },
        text_item(new_id("msg"), refusal, "completed"),
    ]


def text_part(text: str, annotations: list[Json] | None = None) -> Json:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}


def text_item(
    item_id: str, text: str | None, status: str, annotations: list[Json] | None = None
) -> Json:
    content = [text_part(text, annotations)] if text is not None else []
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


@dataclass(slots=True)
class _OpenCall:
    item: Json  # as announced in response.output_item.added
    name: str  # the flat name the model called
    position: int  # output_index
    arguments: str = ""


class ResponseEvents:
    """Chat chunks in, the Responses stream's events out; one per stream."""

    def __init__(self, shape: ResponseShape) -> None:
        self.shape = shape
        self.sequence = 0
        self.output: list[Json] = []  # finished items
        self.text: list[str] | None = None  # the open message's text
        self.text_id = ""
        self.calls: dict[int, _OpenCall] = {}  # chat tool call index -> its open item
        self.finish: str | None = None
        self.usage: Json = {}
        self.hosted: dict[str, int] = {}  # a hosted tool's item id -> its output_index
        self.sources: list[Source] = []  # the passages the answer may cite, numbered
        self.with_results = "file_search_call.results" in (shape.body.get("include") or ())

    @classmethod
    def resumed(cls, shape: ResponseShape, so_far: Json, following: int) -> ResponseEvents:
        """The events of a run taken up after a crash, from its response as last written
        (``so_far``) on: the next is numbered ``following``, and its message being written,
        if any, goes on."""
        events = cls(shape)
        events.sequence = following
        output = list(so_far.get("output") or [])
        last = output[-1] if output else {}
        if last.get("type") == "message" and last.get("status") == "in_progress":
            output.pop()
            events.text = [part.get("text") or "" for part in last.get("content") or ()]
            events.text_id = last["id"]
        events.output = output
        return events

    def interrupted(self) -> list[Json]:
        """The message being written closed as ``incomplete``: the model call writing it
        was cut short (its words stay, as followers saw them) and is asked again."""
        return self._close_text("incomplete")

    def event(self, kind: str, **fields: Any) -> Json:
        self.sequence += 1
        return {"type": kind, "sequence_number": self.sequence - 1, **fields}

    def start(self) -> list[Json]:
        """The opening events of a response that runs at once."""
        response = self.shape.envelope("in_progress", [])
        return [
            self.event("response.created", response=response),
            self.event("response.in_progress", response=response),
        ]

    def queued(self) -> Json:
        """The opening event of a background response: created, waiting to run."""
        return self.event("response.created", response=self.shape.envelope("queued", []))

    def running(self) -> Json:
        """A background response has begun to run (it has its slots)."""
        return self.event("response.in_progress", response=self.shape.envelope("in_progress", []))

    def snapshot(self, status: str) -> Json:
        """The response as it stands: its finished items and the text being written."""
        output = list(self.output)
        if self.text is not None:
            output.append(text_item(self.text_id, "".join(self.text), "in_progress"))
        return self.shape.envelope(status, output)

    def feed(self, chunk: Json) -> list[Json]:
        events: list[Json] = []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._text(delta["content"])
            if delta.get("refusal"):
                events += self._refusal(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                events += self._call(call)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        for request in chunk.get("approval_requests") or ():
            events += self._approval(request)
        return events

    def take(self, event: list[Json] | ToolProgress) -> list[Json]:
        """A run's event: a batch of chat chunks, or a tool's progress (only a hosted tool's
        shows: as its own output item)."""
        if isinstance(event, ToolProgress):
            return self.progress(event)
        return [out for chunk in event for out in self.feed(chunk)]

    def progress(self, event: ToolProgress) -> list[Json]:
        """A hosted tool's call (``file_search_call``): added, searching, then done."""
        item = event.item
        if item is None:
            return []
        shown = item if self.with_results else {**item, "results": None}
        fields = {"item_id": item["id"]}
        if event.type == "tool.started":
            events = self._close_text() + self._close_calls()
            index = len(self.output)
            self.output.append(shown)
            self.hosted[item["id"]] = index
            return [
                *events,
                self.event("response.output_item.added", output_index=index, item=shown),
                self.event("response.file_search_call.in_progress", output_index=index, **fields),
                self.event("response.file_search_call.searching", output_index=index, **fields),
            ]
        index = self.hosted.pop(item["id"], -1)
        events = []
        if index < 0:  # its start was not seen (a run taken up after a crash)
            events = self._close_text() + self._close_calls()
            index = len(self.output)
            self.output.append(shown)
            events.append(self.event("response.output_item.added", output_index=index, item=shown))
        self.output[index] = shown
        self.sources += event.sources
        return [
            *events,
            self.event("response.file_search_call.completed", output_index=index, **fields),
            self.event("response.output_item.done", output_index=index, item=shown),
        ]

    def _approval(self, request: Json) -> list[Json]:
        """A call waiting for approval: an ``mcp_approval_request`` item, whole at once."""
        events = self._close_text() + self._close_calls()
        index = len(self.output)
        self.output.append(request)
        return [
            *events,
            self.event("response.output_item.added", output_index=index, item=request),
            self.event("response.output_item.done", output_index=index, item=request),
        ]

    def _index(self) -> int:
        return len(self.output) + (self.text is not None) + len(self.calls)

    def _text(self, delta: str) -> list[Json]:
        events = []
        if self.text is None:
            events += self._close_calls()
            self.text, self.text_id = [], new_id("msg")
            index = self._index() - 1
            events.append(
                self.event(
                    "response.output_item.added",
                    output_index=index,
                    item=text_item(self.text_id, None, "in_progress"),
                )
            )
            events.append(
                self.event(
                    "response.content_part.added",
                    item_id=self.text_id,
                    output_index=index,
                    content_index=0,
                    part=text_part(""),
                )
            )
        self.text.append(delta)
        events.append(
            self.event(
                "response.output_text.delta",
                item_id=self.text_id,
                output_index=len(self.output),
                content_index=0,
                delta=delta,
                logprobs=[],
            )
        )
        return events

    def _refusal(self, refusal: str) -> list[Json]:
        """A guardrail's refusal (it comes whole): its message, then the same words as a
        message of text (``refusal_items``), each item's events in turn."""
        events = self._close_text() + self._close_calls()
        for item in refusal_items(refusal):
            index = len(self.output)
            self.output.append(item)
            opened = {**item, "status": "in_progress", "content": []}
            events.append(self.event("response.output_item.added", output_index=index, item=opened))
            (part,) = item["content"]
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            if part["type"] == "refusal":
                empty: Json = {"type": "refusal", "refusal": ""}
                said = [
                    self.event("response.refusal.delta", **where, delta=refusal),
                    self.event("response.refusal.done", **where, refusal=refusal),
                ]
            else:
                empty = text_part("")
                said = [
                    self.event("response.output_text.delta", **where, delta=refusal, logprobs=[]),
                    self.event("response.output_text.done", **where, text=refusal, logprobs=[]),
                ]
            events.append(self.event("response.content_part.added", **where, part=empty))
            events += said
            events.append(self.event("response.content_part.done", **where, part=part))
            events.append(self.event("response.output_item.done", output_index=index, item=item))
        return events

    def _close_text(self, status: str = "completed") -> list[Json]:
        if self.text is None:
            return []
        text, self.text = "".join(self.text), None
        index = len(self.output)
        cited = file_citations(text, self.sources) if self.sources else []
        item = text_item(self.text_id, text, status, cited)
        self.output.append(item)
        fields = {"item_id": self.text_id, "output_index": index, "content_index": 0}
        return [
            *(
                self.event(
                    "response.output_text.annotation.added",
                    **fields,
                    annotation_index=n,
                    annotation=annotation,
                )
                for n, annotation in enumerate(cited)
            ),
            self.event("response.output_text.done", **fields, text=text, logprobs=[]),
            self.event("response.content_part.done", **fields, part=text_part(text, cited)),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def _call(self, call: Json) -> list[Json]:
        events = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        if index not in self.calls:
            events += self._close_text()
            name = function.get("name", "")
            call_id = call.get("id") or new_id("call")
            item = self.shape.offered.call_item(new_id("fc"), call_id, name, "", "in_progress")
            position = self._index()
            self.calls[index] = _OpenCall(item, name, position)
            events.append(
                self.event("response.output_item.added", output_index=position, item=item)
            )
        open_call = self.calls[index]
        if function.get("arguments"):
            open_call.arguments += function["arguments"]
            if not self.shape.offered.is_custom(open_call.name):  # its input comes whole
                events.append(
                    self.event(
                        "response.function_call_arguments.delta",
                        item_id=open_call.item["id"],
                        output_index=open_call.position,
                        delta=function["arguments"],
                    )
                )
        return events

    def _close_calls(self) -> list[Json]:
        events = []
        for index in sorted(self.calls):
            open_call = self.calls[index]
            item = self.shape.offered.call_item(
                open_call.item["id"],
                open_call.item["call_id"],
                open_call.name,
                open_call.arguments,
                "completed",
            )
            self.output.append(item)
            where = {"item_id": item["id"], "output_index": open_call.position}
            if item["type"] == "custom_tool_call":
                done = self.event(
                    "response.custom_tool_call_input.done", **where, input=item["input"]
                )
            else:
                done = self.event(
                    "response.function_call_arguments.done",
                    **where,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            events.append(done)
            events.append(
                self.event("response.output_item.done", output_index=open_call.position, item=item)
            )
        self.calls = {}
        return events

    def finish_events(self) -> tuple[list[Json], Json]:
        """The closing events, and the finished response (to store)."""
        events = self._close_text() + self._close_calls()
        incomplete = INCOMPLETE.get(self.finish or "")
        response = self.shape.envelope(
            "incomplete" if incomplete else "completed",
            self.output,
            usage_of(self.usage),
            None,
            incomplete,
        )
        # Always response.completed (an answer cut at max_output_tokens says "incomplete" in
        # its status): the SDKs' stream helpers and Codex wait for this event and no other.
        events.append(self.event("response.completed", response=response))
        return events, response

    def failed(self, error: APIError) -> Json:
        # The spec's codes for a failed response are few: headend's own code goes in the
        # message, so that clients matching on the code see one they know.
        code = (
            "rate_limit_exceeded"
            if error.status == 429
            else ("server_error" if error.status >= 500 else "invalid_prompt")
        )
        message = f"{error.message} ({error.code})" if error.code else error.message
        response = self.shape.envelope(
            "failed", self.output, None, {"code": code, "message": message}
        )
        return self.event("response.failed", response=response)
