"""HTTP plumbing shared by the upstream providers: posting, SSE parsing, error mapping.

Transport errors become ``UpstreamFailure`` here, at the boundary. Messages name the
provider and what went wrong, never its URL, key or headers.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
from pydantic import Field

from headend.errors import APIError, ServiceUnavailable, UpstreamFailure, UpstreamRejected
from headend.providers.base import ChatCall, Resources, Timer
from headend.providers.h1 import ConnectFailed, H1Client, Response
from headend.providers.resilience import ResilientConfig, Timeouts, parse_retry_after
from headend.proxies import Proxy, ProxySetting, proxy_for
from headend.types import Json

RETRYABLE_STATUS = frozenset({408, 409, 429})
CLIENT_FAULT_STATUS = frozenset({400, 413, 422})
MAX_MESSAGE = 500
TRANSPORT_ERRORS = (ConnectionError, asyncio.IncompleteReadError)


REDACTED = "[redacted]"


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` without any of ``secrets``: upstreams quote the key they refused."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def error_fields(body: bytes) -> tuple[str, str | None, str | None]:
    """(message, param, code) from an OpenAI or Anthropic error body, or its text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()[:MAX_MESSAGE] or "(empty body)", None, None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("type") or "unknown error")
        param = error.get("param")
        code = error.get("code") or error.get("type")
        return (
            message[:MAX_MESSAGE],
            param if isinstance(param, str) else None,
            code if isinstance(code, str) else None,
        )
    if isinstance(error, str):
        return error[:MAX_MESSAGE], None, None
    return str(data)[:MAX_MESSAGE], None, None


def failure_for_status(
    provider: str,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str] = (),
) -> APIError:
    message, param, code = error_fields(body)
    message = redact(message, secrets)
    if status in CLIENT_FAULT_STATUS:
        return UpstreamRejected(400 if status == 422 else status, message, param=param, code=code)
    retryable = status in RETRYABLE_STATUS or status >= 500
    return UpstreamFailure(
        f"provider '{provider}' answered HTTP {status}: {message}",
        retryable=retryable,
        retry_after=parse_retry_after(headers) if retryable else None,
    )


def transport_failure(provider: str, exc: BaseException) -> UpstreamFailure:
    detail = str(exc) or ("cannot connect" if isinstance(exc, ConnectFailed) else "")
    return UpstreamFailure(
        f"provider '{provider}' connection failed: {type(exc).__name__}"
        + (f": {detail}" if detail else ""),
        retryable=True,
    )


@asynccontextmanager
async def post(
    http: H1Client,
    provider: str,
    url: str,
    body: Any,
    headers: Mapping[str, str],
    timeouts: Timeouts,
    timer: Timer,
    secrets: Sequence[str] = (),
    proxy: Proxy | None = None,
) -> AsyncGenerator[Response, None]:
    """POST ``body`` as JSON; the response once its status is 200, else the mapped error.

    ``secrets`` (the provider's key and header values) never appear in an error message.
    Only connecting is timed here: the first token and the total are the router's to
    enforce, as it knows what was sent.
    """
    since = time.perf_counter()
    try:
        async with await http.request(
            url,
            orjson.dumps(body),
            {"content-type": "application/json", **headers},
            timeouts.connect,
            proxy,
        ) as response:
            if response.status != 200:
                raw = await response.read()
                timer.add_wait(since)
                raise failure_for_status(provider, response.status, raw, response.headers, secrets)
            timer.add_wait(since)
            yield response
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(provider, exc) from exc
    except TimeoutError as exc:  # connecting
        raise UpstreamFailure(
            f"provider '{provider}' connection timed out after {timeouts.connect:g} s",
            retryable=True,
        ) from exc


def _loads(data: bytes, failure: str, *, retryable: bool) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamFailure(failure, retryable=retryable) from None


async def read_json(provider: str, response: Response, timer: Timer) -> Any:
    since = time.perf_counter()
    raw = await response.read()
    timer.add_wait(since)
    # A whole answer that is not JSON will not be better the second time; move on.
    return _loads(raw, f"provider '{provider}' answered with malformed JSON", retryable=False)


def _parse_block(block: bytes) -> tuple[bytes, bytes] | None:
    event = b""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[0] == 0x3A:  # blank or ":" comment
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value
    return (event, b"\n".join(data)) if data else None


async def sse_batches(
    response: Response,
) -> AsyncGenerator[list[tuple[bytes, bytes]], None]:
    """``(event, data)`` pairs of a server-sent event stream, in batches.

    A batch is every complete event that one network read delivered: relayed together, they
    cost one write to the client instead of one each, and nothing ever waits to fill a batch.
    """
    pending = b""
    while True:
        data = await response.readany()
        if not data:
            break
        pending += data
        if b"\r" in pending:
            pending = pending.replace(b"\r\n", b"\n")
        *blocks, pending = pending.split(b"\n\n")
        batch = [parsed for block in blocks if (parsed := _parse_block(block)) is not None]
        if batch:
            yield batch
    last = _parse_block(pending)
    if last is not None:
        yield [last]


def parse_event(provider: str, data: bytes) -> Any:
    return _loads(data, f"provider '{provider}' sent a malformed stream event", retryable=True)


class HttpUpstreamConfig(ResilientConfig):
    """Keys every HTTP upstream's section takes, beside the resilience ones."""

    api_key: str | None = Field(None, repr=False)
    model: str | None = None  # used when a route names no model
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    context_window: int | None = Field(None, ge=256)  # tokens, for trimming session history
    proxy: ProxySetting = None  # http://[user:password@]host:port, whatever HTTPS_PROXY says


class HttpProvider:
    """Base of the providers that call an HTTP upstream: the shared session, the request id
    forwarded, and the provider's secrets kept out of every error message."""

    genai_system = "openai"
    remote = True

    def __init__(
        self, name: str, config: HttpUpstreamConfig, url: str, headers: Mapping[str, str]
    ) -> None:
        self.name = name
        self.resilience = config.resilience()
        self.context_window = config.context_window
        self._url = url
        self._headers = {**headers, **config.headers}
        self._default_model = config.model
        self._secrets = tuple(v for v in (config.api_key, *config.headers.values()) if v)
        self._http: H1Client | None = None
        self._proxy_setting = config.proxy
        self._proxies: dict[str, Proxy | None] = {}  # by URL, decided once

    def _proxy(self, url: str) -> Proxy | None:
        """The egress proxy for ``url``: this provider's own, else the environment's."""
        if url not in self._proxies:
            self._proxies[url] = proxy_for(url, self._proxy_setting, os.environ)
        return self._proxies[url]

    async def start(self, resources: Resources) -> None:
        self._http = resources.http

    async def close(self) -> None:
        self._http = None

    def token_counter(self) -> Callable[[str], int] | None:
        return None  # an upstream's tokenizer is not at hand: history sizes are estimated

    def _post(
        self, call: ChatCall, body: Json, url: str | None = None
    ) -> AbstractAsyncContextManager[Response]:
        """POST to the provider's chat endpoint, or to ``url``."""
        if self._http is None:
            raise ServiceUnavailable(f"provider '{self.name}' is not started")
        headers = {**self._headers, **call.span.headers()}
        if call.request_id:
            headers["x-request-id"] = call.request_id
        url = url or self._url
        return post(
            self._http,
            self.name,
            url,
            body,
            headers,
            self.resilience.timeout,
            call.timer,
            self._secrets,
            self._proxy(url),
        )
