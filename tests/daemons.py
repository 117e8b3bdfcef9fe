"""Starting a server the tests need (Redis, tinyproxy, an MCP server) and waiting for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wait_listening(
    port: int, process: subprocess.Popen[bytes], name: str, seconds: float = 10
) -> None:
    """Until something listens on ``port`` of loopback; RuntimeError if ``process`` exits or
    ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start") from None
            time.sleep(0.05)


@contextmanager
def mcp_over_http(port: int, pidfile: Path) -> Iterator[int]:
    """tests/mcp_server.py over streamable HTTP on ``port`` (its pid appended to
    ``pidfile``)."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "mcp_server.py"), "--http", str(port)],
        env={**os.environ, "PIDFILE": str(pidfile)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process, "the MCP server", seconds=30)  # imports take a while
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
