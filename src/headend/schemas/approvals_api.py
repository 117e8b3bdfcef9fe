"""Wire shapes of a session's approvals: ``GET /v1/sessions/{id}/approvals`` and
``POST /v1/sessions/{id}/approvals/{approval_id}``, and the widget's
``POST /widget/api/approval``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ApprovalAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    approve: bool
    reason: str | None = Field(None, max_length=2_000)  # told to the model when denied


class WidgetApprovalAnswer(ApprovalAnswer):
    """A widget visitor's answer: which session and which request, in the body (the widget's
    calls go to fixed paths, the ones its sites' CORS is answered for)."""

    session_id: str = Field(min_length=1, max_length=128)
    approval_id: str = Field(min_length=1, max_length=128)


class ApprovalShape(BaseModel):
    object: Literal["session.approval"] = "session.approval"
    id: str  # mcpr_…
    session_id: str
    agent: str
    server_label: str  # the MCP server, or headend
    name: str  # the tool as the model called it
    tool: str  # as agent files name it
    arguments: str  # exactly what runs if approved
    status: str  # pending, approved, denied (or left unanswered) or expired
    created_at: float
    expires_at: float
    decided_at: float | None
    decided_by: str | None
    reason: str | None
    applied: bool  # a turn has gone on from it (the call ran, or the model was told)


class ApprovalList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ApprovalShape]  # oldest first
