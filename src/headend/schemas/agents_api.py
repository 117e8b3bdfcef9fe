"""Wire shapes of the agent admin API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AgentEntry(BaseModel):
    object: Literal["agent"] = "agent"
    id: str
    origin: str  # "file": its file in the agents directory; "api": created through the API
    version: int | None  # the version served; None: never published
    description: str | None  # the served version's
    content: str | None  # the served version's front matter and prompt, as a file has them
    draft: str | None = None  # the next version being written (API agents only)
    draft_by: str | None = None  # the key that saved it
    draft_at: int | None = None
    published_by: str | None = None  # the key that chose the version served
    published_at: int | None = None
    created_by: str | None = None
    created_at: int | None = None


class AgentList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AgentEntry]


class AgentVersionEntry(BaseModel):
    object: Literal["agent.version"] = "agent.version"
    agent: str
    version: int
    origin: str  # "file": read from the agents directory; "api": published through the API
    created_by: str | None  # the key that published it first; None for a file
    created_at: int
    served: bool  # the version ``model: "<agent>"`` runs now
    content: str  # front matter and prompt, as the agent's file has them


class AgentVersionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AgentVersionEntry]  # newest first


class AgentDiff(BaseModel):
    object: Literal["agent.diff"] = "agent.diff"
    agent: str
    before: str  # "2", or "draft"
    after: str
    diff: str  # unified diff; empty when they are the same


class PublishAgent(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: int | None = Field(None, ge=1)  # an earlier version to serve again; None: the draft
