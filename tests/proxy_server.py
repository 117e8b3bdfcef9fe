"""A throwaway egress proxy on a loopback port: Debian's tinyproxy.

CI sets HEADEND_REQUIRE_PROXY=1 (after scripts/services.sh has installed it), so there a
missing tinyproxy fails the run; elsewhere the tests that need it are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.daemons import wait_listening

REQUIRE = "HEADEND_REQUIRE_PROXY"


@dataclass
class RunningProxy:
    url: str
    log: Path

    def lines(self) -> list[str]:
        """What it has logged: a CONNECT or a request line per request it forwarded."""
        return self.log.read_text(errors="replace").splitlines() if self.log.exists() else []

    def forwarded(self, needle: str) -> int:
        """How many requests it saw whose request line holds ``needle``."""
        return sum(
            1 for line in self.lines() if "Request (file descriptor" in line and needle in line
        )


@contextmanager
def proxy_server(port: int, *, allow: str = "127.0.0.1") -> Iterator[RunningProxy]:
    """tinyproxy on ``port``, taking clients from ``allow`` only (any other gets 403)."""
    binary = shutil.which("tinyproxy") or (
        "/usr/bin/tinyproxy" if os.path.exists("/usr/bin/tinyproxy") else None
    )
    if binary is None:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail("tinyproxy is required here but not installed (scripts/services.sh)")
        pytest.skip("tinyproxy is not installed (scripts/services.sh installs it)")
    directory = Path(tempfile.mkdtemp(prefix="headend-proxy-"))
    log = directory / "tinyproxy.log"
    config = directory / "tinyproxy.conf"
    # No ConnectPort line: CONNECT may reach any port (the tests' TLS upstream is not 443).
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 60\nAllow {allow}\n"
        f'LogFile "{log}"\nLogLevel Connect\nMaxClients 50\nDisableViaHeader No\n'
    )
    process = subprocess.Popen(
        [binary, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_listening(port, process, "tinyproxy")
        yield RunningProxy(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(directory, ignore_errors=True)
