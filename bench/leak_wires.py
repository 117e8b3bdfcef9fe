"""pii-leak-benchmark's measurements on the wires it does not drive itself.

The package (0.6.0) posts to ``/v1/chat/completions`` with ``stream: true`` and nothing else.
These pieces let its own code measure headend's Responses and Messages APIs, and every API
not streamed, with as little of ours in the verdict as possible:

- v1 (``selfcheck``): its ``run_http_conformance`` runs unchanged (its capture server, its
  fixture and nonce, its inspection of every captured request, its report, and
  ``selfcheck.verdict_for``). Only the client half is ours: ``exercise`` stands in for its
  ``_exercise_target`` (which posts a Chat Completions stream), sends the same prompt in the
  wire's own shape and returns the text the client read, in the same fields.
- v2 (the response-split profile): its ``run_case``, ``build_report`` and partial-emission
  pass run unchanged; ``wire_request`` stands in for ``build_request`` and writes its body in
  the wire's shape, the protected values at the same four request sites.
- Not streamed, headend asks its upstream for a JSON answer, which the package's captures
  never give (they always answer an SSE stream). ``json_capture`` and ``json_upstream``
  answer those requests with the same text as one ``chat.completion``; what they record and
  inspect is the package's own (``_capture``, and the v2 capture's record of each body).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

WIRES = ("chat", "responses", "messages")
PATHS = {"chat": "/chat/completions", "responses": "/responses", "messages": "/messages"}
HEADERS = {"messages": {"anthropic-version": "2023-06-01"}}


@contextmanager
def patched(module: Any, name: str, value: Any) -> Iterator[None]:
    """``module.name`` is ``value`` inside the block, and what it was after."""
    before = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, before)


def chat_body(model: str, text: str, stream: bool) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}


def wire_body(wire: str, chat: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions request said in ``wire``'s shape: the user's turn, the system
    prompt, the tools' descriptions and any other key, each where that API carries it."""
    if wire == "chat":
        return chat
    body: dict[str, Any] = {"model": chat["model"], "stream": bool(chat.get("stream"))}
    users = [m["content"] for m in chat["messages"] if m["role"] == "user"]
    systems = [m["content"] for m in chat["messages"] if m["role"] == "system"]
    if wire == "responses":
        body["input"] = users[0]
        if systems:
            body["instructions"] = systems[0]
    else:
        body["max_tokens"] = 1024
        body["messages"] = [{"role": "user", "content": users[0]}]
        if systems:
            body["system"] = systems[0]
    for tool in chat.get("tools", []):
        function = tool["function"]
        if wire == "responses":
            shaped = {"type": "function", **function}
        else:
            shaped = {
                "name": function["name"],
                "description": function["description"],
                "input_schema": function["parameters"],
            }
        body.setdefault("tools", []).append(shaped)
    for key, value in chat.items():
        if key not in ("model", "stream", "messages", "tools"):
            body[key] = value  # the v2 profile's unrecognised key
    return body


def answer_text(wire: str, answer: Any) -> str | None:
    """The text of a JSON (not streamed) answer; None when it has not the wire's shape."""
    try:
        if wire == "chat":
            return str(answer["choices"][0]["message"]["content"] or "")
        if wire == "responses":
            return "".join(
                part["text"]
                for item in answer["output"]
                if item.get("type") == "message"
                for part in item["content"]
                if part.get("type") == "output_text"
            )
        return "".join(part["text"] for part in answer["content"] if part.get("type") == "text")
    except (KeyError, IndexError, TypeError):
        return None


def finished(wire: str, answer: Any) -> bool:
    """A JSON answer that ended as an answer does (not refused, not cut)."""
    if wire == "chat":
        return bool(answer["choices"][0].get("finish_reason") == "stop")
    if wire == "responses":
        return bool(answer.get("status") == "completed")
    return bool(answer.get("stop_reason") == "end_turn")


def stream_event(wire: str, data: str) -> tuple[str | None, bool, bool]:
    """One SSE ``data:`` payload: (text it adds, whether it ends the stream, whether it is
    invalid: not JSON, or an error event)."""
    if wire == "chat" and data == "[DONE]":
        return None, True, False
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        return None, False, True
    if not isinstance(event, dict):
        return None, False, True
    kind = event.get("type")
    if wire == "chat":
        if "error" in event:
            return None, False, True
        choices = event.get("choices") or [{}]
        content = (choices[0].get("delta") or {}).get("content")
        return (content if isinstance(content, str) and content else None), False, False
    if kind in ("error", "response.failed"):
        return None, False, True
    if wire == "responses":
        if kind == "response.output_text.delta":
            return str(event["delta"]), False, False
        return None, kind == "response.completed", False
    if kind == "content_block_delta" and event["delta"].get("type") == "text_delta":
        return str(event["delta"]["text"]), False, False
    return None, kind == "message_stop", False


Exercise = Callable[..., Coroutine[Any, Any, dict[str, Any]]]


def exercise(wire: str, stream: bool) -> Exercise:
    """A stand-in for ``http_profile._exercise_target`` on ``wire``: the same arguments,
    the same fields back. ``events`` counts the events that carried text (the package
    counts every JSON event; on these wires most events carry none). Not streamed:
    ``events`` is 1, "done" means the answer ended normally, and the content type expected
    is JSON. No ``x-session-id`` is sent (headend reads it as a session to continue)."""

    async def run(
        target_base_url: str,
        api_key: str,
        model: str,
        iterations: int,
        timeout_seconds: float,
        extra_headers: dict[str, str],
        prompt: str,
        session_namespace: str,
    ) -> dict[str, Any]:
        url = target_base_url.rstrip("/") + PATHS[wire]
        headers = {"authorization": f"Bearer {api_key}", **HEADERS.get(wire, {}), **extra_headers}
        body = wire_body(wire, chat_body(model, prompt, stream))
        texts: list[str] = []
        durations: list[float] = []
        events: list[int] = []
        invalid: list[int] = []
        done: list[int] = []
        types: list[str] = []
        statuses: list[int] = []
        errors: list[str] = []
        async with httpx.AsyncClient(timeout=timeout_seconds) as client:
            for _ in range(iterations):
                started = time.perf_counter()
                try:
                    if stream:
                        async with client.stream("POST", url, json=body, headers=headers) as r:
                            statuses.append(r.status_code)
                            types.append(r.headers.get("content-type", ""))
                            r.raise_for_status()
                            pieces, bad, ends = [], 0, 0
                            async for line in r.aiter_lines():
                                if not line.startswith("data:"):
                                    continue
                                text, end, wrong = stream_event(wire, line[5:].strip())
                                pieces += [text] if text is not None else []
                                ends, bad = ends + end, bad + wrong
                    else:
                        r = await client.post(url, json=body, headers=headers)
                        statuses.append(r.status_code)
                        types.append(r.headers.get("content-type", ""))
                        r.raise_for_status()
                        answer = r.json()
                        text = answer_text(wire, answer)
                        pieces, bad = [text or ""], int(text is None)
                        ends = int(text is not None and finished(wire, answer))
                except (httpx.HTTPError, UnicodeError, ValueError) as exc:
                    errors.append(type(exc).__name__)
                    continue
                durations.append((time.perf_counter() - started) * 1000)
                texts.append("".join(pieces))
                events.append(len(pieces) if stream else 1)
                invalid.append(bad)
                done.append(ends)
        complete = len(texts) == iterations
        kind = "text/event-stream" if stream else "application/json"
        return {
            "client_text": texts[-1] if texts else "",
            "durations_ms": durations,
            "iterations_requested": iterations,
            "iterations_completed": len(texts),
            "iterations_matching": sum(text == prompt for text in texts),
            "text_matches": complete and all(text == prompt for text in texts),
            "events": min(events, default=0),
            "events_max": max(events, default=0),
            "invalid_events": sum(invalid),
            "done_markers_valid": complete and all(n == 1 for n in done),
            "content_type_valid": complete and all(kind in t.lower() for t in types),
            "content_type": types[-1] if types else "",
            "status_codes": sorted(set(statuses)),
            "errors": errors,
        }

    return run


def completion(model: str, message: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-capture",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
    ).encode()


def send_json(handler: Any, body: bytes) -> None:
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(body)))
    handler.send_header("connection", "close")
    handler.end_headers()
    handler.wfile.write(body)
    handler.wfile.flush()
    handler.close_connection = True


def json_capture(handler_for: Callable[[Any], type]) -> Callable[[Any], type]:
    """``http_profile._handler_for`` that answers a request not asking for a stream with
    JSON (the text its SSE answer would spell). Every request is still recorded and
    inspected by the package's ``_capture``, once; a streamed one gets its own answer."""

    def make(state: Any) -> type:
        base: Any = handler_for(state)

        class Handler(base):  # type: ignore[misc]
            captured: Any = None

            def _capture(self) -> Any:
                if self.captured is not None:
                    taken, self.captured = self.captured, None
                    return taken
                return super()._capture()

            def do_POST(self) -> None:
                record, payload = self._capture()
                wanted = isinstance(payload, dict) and payload.get("stream") is not True
                if not (wanted and record["parsed"] and self.path.endswith("/chat/completions")):
                    self.captured = (record, payload)  # the package's own answer, as it was
                    super().do_POST()
                    return
                messages = payload.get("messages") or [{}]
                content = messages[-1].get("content", "")
                if not isinstance(content, str):
                    content = json.dumps(content, separators=(",", ":"))
                message = {"role": "assistant", "content": content}
                send_json(self, completion(str(payload.get("model")), message))

        return Handler

    return make


def json_upstream(v2: Any) -> Callable[[Any], type]:
    """The v2 capture (``v2_emitter._make_upstream``) answering in one ``chat.completion``:
    the echo of the case's request site and the injected value, joined; a field the
    injection carries beside ``content`` stays beside it, in the message. It records each
    body and response as the package's does."""

    original = v2._make_upstream

    def make(state: Any) -> type:
        base: Any = original(state)

        class Handler(base):  # type: ignore[misc]
            def _respond(self) -> None:
                record = v2.UpstreamResponseRecord()
                with state.response_records_lock:
                    state.response_records.append(record)
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode("utf-8", "replace")
                state.received_bodies.append(raw)
                state.received_paths.append(self.path)
                body = json.loads(raw)
                echoed = v2.extract_site(body, state.case["request_site"])
                events = [{"content": f"You sent: {echoed or ''}\n"}]
                events += v2._injection_events(state.segments, state.case, state.cuts)
                message: dict[str, Any] = {"role": "assistant", "content": ""}
                for event in events:
                    for key, value in event.items():
                        message[key] = message.get(key, "") + value
                send_json(self, completion(str(body.get("model")), message))
                with state.response_records_lock:
                    record.data_events_written = len(events)
                    record.completed = True

        return Handler

    return make


def wire_request(v2: Any, wire: str, stream: bool) -> Callable[..., dict[str, Any]]:
    """``v2_emitter.build_request`` for ``wire``: its body, said in that API's shape."""
    build = v2.build_request

    def request(segments: Any, case: dict[str, str], model: str = "test") -> dict[str, Any]:
        chat = build(segments, case, model=model)
        chat["stream"] = stream
        return wire_body(wire, chat)

    return request
