"""Wire shapes of the agent admin API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class AgentVersionEntry(BaseModel):
    object: Literal["agent.version"] = "agent.version"
    agent: str
    version: int
    origin: str  # "file": read from the agents directory
    created_by: str | None  # the key that made it; None for a file
    created_at: int
    served: bool  # the version ``model: "<agent>"`` runs now
    content: str  # front matter and prompt, as the agent's file has them


class AgentVersionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AgentVersionEntry]  # newest first
