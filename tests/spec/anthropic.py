"""Anthropic's Messages API shapes as JSON Schema, written from its API reference (Messages,
Streaming Messages, Count tokens, Errors). Objects are closed: a field headend invents fails.
"""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


def const(value: str) -> dict[str, str]:
    return {"const": value}


NULLABLE_INT = {"type": ["integer", "null"]}
STOP_REASON = {
    "enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", None]
}

SCHEMAS: dict[str, Any] = {
    "Usage": obj(
        {"input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"}},
        {
            "cache_creation_input_tokens": NULLABLE_INT,
            "cache_read_input_tokens": NULLABLE_INT,
            "service_tier": {"type": ["string", "null"]},
        },
    ),
    "TextBlock": obj(
        {"type": const("text"), "text": {"type": "string"}},
        {"citations": {"type": ["array", "null"]}},
    ),
    "ToolUseBlock": obj(
        {
            "type": const("tool_use"),
            "id": {"type": "string", "pattern": "^[a-zA-Z0-9_-]+$"},
            "name": {"type": "string", "minLength": 1},
            "input": {"type": "object"},
        }
    ),
    "ThinkingBlock": obj(
        {"type": const("thinking"), "thinking": {"type": "string"}, "signature": {"type": "string"}}
    ),
    "ContentBlock": {"oneOf": [ref("TextBlock"), ref("ToolUseBlock"), ref("ThinkingBlock")]},
    "Message": obj(
        {
            "id": {"type": "string", "minLength": 1},
            "type": const("message"),
            "role": const("assistant"),
            "content": {"type": "array", "items": ref("ContentBlock")},
            "model": {"type": "string"},
            "stop_reason": STOP_REASON,
            "stop_sequence": {"type": ["string", "null"]},
            "usage": ref("Usage"),
        }
    ),
    "MessageStartEvent": obj({"type": const("message_start"), "message": ref("Message")}),
    "ContentBlockStartEvent": obj(
        {
            "type": const("content_block_start"),
            "index": {"type": "integer", "minimum": 0},
            "content_block": ref("ContentBlock"),
        }
    ),
    "ContentBlockDeltaEvent": obj(
        {
            "type": const("content_block_delta"),
            "index": {"type": "integer", "minimum": 0},
            "delta": {
                "oneOf": [
                    obj({"type": const("text_delta"), "text": {"type": "string"}}),
                    obj({"type": const("input_json_delta"), "partial_json": {"type": "string"}}),
                    obj({"type": const("thinking_delta"), "thinking": {"type": "string"}}),
                    obj({"type": const("signature_delta"), "signature": {"type": "string"}}),
                ]
            },
        }
    ),
    "ContentBlockStopEvent": obj(
        {"type": const("content_block_stop"), "index": {"type": "integer", "minimum": 0}}
    ),
    "MessageDeltaEvent": obj(
        {
            "type": const("message_delta"),
            "delta": obj(
                {"stop_reason": STOP_REASON, "stop_sequence": {"type": ["string", "null"]}}
            ),
            "usage": obj(
                {"output_tokens": {"type": "integer"}},
                {
                    "input_tokens": NULLABLE_INT,
                    "cache_creation_input_tokens": NULLABLE_INT,
                    "cache_read_input_tokens": NULLABLE_INT,
                },
            ),
        }
    ),
    "MessageStopEvent": obj({"type": const("message_stop")}),
    "PingEvent": obj({"type": const("ping")}),
    "ErrorResponse": obj(
        {
            "type": const("error"),
            "error": obj(
                {
                    "type": {
                        "enum": [
                            "invalid_request_error",
                            "authentication_error",
                            "billing_error",
                            "permission_error",
                            "not_found_error",
                            "request_too_large",
                            "rate_limit_error",
                            "timeout_error",
                            "api_error",
                            "overloaded_error",
                        ]
                    },
                    "message": {"type": "string"},
                }
            ),
        }
    ),
    "CountTokensResponse": obj({"input_tokens": {"type": "integer", "minimum": 0}}),
}
SCHEMAS["StreamEvent"] = {
    "oneOf": [
        ref(name)
        for name in (
            "MessageStartEvent",
            "ContentBlockStartEvent",
            "ContentBlockDeltaEvent",
            "ContentBlockStopEvent",
            "MessageDeltaEvent",
            "MessageStopEvent",
            "PingEvent",
            "ErrorResponse",
        )
    ]
}
