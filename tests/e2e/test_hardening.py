"""What a hostile client tried, kept as tests: SSRF through an agent, JSON nested too deep on
every surface, slow and oversized requests, HEAD past the scope check, two credentials, and a
session continued by another agent."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer
from tests.e2e.sites import ADMIN, HI, issue, site_fixture
from tests.secret_site import SECRET, SecretSite
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

AGENTS = {
    "counter": "---\nmodel: up/counter\n---\nYou count.\n",
    "other": "---\nmodel: up/other\n---\nYou differ.\n",
    "fetcher": (
        "---\nmodel: up/fetcher\ntools: [http_fetch, calculator]\n"
        "allow_hosts: [localhost]\n---\nYou fetch.\n"
    ),
}
LIMITS = """
server:
  header_timeout: 1
  body_timeout: 1
  idle_timeout: 1
  max_header_bytes: 16384
  max_headers: 50
"""
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture(scope="module")
def site() -> Iterator[SecretSite]:
    running = SecretSite()
    yield running
    running.stop()


hardened = site_fixture("h", AGENTS, LIMITS)


def nested(depth: int) -> str:
    """A JSON placeholder that ``deep`` turns into ``depth`` nested arrays (the json module
    cannot write as deep as a hostile client can)."""
    return f"@deep{depth}@"


def deep(body: object) -> str:
    text = json.dumps(body)
    for depth in (61, 65, 70, 100, 255, 300, 500, 1000):
        text = text.replace(f'"@deep{depth}@"', "[" * depth + '"x"' + "]" * depth)
    return text


def tool_call(name: str, arguments: dict[str, object]) -> dict[str, str]:
    return {"id": f"call_{name}", "name": name, "arguments": json.dumps(arguments)}


# ---- SSRF through an agent


def ask(server: RunningServer, model: str) -> httpx.Response:
    return httpx.post(
        server.api + "/chat/completions",
        json={"model": model, "messages": HI},
        headers=ADMIN_HEADERS,
        timeout=30,
    )


def fetched_by_agent(server: RunningServer, fake: FakeUpstream, url: str) -> dict[str, str]:
    """What the fetcher agent's model was told after calling http_fetch on ``url``."""
    fake.script("h", Reply(text="", tool_calls=[tool_call("http_fetch", {"url": url})]), Reply())
    response = ask(server, "fetcher")
    assert response.status_code == 200, response.text
    fed_back: dict[str, str] = fake.received("h")[-1].body["messages"][-1]
    return fed_back


@pytest.mark.parametrize("host", ["１２７.０.０.１", "127。0。0。1", "①②⑦.⓪.⓪.①", "127.0.0.1"])
def test_an_agent_cannot_fetch_loopback_however_written(
    hardened: RunningServer, fake: FakeUpstream, site: SecretSite, host: str
) -> None:
    before = len(site.hits)
    fed_back = fetched_by_agent(hardened, fake, f"http://{host}:{site.port}/secret")
    assert fed_back["role"] == "tool"
    assert "refused" in fed_back["content"]
    assert SECRET not in fed_back["content"]
    assert len(site.hits) == before


def test_an_agent_cannot_be_redirected_to_loopback(
    hardened: RunningServer, fake: FakeUpstream, site: SecretSite
) -> None:
    to = f"http://１２７.０.０.１:{site.port}/secret"
    url = f"http://localhost:{site.port}/redirect?to={to}"
    fed_back = fetched_by_agent(hardened, fake, url)["content"]
    assert "refused" in fed_back
    assert SECRET not in fed_back


# ---- JSON nested too deep


DEEP_BODIES = {
    "/v1/chat/completions": {"model": "gpt", "messages": HI, "metadata": nested(300)},
    "/v1/chat/completions#agent": {
        "model": "counter",
        "messages": [{"role": "user", "content": nested(300)}],
    },
    "/v1/chat/completions#tools": {"model": "fetcher", "messages": HI, "tools": nested(100)},
    "/v1/responses": {"model": "counter", "input": nested(255)},
    "/v1/messages": {"model": "counter", "max_tokens": 8, "messages": HI, "metadata": nested(1000)},
    "/v1/messages/count_tokens": {
        "model": "counter",
        "messages": [{"role": "user", "content": nested(70)}],
    },
    "/v1/completions": {"model": "gpt", "prompt": nested(500)},
    "/v1/sessions": {"agent": "counter", "metadata": nested(65)},
}


@pytest.mark.parametrize("target", sorted(DEEP_BODIES))
def test_deep_json_is_a_400_and_the_connection_lives_on(
    hardened: RunningServer, fake: FakeUpstream, target: str
) -> None:
    path = target.split("#")[0]
    with httpx.Client(base_url=hardened.base_url, headers=ADMIN_HEADERS, timeout=30) as client:
        before = client.get("/v1/sessions").json()["data"]
        response = client.post(path, content=deep(DEEP_BODIES[target]))
        assert response.status_code == 400, response.text
        assert response.headers["x-request-id"]
        error = response.json()["error"]
        message = error["message"]
        assert "deeper than 64 levels" in message
        if path.startswith("/v1/messages"):
            assert response.json()["type"] == "error"
            assert error["type"] == "invalid_request_error"
        else:
            assert error["code"] == "json_too_deep"
            assert error["param"] in ("metadata", "messages", "tools", "input", "prompt")
        # The same keep-alive connection still answers, and nothing was run or stored.
        assert client.get("/v1/sessions").json()["data"] == before
    assert fake.received("h") == []


def test_64_levels_still_pass(hardened: RunningServer, fake: FakeUpstream) -> None:
    body = {"model": "gpt", "messages": HI, "metadata": {"a": nested(61)}}
    response = httpx.post(
        hardened.api + "/chat/completions",
        content=deep(body),
        headers={**ADMIN_HEADERS, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


# ---- the way in: sizes and deadlines


def raw(server: RunningServer) -> socket.socket:
    port = int(server.base_url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_body_that_never_finishes_gets_408(hardened: RunningServer) -> None:
    with raw(hardened) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + ADMIN.encode()
            + b'\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model"'
        )
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()
    assert b'"code":"request_timeout"' in answer
    assert time.monotonic() - started < 4


def trickle_head(sock: socket.socket) -> bytes:
    """A request head sent a header byte every 0.2 s (the slow-loris pattern); what came back."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    for _ in range(20):
        try:
            sock.sendall(b"X")
        except OSError:
            break
        time.sleep(0.2)
    return read_all(sock)


def test_headers_sent_slowly_get_408(hardened: RunningServer) -> None:
    with raw(hardened) as sock:
        started = time.monotonic()
        answer = trickle_head(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 4


def test_deadlines_follow_each_request_of_a_kept_alive_connection(
    hardened: RunningServer,
) -> None:
    """The second request on a connection gets its own header deadline: trickled in, it
    is refused as the first would be (the deadline timer follows the connection's
    requests rather than being made anew for each)."""
    with raw(hardened) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        time.sleep(0.5)
        answer = trickle_head(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 1.4 < time.monotonic() - started < 4


def test_an_answer_slower_than_the_deadlines_is_not_cut(
    hardened: RunningServer, fake: FakeUpstream
) -> None:
    """Header and body deadlines end with the request's body: the answer may take longer."""
    fake.script("h", Reply(text="worth the wait", first_delay=2.5))
    response = ask(hardened, "counter")
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "worth the wait"


def test_an_idle_connection_is_closed(hardened: RunningServer) -> None:
    with raw(hardened) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""
        assert time.monotonic() - started < 4
    with raw(hardened) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        answer = read_all(sock)  # the answer, then the close once idle
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert time.monotonic() - started < 4


def test_a_connection_used_within_the_idle_timeout_stays_open(hardened: RunningServer) -> None:
    """The idle deadline starts again after each answer: three requests 0.6 s apart (1.2 s
    in all, past the 1 s idle timeout) share one connection."""
    with raw(hardened) as sock:
        for number in range(3):
            if number:
                time.sleep(0.6)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 "), number


def test_oversized_headers_get_431(hardened: RunningServer) -> None:
    with raw(hardened) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"code":"headers_too_large"' in answer
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(60))
    with raw(hardened) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 431 ")
    # Within the limits, the same server answers.
    assert httpx.get(hardened.base_url + "/health", headers={"X-Big": "a" * 8000}).is_success


# ---- keys: HEAD and one credential


def test_head_needs_the_same_scope_as_get(hardened: RunningServer) -> None:
    chat_only = issue(hardened, name="chat-only", scopes=["chat"])
    reader = issue(hardened, name="reader", scopes=["sessions:read"])
    session = httpx.post(
        hardened.api + "/sessions", json={"agent": "counter"}, headers=ADMIN_HEADERS
    ).json()
    path = f"{hardened.api}/sessions/{session['id']}"
    for method in ("GET", "HEAD"):
        denied = httpx.request(
            method, path, headers={"Authorization": f"Bearer {chat_only['secret']}"}
        )
        assert denied.status_code == 403, method
    # The reader is another key: the admin's session is not its own, in either method.
    for method in ("GET", "HEAD"):
        hidden = httpx.request(
            method, path, headers={"Authorization": f"Bearer {reader['secret']}"}
        )
        assert hidden.status_code == 404, method
    assert httpx.head(path, headers=ADMIN_HEADERS).status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/completions", "/v1/models"],
)
@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", f"Bearer {ADMIN}"), ("Authorization", "Bearer sk-he-other")],
        [("x-api-key", "sk-he-other"), ("x-api-key", ADMIN)],
        [("Authorization", f"Bearer {ADMIN}"), ("x-api-key", ADMIN)],
    ],
    ids=["two-bearer", "two-x-api-key", "both-kinds"],
)
def test_two_credentials_are_refused(
    hardened: RunningServer, fake: FakeUpstream, path: str, headers: list[tuple[str, str]]
) -> None:
    method = "GET" if path == "/v1/models" else "POST"
    body = {"model": "counter", "messages": HI, "max_tokens": 5, "input": "hi", "prompt": "hi"}
    response = httpx.request(
        method, hardened.base_url + path, headers=httpx.Headers(headers), json=body
    )
    assert response.status_code == 401
    payload = response.json()
    error = payload["error"]
    assert "one credential" in error["message"]
    if path == "/v1/messages":
        assert payload["type"] == "error"
        assert error["type"] == "authentication_error"
    else:
        assert error["code"] == "invalid_api_key"
    assert fake.received("h") == []


# ---- a session belongs to its agent


def test_a_session_is_continued_only_by_its_agent(
    hardened: RunningServer, fake: FakeUpstream
) -> None:
    client = httpx.Client(base_url=hardened.api, headers=ADMIN_HEADERS, timeout=30)
    first = client.post("/chat/completions", json={"model": "counter", "messages": HI})
    assert first.status_code == 200
    session_id = first.json()["session_id"]
    refused = client.post(
        "/chat/completions",
        json={"model": "other", "messages": HI, "session_id": session_id},
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "session_model_mismatch"
    assert error["param"] == "model"
    assert "'counter'" in error["message"]
    stored = client.get(f"/sessions/{session_id}").json()
    assert (stored["agent"], stored["turns"]) == ("counter", 1)
    assert len(fake.received("h")) == 1  # `other` never ran
    again = client.post(
        "/chat/completions",
        json={"model": "counter", "messages": HI, "session_id": session_id},
    )
    assert again.status_code == 200
    assert client.get(f"/sessions/{session_id}").json()["turns"] == 2


def test_a_response_continued_with_another_model_forks(
    hardened: RunningServer, fake: FakeUpstream
) -> None:
    client = httpx.Client(base_url=hardened.api, headers=ADMIN_HEADERS, timeout=30)
    first = client.post("/responses", json={"model": "counter", "input": "Hi"}).json()
    second = client.post(
        "/responses",
        json={"model": "other", "input": "And you?", "previous_response_id": first["id"]},
    )
    assert second.status_code == 200, second.text
    # `other` saw the conversation so far, in a session of its own.
    seen = fake.received("h")[-1].body["messages"]
    assert [m["role"] for m in seen if m["role"] != "system"] == ["user", "assistant", "user"]
    fork = client.get(f"/sessions/{second.json()['session_id']}").json()
    assert fork["agent"] == "other"
    assert fork["metadata"]["forked_from"] == first["session_id"]
    assert client.get(f"/sessions/{first['session_id']}").json()["turns"] == 1


def test_an_upgrade_headend_does_not_speak_gets_426(hardened: RunningServer) -> None:
    """WebSocket is served (tests/e2e/test_responses_websocket.py); any other upgrade, or a
    WebSocket handshake that is not one, is answered as HTTP, never left hanging."""
    upgrade = {"Upgrade": "h2c", "Connection": "Upgrade", **ADMIN_HEADERS}
    refused = httpx.get(hardened.api + "/responses", headers=upgrade, timeout=5)
    assert refused.status_code == 426
    assert refused.headers["connection"] == "close"
    assert refused.json()["error"]["code"] == "upgrade_not_supported"
    half = {"Upgrade": "websocket", "Connection": "Upgrade", **ADMIN_HEADERS}  # no key, version
    assert httpx.get(hardened.api + "/responses", headers=half, timeout=5).status_code == 400
    assert httpx.get(hardened.api + "/responses", headers=ADMIN_HEADERS).status_code == 405
