"""A throwaway Redis on a loopback port, from Debian's redis-server package.

CI sets HEADEND_REQUIRE_REDIS=1 (after scripts/services.sh has installed it), so there a
missing Redis fails the run; elsewhere the tests that need Redis are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.daemons import wait_listening

REQUIRE = "HEADEND_REQUIRE_REDIS"


@contextmanager
def redis_server(port: int) -> Iterator[str]:
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if binary is None:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail("Redis is required here but not installed (scripts/services.sh)")
        pytest.skip("redis-server is not installed (scripts/services.sh installs it)")
    data = tempfile.mkdtemp(prefix="headend-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            data,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)
