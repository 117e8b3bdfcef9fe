"""A real process's lifecycle: SIGTERM drains it with a stream in flight (the stream ends
whole, no new connection is accepted, usage reaches the store, exit status 0), a drain that
runs out of time cuts what is left, and readiness follows Redis."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseOutputMessage

from tests.conftest import RunningServer, free_port, stop_server
from tests.e2e.sites import ADMIN, HI, make_site, serve
from tests.e2e.waiting import until
from tests.redis_server import redis_server
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

WORDS = "one two three four five six seven eight"


def stream_in_thread(
    server: RunningServer, secret: str = ADMIN
) -> tuple[threading.Thread, list[str], threading.Event]:
    """Stream a chat in a thread: its data lines, and an event set at the first one."""
    lines: list[str] = []
    first = threading.Event()

    def run() -> None:
        try:
            with httpx.stream(
                "POST",
                server.api + "/chat/completions",
                json={"model": "gpt", "messages": HI, "stream": True},
                headers={"Authorization": f"Bearer {secret}"},
                timeout=30,
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        lines.append(line)
                        first.set()
        except httpx.HTTPError as exc:
            lines.append(f"error: {type(exc).__name__}")
        first.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, lines, first


def refuses_connections(server: RunningServer) -> bool:
    port = int(server.base_url.rsplit(":", 1)[1])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


def text_of(lines: list[str]) -> str:
    import json

    words = []
    for line in lines:
        payload = line.removeprefix("data: ")
        if payload == "[DONE]" or payload.startswith("error"):
            continue
        for choice in json.loads(payload).get("choices", []):
            words.append(choice["delta"].get("content") or "")
    return "".join(words)


def test_sigterm_drains_a_stream_in_flight_and_exits_0(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "d", {}, "server: {drain_seconds: 20}\n")
    server = serve(site)
    upstream.script("d", Reply(text=WORDS, chunk_delay=0.25, usage=(9, 8)))
    thread, lines, first = stream_in_thread(server)
    assert first.wait(10)
    server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 3
    while not refuses_connections(server):
        assert time.monotonic() < deadline, "still accepting connections while draining"
        time.sleep(0.05)
    assert server.process.poll() is None  # the stream is still running
    thread.join(20)
    assert lines[-1] == "data: [DONE]"
    assert text_of(lines).split() == WORDS.split()
    assert server.process.wait(20) == 0
    assert "draining" in server.output()

    again = serve(site, "again.log")  # the same store: the drained stream's usage is there
    try:
        rows = httpx.get(
            again.base_url + "/admin/usage", headers={"Authorization": f"Bearer {ADMIN}"}
        ).json()["data"]
        gpt = [row for row in rows if row["model"] == "gpt"]
        assert gpt
        assert gpt[0]["prompt_tokens"] == 9
        assert gpt[0]["completion_tokens"] == 8
    finally:
        stop_server(again)


def test_a_drain_that_runs_out_of_time_ends_the_stream(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "dt", {}, "server: {drain_seconds: 1}\n")
    server = serve(site)
    upstream.script("dt", Reply(text=WORDS * 10, chunk_delay=0.2))
    thread, lines, first = stream_in_thread(server)
    assert first.wait(10)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(15) == 0
    assert time.monotonic() - started < 6
    thread.join(10)
    assert "data: [DONE]" not in lines  # cut short, and the client can tell


def background_run(server: RunningServer) -> str:
    """A background response started on ``server``, once its output has begun."""
    sdk = openai.OpenAI(base_url=server.api, api_key=ADMIN, max_retries=0)
    queued = sdk.responses.create(model="gpt", input="Count", background=True)
    until(lambda: sdk.responses.retrieve(queued.id).output_text)
    return queued.id


def retrieved(site: Path, response_id: str) -> dict[str, object]:
    """The response as a server started again on the same store shows it."""
    again = serve(site, "again.log")
    try:
        answer = httpx.get(
            f"{again.api}/responses/{response_id}", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        found: dict[str, object] = answer.json()
        return found
    finally:
        stop_server(again)


def test_sigterm_lets_a_background_run_finish_within_the_drain(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "db", {}, "server: {drain_seconds: 20}\n")
    server = serve(site)
    long = " ".join(f"w{n}" for n in range(30))
    upstream.script("db", Reply(text=long, chunk_delay=0.1))
    response_id = background_run(server)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(20) == 0
    done = retrieved(site, response_id)
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["text"] == long  # type: ignore[index]


def test_a_background_run_past_the_drain_is_handed_off_and_goes_on_at_the_next_start(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "df", {}, "server: {drain_seconds: 1}\n")
    server = serve(site)
    upstream.script("df", Reply(text=WORDS * 20, chunk_delay=0.2), Reply(text="Finished."))
    response_id = background_run(server)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(15) == 0
    assert time.monotonic() - started < 6
    again = serve(site, "again.log")  # takes it up at once: its claim was given up
    try:
        sdk = openai.OpenAI(base_url=again.api, api_key=ADMIN, max_retries=0)

        def ended() -> Response | None:
            found = sdk.responses.retrieve(response_id)
            return found if found.status == "completed" else None

        done = until(ended, timeout=10)
        cut, answer = done.output
        assert isinstance(cut, ResponseOutputMessage)
        assert isinstance(answer, ResponseOutputMessage)
        assert cut.status == "incomplete"
        assert answer.content[0].text == "Finished."  # type: ignore[union-attr]
        assert len(upstream.received("df")) == 2
    finally:
        stop_server(again)


def test_readiness_follows_redis(upstream: FakeUpstream, tmp_path: Path) -> None:
    port = free_port()
    with redis_server(port) as url:
        site = make_site(tmp_path, upstream, "r", {}, f"redis: {url}\n")
        server = serve(site)
    try:  # redis-server has stopped
        deadline = time.monotonic() + 10
        while (
            answer := httpx.get(server.base_url + "/health/ready", timeout=5)
        ).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert answer.status_code == 503
        reasons = answer.json()["reasons"]
        assert len(reasons) == 1
        assert reasons[0].startswith("redis: ")
        assert str(port) not in answer.text  # no address in a public answer
        assert httpx.get(server.base_url + "/health").status_code == 200
    finally:
        stop_server(server)
    with redis_server(port):
        server = serve(site, "back.log")
        try:
            assert httpx.get(server.base_url + "/health/ready").status_code == 200
        finally:
            stop_server(server)


def test_sigterm_lets_a_websocket_response_end_then_closes_the_socket(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """A deploy does not cut Codex's turn: the response under way ends whole, then the
    socket closes with 1012 (service restart) and the client connects again elsewhere."""
    import asyncio
    import json

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    upstream.reset()
    site = make_site(tmp_path, upstream, "w", {}, "server: {drain_seconds: 20}\n")
    server = serve(site)
    upstream.script("w", Reply(text=WORDS, chunk_delay=0.25))

    async def converse() -> tuple[list[str], int]:
        url = server.api.replace("http://", "ws://") + "/responses"
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with connect(url, additional_headers=headers) as socket:
            await socket.send(
                json.dumps({"type": "response.create", "model": "gpt", "input": "Hi"})
            )
            kinds: list[str] = []
            while True:
                try:
                    event = json.loads(await socket.recv())
                except ConnectionClosed as closed:
                    return kinds, closed.rcvd.code if closed.rcvd is not None else -1
                kinds.append(event["type"])
                if (
                    event["type"] == "response.output_text.delta"
                    and kinds.count(event["type"]) == 1
                ):
                    server.process.send_signal(signal.SIGTERM)  # mid-answer

    kinds, code = asyncio.run(converse())
    assert kinds[-1] == "response.completed"  # the answer ended whole
    assert kinds.count("response.output_text.delta") == len(WORDS.split())
    assert code == 1012
    assert server.process.wait(20) == 0
