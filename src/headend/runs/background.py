"""Background responses: a Responses run that outlives its request.

``background: true`` answers at once with the response queued; the run goes on in a task of
this instance. Its events (numbered by ``sequence_number``, as a stream's are) are kept in
memory for followers here and written to the store by the run's keeper every
``FLUSH_SECONDS``, with the response object as it stands, so that ``GET /v1/responses/{id}``
shows the output so far and a stream can be followed, or resumed after any event, from any
instance sharing the store. The keeper also notices a cancel asked on another instance.

Those writes are the run's claim: a run not written to for ``LEASE_SECONDS`` was left by an
instance that stopped, and another one takes it up (``runs.takeover``) under a new claim
number, which fences the old instance's writes off should it come back. An agent's run
goes on from its last committed step (``runs.run_journal``); a plain model call starts
again.

A cancelled run stops where it is: its session turn is not written and its response keeps
the output so far, with status ``cancelled``; a run that finished stays finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Gauge

from headend.config import WebhookSettings
from headend.errors import APIError, InvalidRequest, LeaseLost, RateLimited
from headend.runs.events import stream_events
from headend.runs.run import Run
from headend.runs.run_journal import RunJournal, cut_short, last_committed_event
from headend.runs.service import RunService
from headend.runs.stored_responses import ResponseNotFound, stored_response
from headend.store.base import (
    BackgroundProgress,
    ClaimedRun,
    ResponseRecord,
    RunStep,
    Store,
    WebhookDelivery,
)
from headend.surfaces.responses_translate import ResponseEvents, stored_items
from headend.types import Json
from headend.webhooks.outbox import ending_deliveries

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25  # how often a run's new events and object are written
CANCEL_CHECK_SECONDS = 1.0  # how often a run with nothing to write looks for a cancel
POLL_SECONDS = 0.2  # how often a follower of a run elsewhere reads the store
CANCEL_WAIT_SECONDS = 10.0  # how long a cancel waits for a run elsewhere to stop
EVENTS_PER_READ = 500
MOST_EVENTS = 1_000_000  # of one run, read at once (what one model call may have written)
STEP_RETRY_SECONDS = 0.5  # how soon a step the store refused is written again
ENDING_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete"})


@dataclass(slots=True)
class LiveRun:
    """A background run of this instance: its events so far, for the followers here, and
    those not yet written."""

    id: str
    attempt: int = 0  # its claim: 0 as accepted, one more each time it is taken up
    status: str = "queued"  # until it has its slots: then in_progress
    events: list[Json] = field(default_factory=list)
    unwritten: list[Json] = field(default_factory=list)
    done: bool = False
    ending: bool = False  # it has answered, or is writing how it ended: too late to cancel
    cancel_reason: str | None = None  # "owner", "shutdown" or "lost", once cancelled
    task: asyncio.Task[None] | None = None
    lost: bool = False  # its claim passed to another instance, which goes on with it
    _more: asyncio.Event = field(default_factory=asyncio.Event)
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)  # one write at a time

    def add(self, events: list[Json]) -> None:
        self.events += events
        self.unwritten += events
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        self._more.set()
        self._more = asyncio.Event()

    async def follow(self, after: int) -> AsyncGenerator[list[Json], None]:
        """The events after sequence number ``after``, then each as it comes, to the end."""
        sent = after + 1  # events[n] has sequence number n
        while True:
            more = self._more
            if sent < len(self.events):
                batch, sent = self.events[sent:], len(self.events)
                yield batch
                continue
            if self.done:
                return
            await more.wait()

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None and self.task is not None and not self.ending:
            self.cancel_reason = reason
            self.task.cancel()


@dataclass(slots=True)
class Job:
    """What a background run is driven with: the run, its events as they stand, its input
    as stored, its owner, and the events it opens with."""

    run: Run
    events: ResponseEvents
    inputs: list[Json]
    owner: str | None
    opening: list[Json]


class BackgroundRuns:
    def __init__(
        self,
        store: Store,
        runs: RunService,
        webhooks: Sequence[WebhookSettings] = (),
        outbox_written: Callable[[], None] = lambda: None,
        most: int = 100,
        running: Gauge | None = None,  # by status
    ) -> None:
        self.store = store
        self.runs = runs
        self.most = most  # an owner's runs queued or running at once
        self.running = running  # this instance's runs, as a metric
        self.webhooks = webhooks  # told when a run ends, from an outbox written with its end
        self.outbox_written = outbox_written
        self._live: dict[str, LiveRun] = {}

    async def make_room(self, owner: str | None) -> None:
        """Refuse a new background run to an owner with ``most`` unfinished already."""
        if await self.store.unfinished_background_runs(owner) >= self.most:
            raise RateLimited(
                f"This key has {self.most} background responses queued or running: wait for "
                "one to end, or cancel one (POST /v1/responses/{id}/cancel).",
                kind="concurrency",
                headers={},
            )

    async def accept(
        self,
        run: Run,
        events: ResponseEvents,
        items: list[Json],
        owner: str | None,
        resume: Json | None = None,
    ) -> Json:
        """Store the response as queued, with how to start it again (``resume``), and start
        its run; the queued response."""
        response = events.shape.envelope("queued", [])
        inputs = stored_items(items)
        record = ResponseRecord(response["id"], owner, None, None, time.time(), response, inputs)
        await self.store.create_background_run(record, record.created_at, resume)
        self._start(LiveRun(record.id), Job(run, events, inputs, owner, [events.queued()]), [])
        return response

    async def resume(self, run: Run, events: ResponseEvents, claimed: ClaimedRun) -> None:
        """Go on with a run another instance left (``events``: as it last wrote them), from
        its last committed step."""
        record = await self.store.get_response(claimed.id, claimed.owner)
        steps = await self.store.run_steps(claimed.id)
        since = await self.store.response_events(
            claimed.id, last_committed_event(steps), MOST_EVENTS
        )
        opening = events.interrupted() if cut_short(since) else []
        queued = record is not None and record.body.get("status") == "queued"
        live = LiveRun(claimed.id, claimed.attempt, "queued" if queued else "in_progress")
        inputs = record.input_items if record is not None else []
        self._start(live, Job(run, events, inputs, claimed.owner, opening), steps)
        log.warning(
            "background response %s: taken up after its instance stopped (claim %d, %d steps "
            "committed)",
            claimed.id,
            claimed.attempt,
            len(steps),
        )

    def adopt(self, claimed: ClaimedRun) -> bool:
        """A run of this instance's own that was claimed as stale (the store was away for
        the lease): it goes on here, under the new claim. False: not one of ours."""
        live = self._live.get(claimed.id)
        if live is None:
            return False
        live.attempt = claimed.attempt
        return True

    def _start(self, live: LiveRun, job: Job, steps: list[RunStep]) -> None:
        """``steps``: what its agent committed before (it goes on from there)."""
        events = job.events
        if job.run.loop is not None:

            async def commit(step: RunStep) -> None:
                await self._commit_step(live, events, step)

            job.run.loop.journal = RunJournal(
                steps, live.attempt, commit, lambda: events.sequence - 1
            )
        self._live[live.id] = live
        live.task = asyncio.create_task(self._drive(live, job))
        self._count(live.status, 1)

    async def follow(
        self, response_id: str, owner: str | None, after: int
    ) -> AsyncGenerator[list[Json], None]:
        """A background response's events after ``after``, then as they come, to its end
        (refused here, before a stream starts, when there is no such response)."""
        if await self.store.background_run(response_id, owner) is None:
            await self._refuse(response_id, owner, "Only background responses can be streamed.")
        return self._follow(response_id, owner, after)

    async def _follow(
        self, response_id: str, owner: str | None, after: int
    ) -> AsyncGenerator[list[Json], None]:
        live = self._live.get(response_id)
        if live is not None:
            async for batch in live.follow(after):
                after = batch[-1]["sequence_number"]
                yield batch
            if not live.lost:
                return
        while True:  # a run elsewhere, or finished: what the store has, until it ends
            batch = await self.store.response_events(response_id, after, EVENTS_PER_READ)
            if batch:
                after = batch[-1]["sequence_number"]
                yield batch
                if batch[-1]["type"] in ENDING_EVENTS:
                    return
                continue
            state = await self.store.background_run(response_id, owner)
            if state is None or state.finished:
                # its last events were written with its status: read once more
                rest = await self.store.response_events(response_id, after, EVENTS_PER_READ)
                if rest:
                    yield rest
                return
            await asyncio.sleep(POLL_SECONDS)

    async def cancel(self, response_id: str, owner: str | None) -> Json:
        """Stop the owner's background run (idempotent: a finished one stays as it ended);
        the response as it is then."""
        found = await self.store.request_cancel(response_id, owner)
        if found is None:
            await self._refuse(response_id, owner, "Only background responses can be cancelled.")
        elif not found.finished:
            live = self._live.get(response_id)
            if live is not None and live.task is not None:
                live.cancel("owner")
                await asyncio.wait([live.task])
            else:
                await self._until_finished(response_id, owner)
        record = await self.store.get_response(response_id, owner)
        if record is None:
            raise ResponseNotFound(response_id)
        return record.body

    async def close(self, grace: float = 0.0) -> None:
        """On the way out: the runs still going get ``grace`` seconds to end; those that do
        not are stopped and handed off: their claim given up at once, so that another
        instance (or this one, started again) takes them up from their last step."""
        tasks = [live.task for live in self._live.values() if live.task is not None]
        if tasks and grace > 0:
            log.info("waiting up to %g s for %d background response(s)", grace, len(tasks))
            await asyncio.wait(tasks, timeout=grace)
        for live in list(self._live.values()):
            live.cancel("shutdown")
        if tasks:
            await asyncio.wait(tasks)

    def _count(self, status: str, change: int) -> None:
        if self.running is not None:
            self.running.labels(status).inc(change)

    async def fail_orphan(self, claimed: ClaimedRun, why: str) -> None:
        """End, as failed with its output so far, a run taken over that cannot go on (its
        key revoked, its agent gone…): its clients would otherwise wait for ever."""
        record = await self.store.get_response(claimed.id, claimed.owner)
        if record is None:
            return
        error = {"code": "server_error", "message": why}
        body = {**record.body, "status": "failed", "error": error}
        last = await self.store.last_event(claimed.id)
        failed = {"type": "response.failed", "sequence_number": last + 1, "response": body}
        outbox = ending_deliveries(claimed.id, "failed", self.webhooks)
        await self.store.record_background_progress(
            BackgroundProgress(
                claimed.id, last + 1, [failed], body, "failed", outbox, claimed.attempt
            )
        )
        if outbox:
            self.outbox_written()
        log.warning("background response %s: ended as failed: %s", claimed.id, why)

    async def _refuse(self, response_id: str, owner: str | None, why: str) -> None:
        if await self.store.get_response(response_id, owner) is None:
            raise ResponseNotFound(response_id)
        raise InvalidRequest(why, code="not_background")

    async def _until_finished(self, response_id: str, owner: str | None) -> None:
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while time.monotonic() < deadline:
            state = await self.store.background_run(response_id, owner)
            if state is None or state.finished:
                return
            await asyncio.sleep(POLL_SECONDS)

    async def _drive(self, live: LiveRun, job: Job) -> None:
        """The run, its events into ``live``, and its end into the store (unless another
        instance has claimed it meanwhile: then it is that one's to end)."""
        run, events = job.run, job.events
        keeper = asyncio.create_task(self._keep(live, events))
        status, body = "failed", events.snapshot("failed")
        try:
            live.add(job.opening)
            await self.runs.take_slots(run)  # queued until then
            if live.status == "queued":
                self._count("queued", -1)
                live.status = "in_progress"
                self._count("in_progress", 1)
                live.add([events.running()])
            async with contextlib.aclosing(stream_events(self.runs.events(run))) as batches:
                async for batch in batches:
                    live.add(events.take(batch))
            live.ending = True  # answered: a cancel now would leave it completed anyway
            closing, body = events.finish_events()
            # stored before a follower hears it is done, as a response not in background
            await self.store.save_response(stored_response(body, run, job.inputs, job.owner))
            live.add(closing)
            status = body["status"]
        except LeaseLost:
            live.lost = True
        except asyncio.CancelledError:
            if live.cancel_reason == "lost":
                live.lost = True
            elif live.cancel_reason == "shutdown":
                status, body = live.status, events.snapshot(live.status)
            else:
                status, body = "cancelled", events.snapshot("cancelled")
        except APIError as error:
            failed = events.failed(error)
            live.add([failed])
            body = failed["response"]
        except Exception:  # a bug must not leave the response in progress for ever
            log.exception("background response %s failed", live.id)
            failed = events.failed(APIError("The run failed."))
            live.add([failed])
            body = failed["response"]
        finally:
            live.ending = True
            async with live.writing:  # so the keeper is not stopped halfway through a write
                keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await self.runs.release(run)
            try:
                if live.lost:
                    log.warning("background response %s: taken up by another instance", live.id)
                elif status in ("queued", "in_progress"):
                    await self._hand_off(live, body, status)
                else:
                    await self._end(live, body, status)
            finally:
                live.finish()
                self._live.pop(live.id, None)
                self._count(live.status, -1)

    async def _end(self, live: LiveRun, body: Json, status: str) -> None:
        outbox = ending_deliveries(live.id, status, self.webhooks)
        try:
            await self._write(live, body, status, outbox)
        except LeaseLost:
            live.lost = True
            log.warning("background response %s: taken up by another instance", live.id)
        except Exception:
            log.exception("background response %s: could not write its end", live.id)
        else:
            if outbox:
                self.outbox_written()

    async def _hand_off(self, live: LiveRun, body: Json, status: str) -> None:
        try:
            await self._write(live, body, status, released=True)
        except Exception:  # it will be taken up once its claim lapses instead
            log.warning("background response %s: could not hand it off", live.id, exc_info=True)
        else:
            log.info("background response %s: handed off, to go on elsewhere", live.id)

    async def _commit_step(self, live: LiveRun, events: ResponseEvents, step: RunStep) -> None:
        """A journal step, with the events so far: tried until it lands (the store may be
        away a while) or the run is another instance's."""
        while True:
            try:
                asked = await self._write(
                    live, events.snapshot("in_progress"), "in_progress", steps=(step,)
                )
            except LeaseLost:
                raise
            except Exception:
                log.warning(
                    "background response %s: could not commit step %d",
                    live.id,
                    step.number,
                    exc_info=True,
                )
                await asyncio.sleep(STEP_RETRY_SECONDS)
                continue
            if asked:
                live.cancel("owner")
            return

    async def _keep(self, live: LiveRun, events: ResponseEvents) -> None:
        """While the run goes: its new events written, and a cancel asked elsewhere seen."""
        quiet = 0.0
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            quiet += FLUSH_SECONDS
            if not live.unwritten and quiet < CANCEL_CHECK_SECONDS:
                continue
            quiet = 0.0
            try:
                asked = await self._write(live, events.snapshot(live.status), live.status)
            except LeaseLost:  # thought dead, and taken up elsewhere: stop here
                live.cancel("lost")
                return
            except Exception:  # the store is away: try again at the next turn
                log.warning(
                    "background response %s: could not write its progress", live.id, exc_info=True
                )
                continue
            if asked:
                live.cancel("owner")

    async def _write(
        self,
        live: LiveRun,
        body: Json,
        status: str,
        outbox: tuple[WebhookDelivery, ...] = (),
        steps: tuple[RunStep, ...] = (),
        released: bool = False,
    ) -> bool:
        """The run's unwritten events, its object and status (and the journal's steps, and
        at its end the webhooks it makes), in one transaction under its claim; whether its
        owner asked to cancel it."""
        async with live.writing:
            events, live.unwritten = live.unwritten, []
            first = events[0]["sequence_number"] if events else 0
            try:
                return await self.store.record_background_progress(
                    BackgroundProgress(
                        live.id, first, events, body, status, outbox, live.attempt, steps, released
                    )
                )
            except BaseException:
                live.unwritten = events + live.unwritten  # written at the next turn
                raise
