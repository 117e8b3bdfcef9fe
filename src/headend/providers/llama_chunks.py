"""The embedded model's output in OpenAI shapes: what the batch engine emits (text, pieces
with log probabilities, the end) becomes ``chat.completion.chunk`` dicts, with tool calls read
out of the text, and a whole ``chat.completion`` is those chunks put back together."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from headend import __version__
from headend.providers.base import FinishReason
from headend.providers.llama_batch import Finished, Piece
from headend.providers.llama_logprobs import TokenLogprob
from headend.providers.llama_output import OutputReader
from headend.providers.reply import Reply, chat_completion
from headend.types import Batch, Json

SYSTEM_FINGERPRINT = f"fp_headend_{__version__}"


class ChunkMaker:
    """``chat.completion.chunk`` dicts for one stream."""

    def __init__(self, model: str) -> None:
        self.head = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

    def delta(
        self, delta: Json, finish: FinishReason | None = None, logprobs: Json | None = None
    ) -> Json:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return {**self.head, "choices": [choice]}

    def usage(self, prompt: int, completion: int, cached: int = 0) -> Json:
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        return {**self.head, "choices": [], "usage": usage}


@dataclass(slots=True)
class Relay:
    """Engine output to chunks for one generation."""

    chunks: ChunkMaker
    reader: OutputReader
    logprobs: bool
    _pending: list[TokenLogprob] = field(default_factory=list)
    _started: bool = False

    def batch(self, item: object) -> Batch:
        batch: Batch = []
        if not self._started:
            self._started = True
            batch.append(self.chunks.delta({"role": "assistant", "content": "", "refusal": None}))
        if isinstance(item, Finished):
            return batch + self._end(item)
        text = item.text if isinstance(item, Piece) else str(item)
        if isinstance(item, Piece):
            self._pending += item.logprobs
        content = self.reader.feed(text)
        if content:
            batch.append(self._content(content))
        return batch

    def _content(self, content: str) -> Json:
        logprobs = None
        if self.logprobs:
            logprobs = {"content": [t.openai() for t in self._pending], "refusal": None}
            self._pending.clear()
        return self.chunks.delta({"content": content}, logprobs=logprobs)

    def _end(self, finished: Finished) -> Batch:
        batch: Batch = []
        rest = self.reader.finish()
        if rest:
            batch.append(self._content(rest))
        reason: FinishReason = finished.reason
        if self.reader.calls:
            calls = [call.openai(index) for index, call in enumerate(self.reader.calls)]
            batch.append(self.chunks.delta({"tool_calls": calls}))
            reason = "tool_calls"
        batch.append(self.chunks.delta({}, reason))
        batch.append(
            self.chunks.usage(
                finished.prompt_tokens, finished.completion_tokens, finished.cached_tokens
            )
        )
        return batch


def completion(model: str, reply: Reply, logprobs: bool) -> Json:
    """The whole ``chat.completion`` a stream's chunks make."""
    message = {**reply.message(), "refusal": None}
    content = {"content": reply.logprobs or [], "refusal": None} if logprobs else None
    answer = chat_completion(model, message, reply.finish or "stop", reply.usage or {}, content)
    return {**answer, "system_fingerprint": SYSTEM_FINGERPRINT}
