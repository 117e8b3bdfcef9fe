"""Taking up the background runs of an instance that stopped.

A running run writes at least once a second (``runs.background``); one not written to for
``LEASE_SECONDS`` was left by an instance that was killed, lost its machine or its network.
Every instance looks for such runs every ``CLAIM_SECONDS``; claiming one is a single
conditional update (PostgreSQL's claimers skip the rows another is claiming), so each run is
taken by one instance, under a new claim number that fences the old instance's writes off.

The instance that claims a run starts it again from what it stored (``ResponseRuns.restart``)
under the same key as it stands now, and goes on from its last committed step. A run that
cannot go on (its key revoked, its agent removed, a run stored before runs could be taken
up) ends as failed with its output so far; one that cannot go on *now* (the store away, a
limit full, its session busy) is left for its claim to lapse again, and is failed only after
``MOST_TAKEOVERS`` tries.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from prometheus_client import Counter

from headend.access.authenticator import Authenticator
from headend.access.principal import Principal
from headend.errors import APIError
from headend.runs.background import BackgroundRuns
from headend.runs.record import OwnRecord
from headend.runs.response_runs import ResponseRuns
from headend.runs.schedules import schedule_principal
from headend.runs.stored_responses import SCHEDULE_OWNER
from headend.store.base import ClaimedRun, ResponseRecord, Store
from headend.surfaces.responses_translate import ResponseEvents
from headend.types import Json

log = logging.getLogger(__name__)

LEASE_SECONDS = 10.0  # a run not written to for this long was left by an instance that stopped
CLAIM_SECONDS = 2.0  # how often each instance looks for such runs
CLAIMS_PER_PASS = 16
STOPPED = "The instance running this response stopped before it finished."
# Taken up this many times and still not going (the store away, a bug): it ends as failed.
MOST_TAKEOVERS = 3


class RunTakeover:
    def __init__(
        self,
        store: Store,
        background: BackgroundRuns,
        response_runs: ResponseRuns,
        auth: Authenticator,
        claimed: Counter | None = None,
    ) -> None:
        self.store = store
        self.background = background
        self.response_runs = response_runs
        self.auth = auth  # who started a run, again
        self.claimed = claimed  # runs taken up, by outcome, as a metric

    async def claim_forever(self) -> None:
        while True:
            try:
                await self.claim()
            except Exception:  # the store away: the next pass tries again
                log.warning("background responses: could not look for orphans", exc_info=True)
            await asyncio.sleep(CLAIM_SECONDS)

    async def claim(self) -> list[str]:
        """Claim and take up the runs left by instances that stopped; their ids."""
        now = time.time()
        found = await self.store.claim_stale_runs(now - LEASE_SECONDS, now, CLAIMS_PER_PASS)
        for claimed in found:
            if not self.background.adopt(claimed):
                await self._take_up(claimed)
        return [claimed.id for claimed in found]

    async def _take_up(self, claimed: ClaimedRun) -> None:
        so_far = await self.store.get_response(claimed.id, claimed.owner)
        if so_far is None:
            return
        why = None
        try:
            if claimed.resume is None:
                why = STOPPED
            else:
                await self._restart(claimed, claimed.resume, so_far)
        except Exception as error:
            if not for_good(error) and claimed.attempt < MOST_TAKEOVERS:
                # the store away, a limit full, its session busy: its claim lapses, and it is
                # tried again
                log.warning(
                    "background response %s: not taken up this time", claimed.id, exc_info=True
                )
                return
            if isinstance(error, APIError):
                why = f"{STOPPED} It could not go on: {error.message}"
            else:
                log.exception("background response %s: could not be taken up", claimed.id)
                why = f"{STOPPED} It could not go on."
        if why is not None:
            await self.background.fail_orphan(claimed, why)
        if self.claimed is not None:
            self.claimed.labels("failed" if why else "resumed").inc()

    async def _caller(self, resume: Json) -> Principal:
        caller = resume["caller"]
        if caller["key_id"] == SCHEDULE_OWNER:
            return schedule_principal(resume["request"]["model"])
        return await self.auth.caller_again(caller["key_id"], caller["visitor"])

    async def _restart(self, claimed: ClaimedRun, resume: Json, so_far: ResponseRecord) -> None:
        record = OwnRecord(request_id=f"resume_{uuid.uuid4().hex[:16]}")
        principal = await self._caller(resume)
        started = await self.response_runs.restart(resume, so_far, record, principal)
        try:
            following = 1 + await self.store.last_event(claimed.id)
            events = ResponseEvents.resumed(started.shape, so_far.body, following)
            await self.background.resume(started.run, events, claimed)
        except BaseException:
            await self.response_runs.runs.release(started.run)  # its session, its slot
            raise


def for_good(error: Exception) -> bool:
    """Whether a run that could not be taken up never will be: its key revoked, its agent
    gone, its request refused (not a limit full, a session busy, the store away)."""
    return isinstance(error, APIError) and error.status < 500 and error.status not in (409, 429)
