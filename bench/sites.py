"""A headend for a benchmark: ``headend serve`` on a loopback port, from a config and agent
files in a temporary directory, with the bench's admin key; stopped and removed after."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import RunningServer, start_server, stop_server


@contextmanager
def served_site(
    config: str, admin: str, agents: dict[str, str] | None = None, access_log: bool = True
) -> Iterator[RunningServer]:
    """``agents``: file names (without ``.md``) to their text; the access log is on, as
    shipped, unless the bench measures without it."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "agents").mkdir()
        for name, text in (agents or {}).items():
            (root / "agents" / f"{name}.md").write_text(text)
        (root / "headend.yaml").write_text(config)
        server = start_server(
            root / "agents",
            root / "server.log",
            "--config",
            str(root / "headend.yaml"),
            env={"HEADEND_ADMIN_KEY": admin},
            access_log=access_log,
        )
        try:
            yield server
        finally:
            stop_server(server)
