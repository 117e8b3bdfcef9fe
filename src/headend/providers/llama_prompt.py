"""What the chat template is given for one call: the messages, and the tools either as the
template's own ``tools`` variable (when it renders them) or, for templates without tool
support, written into the system message in the Hermes format, with past calls and their
results written as text the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from headend.providers.llama_tool_formats import FALLBACK, ToolCallFormat, ToolSpec, native_format
from headend.providers.local_request import LocalCall

TOOLS_PREAMBLE = (
    "You can call functions to help with the user's request. Their signatures, one JSON "
    "object per line, are within <tools></tools> tags:\n<tools>\n{signatures}\n</tools>\n\n"
    "To call one, write a JSON object with its name and arguments within "
    "<tool_call></tool_call> tags:\n"
    '<tool_call>\n{{"name": <function-name>, "arguments": <arguments-object>}}\n</tool_call>'
)


@dataclass(frozen=True, slots=True)
class TemplateInput:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None  # for templates that render tools themselves
    format: ToolCallFormat | None  # how calls in the answer are written; None: no tools


class PromptStyle:
    """A chat template's way with tools, decided once when the model loads."""

    def __init__(self, template: str) -> None:
        self.native = native_format(template)

    def input(self, call: LocalCall) -> TemplateInput:
        offered = call.offered
        if self.native is not None:
            tools = [{"type": "function", "function": t.function()} for t in offered]
            messages = [_native_message(m, call.messages) for m in call.messages]
            return TemplateInput(messages, tools or None, self.native if offered else None)
        messages = _written_calls(call.messages)
        if offered:
            messages = _with_preamble(messages, offered)
        return TemplateInput(messages, None, FALLBACK if offered else None)


def _arguments(raw: Any) -> Any:
    """Templates index into arguments, so they get an object where the JSON is one."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _call_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    names = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[str(call.get("id"))] = str((call.get("function") or {}).get("name", ""))
    return names


def _native_message(message: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    if message.get("tool_calls"):
        calls = [
            {
                **call,
                "function": {
                    **(call.get("function") or {}),
                    "arguments": _arguments((call.get("function") or {}).get("arguments")),
                },
            }
            for call in message["tool_calls"]
        ]
        return {**message, "tool_calls": calls}
    if message["role"] == "tool":
        return {**message, "name": _call_names(messages).get(message["tool_call_id"], "")}
    return message


def _written_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Past calls as ``<tool_call>`` text, results as user turns saying what each call
    returned (consecutive results in one turn), for templates that know only plain roles:
    models without tool training answer from plain words best."""
    names = _call_names(messages)
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.get("tool_calls"):
            written = [
                "<tool_call>\n"
                + json.dumps(
                    {
                        "name": (call.get("function") or {}).get("name"),
                        "arguments": _arguments((call.get("function") or {}).get("arguments")),
                    },
                    ensure_ascii=False,
                )
                + "\n</tool_call>"
                for call in message["tool_calls"]
            ]
            text = "\n".join(filter(None, [message["content"], *written]))
            out.append({"role": "assistant", "content": text})
        elif message["role"] == "tool":
            name = names.get(message["tool_call_id"]) or "The tool"
            response = f"{name} returned:\n{message['content']}"
            if out and out[-1].get("tool_response"):
                out[-1]["content"] += "\n\n" + response
            else:
                out.append({"role": "user", "content": response, "tool_response": True})
        else:
            out.append(message)
    return [{k: v for k, v in m.items() if k != "tool_response"} for m in out]


def _with_preamble(messages: list[dict[str, Any]], tools: list[ToolSpec]) -> list[dict[str, Any]]:
    signatures = "\n".join(json.dumps(t.function(), ensure_ascii=False) for t in tools)
    preamble = TOOLS_PREAMBLE.format(signatures=signatures)
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        return [{**first, "content": f"{first['content']}\n\n{preamble}"}, *messages[1:]]
    return [{"role": "system", "content": preamble}, *messages]
