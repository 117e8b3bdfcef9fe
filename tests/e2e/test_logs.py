"""``--log-format json``: every line the process prints is one JSON object (uvicorn's too),
one access line per request names its id, key id, surface, model, status, tokens and times,
errors carry the request id, and no secret or message text is ever written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, stop_server
from tests.e2e.sites import ADMIN, issue, make_site, serve
from tests.upstream import FakeUpstream, Reply, Status

pytestmark = pytest.mark.e2e

QUESTION = "the-private-question-31415"
ANSWER = "the-private-answer-27182"


def chat(base: str, secret: str, **extra: object) -> httpx.Response:
    return httpx.post(
        base + "/v1/chat/completions",
        json={"model": "gpt", "messages": [{"role": "user", "content": QUESTION}], **extra},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )


def test_json_logs(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "lg", {})
    server = serve(site, "server.log", "--log-format", "json", access_log=True)
    try:
        key = issue(server, name="logged", scopes=["chat"])
        secret = str(key["secret"])
        upstream.script("lg", Reply(text=ANSWER, usage=(6, 4)), Reply(text=ANSWER), Status(500))
        plain = chat(server.base_url, secret)
        assert plain.status_code == 200
        streamed = chat(server.base_url, secret, stream=True)
        assert ANSWER.split("-")[1] in streamed.text
        failed = chat(server.base_url, secret)
        assert failed.status_code == 502
        bad = httpx.post(
            server.base_url + "/v1/chat/completions",
            content=b'{"model": "gpt", "messages": [' + QUESTION.encode(),
            headers={"Authorization": f"Bearer {secret}", "content-type": "application/json"},
        )
        assert bad.status_code == 400
        wrong_key = chat(server.base_url, secret + "x")
        assert wrong_key.status_code == 401
    finally:
        stop_server(server)

    text = server.output()
    for leaked in (secret, secret + "x", ADMIN, QUESTION, ANSWER):
        assert leaked not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # all of them JSON
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    access = {line["request_id"]: line for line in lines if line["logger"] == "headend.access"}

    first = access[plain.headers["x-request-id"]]
    assert first["key_id"] == key["id"]
    assert first["surface"] == "chat_completions"
    assert first["model"] == "gpt"
    assert first["status"] == 200
    assert (first["prompt_tokens"], first["completion_tokens"]) == (6, 4)
    assert first["duration_ms"] >= first["overhead_ms"] > 0
    assert first["method"] == "POST"
    assert first["path"] == "/v1/chat/completions"
    assert access[streamed.headers["x-request-id"]]["status"] == 200

    failure = access[failed.headers["x-request-id"]]
    assert failure["status"] == 502
    assert failure["error"]
    # The upstream's failure is logged with the id of the request it failed.
    warnings = [line for line in lines if line["level"] == "warning"]
    assert any(line.get("request_id") == failed.headers["x-request-id"] for line in warnings)
    assert access[bad.headers["x-request-id"]]["status"] == 400
    unauthorised: dict[str, Any] = access[wrong_key.headers["x-request-id"]]
    assert unauthorised["status"] == 401
    assert unauthorised["key_id"] is None
    assert unauthorised["error"] == "invalid_api_key"  # refused before any route: still named


def test_text_logs_have_one_access_line_per_request(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "lt", {})
    server = serve(site, access_log=True)
    try:
        upstream.script("lt", Reply(usage=(2, 3)))
        answer = chat(server.base_url, ADMIN)
        assert answer.status_code == 200
    finally:
        stop_server(server)
    request_id = answer.headers["x-request-id"]
    mine = [line for line in server.output().splitlines() if request_id in line]
    assert len(mine) == 1
    assert "headend.access" in mine[0]
    assert "POST /v1/chat/completions 200 model=gpt key=admin tokens=2+3" in mine[0]


# headend with a model load that takes 4 s: llama.cpp's loader, slowed down where the
# silencing of llama-cpp-python (fd 2 pointed at /dev/null) would be in force.
SLOW_LOAD = """
import sys, time
import llama_cpp.llama_cpp as native
load = native.llama_model_load_from_file
def slow(*args):
    time.sleep(4)
    return load(*args)
native.llama_model_load_from_file = slow
from headend.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_no_line_is_lost_while_the_embedded_model_loads(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADEND_", "OTEL_"))}
    command = [sys.executable, "-c", SLOW_LOAD, "serve", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--log-format", "json", "--agents", str(tmp_path / "agents")],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
    loading: list[str] = []  # request ids answered while the model loaded
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, log.read_text()
            assert process.poll() is None, log.read_text()
            try:
                ready = httpx.get(base + "/health/ready", timeout=5)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if ready.status_code == 200:
                break
            assert "provider 'local' starting" in ready.json()["reasons"]
            loading.append(ready.headers["x-request-id"])
            time.sleep(0.1)
        assert len(loading) >= 10  # the load took its 4 s, answered meanwhile
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    logged = {line.get("request_id") for line in lines if line["logger"] == "headend.access"}
    missing = [request_id for request_id in loading if request_id not in logged]
    assert not missing, f"{len(missing)} of {len(loading)} access lines lost"


def test_sigterm_writes_every_access_line_still_held(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # Access lines are written in batches (every 0.2 s): those held when SIGTERM comes are
    # written as the server stops, none lost.
    upstream.reset()
    site = make_site(tmp_path, upstream, "lb", {})
    server = serve(site, "server.log", "--log-format", "json", access_log=True)
    with httpx.Client(headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        ids = [
            client.get(server.base_url + "/v1/models").headers["x-request-id"] for _ in range(20)
        ]
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=15) == 0
    lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    logged = [line["request_id"] for line in lines if line["logger"] == "headend.access"]
    assert [request_id for request_id in logged if request_id in ids] == ids  # all, in order


def test_a_kill_9_loses_no_access_line_older_than_the_flush_interval(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # What a batch holds is written within 0.2 s of its first line: a server killed with
    # SIGKILL (no drain, no lifespan end) has already written every line older than that.
    upstream.reset()
    site = make_site(tmp_path, upstream, "lk", {})
    server = serve(site, "server.log", "--log-format", "json", access_log=True)
    with httpx.Client(headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        ids = [client.get(server.base_url + "/v1/models").headers["x-request-id"] for _ in range(5)]
    time.sleep(1.0)  # five times the flush interval
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=15)
    lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    logged = [line["request_id"] for line in lines if line["logger"] == "headend.access"]
    assert [request_id for request_id in logged if request_id in ids] == ids
