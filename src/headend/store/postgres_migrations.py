"""PostgreSQL's migrations: the same ordered, named steps as SQLite's (``migrations.py``), in
PostgreSQL's own SQL; ``PostgresStore.start`` applies those not yet recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from headend.store.knowledge_schema import knowledge_statements
from headend.store.sql import POSTGRES

Migration = Callable[[Any], Awaitable[None]]


async def m001_sessions(db: Any) -> None:
    await db.execute(
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            owner TEXT,
            agent TEXT NOT NULL,
            metadata JSONB NOT NULL DEFAULT '{}',
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            turns INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX sessions_by_owner ON sessions (owner, updated_at DESC);
        CREATE INDEX sessions_by_update ON sessions (updated_at);
        CREATE TABLE messages (
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            turn INTEGER NOT NULL,
            message JSONB NOT NULL,
            PRIMARY KEY (session_id, seq)
        );"""
    )


async def m002_turn_lease(db: Any) -> None:
    await db.execute(
        "ALTER TABLE sessions ADD COLUMN busy_by TEXT, ADD COLUMN busy_until DOUBLE PRECISION"
    )


async def m003_keys(db: Any) -> None:
    await db.execute(
        """CREATE TABLE keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            secret_hash TEXT NOT NULL UNIQUE,
            scopes JSONB NOT NULL,
            agents JSONB,
            created_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION,
            revoked_at DOUBLE PRECISION,
            last_used_at DOUBLE PRECISION
        )"""
    )


async def m004_key_limits(db: Any) -> None:
    await db.execute(
        "ALTER TABLE keys ADD COLUMN rpm INTEGER, ADD COLUMN tpm INTEGER, "
        "ADD COLUMN max_concurrency INTEGER"
    )


async def m005_usage(db: Any) -> None:
    await db.execute(
        """CREATE TABLE usage (
            day TEXT NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
            requests BIGINT NOT NULL DEFAULT 0,
            prompt_tokens BIGINT NOT NULL DEFAULT 0,
            completion_tokens BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (day, key_id, model)
        )"""
    )


async def m006_responses(db: Any) -> None:
    await db.execute(
        """CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            owner TEXT,
            session_id TEXT,
            turn INTEGER,
            created_at DOUBLE PRECISION NOT NULL,
            body JSONB NOT NULL,
            input_items JSONB NOT NULL
        )"""
    )


async def m007_response_items(db: Any) -> None:
    await db.execute(
        """CREATE TABLE response_items (
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
            item JSONB NOT NULL,
            PRIMARY KEY (owner, id)
        )"""
    )
    await db.execute("CREATE INDEX response_items_by_response ON response_items (response_id)")


async def m008_key_tools(db: Any) -> None:
    await db.execute("ALTER TABLE keys ADD COLUMN tools TEXT")  # JSON; NULL: every tool


async def m009_console_logins(db: Any) -> None:
    await db.execute(
        """CREATE TABLE console_logins (
            token_hash TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )"""
    )


async def m010_publishable_keys(db: Any) -> None:
    for column in ("origins TEXT", "visitor_rpm INTEGER", "signing_secret TEXT"):
        await db.execute(f"ALTER TABLE keys ADD COLUMN {column}")


async def m011_idempotency(db: Any) -> None:
    await db.execute(
        """CREATE TABLE idempotency (
            owner TEXT NOT NULL,
            key TEXT NOT NULL,
            body_hash TEXT NOT NULL,
            status INTEGER,
            headers TEXT,
            body BYTEA,
            expires_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (owner, key)
        )"""
    )
    await db.execute("CREATE INDEX idempotency_expiry ON idempotency (expires_at)")


async def m012_agent_versions(db: Any) -> None:
    await db.execute(
        """CREATE TABLE agent_versions (
            agent TEXT NOT NULL,
            version INTEGER NOT NULL,
            content TEXT NOT NULL,
            origin TEXT NOT NULL,
            created_by TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (agent, version)
        )"""
    )
    await db.execute(
        """CREATE TABLE turns (
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            turn INTEGER NOT NULL,
            agent_version INTEGER,
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (session_id, turn)
        )"""
    )


async def m013_agents(db: Any) -> None:
    await db.execute(
        """CREATE TABLE agents (
            id TEXT PRIMARY KEY,
            published INTEGER,
            published_by TEXT,
            published_at DOUBLE PRECISION,
            draft TEXT,
            draft_by TEXT,
            draft_at DOUBLE PRECISION,
            created_by TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            deleted_at DOUBLE PRECISION
        )"""
    )


async def m014_usage_cost(db: Any) -> None:
    await db.execute("ALTER TABLE usage ADD COLUMN cost DOUBLE PRECISION NOT NULL DEFAULT 0")


async def m015_key_budgets(db: Any) -> None:
    for column in ("budget DOUBLE PRECISION", "budget_period TEXT"):
        await db.execute(f"ALTER TABLE keys ADD COLUMN {column}")


async def m016_audit(db: Any) -> None:
    await db.execute(
        """CREATE TABLE audit (
            id BIGSERIAL PRIMARY KEY,
            at DOUBLE PRECISION NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL
        )"""
    )
    await db.execute("CREATE INDEX audit_by_target ON audit (target, id)")


async def m017_background_runs(db: Any) -> None:
    await db.execute(
        """CREATE TABLE background_runs (
            id TEXT PRIMARY KEY REFERENCES responses (id) ON DELETE CASCADE,
            owner TEXT,
            status TEXT NOT NULL,
            cancel_requested BOOLEAN NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )"""
    )
    await db.execute(
        """CREATE TABLE response_events (
            response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            event JSONB NOT NULL,
            PRIMARY KEY (response_id, seq)
        )"""
    )
    await db.execute("CREATE INDEX background_runs_by_owner ON background_runs (owner, status)")


async def m018_webhook_deliveries(db: Any) -> None:
    await db.execute(
        """CREATE TABLE webhook_deliveries (
            id TEXT PRIMARY KEY,
            event_id TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            event_type TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at DOUBLE PRECISION NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            last_status INTEGER,
            last_error TEXT,
            updated_at DOUBLE PRECISION NOT NULL,
            lease_holder TEXT,
            lease_until DOUBLE PRECISION
        )"""
    )
    await db.execute(
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at)"
    )


async def m019_schedule_fires(db: Any) -> None:
    await db.execute(
        """CREATE TABLE schedule_fires (
            agent TEXT NOT NULL,
            entry TEXT NOT NULL,
            fire_at DOUBLE PRECISION NOT NULL,
            fired_at DOUBLE PRECISION NOT NULL,
            response_id TEXT,
            error TEXT,
            PRIMARY KEY (agent, entry, fire_at)
        )"""
    )


async def m020_run_steps(db: Any) -> None:
    """Runs taken up after a crash: each one's claim number and how to start it again, its
    committed steps, and the unfinished ones found by age."""
    await db.execute("ALTER TABLE background_runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0")
    await db.execute("ALTER TABLE background_runs ADD COLUMN resume JSONB")
    await db.execute(
        """CREATE TABLE run_steps (
            response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            kind TEXT NOT NULL,
            data JSONB NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (response_id, step)
        )"""
    )
    await db.execute(
        "CREATE INDEX background_runs_unfinished ON background_runs (updated_at) "
        "WHERE status NOT IN ('cancelled', 'completed', 'failed', 'incomplete')"
    )


async def m021_key_approval(db: Any) -> None:
    await db.execute("ALTER TABLE keys ADD COLUMN require_approval BOOLEAN NOT NULL DEFAULT FALSE")


async def m022_approvals(db: Any) -> None:
    await db.execute(
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
            created_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            decided_at DOUBLE PRECISION,
            decided_by TEXT,
            reason TEXT,
            applied_at DOUBLE PRECISION
        )"""
    )
    await db.execute("CREATE INDEX approvals_by_session ON approvals (session_id, status)")


async def m023_knowledge(db: Any) -> None:
    for statement in knowledge_statements(POSTGRES):
        await db.execute(statement)


async def m024_key_guardrails(db: Any) -> None:
    await db.execute("ALTER TABLE keys ADD COLUMN guardrails TEXT")


MIGRATIONS: list[Migration] = [
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
