"""Durable sessions. Only this package writes SQL."""

from __future__ import annotations

from pathlib import Path

from headend.errors import ConfigError
from headend.store.base import Store

SQLITE = "sqlite:///"
POSTGRES = ("postgresql://", "postgres://")


def open_store(url: str, base_dir: Path) -> Store:
    """The store a ``store:`` URL names: ``sqlite:///path`` (relative to the config file's
    directory), ``sqlite:///:memory:``, or ``postgresql://user:password@host/database``."""
    from headend.store.sqlite import SqliteStore

    if url.startswith(POSTGRES):
        from headend.store.postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith(SQLITE):
        path = url[len(SQLITE) :]
        if path == ":memory:":
            return SqliteStore(Path(":memory:"))
        resolved = Path(path).expanduser()
        return SqliteStore(resolved if resolved.is_absolute() else base_dir / resolved)
    raise ConfigError(
        ["store: unsupported store URL (use sqlite:///path or postgresql://host/database)"]
    )
