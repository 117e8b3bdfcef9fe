"""What a run reads of a chat request beyond the model's own fields: headend's fields (never
sent upstream), the stream's options, and an upstream's complaint put in the client's terms."""

from __future__ import annotations

import re
from collections.abc import Mapping

from headend.errors import InvalidRequest
from headend.schemas.openai.chat_api import ChatCompletionRequest, ProgressFormat
from headend.types import Json

# headend's own request fields, never sent to an upstream
HEADEND_FIELDS = ("max_iterations", "session_id")
HEADEND_STREAM_OPTIONS = ("include_tool_progress", "tool_progress_format")
PROGRESS_HEADERS = ("x-tool-progress", "x-hermes-tool-progress")

_MESSAGE_PARAM = re.compile(r"^messages\[(\d+)\]")


def in_client_terms(error: InvalidRequest, prepended: int) -> InvalidRequest:
    """An upstream's complaint about ``messages[i]`` names the client's own message index."""
    param = error.param or ""
    match = _MESSAGE_PARAM.match(param) if prepended else None
    if match is not None and int(match.group(1)) >= prepended:
        error.param = f"messages[{int(match.group(1)) - prepended}]{param[match.end() :]}"
    return error


def passthrough_checks(body: Json) -> None:
    """The little a plain model route checks itself; the upstream validates the rest."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "'messages' must be a non-empty array of messages.",
            param="messages",
            code="invalid_value",
        )
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise InvalidRequest("'stream' must be a boolean.", param="stream", code="invalid_type")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest(
            "'stream_options' must be an object.", param="stream_options", code="invalid_type"
        )


def without_headend_fields(body: Json) -> Json:
    options = body.get("stream_options")
    if not any(key in body for key in HEADEND_FIELDS) and not (
        isinstance(options, dict) and any(key in options for key in HEADEND_STREAM_OPTIONS)
    ):
        return body
    body = {key: value for key, value in body.items() if key not in HEADEND_FIELDS}
    if isinstance(options, dict):
        body["stream_options"] = {
            k: v for k, v in options.items() if k not in HEADEND_STREAM_OPTIONS
        }
    return body


def progress_format(
    request: ChatCompletionRequest, headers: Mapping[str, str]
) -> ProgressFormat | None:
    """Tool progress frames are off unless stream_options or a header asks for them."""
    options = request.stream_options
    chosen = options.tool_progress_format if options else None
    asked = (
        bool(options and options.include_tool_progress)
        or chosen is not None
        or any(headers.get(name, "").strip().lower() in ("1", "true") for name in PROGRESS_HEADERS)
    )
    return (chosen or "event") if asked else None


def include_usage(body: Json) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def stored_message(message: Json) -> Json:
    """An answer as the conversation keeps it: no null fields."""
    return {key: value for key, value in message.items() if value is not None}
