"""SQLite schema migrations: an ordered list of named functions, each recorded in a table
once applied (the pattern of simonw/llm)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from headend.store.knowledge_schema import knowledge_statements
from headend.store.sql import SQLITE


def m001_sessions(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            owner TEXT,
            agent TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            turns INTEGER NOT NULL DEFAULT 0
        )"""
    )
    db.execute("CREATE INDEX sessions_by_owner ON sessions (owner, updated_at DESC)")
    db.execute("CREATE INDEX sessions_by_update ON sessions (updated_at)")
    db.execute(
        """CREATE TABLE messages (
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            turn INTEGER NOT NULL,
            message TEXT NOT NULL,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID"""
    )


def m002_turn_lease(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE sessions ADD COLUMN busy_by TEXT")
    db.execute("ALTER TABLE sessions ADD COLUMN busy_until REAL")


def m003_keys(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            secret_hash TEXT NOT NULL UNIQUE,
            scopes TEXT NOT NULL,
            agents TEXT,
            created_at REAL NOT NULL,
            expires_at REAL,
            revoked_at REAL,
            last_used_at REAL
        )"""
    )


def m004_key_limits(db: sqlite3.Connection) -> None:
    for column in ("rpm", "tpm", "max_concurrency"):
        db.execute(f"ALTER TABLE keys ADD COLUMN {column} INTEGER")


def m005_usage(db: sqlite3.Connection) -> None:
    # key_id '' stands for open mode (no key), so the primary key needs no NULL.
    db.execute(
        """CREATE TABLE usage (
            day TEXT NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (day, key_id, model)
        ) WITHOUT ROWID"""
    )


def m006_responses(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            owner TEXT,
            session_id TEXT,
            turn INTEGER,
            created_at REAL NOT NULL,
            body TEXT NOT NULL,
            input_items TEXT NOT NULL
        )"""
    )


def m007_response_items(db: sqlite3.Connection) -> None:
    # Every item of a stored response (its input and its output) by id, for item_reference;
    # owner '' stands for open mode (no key), so the primary key needs no NULL.
    db.execute(
        """CREATE TABLE response_items (
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
            item TEXT NOT NULL,
            PRIMARY KEY (owner, id)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX response_items_by_response ON response_items (response_id)")


def m008_key_tools(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE keys ADD COLUMN tools TEXT")  # JSON; NULL: every tool


def m009_console_logins(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE console_logins (
            token_hash TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            expires_at REAL NOT NULL
        ) WITHOUT ROWID"""
    )


def m010_publishable_keys(db: sqlite3.Connection) -> None:
    for column in ("origins TEXT", "visitor_rpm INTEGER", "signing_secret TEXT"):
        db.execute(f"ALTER TABLE keys ADD COLUMN {column}")


def m011_idempotency(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE idempotency (
            owner TEXT NOT NULL,
            key TEXT NOT NULL,
            body_hash TEXT NOT NULL,
            status INTEGER,
            headers TEXT,
            body BLOB,
            expires_at REAL NOT NULL,
            PRIMARY KEY (owner, key)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX idempotency_expiry ON idempotency (expires_at)")


def m012_agent_versions(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE agent_versions (
            agent TEXT NOT NULL,
            version INTEGER NOT NULL,
            content TEXT NOT NULL,
            origin TEXT NOT NULL,
            created_by TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (agent, version)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE turns (
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            turn INTEGER NOT NULL,
            agent_version INTEGER,
            created_at REAL NOT NULL,
            PRIMARY KEY (session_id, turn)
        ) WITHOUT ROWID"""
    )


def m013_agents(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE agents (
            id TEXT PRIMARY KEY,
            published INTEGER,
            published_by TEXT,
            published_at REAL,
            draft TEXT,
            draft_by TEXT,
            draft_at REAL,
            created_by TEXT,
            created_at REAL NOT NULL,
            deleted_at REAL
        ) WITHOUT ROWID"""
    )


def m014_usage_cost(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE usage ADD COLUMN cost REAL NOT NULL DEFAULT 0")


def m015_key_budgets(db: sqlite3.Connection) -> None:
    for column in ("budget REAL", "budget_period TEXT"):
        db.execute(f"ALTER TABLE keys ADD COLUMN {column}")


def m016_audit(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX audit_by_target ON audit (target, id)")


def m017_background_runs(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE background_runs (
            id TEXT PRIMARY KEY REFERENCES responses (id) ON DELETE CASCADE,
            owner TEXT,
            status TEXT NOT NULL,
            cancel_requested INTEGER NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE response_events (
            response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            event TEXT NOT NULL,
            PRIMARY KEY (response_id, seq)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX background_runs_by_owner ON background_runs (owner, status)")


def m018_webhook_deliveries(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE webhook_deliveries (
            id TEXT PRIMARY KEY,
            event_id TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            event_type TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at REAL NOT NULL,
            created_at REAL NOT NULL,
            last_status INTEGER,
            last_error TEXT,
            updated_at REAL NOT NULL,
            lease_holder TEXT,
            lease_until REAL
        )"""
    )
    db.execute(
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at)"
    )


def m019_schedule_fires(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE schedule_fires (
            agent TEXT NOT NULL,
            entry TEXT NOT NULL,
            fire_at REAL NOT NULL,
            fired_at REAL NOT NULL,
            response_id TEXT,
            error TEXT,
            PRIMARY KEY (agent, entry, fire_at)
        )"""
    )


def m020_run_steps(db: sqlite3.Connection) -> None:
    """Runs taken up after a crash: each one's claim number and how to start it again, its
    committed steps, and the unfinished ones found by age."""
    db.execute("ALTER TABLE background_runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE background_runs ADD COLUMN resume TEXT")
    db.execute(
        """CREATE TABLE run_steps (
            response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (response_id, step)
        ) WITHOUT ROWID"""
    )
    db.execute(
        "CREATE INDEX background_runs_unfinished ON background_runs (updated_at) "
        "WHERE status NOT IN ('cancelled', 'completed', 'failed', 'incomplete')"
    )


def m021_key_approval(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE keys ADD COLUMN require_approval INTEGER NOT NULL DEFAULT 0")


def m022_approvals(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE approvals (
            id TEXT PRIMARY KEY,
            owner TEXT,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            agent TEXT NOT NULL,
            call_id TEXT NOT NULL,
            name TEXT NOT NULL,
            ref TEXT NOT NULL,
            server_label TEXT NOT NULL,
            arguments TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            decided_at REAL,
            decided_by TEXT,
            reason TEXT,
            applied_at REAL
        )"""
    )
    db.execute("CREATE INDEX approvals_by_session ON approvals (session_id, status)")


def m023_knowledge(db: sqlite3.Connection) -> None:
    for statement in knowledge_statements(SQLITE):
        db.execute(statement)


def m024_key_guardrails(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE keys ADD COLUMN guardrails TEXT")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_sessions,
    m002_turn_lease,
    m003_keys,
    m004_key_limits,
    m005_usage,
    m006_responses,
    m007_response_items,
    m008_key_tools,
    m009_console_logins,
    m010_publishable_keys,
    m011_idempotency,
    m012_agent_versions,
    m013_agents,
    m014_usage_cost,
    m015_key_budgets,
    m016_audit,
    m017_background_runs,
    m018_webhook_deliveries,
    m019_schedule_fires,
    m020_run_steps,
    m021_key_approval,
    m022_approvals,
    m023_knowledge,
    m024_key_guardrails,
]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded; their names, in order.

    All in one write transaction taken at once (``BEGIN IMMEDIATE``): processes starting
    together on a new file (workers) migrate one at a time, the others waiting on the
    connection's busy timeout and then finding the work done.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        )
        done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
        applied = []
        for migration in MIGRATIONS:
            if migration.__name__ in done:
                continue
            migration(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (migration.__name__, time.time()),
            )
            applied.append(migration.__name__)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return applied
