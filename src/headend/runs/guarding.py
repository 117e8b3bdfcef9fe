"""Guardrails on a run: which apply (headend.yaml's, then the agent's, then the key's), who
judges for them (a model route), who hears of them (metrics, and the audit log for each
block), and a refusal in chat shape, which each surface then says in its own."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import orjson

from headend.errors import ModelNotFound
from headend.guardrails.checks import Blocked, Finding
from headend.guardrails.guard import Guard, OutputWindow
from headend.guardrails.rules import GuardrailSpec
from headend.observability import audit_log
from headend.observability.metrics import Metrics
from headend.providers.base import ChatCall
from headend.providers.model_routes import RouteTable
from headend.providers.reply import chat_completion
from headend.providers.router import Router
from headend.store.base import Store
from headend.types import Json

Event = TypeVar("Event")  # a batch of chunks (list[Json]), or what a run yields beside them
NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
JUDGE_TOKENS = 4
CHUNK_KEYS = {
    "id",
    "object",
    "created",
    "model",
    "choices",
    "system_fingerprint",
    "usage",
    "service_tier",
    "obfuscation",
}  # "yes" or "no" is all a judge is asked for


@dataclass(slots=True)
class Refusal:
    """A run's answer when a guardrail blocked it: what it says."""

    message: str
    finding: Finding


@dataclass(slots=True)
class Watch:
    """What one run's checks tell: metrics, and a block to the audit log (the check, where,
    the hash of what matched; never the text)."""

    metrics: Metrics
    store: Store | None
    actor: str | None
    target: str
    blocks: list[Finding] = field(default_factory=list)

    def checked(self, check: str, action: str, outcome: str, seconds: float) -> None:
        self.metrics.guardrail_checked(check, action, outcome, seconds)

    async def blocked(self, finding: Finding) -> None:
        self.blocks.append(finding)
        if self.store is None:
            return
        detail: Json = {"check": finding.check, "stage": finding.stage}
        if finding.digest:
            detail["sha256"] = finding.digest
        if finding.error:
            detail["error"] = True
        await audit_log.record(self.store, self.actor, "guardrail.block", self.target, **detail)


class Guardrails:
    """The guardrails of every run: headend.yaml's list, and how a judge is asked."""

    def __init__(
        self,
        specs: Sequence[GuardrailSpec],
        router: Router,
        routes: RouteTable,
        store: Store | None,
    ) -> None:
        self.specs = list(specs)
        self.router = router
        self.routes = routes
        self.store = store

    def guard(
        self,
        own: Sequence[GuardrailSpec],
        key: Sequence[GuardrailSpec],
        actor: str | None,
        target: str,
    ) -> Guard | None:
        """A run's guard, or None when no list applies (then nothing is checked, at no cost)."""
        specs = [*self.specs, *own, *key]
        if not specs:
            return None
        watch = Watch(self.router.metrics, self.store, actor, target)
        return Guard(specs, watch, self.judge)

    async def judge(self, model: str, prompt: str, text: str) -> str:
        """A model route's answer to a judge's question about ``text``."""
        targets = self.routes.for_client(model)
        if targets is None:
            raise ModelNotFound(model)
        body: Json = {
            "model": model,
            "messages": [
                {"role": "system", "content": prompt},
                {"role": "user", "content": text},
            ],
            "max_tokens": JUDGE_TOKENS,
            "temperature": 0,
        }
        answer, _ = await self.router.complete(
            targets, ChatCall(body=body, request_id=f"judge-{uuid.uuid4().hex[:12]}")
        )
        message = answer["choices"][0].get("message") or {}
        return str(message.get("content") or "")


def refusal_completion(model: str, message: str) -> Json:
    """A ``chat.completion`` that refuses: ``message.refusal``, finish_reason content_filter."""
    said = {"role": "assistant", "content": None, "refusal": message}
    return chat_completion(model, said, "content_filter", dict(NO_USAGE))


def refusal_chunks(
    model: str, message: str, opened: bool, template: Json | None = None
) -> list[Json]:
    """A stream's refusal: ``delta.refusal`` (with the role, if nothing came before), then
    finish_reason content_filter."""
    base: Json = {
        "id": (template or {}).get("id") or f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": (template or {}).get("created") or int(time.time()),
        "model": model,
    }
    delta: Json = {"content": None, "refusal": message}
    if not opened:
        delta = {"role": "assistant", **delta}
    return [
        {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
        },
        {
            **base,
            "choices": [
                {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "content_filter"}
            ],
        },
    ]


def refused(answer: Json, message: str) -> Json:
    """A finished answer turned into a refusal (its usage kept: the tokens were spent)."""
    turned = refusal_completion(answer.get("model") or "", message)
    for key in ("id", "created", "usage", "session_id"):
        if answer.get(key) is not None:
            turned[key] = answer[key]
    return turned


async def screened(guard: Guard, answer: Json) -> tuple[Json, bool]:
    """A ``chat.completion`` as the client may see it, or its refusal (then True: the
    answer was withheld, and the session keeps nothing of it)."""
    try:
        return await screen_answer(guard, answer), False
    except Blocked as exc:
        await guard.watcher.blocked(exc.finding)
        return refused(answer, exc.message), True


async def screen_answer(guard: Guard, answer: Json) -> Json:
    """A ``chat.completion``'s message as the client may see it: placeholders put back, then
    the output checks. ``Blocked``: not at all."""
    message = answer["choices"][0].get("message") or {}
    for key, value in list(message.items()):  # the content, and any text beside it
        if key not in ("role", "refusal") and isinstance(value, str) and value:
            window = guard.window()
            text = window.feed(value)
            message[key] = text + await window.end()
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        function["arguments"] = restored_arguments(guard, function.get("arguments") or "")
    return answer


def restored_arguments(guard: Guard, arguments: str) -> str:
    """A call's JSON arguments with the user's values put back (the client's tool acts on
    them)."""
    if not guard.masker or "<" not in arguments:
        return arguments
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return guard.masker.restore(arguments)
    return orjson.dumps(guard.restore(parsed)).decode()


def restored_messages(guard: Guard, messages: list[Json]) -> list[Json]:
    """A turn's messages as the session keeps them: the user's values, not placeholders."""
    if not guard.masker:
        return messages
    out = []
    for message in messages:
        message = dict(message)
        if isinstance(message.get("content"), str):
            message["content"] = guard.masker.restore(message["content"])
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {
                    **c,
                    "function": {
                        **c["function"],
                        "arguments": restored_arguments(guard, c["function"]["arguments"] or ""),
                    },
                }
                for c in message["tool_calls"]
            ]
        out.append(message)
    return out


@dataclass(slots=True)
class GuardedStream:
    """A run's stream of chunk batches through its output window: each choice's text held
    and screened, and on a block the refusal instead of the rest (the upstream is left)."""

    guard: Guard
    model: str
    blocked: Refusal | None = None
    windows: dict[tuple[int, str], OutputWindow] = field(default_factory=dict)  # by place
    opened: bool = False
    template: Json | None = None

    async def batches(
        self, source: AsyncGenerator[list[Json] | Event, None]
    ) -> AsyncGenerator[list[Json] | Event, None]:
        """``source`` guarded, to its end or to its refusal (then it is left unread): its
        batches of chunks screened, anything else (a tool's progress) passed on as it is."""
        try:
            async for event in source:
                if not isinstance(event, list):
                    yield event
                    continue
                out = await self.batch(event)
                if out:
                    yield out
                if self.blocked is not None:
                    return
            out = await self.rest()
            if out:
                yield out
        finally:
            await source.aclose()

    async def batch(self, batch: list[Json]) -> list[Json]:
        """A batch as it may go out: the text its windows let go, or the refusal."""
        if self.blocked is not None:
            return []
        try:
            return await self._batch(batch)
        except Blocked as exc:
            return await self._refuse(exc)

    async def rest(self) -> list[Json]:
        """What the windows still hold once the stream ended without a finish reason."""
        if self.blocked is not None:
            return []
        try:
            return await self._flush()
        except Blocked as exc:
            return await self._refuse(exc)

    async def _batch(self, batch: list[Json]) -> list[Json]:
        out = []
        for chunk in batch:
            self.template = self.template or chunk
            choices = chunk.get("choices") or ()
            emptied = 0
            for choice in choices:
                index = choice.get("index", 0)
                delta = choice.get("delta") or {}
                fed = self._feed(index, delta)
                if choice.get("finish_reason"):
                    await self._finish(index, delta)
                    choice["delta"] = delta
                elif fed and not any(delta.values()):
                    emptied += 1
            if (
                choices
                and emptied == len(choices)
                and not chunk.get("usage")
                and chunk.keys() <= CHUNK_KEYS
            ):
                continue  # all its text is held back, and it carries nothing else
            self.opened = True
            out.append(chunk)
        return out

    def _feed(self, index: int, delta: Json) -> bool:
        """Every text of a choice's delta through its own window: the content, any other
        text an upstream sends beside it (reasoning, a vendor's field), and each tool call's
        arguments. True if it held text."""
        fed = False
        for key, value in delta.items():
            if key != "role" and isinstance(value, str) and value:
                delta[key] = self._window((index, key)).feed(value)
                fed = True
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            if function.get("arguments"):
                place = (index, f"tool_calls.{call.get('index', 0)}")
                function["arguments"] = self._window(place).feed(function["arguments"])
        return fed

    def _window(self, place: tuple[int, str]) -> OutputWindow:
        window = self.windows.get(place)
        if window is None:
            window = self.windows[place] = self.guard.window()
        return window

    async def _finish(self, index: int, delta: Json) -> None:
        """What a choice's windows still hold, added to its last delta."""
        for place in [place for place in self.windows if place[0] == index]:
            rest = await self.windows.pop(place).end()
            if not rest:
                continue
            key = place[1]
            if key.startswith("tool_calls."):
                call = {"index": int(key.split(".")[1]), "function": {"arguments": rest}}
                delta.setdefault("tool_calls", []).append(call)
            else:
                delta[key] = (delta.get(key) or "") + rest

    async def _flush(self) -> list[Json]:
        out: list[Json] = []
        for index in sorted({place[0] for place in self.windows}):
            delta: Json = {}
            await self._finish(index, delta)
            if delta and self.template is not None:
                head = {k: self.template.get(k) for k in ("id", "object", "created", "model")}
                choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
                out.append({**head, "choices": [choice]})
        return out

    async def _refuse(self, exc: Blocked) -> list[Json]:
        await self.guard.watcher.blocked(exc.finding)
        self.blocked = Refusal(exc.message, exc.finding)
        return refusal_chunks(self.model, exc.message, self.opened, self.template)
