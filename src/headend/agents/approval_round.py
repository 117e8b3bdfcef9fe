"""A round of the tool loop that stops to ask a person: which calls wait (``waiting``),
the answers they get (``Answer``), and where the answered calls' results go back into the
conversation (``placed``). The policy is ``tools.approval_policy``; keeping the requests and
their answers is ``runs.approvals``."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from headend.tools.approval_policy import ApprovalPolicy
from headend.tools.base import Tool
from headend.types import Json


@dataclass(frozen=True, slots=True)
class Answer:
    """A person's answer to a call that waited for approval: the call as it was asked (its
    arguments are what runs), whether it runs, and what the model is told if not."""

    call_id: str
    name: str
    arguments: str
    approved: bool
    reason: str = ""


def waiting(calls: list[Json], own: dict[str, Tool], policy: ApprovalPolicy) -> dict[str, Json]:
    """The calls that must wait for a person, by call id: each as its approval request
    (an id for it, the tool, its server, the arguments exactly as they will run)."""
    found = {}
    for call in calls:
        tool = own.get(call["function"]["name"])
        arguments = call_arguments(call)
        if tool is None or not isinstance(arguments, dict):
            continue  # refused whatever is answered: no need to ask
        if policy.needs(tool, arguments):
            server, _, tool_name = tool.ref.partition("/")
            mcp = server.startswith("mcp:") and tool_name
            found[call["id"]] = {
                "id": f"mcpr_{uuid.uuid4().hex}",
                "call_id": call["id"],
                "tool": tool.name,  # as the model calls it
                "name": tool_name if mcp else tool.name,  # as the request shows it
                "ref": tool.ref,
                "server_label": server.removeprefix("mcp:") if mcp else "headend",
                "arguments": call["function"]["arguments"] or "{}",
            }
    return found


def placed(messages: list[Json], answered: list[Json]) -> list[Json]:
    """``messages`` with each answered call's result right after the assistant message that
    made the call (and the results already there): where the model expects it."""
    out = list(messages)
    for result in answered:
        at = next(
            (
                i + 1
                for i in range(len(out) - 1, -1, -1)
                if any(
                    c.get("id") == result["tool_call_id"] for c in out[i].get("tool_calls") or ()
                )
            ),
            len(out),
        )
        while at < len(out) and out[at].get("role") == "tool":
            at += 1
        out.insert(at, result)
    return out


def call_arguments(call: Json) -> Any:
    """A call's arguments, parsed (None: not JSON)."""
    try:
        return json.loads(call["function"]["arguments"] or "{}")
    except json.JSONDecodeError:
        return None
