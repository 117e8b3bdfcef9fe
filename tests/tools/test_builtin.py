"""The built-in tools, each against what it promises and what it must refuse."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from headend.tools.base import ToolContext, ToolError
from headend.tools.builtin.calculator import Calculator
from headend.tools.builtin.current_time import CurrentTime
from headend.tools.builtin.http_fetch import HttpFetch
from headend.tools.builtin.terminal import Terminal
from tests.upstream import FakeUpstream


def context(tmp_path: Path, allow: tuple[str, ...] = ()) -> ToolContext:
    return ToolContext(
        agent_id="t", request_id="r", scratch=tmp_path / "scratch", allow_hosts=frozenset(allow)
    )


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("2 ** 10", "1024"),
        ("2^3", "8"),
        ("7 / 2", "3.5"),
        ("7 // 2", "3"),
        ("-5 % 3", "1"),
        ("sqrt(16)", "4"),
        ("round(pi, 2)", "3.14"),
        ("max(1, 9, 3)", "9"),
        ("factorial(5)", "120"),
    ],
)
async def test_calculator_computes(tmp_path: Path, expression: str, result: str) -> None:
    assert await Calculator().run({"expression": expression}, context(tmp_path)) == result


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "(1).__class__",
        "[x for x in range(9)]",
        "9 ** 9 ** 9",
        "10 ** 100000",
        "1 / 0",
        "x",
        "lambda: 1",
        "factorial(100000)",
        "'a' * 3",
        "2 +",
    ],
)
async def test_calculator_refuses_everything_else(tmp_path: Path, expression: str) -> None:
    with pytest.raises(ToolError):
        await Calculator().run({"expression": expression}, context(tmp_path))


async def test_current_time_in_a_zone(tmp_path: Path) -> None:
    utc = await CurrentTime().run({}, context(tmp_path))
    assert utc.endswith("UTC)")
    assert utc[:4].isdigit()
    paris = await CurrentTime().run({"timezone": "Europe/Paris"}, context(tmp_path))
    assert "Europe/Paris" in paris
    with pytest.raises(ToolError, match="unknown time zone"):
        await CurrentTime().run({"timezone": "Mars/Olympus"}, context(tmp_path))


async def test_http_fetch_reaches_an_allowed_host(tmp_path: Path, fake: FakeUpstream) -> None:
    result = await HttpFetch().run(
        {
            "url": f"http://127.0.0.1:{fake.port}/x/v1/chat/completions",
            "method": "POST",
            "body": '{"model": "m", "messages": []}',
        },
        context(tmp_path, allow=("127.0.0.1",)),
    )
    assert result.startswith("HTTP 200")
    assert "Hello from upstream" in result
    assert fake.received("x")[0].body == {"model": "m", "messages": []}


async def test_terminal_runs_in_scratch_with_a_scrubbed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    result = await Terminal().run({"command": "pwd; env; echo hi > f.txt"}, context(tmp_path))
    assert result.startswith("exit code 0")
    assert str(tmp_path / "scratch") in result
    assert "sk-must-not-leak" not in result
    assert (tmp_path / "scratch" / "f.txt").read_text() == "hi\n"
    failed = await Terminal().run({"command": "exit 3"}, context(tmp_path))
    assert failed.startswith("exit code 3")


async def test_terminal_output_is_capped(tmp_path: Path) -> None:
    result = await Terminal().run({"command": "yes | head -c 100000"}, context(tmp_path))
    assert "[output truncated" in result
    assert len(result) < 25_000


async def test_a_cancelled_command_is_killed_with_its_children(tmp_path: Path) -> None:
    import asyncio

    marker = tmp_path / "scratch" / "done"
    task = asyncio.ensure_future(
        Terminal().run({"command": "(sleep 1; touch done) & sleep 30"}, context(tmp_path))
    )
    await asyncio.sleep(0.3)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2
    await asyncio.sleep(1.2)
    assert not marker.exists()  # the background child died with the group
