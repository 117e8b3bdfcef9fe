"""Wire shapes of headend's native sessions API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateSession(_Request):
    agent: str = Field(min_length=1)
    metadata: dict[str, str] = Field(default_factory=dict)


class PostMessage(_Request):
    content: str | list[dict[str, Any]]
    stream: bool = False
    stream_options: dict[str, Any] | None = None


class TurnVersion(BaseModel):
    """Which version of the session's agent answered a turn (None: a model route, or a
    turn stored before versions were recorded)."""

    turn: int
    agent_version: int | None


class Session(BaseModel):
    id: str
    object: Literal["session"] = "session"
    agent: str
    metadata: dict[str, Any]
    created_at: int
    updated_at: int
    turns: int
    messages: list[dict[str, Any]] | None = None
    turn_versions: list[TurnVersion] | None = None  # with ``messages``: one per turn


class SessionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Session]
    has_more: bool


class SessionDeleted(BaseModel):
    id: str
    object: Literal["session.deleted"] = "session.deleted"
    deleted: bool = True
