"""What PostgreSQL keeps of runs that outlive their request: background runs and their
events, the webhook outbox, schedule fires, tool calls waiting for approval. Mixed into
``PostgresStore``."""

from __future__ import annotations

from typing import Any

import orjson

from headend.store.approval_sql import (
    ADD_APPROVAL_SQL,
    APPLY_APPROVAL_SQL,
    APPROVAL_SQL,
    DECIDE_APPROVAL_SQL,
    OPEN_APPROVALS_SQL,
    SESSION_APPROVALS_SQL,
    approval_record,
    approval_values,
)
from headend.store.background_sql import (
    ADD_EVENT_SQL,
    ADD_STEP_SQL,
    ANY_BACKGROUND_SQL,
    BACKGROUND_SQL,
    CLAIM_STALE_SQL,
    CREATE_BACKGROUND_SQL,
    EVENTS_SQL,
    LAST_EVENT_SQL,
    LIST_BACKGROUND_SQL,
    NOT_WRITTEN_SQL,
    PROGRESS_BODY_SQL,
    PROGRESS_SQL,
    REQUEST_CANCEL_SQL,
    STEPS_SQL,
    UNFINISHED_SQL,
    background_run,
    check_not_written,
    claimed_run,
    event_rows,
    run_step,
    step_rows,
    written_at,
)
from headend.store.base import (
    ApprovalRecord,
    BackgroundProgress,
    BackgroundRun,
    ClaimedRun,
    DeliveryOutcome,
    ResponseRecord,
    RunStep,
    ScheduleFire,
    WebhookDelivery,
)
from headend.store.postgres_params import dollars
from headend.store.schedule_sql import (
    CLAIM_FIRE_SQL,
    FIRE_STARTED_SQL,
    RECENT_FIRES_SQL,
    schedule_fire,
)
from headend.store.webhook_sql import (
    ADD_DELIVERY_SQL,
    CLAIM_DELIVERIES_SQL,
    DELIVERIES_SQL,
    RECORD_DELIVERY_SQL,
    delivery_values,
    outcome_values,
    webhook_delivery,
)
from headend.types import Json


class PostgresBackground:
    _pool: Any  # the store's connection pool

    @staticmethod
    async def _save_response(db: Any, record: ResponseRecord) -> None:
        raise NotImplementedError  # PostgresStore's

    async def create_background_run(
        self, record: ResponseRecord, at: float, resume: Json | None = None
    ) -> None:
        stored = orjson.dumps(resume).decode() if resume is not None else None
        async with self._pool.acquire() as db, db.transaction():
            await self._save_response(db, record)
            await db.execute(
                dollars(CREATE_BACKGROUND_SQL), record.id, record.owner, False, at, at, stored
            )

    async def claim_stale_runs(
        self, stale_before: float, now: float, limit: int
    ) -> list[ClaimedRun]:
        sql = dollars(CLAIM_STALE_SQL.format(lock=" FOR UPDATE SKIP LOCKED"))
        rows = await self._pool.fetch(sql, now, stale_before, limit)
        return [claimed_run(tuple(row)) for row in rows]

    async def add_approvals(self, records: list[ApprovalRecord]) -> None:
        await self._pool.executemany(
            dollars(ADD_APPROVAL_SQL), [approval_values(r) for r in records]
        )

    async def open_approvals(self, session_id: str) -> list[ApprovalRecord]:
        rows = await self._pool.fetch(dollars(OPEN_APPROVALS_SQL), session_id)
        return [approval_record(tuple(row)) for row in rows]

    async def session_approvals(self, session_id: str, limit: int) -> list[ApprovalRecord]:
        rows = await self._pool.fetch(dollars(SESSION_APPROVALS_SQL), session_id, limit)
        return [approval_record(tuple(row)) for row in rows]

    async def apply_approvals(self, approval_ids: list[str], at: float) -> None:
        await self._pool.executemany(
            dollars(APPLY_APPROVAL_SQL), [(at, id_) for id_ in approval_ids]
        )

    async def approval(
        self, approval_id: str, owner: str | None, any_owner: bool = False
    ) -> ApprovalRecord | None:
        row = await self._pool.fetchrow(dollars(APPROVAL_SQL), approval_id, any_owner, owner)
        return approval_record(tuple(row)) if row else None

    async def decide_approval(
        self, approval_id: str, status: str, by: str | None, reason: str | None, at: float
    ) -> bool:
        done = await self._pool.execute(
            dollars(DECIDE_APPROVAL_SQL), status, by, reason, at, approval_id
        )
        return bool(done == "UPDATE 1")

    async def list_background_runs(self, status: str | None, limit: int) -> list[BackgroundRun]:
        rows = await self._pool.fetch(dollars(LIST_BACKGROUND_SQL), status, status, limit)
        return [background_run(tuple(row)) for row in rows]

    async def any_background_run(self, response_id: str) -> BackgroundRun | None:
        row = await self._pool.fetchrow(dollars(ANY_BACKGROUND_SQL), response_id)
        return background_run(tuple(row)) if row else None

    async def run_steps(self, response_id: str) -> list[RunStep]:
        rows = await self._pool.fetch(dollars(STEPS_SQL), response_id)
        return [run_step(tuple(row)) for row in rows]

    async def last_event(self, response_id: str) -> int:
        found = await self._pool.fetchval(dollars(LAST_EVENT_SQL), response_id)
        return -1 if found is None else int(found)

    async def unfinished_background_runs(self, owner: str | None) -> int:
        return int(await self._pool.fetchval(dollars(UNFINISHED_SQL), owner))

    async def background_run(self, response_id: str, owner: str | None) -> BackgroundRun | None:
        row = await self._pool.fetchrow(dollars(BACKGROUND_SQL), response_id, owner)
        return background_run(tuple(row)) if row else None

    async def record_background_progress(self, progress: BackgroundProgress) -> bool:
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                dollars(PROGRESS_SQL),
                progress.status,
                written_at(progress),
                progress.response_id,
                progress.attempt,
            )
            if row is None:  # finished already (its object stays as it ended), or taken
                why = await db.fetchrow(dollars(NOT_WRITTEN_SQL), progress.response_id)
                asked = check_not_written(progress, why)
            else:
                asked = bool(row[0])
                body = orjson.dumps(progress.body).decode()
                await db.execute(dollars(PROGRESS_BODY_SQL), body, progress.response_id)
            await db.executemany(dollars(ADD_EVENT_SQL), event_rows(progress))
            await db.executemany(dollars(ADD_STEP_SQL), step_rows(progress))
            await db.executemany(
                dollars(ADD_DELIVERY_SQL), [delivery_values(d) for d in progress.outbox]
            )
            return asked

    async def claim_fire(self, agent: str, entry: str, fire_at: float, at: float) -> bool:
        status = await self._pool.execute(dollars(CLAIM_FIRE_SQL), agent, entry, fire_at, at)
        return bool(status == "INSERT 0 1")

    async def fire_started(
        self, agent: str, entry: str, fire_at: float, response_id: str | None, error: str | None
    ) -> None:
        await self._pool.execute(
            dollars(FIRE_STARTED_SQL), response_id, error, agent, entry, fire_at
        )

    async def recent_fires(self, agent: str, limit: int) -> list[ScheduleFire]:
        rows = await self._pool.fetch(dollars(RECENT_FIRES_SQL), agent, limit)
        return [schedule_fire(tuple(row)) for row in rows]

    async def claim_deliveries(
        self, now: float, holder: str, until: float, limit: int
    ) -> list[WebhookDelivery]:
        sql = dollars(CLAIM_DELIVERIES_SQL.format(lock=" FOR UPDATE SKIP LOCKED"))
        rows = await self._pool.fetch(sql, holder, until, now, now, limit)
        return [webhook_delivery(tuple(row)) for row in rows]

    async def record_delivery(
        self, delivery_id: str, holder: str, outcome: DeliveryOutcome
    ) -> None:
        await self._pool.execute(
            dollars(RECORD_DELIVERY_SQL), *outcome_values(delivery_id, holder, outcome)
        )

    async def deliveries(self, status: str | None, limit: int) -> list[WebhookDelivery]:
        rows = await self._pool.fetch(dollars(DELIVERIES_SQL), status, status, limit)
        return [webhook_delivery(tuple(row)) for row in rows]

    async def response_events(self, response_id: str, after: int, limit: int) -> list[Json]:
        rows = await self._pool.fetch(dollars(EVENTS_SQL), response_id, after, limit)
        return [orjson.loads(row[0]) for row in rows]

    async def request_cancel(self, response_id: str, owner: str | None) -> BackgroundRun | None:
        async with self._pool.acquire() as db, db.transaction():
            await db.execute(dollars(REQUEST_CANCEL_SQL), True, response_id, owner)
            row = await db.fetchrow(dollars(BACKGROUND_SQL), response_id, owner)
        return background_run(tuple(row)) if row else None
