"""``Idempotency-Key``: a POST that creates an answer (chat completions, completions,
responses, messages) runs once per key and caller within ``KEEP`` seconds.

The first request with a key claims it in the store (so the rule holds across workers,
instances and restarts) and runs; its answer — status, content type, body, a stream's
events included — is stored when it ends. A retry with the same key and the same body gets
that answer again, marked ``Idempotent-Replayed: true``; with another body, or while the
first still runs, it gets 409 ``idempotency_conflict``. An answer that says "try again"
(408, 409, 429, 5xx), a run that raises or one that loses its client gives the key up, so
a retry runs anew. A claim whose process died lapses after ``LEASE`` seconds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from hashlib import sha256

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headend.errors import APIError, IdempotencyConflict, InvalidRequest
from headend.server.auth import principal_of
from headend.server.context import refuse
from headend.server.json_bodies import read_body
from headend.store.base import IdempotentRequest, Store

log = logging.getLogger(__name__)

PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"})
HEADER = b"idempotency-key"
KEEP = 24 * 3600.0
LEASE = 900.0  # longer than any one run is allowed to take
MAX_KEY = 255
MAX_STORED = 8 * 1024 * 1024  # a longer answer is not kept: a retry of it gets 409
KEPT_HEADERS = frozenset({b"content-type", b"x-session-id"})
RETRY_LATER = frozenset({408, 409, 429})  # and every 5xx: a retry should run again
NOT_KEPT = "x-headend-answer-not-kept"


def idempotency_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            key: str = value.decode("latin-1")
            if not 0 < len(key) <= MAX_KEY or not key.isprintable():
                raise InvalidRequest(
                    f"'Idempotency-Key' must be 1 to {MAX_KEY} printable characters.",
                    param="Idempotency-Key",
                    code="invalid_idempotency_key",
                )
            return key
    return None


@dataclass(frozen=True, slots=True)
class _Claim:
    """A request's hold on its key, and the body it was made with."""

    store: Store
    owner: str
    key: str
    body: bytes
    body_hash: str


class _Recorder:
    """Passes the answer on and keeps a copy of it."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in message.get("headers", ())
                if name in KEPT_HEADERS
            }
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            self.size += len(body)
            if self.size <= MAX_STORED:
                self.chunks.append(body)
            self.complete = not message.get("more_body", False)
        await self.send(message)

    def answer(self) -> tuple[int, dict[str, str], bytes] | None:
        """What to keep (None: give the key up): a whole, final answer; one too long to
        keep is remembered as answered, without its body."""
        if not self.complete or self.status >= 500 or self.status in RETRY_LATER:
            return None
        if self.size > MAX_STORED:
            return self.status, {NOT_KEPT: "true"}, b""
        return self.status, self.headers, b"".join(self.chunks)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in PATHS:
            await self.app(scope, receive, send)
            return
        try:
            key = idempotency_key(scope)
            claim = None if key is None else await self._claim(key, scope, receive, send)
        except APIError as exc:
            await refuse(scope, send, exc)
            return
        if key is None:
            await self.app(scope, receive, send)
        elif claim is not None:
            await self._run_once(claim, scope, receive, send)

    @staticmethod
    async def _claim(key: str, scope: Scope, receive: Receive, send: Send) -> _Claim | None:
        """This request's claim on ``key``; None when an earlier answer was replayed.
        Raises what to refuse it with."""
        services = scope["app"].state.services
        body = await read_body(Request(scope, receive), services.settings.server.max_body_bytes)
        claim = _Claim(
            services.store, principal_of(scope).owner or "", key, body, sha256(body).hexdigest()
        )
        earlier = await claim.store.claim_idempotency(
            claim.owner, key, claim.body_hash, time.time(), LEASE
        )
        if earlier is None:
            return claim
        await _replay(earlier, claim.body_hash, send)
        return None

    async def _run_once(self, claim: _Claim, scope: Scope, receive: Receive, send: Send) -> None:
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": claim.body, "more_body": False}
            return await receive()

        recorder = _Recorder(send)
        answer = None
        try:
            await self.app(scope, replay_body, recorder)
            answer = recorder.answer()
        finally:
            try:
                if answer is not None:
                    await claim.store.finish_idempotency(
                        claim.owner, claim.key, claim.body_hash, answer, time.time() + KEEP
                    )
                else:
                    await claim.store.release_idempotency(claim.owner, claim.key, claim.body_hash)
            except Exception:  # reported; the answer went out, only a retry's replay is lost
                log.exception("recording an idempotent request's answer failed")


async def _replay(earlier: IdempotentRequest, body_hash: str, send: Send) -> None:
    if earlier.body_hash != body_hash:
        raise IdempotencyConflict(
            "This Idempotency-Key was used with a different request body. "
            "Use a new key for a new request."
        )
    if earlier.status is None:
        raise IdempotencyConflict(
            "A request with this Idempotency-Key is still running. Retry once it has ended."
        )
    if NOT_KEPT in earlier.headers:
        raise IdempotencyConflict(
            "A request with this Idempotency-Key was answered already; its answer was too "
            "long to keep for a replay."
        )
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in earlier.headers.items()
    ]
    headers.append((b"idempotent-replayed", b"true"))
    headers.append((b"content-length", str(len(earlier.body)).encode()))
    await send({"type": "http.response.start", "status": earlier.status, "headers": headers})
    await send({"type": "http.response.body", "body": earlier.body})
