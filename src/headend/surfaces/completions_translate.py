"""OpenAI's legacy Completions API in front of the chat run: each prompt becomes a chat
request with the prompt as its user message; answers come back as ``text_completion``."""

from __future__ import annotations

import secrets
import time
from typing import Any

from headend.errors import InvalidRequest, UnsupportedValue
from headend.types import Json

# fields the chat request takes as they are
PASSED = (
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "stream",
    "stream_options",
    "session_id",
)
MAX_PROMPTS = 16


def new_completion_id() -> str:
    return f"cmpl-{secrets.token_hex(12)}"


def prompts_of(body: Any) -> list[str]:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if (
        isinstance(prompt, list)
        and prompt
        and len(prompt) <= MAX_PROMPTS
        and all(isinstance(p, str) for p in prompt)
    ):
        return list(prompt)
    raise InvalidRequest(
        f"'prompt' must be a string or a list of 1 to {MAX_PROMPTS} strings "
        "(token arrays are not accepted).",
        param="prompt",
    )


def to_chat(body: Json, prompt: str) -> Json:
    """The chat request for one prompt of a completions request."""
    for name, allowed in (("n", 1), ("best_of", 1)):
        if body.get(name) not in (None, allowed):
            raise UnsupportedValue(f"'{name}' must be 1 here.", param=name)
    for name in ("suffix", "logprobs"):
        if body.get(name) not in (None, 0):
            raise UnsupportedValue(f"'{name}' is not supported.", param=name)
    chat = {key: body[key] for key in PASSED if body.get(key) is not None}
    chat["messages"] = [{"role": "user", "content": prompt}]
    return chat


def choice(index: int, text: str, finish: str | None) -> Json:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}


def to_completion(answers: list[Json], model: str, echo: list[str] | None) -> Json:
    """The ``text_completion`` for the chat answers to each prompt, in order."""
    choices = []
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for index, answer in enumerate(answers):
        first = answer["choices"][0]
        message = first.get("message") or {}
        text = message.get("content") or message.get("refusal") or ""  # a refusal is said too
        if echo is not None:
            text = echo[index] + text
        choices.append(choice(index, text, first.get("finish_reason")))
        for key in usage:
            usage[key] += int((answer.get("usage") or {}).get(key) or 0)
    return {
        "id": new_completion_id(),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage,
    }


class CompletionChunks:
    """Chat chunks in, ``text_completion`` chunks out, for one whole request."""

    def __init__(self, model: str, include_usage: bool, session_id: str | None = None) -> None:
        self.id = new_completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.session_id = session_id  # an agent's conversation: on the first chunk, as on chat's

    def chunk(self, choices: list[Json], **extra: Any) -> Json:
        chunk = {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        if self.session_id is not None:
            chunk["session_id"], self.session_id = self.session_id, None
        return chunk

    def feed(self, index: int, chunk: Json) -> list[Json]:
        out = []
        if chunk.get("usage"):
            for key in self.usage:
                self.usage[key] += int(chunk["usage"].get(key) or 0)
        for part in chunk.get("choices") or ():
            delta = part.get("delta") or {}
            text = delta.get("content") or delta.get("refusal") or ""
            if text or part.get("finish_reason"):
                out.append(self.chunk([choice(index, text, part.get("finish_reason"))]))
        return out

    def end(self) -> list[Json]:
        return [self.chunk([], usage=self.usage)] if self.include_usage else []
