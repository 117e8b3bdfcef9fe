"""How an OpenAI chat request becomes a call to the embedded model.

The embedded model takes text messages and sampling fields. Everything else a request may
carry is refused with a 400 naming the field, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headend.errors import UnsupportedValue
from headend.providers.base import Json, SamplingParams
from headend.schemas.openai.chat import ChatCompletionRequest, ChatMessage
from headend.schemas.validation import validate


@dataclass(slots=True)
class LocalCall:
    messages: list[dict[str, Any]]
    sampling: SamplingParams


def plain_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as the chat template sees them: text content, ``developer`` as ``system``."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role == "function":
            raise UnsupportedValue(
                "The deprecated 'function' role is not supported; use 'tool' messages.",
                param=f"messages[{index}].role",
            )
        content = message.content
        if isinstance(content, list):
            texts = []
            for part_index, part in enumerate(content):
                if part.type != "text" or part.text is None:
                    raise UnsupportedValue(
                        f"Content parts of type '{part.type}' are not supported by this "
                        "model; send text parts.",
                        param=f"messages[{index}].content[{part_index}].type",
                    )
                texts.append(part.text)
            content = "\n".join(texts)
        role = "system" if message.role == "developer" else message.role
        out.append({"role": role, "content": content or ""})
    return out


def refuse_unsupported(request: ChatCompletionRequest) -> None:
    if request.n is not None and request.n > 1:
        raise UnsupportedValue("Only n=1 is supported by this model.", param="n")
    if request.logprobs:
        raise UnsupportedValue("logprobs are not supported by this model.", param="logprobs")
    if request.logit_bias:
        raise UnsupportedValue("logit_bias is not supported by this model.", param="logit_bias")
    if request.tools and request.tool_choice != "none":
        raise UnsupportedValue("This model does not support tools.", param="tools")
    if request.response_format and request.response_format.get("type", "text") != "text":
        raise UnsupportedValue(
            "Only response_format type 'text' is supported by this model.",
            param="response_format.type",
        )


def local_call(body: Json) -> LocalCall:
    request = validate(ChatCompletionRequest, {"model": "local", **body})
    refuse_unsupported(request)
    sampling = SamplingParams.model_construct(**request.sampling())
    return LocalCall(messages=plain_messages(request.messages), sampling=sampling)
