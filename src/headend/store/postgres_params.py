"""Shared SQL written with ``?`` placeholders, as PostgreSQL takes it."""

from __future__ import annotations


def dollars(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1``, ``$2``…"""
    parts = sql.split("?")
    return "".join(part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, 1))
