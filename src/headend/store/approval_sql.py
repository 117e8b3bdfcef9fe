"""The SQL of tool calls waiting for approval, shared by both stores (``?`` placeholders;
PostgreSQL's store numbers them), and their rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from headend.store.base import ApprovalRecord

APPROVAL_COLUMNS = (
    "id, owner, session_id, agent, call_id, name, ref, server_label, arguments, status, "
    "created_at, expires_at, decided_at, decided_by, reason, applied_at"
)
ADD_APPROVAL_SQL = (
    f"INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
OPEN_APPROVALS_SQL = (
    f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE session_id = ? AND applied_at IS NULL "
    "ORDER BY created_at, id"
)
SESSION_APPROVALS_SQL = (
    f"SELECT * FROM (SELECT {APPROVAL_COLUMNS} FROM approvals WHERE session_id = ? "
    "ORDER BY created_at DESC, id DESC LIMIT ?) AS latest ORDER BY created_at, id"
)
APPLY_APPROVAL_SQL = "UPDATE approvals SET applied_at = ? WHERE id = ? AND applied_at IS NULL"
APPROVAL_SQL = (
    f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ? "
    "AND (CAST(? AS BOOLEAN) OR owner IS NOT DISTINCT FROM ?)"
)
# only a pending one: a second answer changes nothing (and is refused)
DECIDE_APPROVAL_SQL = (
    "UPDATE approvals SET status = ?, decided_by = ?, reason = ?, decided_at = ? "
    "WHERE id = ? AND status = 'pending'"
)


def approval_values(record: ApprovalRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.owner,
        record.session_id,
        record.agent,
        record.call_id,
        record.name,
        record.ref,
        record.server_label,
        record.arguments,
        record.status,
        record.created_at,
        record.expires_at,
        record.decided_at,
        record.decided_by,
        record.reason,
        record.applied_at,
    )


def approval_record(row: Sequence[Any]) -> ApprovalRecord:
    return ApprovalRecord(*row)
