"""Wire shapes of ``GET /admin/audit``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class AuditEntryShape(BaseModel):
    object: Literal["audit.entry"] = "audit.entry"
    id: int
    at: float  # a Unix time, to the millisecond
    actor: str  # a key id ("admin": the bootstrap key), "cli:<user>", "file", "anonymous"
    action: str
    target: str  # the key's or the agent's id
    detail: dict[str, Any]


class AuditList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AuditEntryShape]  # newest first
    has_more: bool  # older entries remain: ask again with before=<the last id>
