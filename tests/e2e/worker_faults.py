"""``headend serve --workers 2`` whose workers meet a fault the supervisor's own checks could
not see: Redis stops answering between the supervisor's check and a worker's start.

    python -m tests.e2e.worker_faults CONFIG PORT

runs the real supervisor with real workers, each started with that Redis gone.
"""

from __future__ import annotations

import socket
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from headend.app import create_app
from headend.config import Settings, load_settings
from headend.errors import HeadendError
from headend.observability.logs import configure_logging
from headend.server.workers import AppFactory, Supervisor, run_worker

GONE = "redis://127.0.0.1:1/0"


def redis_gone(
    settings: Settings,
    log_level: str,
    listener: socket.socket,
    channel: Connection,
    build_app: AppFactory,
) -> None:
    run_worker(settings.model_copy(update={"redis": GONE}), log_level, listener, channel, build_app)


def main() -> int:
    config, port = Path(sys.argv[1]), int(sys.argv[2])
    settings = load_settings(config)
    server = settings.server.model_copy(update={"port": port, "workers": 2})
    settings = settings.model_copy(update={"server": server})
    configure_logging("text", "info")
    try:
        return Supervisor(settings, "info", create_app, target=redis_gone).run()
    except HeadendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
