"""A fake upstream LLM: a real HTTP server on loopback speaking OpenAI's chat completions
(and embeddings) and Anthropic's messages protocols, scripted to answer or fail in every
way that matters.

Each provider under test gets its own path prefix (``/a/v1/chat/completions``,
``/c/v1/messages``); ``script(prefix, *steps)`` queues what the next requests get, and
``received(prefix)`` tells what they were. It runs on its own event loop in a thread so
that both in-process apps and headend subprocesses can reach it.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import ssl
import struct
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

Json = dict[str, Any]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    started: float = field(default_factory=time.monotonic)
    disconnected_at: float | None = None


@dataclass
class Reply:
    """A normal answer; streamed when the request asks for it."""

    text: str = "Hello from upstream"
    tool_calls: list[Json] = field(default_factory=list)  # [{"id", "name", "arguments"}]
    first_delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None  # stream: abort the connection after this many chunks
    extra: Json = field(default_factory=dict)  # vendor fields added to the answer
    usage: tuple[int, int] = (5, 7)
    cache: tuple[int, int] = (0, 0)  # of the prompt tokens: read from cache, written to it
    reasoning: int = 0  # of the completion tokens
    pieces: list[str] | None = None  # the text streamed in exactly these pieces (else by word)

    def deltas(self) -> list[str]:
        """The text's stream deltas: ``pieces`` (which make ``text``), or word by word."""
        if self.pieces is not None:
            assert "".join(self.pieces) == self.text, "pieces must make up the text"
            return self.pieces
        return _words(self.text) if self.text else []


@dataclass
class Status:
    code: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Reset:
    """Close the connection without answering."""


@dataclass
class Malformed:
    """200 with a body that is not JSON (or a stream event that is not)."""


@dataclass
class Bomb:
    """200 with a gzip body that expands far (though identity was asked for)."""

    body: bytes

    @classmethod
    def expanding_to(cls, size: int) -> Bomb:
        """``size`` zero bytes, compressed here, before the request waits for it."""
        return cls(gzip.compress(b"\0" * size, 9))


Step = Reply | Status | Reset | Malformed | Bomb


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


class FakeUpstream:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls  # https when given: what an egress proxy tunnels to
        self._scripts: dict[str, deque[Step]] = defaultdict(deque)
        self._received: dict[str, list[Received]] = defaultdict(list)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- control, from the tests' thread
    def script(self, prefix: str, *steps: Step) -> None:
        with self._lock:
            self._scripts[prefix] = deque(steps)

    def received(self, prefix: str) -> list[Received]:
        with self._lock:
            return list(self._received[prefix])

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._received.clear()

    def url(self, prefix: str) -> str:
        if self._tls is not None:  # its certificate names localhost
            return f"https://localhost:{self.port}/{prefix}"
        return f"http://127.0.0.1:{self.port}/{prefix}"

    def start(self) -> None:
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("fake upstream did not start")

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    # ---- the server, on its own loop
    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{prefix}/v1/chat/completions", self._openai)
        app.router.add_post("/{prefix}/v1/messages", self._anthropic)
        app.router.add_post("/{prefix}/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self._loop.run_forever()

    async def _take(self, request: web.Request) -> tuple[Step, Received]:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw
        prefix = request.match_info["prefix"]
        headers = {name.lower(): value for name, value in request.headers.items()}
        seen = Received(request.path, headers, body)
        with self._lock:
            self._received[prefix].append(seen)
            queue = self._scripts[prefix]
            step = queue.popleft() if queue else Reply()
        return step, seen

    async def _common(self, request: web.Request, step: Step) -> web.StreamResponse | None:
        if isinstance(step, Status):
            body = (
                step.body
                if step.body is not None
                else {
                    "error": {
                        "message": f"scripted {step.code}",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
            )
            return web.json_response(body, status=step.code, headers=step.headers)
        if isinstance(step, Reset):
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if isinstance(step, Bomb):
            headers = {"content-encoding": "gzip", "content-type": "application/json"}
            return web.Response(body=step.body, headers=headers)
        return None

    async def _send_stream(
        self, request: web.Request, step: Reply, seen: Received, events: list[bytes]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await asyncio.sleep(step.first_delay)
        await response.prepare(request)
        try:
            for number, event in enumerate(events):
                if step.cut_after is not None and number >= step.cut_after:
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                await response.write(event)
                if step.chunk_delay:
                    await asyncio.sleep(step.chunk_delay)
        except (ConnectionResetError, ConnectionError):
            seen.disconnected_at = time.monotonic()
            return response
        await response.write_eof()
        return response

    # ---- OpenAI
    async def _openai(self, request: web.Request) -> web.StreamResponse:
        step, seen = await self._take(request)
        early = await self._common(request, step)
        if early is not None:
            return early
        body = seen.body if isinstance(seen.body, dict) else {}
        model = body.get("model", "default-model")
        if isinstance(step, Malformed):
            if body.get("stream"):
                return web.Response(body=b"data: {not json\n\n", content_type="text/event-stream")
            return web.Response(body=b"{not json", content_type="application/json")
        assert isinstance(step, Reply)
        if not body.get("stream"):
            await asyncio.sleep(step.first_delay)
            return web.json_response(_openai_completion(step, model))
        events = [
            b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in _openai_chunks(step, model, body)
        ]
        return await self._send_stream(request, step, seen, [*events, b"data: [DONE]\n\n"])

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        step, seen = await self._take(request)
        early = await self._common(request, step)
        if early is not None:
            return early
        if isinstance(step, Malformed):
            return web.Response(body=b"{not json", content_type="application/json")
        assert isinstance(step, Reply)
        body = seen.body if isinstance(seen.body, dict) else {}
        dimensions = body.get("dimensions")
        if isinstance(dimensions, int) and dimensions > MAX_DIMENSIONS:  # as OpenAI refuses it
            error = {"message": "dimensions is too large", "type": "invalid_request_error"}
            return web.json_response({"error": {**error, "param": None, "code": None}}, status=400)
        return web.json_response(_embedding_list(step, body))

    # ---- Anthropic
    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        step, seen = await self._take(request)
        early = await self._common(request, step)
        if early is not None:
            return early
        body = seen.body if isinstance(seen.body, dict) else {}
        model = body.get("model", "claude")
        if isinstance(step, Malformed):
            return web.Response(body=b"{not json", content_type="application/json")
        assert isinstance(step, Reply)
        if not body.get("stream"):
            await asyncio.sleep(step.first_delay)
            return web.json_response(_anthropic_message(step, model))
        events = [
            b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
            for name, data in _anthropic_events(step, model)
        ]
        return await self._send_stream(request, step, seen, events)


def _usage(step: Reply) -> Json:
    """OpenAI's usage: its prompt tokens count the cached ones (it reports no cache writes)."""
    prompt, completion = step.usage
    usage: Json = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if step.cache != (0, 0):
        usage["prompt_tokens_details"] = {"cached_tokens": step.cache[0], "audio_tokens": 0}
    if step.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": step.reasoning}
    return usage


def _anthropic_usage(step: Reply, output: int) -> Json:
    """Anthropic's: its input tokens leave out those read from and written to the cache."""
    read, written = step.cache
    return {
        "input_tokens": step.usage[0] - read - written,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
        "output_tokens": output,
    }


def _tool_calls(step: Reply) -> list[Json]:
    return [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }
        for call in step.tool_calls
    ]


def _openai_completion(step: Reply, model: str) -> Json:
    message: Json = {"role": "assistant", "content": step.text or None, "refusal": None}
    if step.tool_calls:
        message["tool_calls"] = _tool_calls(step)
    return {
        "id": "chatcmpl-upstream",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_upstream",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if step.tool_calls else "stop",
            }
        ],
        "usage": _usage(step),
        **step.extra,
    }


MAX_DIMENSIONS = 3072  # text-embedding-3-large's


def fake_vector(given: Any, dimensions: int) -> list[float]:
    """What the fake upstream embeds an input as: the input's length, then its position."""
    return [float(len(given)), *(float(i) for i in range(1, dimensions))]


def _embedding_list(step: Reply, body: Json) -> Json:
    given = body.get("input")
    inputs = [given] if isinstance(given, str) or not isinstance(given, list) else given
    if inputs and isinstance(inputs[0], int):
        inputs = [inputs]
    dimensions = body.get("dimensions") or 4
    data = []
    for index, item in enumerate(inputs):
        vector = fake_vector(item, dimensions)
        packed: Any = vector
        if body.get("encoding_format") == "base64":
            packed = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": packed})
    prompt = step.usage[0]
    return {
        "object": "list",
        "data": data,
        "model": body.get("model", "embedder"),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


def _openai_chunks(step: Reply, model: str, body: Json) -> list[Json]:
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    head = {
        "id": "chatcmpl-upstream",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_upstream",
        **step.extra,
    }
    if with_usage:
        head["usage"] = None

    def chunk(delta: Json, finish: str | None = None) -> Json:
        return {
            **head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": word}) for word in step.deltas()]
    for index, call in enumerate(step.tool_calls):
        chunks.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        arguments = call["arguments"]
        for part in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            chunks.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            )
    chunks.append(chunk({}, "tool_calls" if step.tool_calls else "stop"))
    if with_usage:
        chunks.append({**head, "choices": [], "usage": _usage(step)})
    return chunks


def _anthropic_message(step: Reply, model: str) -> Json:
    content: list[Json] = [{"type": "text", "text": step.text}] if step.text else []
    content += [
        {
            "type": "tool_use",
            "id": call["id"],
            "name": call["name"],
            "input": orjson.loads(call["arguments"]),
        }
        for call in step.tool_calls
    ]
    return {
        "id": "msg_upstream",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if step.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(step, step.usage[1]),
    }


def _anthropic_events(step: Reply, model: str) -> list[tuple[str, Json]]:
    message = {
        **_anthropic_message(step, model),
        "content": [],
        "stop_reason": None,
        "usage": _anthropic_usage(step, 1),
    }
    events: list[tuple[str, Json]] = [
        ("message_start", {"type": "message_start", "message": message})
    ]
    index = 0
    if step.text:
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        events.append(("ping", {"type": "ping"}))
        events += [
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": word},
                },
            )
            for word in step.deltas()
        ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    for offset, call in enumerate(step.tool_calls):
        block = index + offset
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": block,
                    "content_block": {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["name"],
                        "input": {},
                    },
                },
            )
        )
        arguments = call["arguments"]
        for part in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": block,
                        "delta": {"type": "input_json_delta", "partial_json": part},
                    },
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": block}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "tool_use" if step.tool_calls else "end_turn",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": step.usage[1]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
