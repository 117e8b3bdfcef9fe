"""Liveness and readiness while providers start, fail to start, and while draining
(in-process; the drain on SIGTERM itself is in tests/e2e/test_lifecycle.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import httpx
import pytest
from starlette.applications import Starlette

from headend.app import create_app
from headend.config import Settings
from headend.errors import ServiceUnavailable
from headend.providers.base import Resources
from headend.providers.startup import ProviderStartup
from tests.fakes import ScriptedProvider

HI = [{"role": "user", "content": "hi"}]


@dataclass
class SlowStart(ScriptedProvider):
    """A provider whose start waits for ``gate`` (an embedded model loading), or fails."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    broken: bool = False

    async def start(self, resources: Resources) -> None:
        await self.gate.wait()
        if self.broken:
            raise RuntimeError("the weights at /secret/path are corrupt")


@pytest.fixture
def slow() -> SlowStart:
    return SlowStart(name="slow", texts=["loaded"])


@pytest.fixture
async def app(tmp_path: Path, slow: SlowStart) -> AsyncIterator[Starlette]:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "bot.md").write_text("---\nmodel: [slow, quick]\n---\nBe brief.\n")
    settings = Settings(agents_dir=agents, store="sqlite:///:memory:")
    quick = ScriptedProvider(name="quick", texts=["quick"])
    built = create_app(settings, providers={"slow": slow, "quick": quick})
    async with built.router.lifespan_context(built):
        yield built


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_alive_but_not_ready_while_a_model_loads(
    http: httpx.AsyncClient, slow: SlowStart
) -> None:
    assert (await http.get("/health")).status_code == 200
    waiting = await http.get("/health/ready")
    assert waiting.status_code == 503
    assert waiting.json() == {"status": "not_ready", "reasons": ["provider 'slow' starting"]}
    # A request that comes meanwhile waits for the model rather than failing.
    asked = asyncio.ensure_future(
        http.post("/v1/chat/completions", json={"model": "bot", "messages": HI})
    )
    await asyncio.sleep(0.05)
    assert not asked.done()
    slow.gate.set()
    answer = await asked
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "loaded"
    ready = await http.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_a_provider_that_fails_to_start_is_skipped(
    http: httpx.AsyncClient, slow: SlowStart
) -> None:
    slow.broken = True
    slow.gate.set()
    await asyncio.sleep(0.01)
    ready = await http.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["reasons"] == ["provider 'slow' failed"]
    assert "/secret/path" not in ready.text
    answer = await http.post("/v1/chat/completions", json={"model": "bot", "messages": HI})
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "quick"


async def test_not_ready_while_draining_or_when_the_store_fails(
    app: Starlette, http: httpx.AsyncClient, slow: SlowStart
) -> None:
    slow.gate.set()
    await asyncio.sleep(0.01)
    assert (await http.get("/health/ready")).status_code == 200

    async def broken() -> None:
        raise OSError("disk at /var/lib/headend is gone")

    app.state.readiness.pings["store"] = broken
    failing = await http.get("/health/ready")
    assert failing.status_code == 503
    assert failing.json()["reasons"] == ["store: unreachable (OSError)"]
    app.state.readiness.drain()
    draining = (await http.get("/health/ready")).json()["reasons"]
    assert draining[0] == "draining: shutting down"
    assert (await http.get("/health")).status_code == 200  # still alive: it is finishing


async def test_a_call_waits_for_a_starting_provider_only_so_long() -> None:
    slow = SlowStart(name="slow")
    startup = ProviderStartup({"slow": slow})
    running = asyncio.ensure_future(startup.run(cast(Resources, None)))
    with pytest.raises(ServiceUnavailable) as refused:
        await startup.wait("slow", 0.05)
    assert refused.value.headers == {"retry-after": "5"}
    slow.gate.set()
    await startup.wait("slow", 1)
    await running
    assert startup.not_ready() == []
