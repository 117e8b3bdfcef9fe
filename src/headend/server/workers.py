"""``headend serve --workers N``: N processes serving one port, under a supervisor.

The supervisor checks what it can before it forks (the config, the agent files, the extras
the config needs, the store and Redis answering, no keyless server on a public address), binds
the port, starts N workers (fresh interpreters: ``spawn``) that each build the app and serve
on the shared socket, and on SIGTERM or Ctrl-C passes the signal on, so every worker drains as
a single process does, then exits 0.

When workers fail, it does what gunicorn does:
- a worker that exits before it serves (its start-up failed) stops the supervisor: the other
  workers are drained and ``headend serve`` exits 1 with that worker's reason on one line;
- a worker that dies after serving is started again after a pause that doubles with each
  death (``RESTART_FIRST`` up to ``RESTART_MAX`` seconds); ``MAX_DEATHS`` deaths within
  ``DEATH_WINDOW`` seconds stop the supervisor the same way, naming the last exit.

What workers share is what instances share: the store (sessions, keys, usage, idempotency)
and Redis (rates, concurrency pools and queues). So more than one worker needs ``redis:``:
without it each would keep limits of its own, letting a key through N times its limits, and
start-up refuses. An embedded model would be loaded by every worker, its threads fighting
over the same cores, so it is refused too: serve it from a headend of its own and route to
it. Metrics are summed over the workers through prometheus-client's multiprocess mode (a
temporary directory the supervisor owns); a provider's cooldown is kept by each worker.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING

from headend.config import Settings
from headend.errors import ConfigError, HeadendError, StartupError

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger(__name__)

EMBEDDED_TYPES = frozenset({"llama_cpp"})
RESTART_FIRST = 0.5  # seconds before the first worker that died is started again
RESTART_MAX = 30.0  # the pause doubles with each death, up to this
MAX_DEATHS = 5  # deaths within DEATH_WINDOW that stop the supervisor
DEATH_WINDOW = 60.0
BOOT_FAILED = 3  # a worker's exit code when it could not start (gunicorn's too)
READY = "ready"  # what a worker tells the supervisor once it serves
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# What a worker serves: the app for the settings (headend.app.create_app, handed down by the
# command so that server/ never imports the app above it).
AppFactory = Callable[[Settings], "Starlette"]
WorkerTarget = Callable[[Settings, str, socket.socket, Connection, AppFactory], None]


def check_workers(settings: Settings) -> None:
    """Refuse what more than one worker would get wrong."""
    problems = []
    n = settings.server.workers
    if not settings.redis:
        problems.append(
            f"{settings.source}: server.workers: {n} workers need redis: (a local redis-server "
            "will do) so that rates and concurrency limits hold across them; without it each "
            "worker would let a key through its whole limit"
        )
    embedded = sorted(
        name for name, section in settings.providers.items() if section.type in EMBEDDED_TYPES
    )
    if embedded:
        problems.append(
            f"{settings.source}: server.workers: {n} workers would each load the embedded "
            f"model(s) {', '.join(embedded)} and fight over the cores; serve them from a "
            "headend with one worker and route to it as an openai provider"
        )
    if problems:
        raise ConfigError(problems)


def preflight(settings: Settings) -> None:
    """What every worker would find at start-up, found once before forking: the store and
    Redis answer (their extras installed), and a public address has keys. Migrations run
    here too, so workers do not race to apply them."""
    from headend.access.authenticator import Authenticator, check_exposure
    from headend.limits.open import open_limiter
    from headend.store import open_store

    async def check() -> None:
        store = open_store(settings.store, settings.base_dir)
        await store.start()
        try:
            auth = Authenticator(store, settings.server.admin_key)
            await check_exposure(auth, settings.server.host, settings.server.insecure_no_auth)
            limiter = open_limiter(settings.redis)
            await limiter.start()
            await limiter.close()
        finally:
            await store.close()

    asyncio.run(check())


def one_line(error: HeadendError) -> str:
    if isinstance(error, ConfigError):
        return "; ".join(error.problems)
    return str(error)


def run_worker(
    settings: Settings,
    log_level: str,
    listener: socket.socket,
    channel: Connection,
    build_app: AppFactory,
) -> None:
    """A worker process: the app on the supervisor's socket, until drained. It says READY on
    ``channel`` once it serves, or why it could not start before it exits BOOT_FAILED."""
    from headend.observability.logs import configure_logging
    from headend.server.serving import serve

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor passes Ctrl-C on as SIGTERM
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the app follows it
    # Stopped before serving (uvicorn then handles SIGTERM): nothing to drain, a clean exit.
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(0))
    configure_logging(settings.server.log_format, log_level)

    try:
        app = build_app(settings)
        serve(
            app,
            settings,
            log_level=log_level,
            sockets=[listener],
            on_started=lambda: channel.send(READY),
        )
    except HeadendError as exc:
        channel.send(one_line(exc))
        sys.exit(BOOT_FAILED)


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    channel: Connection  # what the worker says: READY, or why it could not start
    serving: bool = False
    reason: str | None = None

    def listen(self) -> None:
        """Take what the worker said, if anything."""
        try:
            while self.channel.poll():
                said = self.channel.recv()
                if said == READY:
                    self.serving = True
                else:
                    self.reason = str(said)
        except (EOFError, OSError):
            pass


@dataclass
class _Deaths:
    """When workers that had served died: how long to wait before the next start, and
    whether they die too often to go on."""

    times: list[float] = field(default_factory=list)

    def add(self, now: float) -> None:
        self.times = [t for t in self.times if now - t < DEATH_WINDOW] + [now]

    def pause(self) -> float:
        return min(RESTART_FIRST * 2.0 ** (len(self.times) - 1), RESTART_MAX)

    def too_many(self) -> bool:
        return len(self.times) >= MAX_DEATHS


class Supervisor:
    """Runs ``target`` (``run_worker``) in N processes; see the module's docstring."""

    def __init__(
        self,
        settings: Settings,
        log_level: str,
        build_app: AppFactory,
        target: WorkerTarget = run_worker,
    ):
        self.settings = settings
        self.log_level = log_level
        self.target = target
        self.build_app = build_app
        self.stopping = False
        self.fatal: str | None = None  # why the supervisor stops on its own
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._restarts: list[float] = []  # when each pending restart is due
        self._deaths = _Deaths()

    def run(self) -> int:
        """0 once drained; raises ``StartupError`` when workers fail as the docstring says."""
        from headend.server.serving import uvicorn_config

        listener = uvicorn_config("unused", self.settings, self.log_level).bind_socket()
        metrics_dir = tempfile.mkdtemp(prefix="headend-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir  # the workers inherit it
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._hang_up)
        failed = False
        try:
            self._workers = [self._start(listener) for _ in range(self.settings.server.workers)]
            server = self.settings.server
            log.info(
                "supervisor %d: %d workers on http://%s:%d",
                os.getpid(),
                len(self._workers),
                server.host,
                server.port,
            )
            failed = self._watch(listener)
        finally:
            for worker in self._workers:
                worker.process.kill()
            listener.close()
            shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("supervisor %d: every worker has stopped", os.getpid())
        if self.fatal is not None:
            raise StartupError(self.fatal)
        return 1 if failed else 0

    def _start(self, listener: socket.socket) -> _Worker:
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=self.target,
            args=(self.settings, self.log_level, listener, writer, self.build_app),
            name="headend-worker",
        )
        process.start()
        writer.close()  # the worker holds the only writing end: its exit reads as EOF
        return _Worker(process, reader)

    def _watch(self, listener: socket.socket) -> bool:
        """Until every worker has exited after a stop, starting again those that die while
        serving. True when a worker ended badly during the stop."""
        from prometheus_client import multiprocess

        failed = False
        while self._workers or (self._restarts and not self.stopping):
            now = time.monotonic()
            due = min(self._restarts, default=now + 0.5)
            waiting: list[Connection | int] = [w.process.sentinel for w in self._workers]
            waiting += [w.channel for w in self._workers if not w.serving]
            wait(waiting, timeout=max(0.0, min(0.5, due - now)))
            for worker in self._workers:
                worker.listen()
            for worker in [w for w in self._workers if not w.process.is_alive()]:
                self._workers.remove(worker)
                worker.listen()  # what it said just before it exited
                worker.channel.close()
                if worker.process.pid is not None:
                    multiprocess.mark_process_dead(worker.process.pid)  # type: ignore[no-untyped-call]
                if self.stopping:
                    # Killed by the SIGTERM itself: it was still starting, nothing to drain.
                    code = worker.process.exitcode
                    failed = failed or code not in (0, -signal.SIGTERM, BOOT_FAILED)
                    continue
                self._died(worker)
            if not self.stopping:
                now = time.monotonic()
                for at in [t for t in self._restarts if t <= now]:
                    self._restarts.remove(at)
                    self._workers.append(self._start(listener))
        return failed

    def _died(self, worker: _Worker) -> None:
        """A worker exited on its own: start another later, or give up."""
        code = worker.process.exitcode
        if not worker.serving:
            reason = worker.reason or f"it exited with code {code} (its log above says why)"
            self._give_up(f"a worker could not start: {reason}")
            return
        self._deaths.add(time.monotonic())
        if self._deaths.too_many():
            self._give_up(
                f"workers keep dying: {len(self._deaths.times)} exits within "
                f"{DEATH_WINDOW:g} s, the last with code {code}"
            )
            return
        pause = self._deaths.pause()
        log.error(
            "worker %s exited (code %s); starting another in %g s",
            worker.process.pid,
            code,
            pause,
        )
        self._restarts.append(time.monotonic() + pause)

    def _give_up(self, reason: str) -> None:
        """Stop on our own: the others drain, ``run`` raises ``reason``."""
        if self.fatal is None:
            self.fatal = reason
            log.error("%s; stopping the other workers", reason)
        self._restarts.clear()
        self._stop(signal.SIGTERM, None)

    def _hang_up(self, sig: int, frame: FrameType | None) -> None:
        """SIGHUP: each worker reads its agent files and headend.yaml's models: again."""
        for worker in self._workers:
            if worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGHUP)

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        """Each worker drains on SIGTERM; a second Ctrl-C stops them at once."""
        if self.stopping and sig == signal.SIGINT:
            for worker in self._workers:
                worker.process.kill()
            return
        if not self.stopping and self.fatal is None:
            log.info("%s: draining %d workers", signal.Signals(sig).name, len(self._workers))
        self.stopping = True
        for worker in self._workers:
            if worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
