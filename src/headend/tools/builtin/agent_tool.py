"""``agent:<id>``: another agent, called as a tool with one message, answering in text."""

from __future__ import annotations

from headend.tools.base import ToolContext, ToolError
from headend.types import Json

MAX_DEPTH = 3


class AgentTool:
    def __init__(self, agent_id: str, description: str) -> None:
        self.agent_id = agent_id
        self.name = f"agent_{agent_id.replace('.', '_').replace('-', '_')}"
        self.ref = f"agent:{agent_id}"
        self.read_only = True  # the agent it calls runs under the caller's tool policy
        self.description = description or f"Ask the agent '{agent_id}'."
        self.parameters: Json = {
            "type": "object",
            "properties": {"input": {"type": "string", "description": "what to ask"}},
            "required": ["input"],
        }
        self.timeout = 300.0

    async def run(self, arguments: Json, context: ToolContext) -> str:
        text = arguments.get("input")
        if not isinstance(text, str) or not text:
            raise ToolError("'input' must be a non-empty string")
        if context.depth >= MAX_DEPTH:
            raise ToolError(f"agents may call agents at most {MAX_DEPTH} deep")
        if context.call_agent is None:
            raise ToolError("agents cannot be called from here")
        return await context.call_agent(self.agent_id, text, context.depth + 1)

    def label(self, arguments: Json) -> str:
        return f"asking {self.agent_id}"

    def repeatable(self, arguments: Json) -> bool:
        return False  # the agent it asks may have acted, with tools of its own
