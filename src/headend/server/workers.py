"""``headend serve --workers N``: N processes serving one port, under a supervisor.

The supervisor binds the port, starts N workers (fresh interpreters: ``spawn``) that each
build the app and serve on the shared socket, restarts a worker that dies, and on SIGTERM or
Ctrl-C passes the signal on, so every worker drains as a single process does, then exits 0.

What workers share is what instances share: the store (sessions, keys, usage, idempotency)
and Redis (rates, concurrency pools and queues). So more than one worker needs ``redis:``:
without it each would keep limits of its own, letting a key through N times its limits, and
start-up refuses. An embedded model would be loaded by every worker, its threads fighting
over the same cores, so it is refused too: serve it from a headend of its own and route to
it. Metrics are summed over the workers through prometheus-client's multiprocess mode (a
temporary directory the supervisor owns); a provider's cooldown is kept by each worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from headend.config import Settings
from headend.errors import ConfigError

log = logging.getLogger(__name__)

EMBEDDED_TYPES = frozenset({"llama_cpp"})
RESTART_PAUSE = 1.0  # seconds before a worker that died is started again
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


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


def run_worker(settings: Settings, log_level: str, listener: socket.socket) -> None:
    """A worker process: the app on the supervisor's socket, until drained."""
    from headend.observability.logs import configure_logging
    from headend.server.app import create_app
    from headend.server.serving import serve

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor passes Ctrl-C on as SIGTERM
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the app follows it
    # Stopped before serving (uvicorn then handles SIGTERM): nothing to drain, a clean exit.
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(0))
    configure_logging(settings.server.log_format, log_level)
    serve(create_app(settings), settings, log_level=log_level, sockets=[listener])


class Supervisor:
    def __init__(self, settings: Settings, log_level: str) -> None:
        self.settings = settings
        self.log_level = log_level
        self.stopping = False
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[BaseProcess] = []

    def run(self) -> int:
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
                worker.kill()
            listener.close()
            shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("supervisor %d: every worker has stopped", os.getpid())
        return 1 if failed else 0

    def _start(self, listener: socket.socket) -> BaseProcess:
        worker = self._context.Process(
            target=run_worker,
            args=(self.settings, self.log_level, listener),
            name="headend-worker",
        )
        worker.start()
        return worker

    def _watch(self, listener: socket.socket) -> bool:
        """Until every worker has exited after a stop; restarts the ones that die before.
        True when a worker ended badly during the stop."""
        from prometheus_client import multiprocess

        failed = False
        while self._workers:
            wait([worker.sentinel for worker in self._workers], timeout=0.5)
            for worker in [w for w in self._workers if not w.is_alive()]:
                self._workers.remove(worker)
                if worker.pid is not None:
                    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
                if self.stopping:
                    # Killed by the SIGTERM itself: it was still starting, nothing to drain.
                    failed = failed or worker.exitcode not in (0, -signal.SIGTERM)
                    continue
                log.error(
                    "worker %s exited (code %s); starting another", worker.pid, worker.exitcode
                )
                time.sleep(RESTART_PAUSE)
                if not self.stopping:
                    self._workers.append(self._start(listener))
        return failed

    def _hang_up(self, sig: int, frame: FrameType | None) -> None:
        """SIGHUP: each worker reads its agent files and headend.yaml's models: again."""
        for worker in self._workers:
            if worker.pid is not None:
                os.kill(worker.pid, signal.SIGHUP)

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        """Each worker drains on SIGTERM; a second Ctrl-C stops them at once."""
        if self.stopping and sig == signal.SIGINT:
            for worker in self._workers:
                worker.kill()
            return
        if not self.stopping:
            log.info("%s: draining %d workers", signal.Signals(sig).name, len(self._workers))
        self.stopping = True
        for worker in self._workers:
            if worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
